using System.Diagnostics;
using System.Formats.Tar;
using System.Security.Cryptography;

namespace Shipyard.E2E;

/// <summary>The test cluster's Docker engine, through its CLI with a config directory of its own (root's login untouched).</summary>
public sealed class DockerCli(string configDir)
{
    public async Task<string> RunAsync(string args, string? stdin = null)
    {
        using var p = Start(args);
        if (stdin is not null) await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        var err = p.StandardError.ReadToEndAsync();
        var output = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"docker {args}: exit {p.ExitCode}: {await err}");
        return output.Trim();
    }

    Process Start(string args)
    {
        Directory.CreateDirectory(configDir);
        var psi = new ProcessStartInfo("docker", $"--config {configDir} {args}")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        return Process.Start(psi)!;
    }

    /// <summary>
    /// Every file of an image as a container of it has it: path → `type mode uid:gid size sha256 link`
    /// (no times, no directory sizes).
    /// </summary>
    public async Task<SortedDictionary<string, string>> FilesAsync(string image)
    {
        var id = await RunAsync($"create {image} /bin/true");
        try
        {
            using var p = Start($"export {id}");
            p.StandardInput.Close();
            var err = p.StandardError.ReadToEndAsync();
            var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
            // The reader stops at the end-of-archive blocks; the pipe stays open and is drained after, or docker
            // export, still writing its padding, dies of a closed pipe and the export looks failed (CI, session 5).
            using (var tar = new TarReader(p.StandardOutput.BaseStream, leaveOpen: true))
            {
                while (await tar.GetNextEntryAsync() is { } e)
                {
                    var path = e.Name.TrimStart('.').Trim('/');
                    if (path.Length == 0) path = "/";
                    var hash = "-";
                    if (e.DataStream is { } data) hash = Convert.ToHexStringLower(await SHA256.HashDataAsync(data))[..16];
                    var size = e.EntryType is TarEntryType.Directory ? 0 : e.Length;
                    files[path] = $"{e.EntryType} {Convert.ToString((int)e.Mode, 8)} {e.Uid}:{e.Gid} {size} {hash} {e.LinkName}";
                }
            }
            await p.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
            await p.WaitForExitAsync();
            if (p.ExitCode != 0) throw new InvalidOperationException($"docker export: exit {p.ExitCode}: {await err}");
            return files;
        }
        finally { await RunAsync($"rm {id}"); }
    }
}
