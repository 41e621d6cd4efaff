using System.Formats.Tar;
using System.Text;

namespace Shipyard.Sync;

/// <summary>
/// The tar archives no-volume sync sends: the runner's changes (plus the list of removed paths, first, at
/// `.shipyard-sync/deleted`) into a pod, and a pod's changes back, written under the runner's `_work` without
/// ever leaving it — no absolute or `..` names, no writing through a link a step planted.
/// </summary>
public static class WorkArchive
{
    public const string DeletedList = WorkManifest.SyncDirectory + "/deleted";

    public static void Write(Stream sink, string root, WorkChanges changes)
    {
        using var tar = new TarWriter(sink, TarEntryFormat.Pax, leaveOpen: true);
        var list = Encoding.UTF8.GetBytes(string.Concat(changes.Deleted.Select(d => d + "\0")));
        tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, DeletedList) { DataStream = new MemoryStream(list), Mode = (UnixFileMode)0b110_100_100 });
        foreach (var e in changes.Changed)
        {
            var full = Path.Combine(root, e.Path);
            try { tar.WriteEntry(full, e.Path); }
            // Changed again or removed since the scan (a runner process still writing): the next sync has it.
            catch (Exception x) when (x is FileNotFoundException or DirectoryNotFoundException) { }
        }
    }

    /// <summary>Applies a pod's archive below <paramref name="root"/>; returns the paths it wrote.</summary>
    public static IReadOnlyList<string> Extract(Stream archive, string root)
    {
        root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        using var tar = new TarReader(archive, leaveOpen: true);
        var directoryTimes = new List<(string Path, DateTimeOffset Time)>();
        var written = new List<string>();
        while (tar.GetNextEntry() is { } entry)
        {
            var rel = Relative(entry.Name);
            if (rel is null || WorkManifest.IsPrivate(rel)) continue;
            var dest = Path.Combine(root, rel);
            EnsureRealDirectories(root, Path.GetDirectoryName(rel) ?? "");
            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    if (!Directory.Exists(dest) || IsLink(dest)) { RemoveAny(dest); Directory.CreateDirectory(dest); }
                    File.SetUnixFileMode(dest, entry.Mode);
                    directoryTimes.Add((dest, entry.ModificationTime));
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile:
                    RemoveAny(dest);
                    using (var f = new FileStream(dest, FileMode.CreateNew, FileAccess.Write))
                        entry.DataStream?.CopyTo(f);
                    File.SetUnixFileMode(dest, entry.Mode);
                    File.SetLastWriteTimeUtc(dest, entry.ModificationTime.UtcDateTime);
                    break;
                case TarEntryType.SymbolicLink:
                    RemoveAny(dest);
                    File.CreateSymbolicLink(dest, entry.LinkName);
                    break;
                case TarEntryType.HardLink:
                    // Names of one file the step linked: a copy of the first name, which is already here.
                    if (Relative(entry.LinkName) is not { } target || !File.Exists(Path.Combine(root, target)) || IsLink(Path.Combine(root, target))) continue;
                    RemoveAny(dest);
                    File.Copy(Path.Combine(root, target), dest);
                    break;
                default:
                    continue; // devices and fifos have no place in a workspace
            }
            written.Add(rel);
        }
        // Writing children moved the directories' times; set them last, deepest first.
        foreach (var (path, time) in directoryTimes.OrderByDescending(d => d.Path.Length))
            Directory.SetLastWriteTimeUtc(path, time.UtcDateTime);
        return written;
    }

    /// <summary>A tar member name as a path below the root, or null when it would leave it.</summary>
    public static string? Relative(string name)
    {
        var n = name.Replace('\\', '/');
        while (n.StartsWith("./", StringComparison.Ordinal)) n = n[2..];
        n = n.TrimEnd('/');
        if (n.Length == 0 || n.StartsWith('/')) return null;
        var parts = n.Split('/');
        if (parts.Any(p => p is "" or "." or "..")) return null;
        return string.Join('/', parts);
    }

    /// <summary>Removes paths (deepest first) unless private; a missing one is fine. Returns the paths it was given to remove.</summary>
    public static IReadOnlyList<string> Remove(string root, IEnumerable<string> paths)
    {
        var removed = new List<string>();
        foreach (var rel in paths.OrderByDescending(p => p.Length))
        {
            if (Relative(rel) is not { } r || WorkManifest.IsPrivate(r)) continue;
            var parent = Path.GetDirectoryName(r) ?? "";
            if (!IsRealDirectoryChain(root, parent)) continue;
            RemoveAny(Path.Combine(root, r));
            removed.Add(r);
        }
        return removed;
    }

    static bool IsLink(string path) => new FileInfo(path).LinkTarget is not null;

    static void RemoveAny(string path)
    {
        var info = new FileInfo(path);
        if (info.LinkTarget is not null || info.Exists) { info.Delete(); return; }
        if (Directory.Exists(path)) Directory.Delete(path, recursive: true);
    }

    static bool IsRealDirectoryChain(string root, string rel)
    {
        var at = root;
        foreach (var part in rel.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            at = Path.Combine(at, part);
            if (IsLink(at) || !Directory.Exists(at)) return false;
        }
        return true;
    }

    /// <summary>Every ancestor is a directory, not a link (a planted link is replaced, never written through).</summary>
    static void EnsureRealDirectories(string root, string rel)
    {
        var at = root;
        foreach (var part in rel.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            at = Path.Combine(at, part);
            if (IsLink(at) || File.Exists(at)) RemoveAny(at);
            if (!Directory.Exists(at)) Directory.CreateDirectory(at);
        }
    }
}
