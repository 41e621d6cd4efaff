using System.Security.Cryptography;
using System.Text;
using Shipyard.Cluster;

namespace Shipyard.Sync;

/// <summary>Where a pod's copy of `_work` is, and which container of it (runner image: sh, GNU tar and find) does the copying.</summary>
public sealed record SyncTarget(string Pod, string Container, string Root = SyncTarget.PodRoot)
{
    public const string PodRoot = "/__w";
}

/// <summary>
/// No-volume mode's transfers between the runner's `_work` and a pod-local copy, as tar over exec. v4 exec
/// cannot close stdin, so nothing depends on EOF: what goes in is read as exactly N bytes and checked
/// against its SHA-256 before anything is unpacked; what comes out is framed by a header line with the
/// sizes and SHA-256 of the path list and the archive, and checked the same way. A short or corrupt
/// transfer fails with one line and changes nothing on the receiving side.
/// </summary>
public sealed class WorkSync(ClusterGateway cluster, string runnerRoot, Action<string> debug, Action<string> warn)
{
    const int IncompleteExit = 86;
    const string Header = "shipyard-sync";

    /// <summary>
    /// Sends <paramref name="changes"/> into the pod; afterwards the pod's later changes are told apart by ctime.
    /// <paramref name="advanceMark"/> false keeps the old mark: the last copy back failed, so what the pod changed
    /// since is sent at the next one (with what this push wrote, once).
    /// </summary>
    public async Task PushAsync(SyncTarget target, WorkChanges changes, bool markReady, CancellationToken ct, bool advanceMark = true)
    {
        using var push = await PrepareAsync(changes, target.Root, markReady, advanceMark, ct);
        await PushAsync(target, push, ct);
    }

