using Shipyard.Pods;
using Shipyard.Sync;

namespace Shipyard.Commands;

/// <summary>
/// run_script_step in no-volume mode, one exec deep: the start in the job container is opened first and waits on
/// its stdin; one exec in the sync container takes in what the runner changed in `_work` (the step's wrapper among
/// it), says `G` once it is unpacked — the hook then lets the start go — follows the step's output and status, and
/// copies back what the step changed. Nothing in the pod starts before the runner's files are whole.
/// </summary>
public static partial class RunScriptStep
{
    static async Task<int> RunInPodAsync(HookContext ctx, string podName, StepDirectory step, string inPod)
    {
        var go = new StartSignal();
        using var stopStart = CancellationTokenSource.CreateLinkedTokenSource(ctx.Cancel);
        var starting = StartAsync(ctx, podName, step, ["sh", "-c", StartWhenSignalled, "sh", ctx.JobContainerPath(step.Wrapper)], go.Open,
            () => StartedInPodAsync(ctx, podName, inPod), stopStart.Token);
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var before = WorkManifest.Load(ctx.SyncManifestPath);
            var now = WorkManifest.Scan(ctx.Settings.WorkDirectory);
            ctx.Log.Debug($"scanned _work ({now.Entries.Count} entries) in {clock.ElapsedMilliseconds} ms");
            // Until a copy back succeeds, later pushes leave the pod's mark where it is (nothing the pod wrote is skipped).
            using var push = await ctx.WorkSync.PrepareAsync(now.Since(before), SyncTarget.PodRoot, markReady: false,
                advanceMark: !File.Exists(ctx.SyncPullFailedPath), ctx.Cancel);
            return await FollowAndCopyBackAsync(ctx, podName, inPod, push, now, go, starting);
        }
        finally
        {
            await stopStart.CancelAsync();
            try { await starting; } catch (Exception e) when (e is HookException or OperationCanceledException) { }
        }
    }

    /// <summary>$1 the wrapper: run once the hook sends `go` (the runner's files are unpacked); a closed stdin runs nothing.</summary>
    const string StartWhenSignalled = """read -r go && [ "$go" = go ] && exec sh -e "$1"; exit 1""";

    static async Task<bool> StartedInPodAsync(HookContext ctx, string podName, string inPod)
    {
        try { return await ctx.Cluster.ExecAsync(podName, PodLocalWork.SyncContainer, ["test", "-d", inPod + "/started"], Stream.Null, Stream.Null, ctx.Cancel) == 0; }
        catch (HookException) { return false; }
    }

    /// <summary>
    /// Pushes, follows and copies back on one framed stream from the sync container. A stream that breaks before
    /// `G` is followed by a push on its own (the start still waits); one that breaks before the status is resumed
    /// from the bytes already shown; one that breaks after it leaves only the copy back to do, done on its own.
    /// A start that fails ends the follow with its reason.
    /// </summary>
    /// <param name="pushed">The runner's `_work` as pushed: what the copy back is applied to.</param>
    static async Task<int> FollowAndCopyBackAsync(HookContext ctx, string podName, string inPod, WorkSync.Push push, WorkManifest pushed,
        StartSignal go, Task starting)
    {
        await File.WriteAllTextAsync(ctx.SyncPullFailedPath, "", CancellationToken.None);
        var target = PodLocalWork.Target(podName);
        var copyBack = Path.Combine(Path.GetTempPath(), $"shipyard-pull-{Guid.NewGuid():N}");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var stopGuard = CancellationTokenSource.CreateLinkedTokenSource(ctx.Cancel);
        var guard = GuardAsync(ctx, podName, stopGuard.Token);
        var stream = new StepStream(ctx.Stdout, ctx.Stderr, copyBack, () =>
        {
            go.Release();
            ctx.WorkSync.Pushed(podName, push, clock.ElapsedMilliseconds);
        });
        var pushedAlone = false;
        try
        {
            string? unreadable = null;
            var copied = false;
            for (var attempt = 1; stream.Status is null; attempt++)
            {
                using var follow = CancellationTokenSource.CreateLinkedTokenSource(ctx.Cancel);
                stream.Restart();
                var stderr = new MemoryStream();
                string[] followArgs = [inPod, stream.Out.ToString(), stream.Err.ToString(), SyncTarget.PodRoot];
                var withPush = attempt == 1;
                if (!withPush && !stream.Pushed && !pushedAlone)
                {
                    await ctx.WorkSync.PushAsync(target, push, ctx.Cancel);
                    pushedAlone = true;
                    go.Release();
                }
                await using var input = withPush ? push.Open() : null;
                var exec = ctx.Cluster.ExecAsync(podName, PodLocalWork.SyncContainer,
                    withPush ? ["sh", "-c", PushFollowScript, "sh", .. push.Args, .. followArgs] : ["sh", "-c", FollowScript, "sh", .. followArgs],
                    input, stream, stderr, follow.Token);
                if (await WhileFollowingAsync(exec, guard, starting, follow) is { } gone)
                {
                    if (stream.Status is null) throw new HookException(gone);
                    break;
                }
                int? code = null;
                HookException? broke = null;
                try { code = await exec; }
                catch (HookException x) { broke = x; }
                catch (InvalidDataException x) { throw new HookException(x.Message); }
                if (withPush && !stream.Pushed && code is { } pushExit)
                {
                    WorkSync.CheckPushed(pushExit, stderr, podName);
                    throw new HookException($"The exec in pod {podName} ended without taking in the runner's work files; the step fails.");
                }
                if (stream.Status is not null && (broke is not null || code != 0))
                {
                    ctx.Log.Debug($"The copy back failed after the step finished ({broke?.Message ?? $"exit {code}"}); copying back on its own.");
                    break;
                }
                if (broke is not null)
                {
                    if (attempt >= 30 || ctx.Cancel.IsCancellationRequested) throw broke;
                    ctx.Log.Debug($"Following the step's output broke ({broke.Message}); resuming at {stream.Out}/{stream.Err} bytes.");
                    await Task.Delay(TimeSpan.FromSeconds(Math.Min(4, attempt)), ctx.Cancel);
                    continue;
                }
                if (code != 0) throw new HookException($"Following the step in pod {podName} failed (exit {code}): {WorkSync.Text(stderr)}");
                if (stream.Status is null) throw new HookException($"The step's output stream from pod {podName} ended without the step's status; the step's outcome is unknown, so it fails.");
                copied = stream.SawCopyBack;
                if (stderr.Length > 0) unreadable = WorkSync.Text(stderr);
            }
            stream.EndCopyBack();
            var followed = clock.ElapsedMilliseconds;
            var now = copied
                ? ctx.WorkSync.Apply(copyBack, podName, null, unreadable, pushed)
                : await ctx.WorkSync.PullAsync(target, null, ctx.Cancel);
            var applied = clock.ElapsedMilliseconds;
            now.Save(ctx.SyncManifestPath);
            ctx.Log.Debug($"sync back: pushed, followed and copied back {followed} ms, applied {applied - followed} ms, manifest {clock.ElapsedMilliseconds - applied} ms; in {clock.ElapsedMilliseconds} ms");
            File.Delete(ctx.SyncPullFailedPath);
            return stream.Status!.Value;
        }
        catch when (stream.Pushed || pushedAlone)
        {
            // What went in stays known, so the next step does not send it again.
            pushed.Save(ctx.SyncManifestPath);
            throw;
        }
        finally
        {
            stream.Dispose();
            File.Delete(copyBack);
            await stopGuard.CancelAsync();
            try { await guard; } catch (OperationCanceledException) { }
        }
    }

    /// <summary>
    /// Waits for the exec; returns why the step can no longer finish if the guard says so first. A start that
    /// fails stops the follow and throws its reason: nothing would ever write the status.
    /// </summary>
    static async Task<string?> WhileFollowingAsync(Task<int> exec, Task<string?> guard, Task starting, CancellationTokenSource follow)
    {
        async Task StopFollowingAsync()
        {
            await follow.CancelAsync();
            try { await exec; } catch (Exception x) when (x is HookException or OperationCanceledException or InvalidDataException) { }
        }
        while (true)
        {
            var done = await Task.WhenAny(starting.IsCompletedSuccessfully ? [exec, guard] : new Task[] { exec, guard, starting });
            if (done == starting && !starting.IsCompletedSuccessfully)
            {
                await StopFollowingAsync();
                await starting;
            }
            if (done == guard && guard.IsCompletedSuccessfully && guard.Result is { } gone)
            {
                await StopFollowingAsync();
                return gone;
            }
            if (done == exec || done == guard) return null;
        }
    }

    /// <summary>
    /// $1–$6 <see cref="WorkSync.PushScript"/>'s arguments, then <see cref="FollowScript"/>'s: takes in the runner's changes,
    /// says `G`, and follows. (Not `( … ) || exit`: that would switch off the push's `set -e`.)
    /// </summary>
    public static string PushFollowScript => "(\n" + WorkSync.PushScript + "\n)\nr=$?; [ $r -eq 0 ] || exit $r\nprintf 'G\\n'\nshift 6\n" + FollowScript;

    /// <summary>
    /// $1 step directory, $2/$3 bytes of out/err already shown, $4 the pod's `_work`. Writes `O n`/`E n` + n bytes as
    /// the step's files grow, `S status` once it is written, then `P` and the copy back (<see cref="WorkSync.PullScript"/>).
    /// </summary>
    public static readonly string FollowScript = """
        d=$1; o=$2; e=$3; i=0
        # The newest follow owns the step: one whose stream was cut may still run here, and must neither report nor copy back.
        echo $$ > "$d/follower"
        while :; do
          read -r me 2>/dev/null < "$d/follower" || me=
          [ "$me" = $$ ] || { echo "this follow of the step was taken over, or its directory is gone" >&2; exit 88; }
          f=; [ -e "$d/status" ] && f=1
          n=$(($(wc -c < "$d/out" 2>/dev/null || echo 0)))
          if [ "$n" -gt "$o" ]; then printf 'O %s\n' "$((n - o))"; tail -c +"$((o + 1))" "$d/out" | head -c "$((n - o))"; o=$n; fi
          n=$(($(wc -c < "$d/err" 2>/dev/null || echo 0)))
          if [ "$n" -gt "$e" ]; then printf 'E %s\n' "$((n - e))"; tail -c +"$((e + 1))" "$d/err" | head -c "$((n - e))"; e=$n; fi
          if [ -n "$f" ]; then printf 'S %s\n' "$(cat "$d/status")"; break; fi
          # Short steps finish in milliseconds; long ones are read a few times a second.
          i=$((i + 1)); if [ $i -lt 50 ]; then sleep 0.02; else sleep 0.1; fi
        done
        printf 'P\n'
        shift 3

        """ + WorkSync.PullScript;

    /// <summary>The start's stdin: blocks until released, then gives `go` once. Each attempt opens its own.</summary>
    sealed class StartSignal
    {
        readonly TaskCompletionSource released = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Release() => released.TrySetResult();

        public Stream Open() => new Line(released.Task);

        sealed class Line(Task released) : Stream
        {
            bool sent;
            public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
            {
                if (sent) return 0;
                await released.WaitAsync(ct);
                sent = true;
                "go\n"u8.CopyTo(buffer.Span);
                return 3;
            }
            public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
            public override bool CanRead => true;
            public override bool CanSeek => false;
            public override bool CanWrite => false;
            public override long Length => throw new NotSupportedException();
            public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
            public override void Flush() { }
            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
            public override void SetLength(long value) => throw new NotSupportedException();
            public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        }
    }
}
