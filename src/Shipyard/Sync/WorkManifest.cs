using System.IO.Enumeration;
using System.Text;

namespace Shipyard.Sync;

/// <summary>One entry of the runner's `_work`: what tells a changed file from an unchanged one.</summary>
public sealed record WorkEntry(string Path, char Type, long Size, int Mode, long MTimeTicks);

/// <summary>What to send so the other side matches: entries to (re)write, and paths to remove first.</summary>
public sealed record WorkChanges(IReadOnlyList<WorkEntry> Changed, IReadOnlyList<string> Deleted)
{
    public bool IsEmpty => Changed.Count == 0 && Deleted.Count == 0;
}

/// <summary>
/// Path, type, size, mode and modification time of everything under the runner's `_work` (links not
/// followed). No-volume mode keeps the manifest of the last sync with the job pod, so the next sync sends
/// only what the runner changed since — a new script, fresh file-command files, a downloaded action.
/// </summary>
public sealed class WorkManifest
{
    /// <summary>Sync bookkeeping in the pod; never a workflow's file.</summary>
    public const string SyncDirectory = ".shipyard-sync";
    /// <summary>prepare_job's record that this runner has had a job pod; it outlives cleanup_job, so not in <see cref="SyncDirectory"/>.</summary>
    public const string JobPodRecord = ".shipyard-job-pod";

    readonly Dictionary<string, WorkEntry> entries;

    WorkManifest(Dictionary<string, WorkEntry> entries) => this.entries = entries;

    public static WorkManifest Empty => new(new Dictionary<string, WorkEntry>(StringComparer.Ordinal));

    public IReadOnlyCollection<WorkEntry> Entries => entries.Values;
    public bool Contains(string path) => entries.ContainsKey(path);

    /// <summary>
    /// Paths neither side sends nor removes: Shipyard's own bookkeeping, and the runner's hook response files
    /// (written for this very call, read only by the runner).
    /// </summary>
    public static bool IsPrivate(string path) =>
        Under(path, SyncDirectory) || path == JobPodRecord || Under(path, "_temp/_runner_hook_responses");

    static bool Under(string path, string dir) =>
        path == dir || path.StartsWith(dir + "/", StringComparison.Ordinal);

