using System.Security.Cryptography;
using System.Text;
using System.IO.Enumeration;
using System.Text.RegularExpressions;

namespace Shipyard.Runner;

/// <summary>
/// The job container sees the runner's externals at `/__e`, the subPath `externals` of the work volume.
/// A runner's externals are several node builds (~450 MB); copying all of them into every fresh work volume
/// dominated job start (upstream #80/#167), while a job uses at most one or two. So each build
/// (`externals/node20`) is copied the first time a step names it (`/__e/node20/bin/node`), into a staging
/// directory renamed into place — the job pod's mount of `externals/` sees it appear whole — and again only
/// when its fingerprint (paths, sizes, modification times) changed.
/// </summary>
public sealed partial class Externals(string source, string target)
{
    const string StampFile = ".shipyard-externals";

    /// <summary>`/__e/&lt;build&gt;` anywhere in a text; build names are single path segments.</summary>
    [GeneratedRegex(@"/__e/([A-Za-z0-9._+-]+)")]
    private static partial Regex Reference();

    /// <summary>The directory the job pod mounts must exist before the pod starts, even if empty.</summary>
    public void CreateMountPoint() => Directory.CreateDirectory(target);

    /// <summary>The builds of the runner's externals that these texts (entry point, arguments, script) name.</summary>
    public IReadOnlyList<string> Referenced(IEnumerable<string?> texts) =>
        texts.Where(t => t is not null && t.Contains("/__e/", StringComparison.Ordinal))
            .SelectMany(t => Reference().Matches(t!).Select(m => m.Groups[1].Value))
            .Where(b => b is not "." and not ".." && Directory.Exists(Path.Combine(source, b)))
            .Distinct(StringComparer.Ordinal).ToList();

    /// <summary>Every build (eager mode): what the job container can reach without naming it to the hook.</summary>
    public IReadOnlyList<string> All() =>
        Directory.Exists(source) ? Directory.EnumerateDirectories(source).Select(d => Path.GetFileName(d)).Order(StringComparer.Ordinal).ToList() : [];

    /// <summary>Copies one build unless the copy is current; returns true when it copied.</summary>
    public bool EnsureCopied(string build)
    {
        var from = Path.Combine(source, build);
        var to = Path.Combine(target, build);
        var fingerprint = Fingerprint(from);
        var stamp = Path.Combine(to, StampFile);
        if (File.Exists(stamp) && File.ReadAllText(stamp) == fingerprint) return false;

        Directory.CreateDirectory(target);
        var staging = Path.Combine(target, $".{build}.tmp-{Environment.ProcessId}");
        if (Directory.Exists(staging)) Directory.Delete(staging, true);
        CopyTree(from, staging);
        File.WriteAllText(Path.Combine(staging, StampFile), fingerprint);
        if (Directory.Exists(to))
        {
            // An outdated copy (a persistent volume from an older runner): move it aside, swap, then delete.
            var old = Path.Combine(target, $".{build}.old-{Environment.ProcessId}");
            Directory.Move(to, old);
            Directory.Move(staging, to);
            Directory.Delete(old, true);
        }
        else Directory.Move(staging, to);
        return true;
    }

    /// <summary>Paths, sizes, modification times and link targets of a tree; read on every step that names the build, so kept cheap.</summary>
    public static string Fingerprint(string root)
    {
        var entries = new FileSystemEnumerable<string>(root, (ref FileSystemEntry e) =>
        {
            var path = e.ToFullPath();
            var isLink = (e.Attributes & FileAttributes.ReparsePoint) != 0;
            return isLink ? $"{path}\0->{new FileInfo(path).LinkTarget}"
                : e.IsDirectory ? path : $"{path}\0{e.Length}\0{e.LastWriteTimeUtc.Ticks}";
        }, FileTree.Everything).ToList();
        entries.Sort(StringComparer.Ordinal);
        var sb = new StringBuilder();
        foreach (var entry in entries) sb.Append(entry, root.Length, entry.Length - root.Length).Append('\n');
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
    }

    static void CopyTree(string source, string target)
    {
        Directory.CreateDirectory(target);
        // Ordinal path order: a directory before what it holds.
        foreach (var e in new DirectoryInfo(source).EnumerateFileSystemInfos("*", FileTree.Everything).OrderBy(e => e.FullName, StringComparer.Ordinal))
            FileTree.CopyEntry(e, Path.Combine(target, Path.GetRelativePath(source, e.FullName)));
    }
}
