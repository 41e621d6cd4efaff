using System.Security.Cryptography;
using System.Text;

namespace Shipyard.Images;

/// <summary>
/// The content address of a Dockerfile action: the Dockerfile, every context file the builder sees
/// (after `.dockerignore`) by path, kind, mode and bytes, and the builder's identity. Same inputs,
/// same tag; so an action at the same ref is built once per registry, not once per job.
/// </summary>
public static class BuildContext
{
    public static string Hash(string contextDir, string dockerfileName, string builderIdentity)
    {
        var ignore = DockerIgnore.Load(contextDir);
        var entries = new List<(string Path, string Line)>();
        foreach (var entry in new DirectoryInfo(contextDir).EnumerateFileSystemInfos("*", new EnumerationOptions
                 { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false }))
        {
            var rel = Path.GetRelativePath(contextDir, entry.FullName).Replace('\\', '/');
            if (ignore.Excludes(rel) && rel != dockerfileName) continue;
            var mode = Convert.ToString((int)entry.UnixFileMode, 8);
            string line;
            if (entry.LinkTarget is { } target) line = $"l {mode} {target}";
            else if (entry is DirectoryInfo) line = $"d {mode}";
            else line = $"f {mode} {Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(entry.FullName)))}";
            entries.Add((rel, line));
        }
        // Ordinal order: the hash never depends on the order the file system lists entries in.
        entries.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        var sb = new StringBuilder();
        sb.Append("shipyard-build-v1\n").Append(builderIdentity).Append('\n').Append(dockerfileName).Append('\n');
        foreach (var (path, line) in entries) sb.Append(path).Append('\0').Append(line).Append('\n');
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())))[..40];
    }
}