    /// <summary>Sends a prepared push, retrying a broken stream (unpacking is all or nothing, so a second send is safe).</summary>
    public async Task PushAsync(SyncTarget target, Push push, CancellationToken ct)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (exit, err) = await WithRetryAsync(target, "into", async () =>
        {
            await using var input = push.Open();
            var stderr = new MemoryStream();
            return (await cluster.ExecAsync(target.Pod, target.Container, ["sh", "-c", PushScript, "sh", .. push.Args], input, Stream.Null, stderr, ct), stderr);
        });
        CheckPushed(exit, err, target.Pod);
        Pushed(target.Pod, push, clock.ElapsedMilliseconds);
    }

    /// <summary>Writes the archive of <paramref name="changes"/> and its digest; the arguments <see cref="PushScript"/> takes.</summary>
    public Task<Push> PrepareAsync(WorkChanges changes, string podRoot, bool markReady, bool advanceMark, CancellationToken ct) =>
        Push.WriteAsync(runnerRoot, changes, podRoot, markReady, advanceMark, ct);

    /// <summary>A push's exit code as the hook's answer: incomplete (nothing unpacked) or failed, each with one line.</summary>
    public static void CheckPushed(int exit, MemoryStream err, string pod)
    {
        if (exit == IncompleteExit)
            throw new HookException($"The copy of the runner's work files into pod {pod} arrived incomplete ({Text(err)}); nothing was unpacked, so the step fails.");
        if (exit != 0)
            throw new HookException($"Copying the runner's work files into pod {pod} failed (exit {exit}): {Text(err)}");
    }

    public void Pushed(string pod, Push push, long ms) =>
        debug($"sync into {pod}: {push.Entries} entries, {push.Removals} removals, {push.Length} bytes in {ms} ms");

    /// <summary>An archive ready to send (a temporary file, removed on dispose) and <see cref="PushScript"/>'s six arguments.</summary>
    public sealed record Push(string File, long Length, int Entries, int Removals, IReadOnlyList<string> Args) : IDisposable
    {
        public static async Task<Push> WriteAsync(string runnerRoot, WorkChanges changes, string podRoot, bool markReady, bool advanceMark, CancellationToken ct)
        {
            var tmp = Path.Combine(Path.GetTempPath(), $"shipyard-push-{Guid.NewGuid():N}.tar");
            try
            {
                await using var f = new FileStream(tmp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 64 * 1024);
                WorkArchive.Write(f, runnerRoot, changes);
                var length = f.Length;
                f.Position = 0;
                var sha = Convert.ToHexStringLower(await SHA256.HashDataAsync(f, ct));
                return new Push(tmp, length, changes.Changed.Count, changes.Deleted.Count,
                    [podRoot, length.ToString(), sha, markReady ? "ready" : "-", advanceMark ? "advance" : "-", changes.Deleted.Count > 0 ? "removals" : "-"]);
            }
            catch
            {
                System.IO.File.Delete(tmp);
                throw;
            }
        }

        public Stream Open() => new FileStream(File, FileMode.Open, FileAccess.Read, FileShare.Read, 64 * 1024);
        public void Dispose() => System.IO.File.Delete(File);
    }

    /// <summary>
    /// A new pod's first copy: everything in the runner's `_work` (below <paramref name="only"/> when given), into the
    /// init container that holds the pod, which it then lets go. Returns what was sent.
    /// </summary>
    public async Task<WorkManifest> FillAsync(SyncTarget target, IReadOnlyList<string>? only, CancellationToken ct)
    {
        var all = WorkManifest.Scan(runnerRoot, only);
        await PushAsync(target, all.Since(WorkManifest.Empty), markReady: true, ct);
        return all;
    }

    /// <summary>
    /// Brings back what changed in the pod since the last push (below <paramref name="only"/> when given), and
    /// removes on the runner what the pod no longer has. Returns what the runner's `_work` holds afterwards.
    /// </summary>
    public async Task<WorkManifest> PullAsync(SyncTarget target, IReadOnlyList<string>? only, CancellationToken ct)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var tmp = Path.Combine(Path.GetTempPath(), $"shipyard-pull-{Guid.NewGuid():N}");
        var roots = (only ?? [""]).Select(p => p.Length == 0 ? "." : "./" + p).ToList();
        string[] command = ["sh", "-c", PullScript, "sh", target.Root, .. roots];
        try
        {
            var (exit, err) = await WithRetryAsync(target, "from", async () =>
            {
                await using var output = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 64 * 1024);
                var stderr = new MemoryStream();
                return (await cluster.ExecAsync(target.Pod, target.Container, command, null, output, stderr, ct), stderr);
            });
            if (exit != 0)
                throw new HookException($"Copying the step's files back from pod {target.Pod} failed (exit {exit}): {Text(err)}");
            var after = Apply(tmp, target.Pod, only, err.Length > 0 ? Text(err) : null);
            debug($"sync from {target.Pod}: copied back in {clock.ElapsedMilliseconds} ms");
            return after;
        }
        finally
        {
            File.Delete(tmp);
        }
    }

    /// <summary>
    /// Checks a framed copy back (<see cref="PullScript"/>'s output, in <paramref name="framedFile"/>) whole, then
    /// removes on the runner what the pod no longer has and writes what it changed.
    /// </summary>
    /// <param name="onRunner">What the runner's `_work` holds now, when known (the manifest of the push before the step); else scanned.</param>
    /// <returns>What the runner's `_work` holds afterwards.</returns>
    public WorkManifest Apply(string framedFile, string pod, IReadOnlyList<string>? only, string? unreadableFiles, WorkManifest? onRunner = null)
    {
        using var framed = new FileStream(framedFile, FileMode.Open, FileAccess.Read, FileShare.None, 64 * 1024);
        var frame = ReadFrame(framed, pod);
        var inPod = frame.Paths;
        onRunner ??= WorkManifest.Scan(runnerRoot, only);
        // Only below the subtrees the pod listed (their ancestors are the runner's), never below what it could not read.
        var removed = WorkArchive.Remove(runnerRoot, onRunner.Entries.Select(e => e.Path)
            .Where(p => !inPod.Contains(p) && (only is null || only.Any(o => o.Length == 0 || p.StartsWith(o + "/", StringComparison.Ordinal)))
                && !frame.Unreadable.Any(d => p.StartsWith(d + "/", StringComparison.Ordinal))));
        framed.Position = frame.ArchiveAt;
        var written = WorkArchive.Extract(new BoundedStream(framed, frame.ArchiveLength), runnerRoot);
        // As on a work volume the runner's user could not read them either; said once, not a failure.
        if (unreadableFiles is not null || frame.Unreadable.Count > 0)
            warn($"What the sync container (the runner image's user) cannot read in pod {pod} stays in the pod only, as on a work volume the runner could not read it: " +
                string.Join("; ", frame.Unreadable.Select(d => d + "/").Append(unreadableFiles ?? "").Where(t => t.Length > 0)));
        debug($"applied from {pod}: {written.Count} entries of {inPod.Count} listed, {removed.Count} removed, {frame.ArchiveLength} archive bytes");
        return onRunner.After(runnerRoot, removed, written);
    }

    /// <summary>A broken exec stream is retried (a transfer is whole or not at all); the command's own failure is not.</summary>
    async Task<(int Exit, MemoryStream Err)> WithRetryAsync(SyncTarget target, string direction, Func<Task<(int, MemoryStream)>> attempt)
    {
        for (var i = 1; ; i++)
        {
            try { return await attempt(); }
            catch (HookException e) when (i < 3)
            {
                debug($"sync {direction} {target.Pod} broke ({e.Message}); retrying");
                await Task.Delay(300 * i);
            }
            catch (HookException e)
            {
                throw new HookException($"Copying the runner's work files {direction} pod {target.Pod} failed: {e.Message}");
            }
        }
    }

    /// <param name="Unreadable">Directories the pod's sync user could not read: their contents are unknown.</param>
    public sealed record Frame(HashSet<string> Paths, IReadOnlyList<string> Unreadable, long ArchiveAt, long ArchiveLength);

    /// <summary>Reads and checks the header line, the NUL-separated path list and the archive's size and digest.</summary>
    public static Frame ReadFrame(Stream s, string pod)
    {
        var line = new List<byte>();
        int b;
        while ((b = s.ReadByte()) >= 0 && b != '\n' && line.Count < 512) line.Add((byte)b);
        var f = Encoding.ASCII.GetString(line.ToArray()).Split(' ');
        if (b != '\n' || f.Length != 5 || f[0] != Header || !long.TryParse(f[1], out var listLength) || !long.TryParse(f[3], out var archiveLength))
            throw new HookException($"The copy of the step's files from pod {pod} has no valid header ({s.Length} bytes arrived); the step's outcome is unknown, so it fails.");
        var listAt = s.Position;
        if (s.Length - listAt != listLength + archiveLength)
            throw new HookException($"The copy of the step's files from pod {pod} is incomplete: {s.Length - listAt} of {listLength + archiveLength} bytes arrived, so the step fails.");
        var list = new byte[listLength];
        s.ReadExactly(list);
        if (Convert.ToHexStringLower(SHA256.HashData(list)) != f[2])
            throw new HookException($"The path list copied from pod {pod} does not match its checksum; the step fails.");
        var archiveAt = s.Position;
        var digest = Convert.ToHexStringLower(SHA256.HashData(new BoundedStream(s, archiveLength)));
        if (digest != f[4])
            throw new HookException($"The archive copied from pod {pod} does not match its checksum; the step fails.");
        var names = Encoding.UTF8.GetString(list).Split('\0', StringSplitOptions.RemoveEmptyEntries);
        var paths = names.Select(WorkArchive.Relative).OfType<string>().ToHashSet(StringComparer.Ordinal);
        var unreadable = names.Where(n => n.EndsWith('/')).Select(WorkArchive.Relative).OfType<string>().ToList();
        return new Frame(paths, unreadable, archiveAt, archiveLength);
    }

    /// <summary>A pod's stderr as one line.</summary>
    public static string Text(MemoryStream s) => Encoding.UTF8.GetString(s.ToArray()).Trim().Replace('\n', ' ') is { Length: > 0 } t ? t : "no message";

    /// <summary>$1 root, $2 bytes, $3 sha256, $4 `ready` to let a waiting init container go, $5 `advance` to move the mark, $6 `removals` when the list is not empty.</summary>
    public const string PushScript = """
        set -eu
        cd "$1"
        s=.shipyard-sync
        mkdir -p "$s"
        # A retry of a push that arrived after all (only its answer was lost) changes nothing, the mark least of all.
        if [ "$(cat "$s/pushed" 2>/dev/null)" = "$3" ]; then
          if [ "$4" = ready ]; then exec touch "$s/ready"; fi
          exit 0
        fi
        # Its own name: a cut earlier attempt may still be reading its stdin.
        trap 'rm -f "$s/in.$$.tar"' EXIT
        head -c "$2" > "$s/in.$$.tar"
        got=$(($(wc -c < "$s/in.$$.tar")))
        if [ "$got" -ne "$2" ] || [ "$(sha256sum < "$s/in.$$.tar" | cut -c1-64)" != "$3" ]; then
          echo "$got of $2 bytes, checksum mismatch" >&2; exit 86
        fi
        # Step directories stay until the next push: a follow cut earlier may still be running, and a copy back must
        # never take away the status and output the follow that resumes it still has to read.
        rm -rf ./_temp/shipyard-step-*
        if [ "$6" = removals ]; then
          tar -x -f "$s/in.$$.tar" --no-same-owner "$s/deleted"
          xargs -0 -r rm -rf -- < "$s/deleted"
        fi
        tar -x -p -f "$s/in.$$.tar" --no-same-owner --no-overwrite-dir
        rm -f "$s/in.$$.tar" "$s/deleted"
        trap - EXIT
        if [ "$5" = advance ] || [ ! -e "$s/mark" ]; then touch "$s/mark"; fi
        echo "$3" > "$s/pushed"
        # Last, as this process itself: the init container waiting for it then ends and takes this exec with it (137).
        if [ "$4" = ready ]; then exec touch "$s/ready"; fi
        """;

    /// <summary>$1 root, then the subtrees (`./…`). Step directories are the hook's own, never copied back (the next push removes them).</summary>
    public const string PullScript = """
        set -eu
        cd "$1"; shift
        s=.shipyard-sync
        mkdir -p "$s"
        [ -e "$s/mark" ] || touch -d @0 "$s/mark"
        # Names of its own: a copy back whose stream was cut may still be running.
        trap 'rm -f "$s/all.$$" "$s/changed.$$" "$s/out.$$.tar" "$s/unreadable.$$"' EXIT
        # A directory this user cannot read is listed with a trailing / and not entered: what it holds is unknown, not gone.
        # One walk: every path to all, the ones changed since the mark also to changed.
        : > "$s/changed.$$"
        find "$@" -mindepth 1 \( -path "./$s" -o -path './_temp/shipyard-step-*' -o -path ./_temp/_runner_hook_responses \) -prune \
          -o -type d \( ! -readable -o ! -executable \) -printf '%p/\0' -prune \
          -o -printf '%p\0' -cnewer "$s/mark" -fprintf "$s/changed.$$" '%p\0' > "$s/all.$$"
        tar -c -f "$s/out.$$.tar" --format=pax --no-recursion --null -T "$s/changed.$$" --ignore-failed-read 2> "$s/unreadable.$$" || { cat "$s/unreadable.$$" >&2; exit 1; }
        cat "$s/unreadable.$$" >&2
        printf 'shipyard-sync %s %s %s %s\n' "$(($(wc -c < "$s/all.$$")))" "$(sha256sum < "$s/all.$$" | cut -c1-64)" "$(($(wc -c < "$s/out.$$.tar")))" "$(sha256sum < "$s/out.$$.tar" | cut -c1-64)"
        cat "$s/all.$$" "$s/out.$$.tar"
        """;
}

/// <summary>A read-only window of <paramref name="length"/> bytes from the current position.</summary>
sealed class BoundedStream(Stream inner, long length) : Stream
{
    readonly long total = length;
    long left = length;
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => total;
    public override long Position { get => total - left; set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count)
    {
        if (left <= 0) return 0;
        var n = inner.Read(buffer, offset, (int)Math.Min(count, left));
        left -= n;
        return n;
    }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
