using System.Security.Cryptography;
using System.Text;

namespace Shipyard.Images;

/// <summary>
/// The build context of a Dockerfile action, by docker's rules: what `.dockerignore` leaves is what the builder
/// is given (a filtered copy, so every builder sees the same files whatever its own `.dockerignore` support) and
/// what the content address covers — the Dockerfile, every included file by path, kind, mode and bytes, and the
/// builder's identity. Same inputs, same tag; so an action at the same ref is built once per registry.
/// </summary>
public static class BuildContext
{
    /// <summary>The context entries docker would send, in ordinal path order (the Dockerfile is handled by the caller).</summary>
    static List<(string Rel, FileSystemInfo Entry)> Included(string contextDir)
    {
        var ignore = DockerIgnore.Load(contextDir);
        var entries = new DirectoryInfo(contextDir).EnumerateFileSystemInfos("*", FileTree.Everything)
            .Select(e => (Rel: Path.GetRelativePath(contextDir, e.FullName).Replace('\\', '/'), Entry: e))
            .Where(e => !ignore.Excludes(e.Rel)).ToList();
        // Ordinal order: nothing depends on the order the file system lists entries in.
        entries.Sort((a, b) => string.CompareOrdinal(a.Rel, b.Rel));
        return entries;
    }

    /// <param name="platform">`linux/amd64`: one image per platform, so a mixed cluster never runs another architecture's build.</param>
    public static string Hash(string contextDir, string dockerfileName, string builderIdentity, string platform)
    {
        var entries = Included(contextDir);
        // The Dockerfile counts even when `.dockerignore` names it: docker still sends it to build from.
        if (!entries.Any(e => e.Rel == dockerfileName))
        {
            entries.Add((dockerfileName, new FileInfo(Path.Combine(contextDir, dockerfileName))));
            entries.Sort((a, b) => string.CompareOrdinal(a.Rel, b.Rel));
        }
        var sb = new StringBuilder();
        sb.Append("shipyard-build-v2\n").Append(builderIdentity).Append('\n').Append(platform).Append('\n').Append(dockerfileName).Append('\n');
        foreach (var (rel, entry) in entries)
        {
            var mode = Convert.ToString((int)entry.UnixFileMode, 8);
            var line = FileTree.IsLink(entry) ? $"l {mode} {entry.LinkTarget}"
                : entry is DirectoryInfo ? $"d {mode}"
                : $"f {mode} {Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(entry.FullName)))}";
            sb.Append(rel).Append('\0').Append(line).Append('\n');
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())))[..40];
    }

    /// <summary>
    /// Copies what docker would send into <paramref name="context"/> (files with their modes, symlinks as links,
    /// directories with their modes; parents of re-included files created) and the Dockerfile, which docker
    /// always has, into <paramref name="dockerfileDir"/> beside it.
    /// </summary>
    public static void Stage(string contextDir, string dockerfileName, string context, string dockerfileDir)
    {
        Directory.CreateDirectory(context);
        foreach (var (rel, entry) in Included(contextDir)) FileTree.CopyEntry(entry, Path.Combine(context, rel));
        Directory.CreateDirectory(dockerfileDir);
        File.Copy(Path.Combine(contextDir, dockerfileName), Path.Combine(dockerfileDir, Path.GetFileName(dockerfileName)));
    }
}