    /// <summary>Everything below <paramref name="root"/> (or below the given subtrees of it) except private paths.</summary>
    public static WorkManifest Scan(string root, IReadOnlyList<string>? only = null)
    {
        var all = new Dictionary<string, WorkEntry>(StringComparer.Ordinal);
        root = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(root));
        if (!Directory.Exists(root)) return new WorkManifest(all);
        foreach (var top in only ?? [""])
        {
            var start = top.Length == 0 ? root : System.IO.Path.Combine(root, top);
            if (top.Length > 0)
            {
                // The subtree's own ancestors are sent too, so it lands with the runner's modes.
                for (var p = top; p.Length > 0; p = System.IO.Path.GetDirectoryName(p) ?? "")
                    if (!all.ContainsKey(p) && Stat(root, p) is { Type: 'd' } ancestor) all[p] = ancestor;
                if (!Directory.Exists(start)) continue;
            }
            var found = new FileSystemEnumerable<WorkEntry?>(start, (ref FileSystemEntry e) =>
            {
                var full = e.ToFullPath();
                var rel = full[(root.Length + 1)..];
                if (IsPrivate(rel)) return null;
                var isLink = (e.Attributes & FileAttributes.ReparsePoint) != 0;
                // From the status the enumeration already read: no second stat per entry.
                var mode = (int)e.ToFileSystemInfo().UnixFileMode;
                return isLink ? new WorkEntry(rel, 'l', e.Length, mode, e.LastWriteTimeUtc.Ticks)
                    : e.IsDirectory ? new WorkEntry(rel, 'd', 0, mode, e.LastWriteTimeUtc.Ticks)
                    : new WorkEntry(rel, 'f', e.Length, mode, e.LastWriteTimeUtc.Ticks);
            }, new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false })
            {
                // A link to a directory is sent as a link, never walked into.
                ShouldRecursePredicate = (ref FileSystemEntry e) => (e.Attributes & FileAttributes.ReparsePoint) == 0 &&
                    !IsPrivate(e.ToFullPath()[(root.Length + 1)..]),
            };
            foreach (var entry in found)
                if (entry is not null) all[entry.Path] = entry;
        }
        return new WorkManifest(all);
    }

    /// <summary>One path looked at on its own (a subtree's ancestor, a path just written), or null when it is gone.</summary>
    static WorkEntry? Stat(string root, string rel)
    {
        var full = System.IO.Path.Combine(root, rel);
        var info = new FileInfo(full);
        if (info.LinkTarget is not null) return new WorkEntry(rel, 'l', info.Length, (int)info.UnixFileMode, info.LastWriteTimeUtc.Ticks);
        if (info.Exists) return new WorkEntry(rel, 'f', info.Length, (int)info.UnixFileMode, info.LastWriteTimeUtc.Ticks);
        if (!Directory.Exists(full)) return null;
        var d = new DirectoryInfo(full);
        return new WorkEntry(rel, 'd', 0, (int)d.UnixFileMode, d.LastWriteTimeUtc.Ticks);
    }

    /// <summary>This manifest after <paramref name="removed"/> went (with what they held) and <paramref name="written"/> were written: only those are looked at again.</summary>
    public WorkManifest After(string root, IReadOnlyList<string> removed, IReadOnlyList<string> written)
    {
        var all = new Dictionary<string, WorkEntry>(entries, StringComparer.Ordinal);
        if (removed.Count > 0)
        {
            var gone = removed.ToHashSet(StringComparer.Ordinal);
            foreach (var path in all.Keys.ToList())
                for (var p = path; p.Length > 0; p = System.IO.Path.GetDirectoryName(p) ?? "")
                    if (gone.Contains(p)) { all.Remove(path); break; }
        }
        // Writing or removing an entry also moved its directory's time.
        var again = written.Concat(removed.Concat(written).Select(p => System.IO.Path.GetDirectoryName(p) ?? "").Where(d => d.Length > 0)).Distinct();
        foreach (var rel in again)
            if (Stat(root, rel) is { } entry) all[rel] = entry;
        return new WorkManifest(all);
    }

    /// <summary>What turns <paramref name="before"/> into this: a type change is a removal and a write.</summary>
    public WorkChanges Since(WorkManifest before)
    {
        var changed = new List<WorkEntry>();
        var deleted = new List<string>();
        foreach (var (path, old) in before.entries)
        {
            if (!entries.TryGetValue(path, out var now)) deleted.Add(path);
            else if (now.Type != old.Type) deleted.Add(path);
        }
        foreach (var (path, now) in entries)
            if (!before.entries.TryGetValue(path, out var old) || old != now) changed.Add(now);
        // Parents before children when written; a removed directory makes removing what it held needless.
        changed.Sort((a, b) => string.CompareOrdinal(a.Path, b.Path));
        deleted.Sort(StringComparer.Ordinal);
        var pruned = new List<string>();
        foreach (var d in deleted)
            if (pruned.Count == 0 || !d.StartsWith(pruned[^1] + "/", StringComparison.Ordinal)) pruned.Add(d);
        return new WorkChanges(changed, pruned);
    }

    // One record per entry: type, size, mode, ticks, path — NUL-terminated, since a path may hold anything else.
    public void Save(string file)
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(file)!);
        var sb = new StringBuilder();
        foreach (var e in entries.Values)
            sb.Append(e.Type).Append('\t').Append(e.Size).Append('\t').Append(e.Mode).Append('\t').Append(e.MTimeTicks).Append('\t').Append(e.Path).Append('\0');
        var tmp = file + ".tmp";
        File.WriteAllText(tmp, sb.ToString());
        File.Move(tmp, file, overwrite: true);
    }

    public static WorkManifest Load(string file)
    {
        var all = new Dictionary<string, WorkEntry>(StringComparer.Ordinal);
        if (!File.Exists(file)) return new WorkManifest(all);
        foreach (var record in File.ReadAllText(file).Split('\0', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = record.Split('\t', 5);
            if (f.Length != 5 || f[0].Length != 1 || !long.TryParse(f[1], out var size) || !int.TryParse(f[2], out var mode) || !long.TryParse(f[3], out var ticks))
                return new WorkManifest(new Dictionary<string, WorkEntry>(StringComparer.Ordinal)); // unreadable: send everything again
            all[f[4]] = new WorkEntry(f[4], f[0][0], size, mode, ticks);
        }
        return new WorkManifest(all);
    }
}
