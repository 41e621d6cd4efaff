namespace Shipyard.Driver;

/// <summary>
/// A runner-sized `externals/` tree built from the host's Node and npm (no downloads): four node builds
/// named as the runner names them, each `bin/node`, `bin/npm` and `bin/npx` (symlinks, as in the official
/// tarball) and `lib/node_modules/npm` — about 470 MB in about 9.7k files, the shape of a real runner's
/// externals. Built once per host node version under /var/cache/shipyard-bench; read-only afterwards.
/// </summary>
public static class RunnerExternals
{
    public static readonly string[] Builds = ["node20", "node20_alpine", "node24", "node24_alpine"];

    public static string Ensure()
    {
        var node = RunnerJob.HostNode() ?? throw new InvalidOperationException("No node on PATH: the runner-sized externals are built from the host's Node.");
        var prefix = Path.GetDirectoryName(Path.GetDirectoryName(node))!;
        var npm = Path.Combine(prefix, "lib", "node_modules", "npm");
        if (!Directory.Exists(npm)) throw new InvalidOperationException($"{npm} is missing: the runner-sized externals need the host's npm.");
        var info = new FileInfo(node);
        var root = Path.Combine("/var/cache/shipyard-bench", $"externals-{info.Length}-{info.LastWriteTimeUtc.Ticks}");
        if (File.Exists(root + ".complete")) return root;
        if (Directory.Exists(root)) Directory.Delete(root, true);
        foreach (var build in Builds)
        {
            var bin = Path.Combine(root, build, "bin");
            Directory.CreateDirectory(bin);
            File.Copy(node, Path.Combine(bin, "node"));
            CopyTree(npm, Path.Combine(root, build, "lib", "node_modules", "npm"));
            File.CreateSymbolicLink(Path.Combine(bin, "npm"), "../lib/node_modules/npm/bin/npm-cli.js");
            File.CreateSymbolicLink(Path.Combine(bin, "npx"), "../lib/node_modules/npm/bin/npx-cli.js");
        }
        File.WriteAllText(root + ".complete", "");
        return root;
    }

    /// <summary>Copies a tree, links as links (also the benchmark's workspace).</summary>
    internal static void CopyTree(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var entry in new DirectoryInfo(source).EnumerateFileSystemInfos())
        {
            var to = Path.Combine(target, entry.Name);
            if (entry.LinkTarget is { } link) File.CreateSymbolicLink(to, link);
            else if (entry is DirectoryInfo) CopyTree(entry.FullName, to);
            else File.Copy(entry.FullName, to);
        }
    }
}
