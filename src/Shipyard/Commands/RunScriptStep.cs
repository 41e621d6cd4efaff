using System.Text;
using Shipyard.Pods;
using Shipyard.Protocol;
using Shipyard.Sync;

namespace Shipyard.Commands;

/// <summary>
/// run_script_step: the runner already wrote the user's script under `_work/_temp`. A small wrapper beside it
/// starts the runner's command detached in container `job`, with the step's environment, PATH and directory,
/// its output and exit status going to files in a per-step directory on the work volume. The hook needs the
/// API only to start it: it follows those files from its own mount of the same volume, so a dropped
/// connection or a restarting API server neither cuts the output nor loses the exit code, while a watch on
/// the job pod still fails the step within moments if the pod goes. The script's exit code becomes the
/// hook's; a cancelled step's processes are stopped in the job container, not just abandoned.
/// </summary>
public static class RunScriptStep
{
    public static async Task<int> RunAsync(HookContext ctx, ScriptStepArgs args, HookState? state)
    {
        var podName = state?.JobPod ?? throw new HookException("run_script_step needs the job pod from prepare_job, but the hook state has none.");
        var entryPoint = args.EntryPoint is { Length: > 0 } e ? e : throw new HookException("run_script_step arrived without an entryPoint.");

        // No-volume job pods have the runner image's externals already.
        if (ctx.Local is null) ProvideExternals(ctx, args, entryPoint);
        var step = StepDirectory.Create(ctx.Settings.WorkDirectory);
        var inPod = ctx.JobContainerPath(step.Host);
        await File.WriteAllTextAsync(step.Wrapper, Wrapper(args, entryPoint, inPod), ctx.Cancel);
        try
        {
            int exit;
            if (ctx.Local is null)
            {
                await StartAsync(ctx, podName, step, ctx.JobContainerPath(step.Wrapper), () => Task.FromResult(step.Started));
                exit = await FollowAsync(ctx, podName, step);
            }
            else
            {
                // The runner's new script and file-command files go in first; what the step wrote comes back after.
                var pushed = await PushChangesAsync(ctx, podName);
                await StartAsync(ctx, podName, step, ctx.JobContainerPath(step.Wrapper), () => StartedInPodAsync(ctx, podName, inPod));
                exit = await FollowAndCopyBackAsync(ctx, podName, inPod, pushed);
            }
            if (exit != 0)
                throw new HookException($"The script step exited with code {exit}.", exit);
            return 0;
        }
        catch (OperationCanceledException) when (ctx.Cancel.IsCancellationRequested)
        {
            await StopStepProcessesAsync(ctx, podName, inPod + "/pid");
            throw new HookException("The step was cancelled; its processes in the job container were stopped.", 130);
        }
        finally
        {
            step.Delete();
        }
    }

    /// <summary>No-volume mode: what the runner changed in `_work` since the last sync, into the job pod.</summary>
    static async Task<WorkManifest> PushChangesAsync(HookContext ctx, string podName)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var before = WorkManifest.Load(ctx.SyncManifestPath);
        var now = WorkManifest.Scan(ctx.Settings.WorkDirectory);
        ctx.Log.Debug($"scanned _work ({now.Entries.Count} entries) in {clock.ElapsedMilliseconds} ms");
        await ctx.WorkSync.PushAsync(PodLocalWork.Target(podName), now.Since(before), markReady: false, ctx.Cancel,
            advanceMark: !File.Exists(ctx.SyncPullFailedPath));
        now.Save(ctx.SyncManifestPath);
        return now;
    }

    static async Task<bool> StartedInPodAsync(HookContext ctx, string podName, string inPod)
    {
        try { return await ctx.Cluster.ExecAsync(podName, PodLocalWork.SyncContainer, ["test", "-d", inPod + "/started"], Stream.Null, Stream.Null, ctx.Cancel) == 0; }
        catch (HookException) { return false; }
    }

    /// <summary>
    /// No-volume mode: the step's `out`/`err` are in the pod, so one exec in the sync container streams them — framed,
    /// so the step's status and then the copy back of what it changed follow on the same stream (one exec, not
    /// three). A stream that breaks before the status is resumed from the bytes already shown; one that breaks
    /// after it leaves only the copy back to do, which is then done on its own.
    /// </summary>
    /// <param name="pushed">The runner's `_work` as pushed before the step: what the copy back is applied to.</param>
    static async Task<int> FollowAndCopyBackAsync(HookContext ctx, string podName, string inPod, WorkManifest pushed)
    {
        // Until a copy back succeeds, later pushes leave the pod's mark where it is (nothing the pod wrote is skipped).
        await File.WriteAllTextAsync(ctx.SyncPullFailedPath, "", CancellationToken.None);
        var copyBack = Path.Combine(Path.GetTempPath(), $"shipyard-pull-{Guid.NewGuid():N}");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var stopGuard = CancellationTokenSource.CreateLinkedTokenSource(ctx.Cancel);
        var guard = GuardAsync(ctx, podName, stopGuard.Token);
        var stream = new StepStream(ctx.Stdout, ctx.Stderr, copyBack);
        try
        {
            string? unreadable = null;
            var copied = false;
            for (var attempt = 1; stream.Status is null; attempt++)
            {
                using var follow = CancellationTokenSource.CreateLinkedTokenSource(ctx.Cancel);
                stream.Restart();
                var stderr = new MemoryStream();
                var exec = ctx.Cluster.ExecAsync(podName, PodLocalWork.SyncContainer,
                    ["sh", "-c", FollowScript, "sh", inPod, stream.Out.ToString(), stream.Err.ToString(), SyncTarget.PodRoot], null, stream, stderr, follow.Token);
                if (await Task.WhenAny(exec, guard) == guard && guard.IsCompletedSuccessfully && guard.Result is { } gone)
                {
                    await follow.CancelAsync();
                    try { await exec; } catch (Exception x) when (x is HookException or OperationCanceledException) { }
                    if (stream.Status is null) throw new HookException(gone);
                    break;
                }
                int? code = null;
                HookException? broke = null;
                try { code = await exec; }
                catch (HookException x) { broke = x; }
                catch (InvalidDataException x) { throw new HookException(x.Message); }
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
            WorkManifest now;
            if (copied)
                now = ctx.WorkSync.Apply(copyBack, podName, null, unreadable, pushed);
            else
                now = await ctx.WorkSync.PullAsync(PodLocalWork.Target(podName), null, ctx.Cancel);
            var applied = clock.ElapsedMilliseconds;
            now.Save(ctx.SyncManifestPath);
            ctx.Log.Debug($"sync back: followed and copied back {followed} ms, applied {applied - followed} ms, manifest {clock.ElapsedMilliseconds - applied} ms; in {clock.ElapsedMilliseconds} ms");
            File.Delete(ctx.SyncPullFailedPath);
            return stream.Status!.Value;
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
    /// $1 step directory, $2/$3 bytes of out/err already shown, $4 the pod's `_work`. Writes `O n`/`E n` + n bytes as
    /// the step's files grow, `S status` once it is written, then `P` and the copy back (<see cref="WorkSync.PullScript"/>).
    /// </summary>
    public static readonly string FollowScript = """
        d=$1; o=$2; e=$3; i=0
        while :; do
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

    /// <summary>
    /// Copies the node builds this step names (`/__e/node20/bin/node` for a JavaScript action, or a `run:` script
    /// that calls one) before it starts, the first time the job needs them.
    /// </summary>
    static void ProvideExternals(HookContext ctx, ScriptStepArgs args, string entryPoint)
    {
        var texts = new List<string?> { entryPoint };
        texts.AddRange(args.EntryPointArgs ?? []);
        texts.AddRange(args.PrependPathEntries());
        texts.AddRange((args.EnvironmentVariables ?? []).Values);
        // The runner writes a `run:` step's script to `_work/_temp/<guid>.sh`; it is small, so read it too.
        foreach (var a in args.EntryPointArgs ?? [])
        {
            if (!a.StartsWith("/__w/_temp/", StringComparison.Ordinal)) continue;
            var host = new FileInfo(ctx.Work.HostPath(a["/__w/".Length..]));
            if (host.Exists && host.Length <= 1 << 20) texts.Add(File.ReadAllText(host.FullName));
        }
        var externals = ctx.Externals;
        foreach (var build in externals.Referenced(texts))
            if (externals.EnsureCopied(build)) ctx.Log.Debug($"Copied the runner's externals/{build} to the work volume");
    }

    /// <summary>
    /// POSIX sh. Unlinks itself (it holds tokens); `mkdir started` makes a retried start a no-op, so starting
    /// is safe to retry. A detached monitor runs the runner's command with output to `out`/`err`, records its
    /// pid (for cancellation), waits, and writes the exit status to `status` atomically. Names a shell cannot
    /// `export` (`INPUT_FETCH-DEPTH`) are passed by env(1).
    /// </summary>
    public static string Wrapper(ScriptStepArgs args, string entryPoint, string stepDir)
    {
        var d = ShellWords.Quote(stepDir);
        var run = new StringBuilder("    set -e\n");
        if (args.WorkingDirectory is { Length: > 0 } wd) run.Append("    cd ").Append(ShellWords.Quote(wd)).Append('\n');
        var viaEnv = new List<string>();
        foreach (var (k, v) in args.EnvironmentVariables ?? [])
        {
            EnvNames.RequirePassable(k);
            if (v is not null && v.Contains('\0')) throw new HookException($"The value of environment variable '{k}' contains NUL, which no process environment can hold.");
            if (EnvNames.IsShellName(k)) run.Append("    export ").Append(k).Append('=').Append(ShellWords.Quote(v ?? "")).Append('\n');
            else viaEnv.Add(ShellWords.Quote($"{k}={v}"));
        }
        var prepend = args.PrependPathEntries();
        if (prepend.Count > 0)
            run.Append("    export PATH=").Append(ShellWords.Quote(string.Join(':', prepend))).Append("\":$PATH\"\n");
        run.Append("    exec ");
        if (viaEnv.Count > 0) run.Append("env ").AppendJoin(' ', viaEnv).Append(' ');
        run.Append(ShellWords.Quote(entryPoint));
        foreach (var a in args.EntryPointArgs ?? []) run.Append(' ').Append(ShellWords.Quote(a));
        run.Append('\n');
        return $$"""
            rm -f -- "$0" 2>/dev/null || true
            d={{d}}
            mkdir "$d/started" 2>/dev/null || exit 0
            (
              set +e
              (
            {{run}}  ) > "$d/out" 2> "$d/err" < /dev/null &
              echo $! > "$d/pid"
              wait $!
              echo $? > "$d/status.tmp" && mv "$d/status.tmp" "$d/status"
            ) > /dev/null 2>&1 < /dev/null &

            """;
    }

    /// <summary>Starts the wrapper. Retried when the API cannot be reached: a second start is a no-op.</summary>
    static async Task StartAsync(HookContext ctx, string podName, StepDirectory step, string wrapper, Func<Task<bool>> started)
    {
        for (var attempt = 1; ; attempt++)
        {
            int exit;
            try { exit = await ctx.Cluster.ExecAsync(podName, Names.JobContainer, ["sh", "-e", wrapper], ctx.Stdout, ctx.Stderr, ctx.Cancel); }
            catch (HookException e)
            {
                if (await started()) return; // it started; only the answer was lost
                if (attempt >= 8) throw;
                ctx.Log.Debug($"Starting the step failed ({e.Message}); retrying.");
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(4000, 200 * Math.Pow(2, attempt - 1))), ctx.Cancel);
                continue;
            }
            if (await started()) return;
            throw new HookException($"The step could not be started in the job container of {podName} (the wrapper exited with {exit}); the job container needs sh, mkdir and write access to {ctx.JobContainerPath(step.Host)}.", exit == 0 ? 1 : exit);
        }
    }

    /// <summary>Streams `out` and `err` as they grow until `status` appears; a watch guards the job pod meanwhile.</summary>
    static async Task<int> FollowAsync(HookContext ctx, string podName, StepDirectory step)
    {
        using var stopGuard = CancellationTokenSource.CreateLinkedTokenSource(ctx.Cancel);
        var guard = GuardAsync(ctx, podName, stopGuard.Token);
        long outAt = 0, errAt = 0;
        var waited = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            while (true)
            {
                var finished = step.Status;
                outAt = await StepDirectory.CopyNewAsync(step.Out, outAt, ctx.Stdout, ctx.Cancel);
                errAt = await StepDirectory.CopyNewAsync(step.Err, errAt, ctx.Stderr, ctx.Cancel);
                if (finished is { } code) return code;
                if (guard.IsCompletedSuccessfully && guard.Result is { } gone)
                {
                    // Output written up to the end is still shown before the failure.
                    await Task.Delay(200, ctx.Cancel);
                    await StepDirectory.CopyNewAsync(step.Out, outAt, ctx.Stdout, ctx.Cancel);
                    await StepDirectory.CopyNewAsync(step.Err, errAt, ctx.Stderr, ctx.Cancel);
                    if (step.Status is { } late) return late;
                    throw new HookException(gone);
                }
                // Short steps finish in milliseconds; long ones are read a few times a second.
                await Task.Delay(waited.ElapsedMilliseconds < 1000 ? 10 : 50, ctx.Cancel);
            }
        }
        finally
        {
            await stopGuard.CancelAsync();
            try { await guard; } catch (OperationCanceledException) { }
        }
    }

    /// <summary>
    /// The reason the step can no longer finish (job pod deleted or stopped), or null when cancelled. API
    /// failures only pause the guard: the step's files keep being followed meanwhile.
    /// </summary>
    static async Task<string?> GuardAsync(HookContext ctx, string podName, CancellationToken ct)
    {
        // Most steps are short; the watch's list + connection cost is saved entirely for them.
        await Task.Delay(GuardDelay, ct);
        while (true)
        {
            try
            {
                var pod = await ctx.Cluster.WaitForPodAsync(podName, p =>
                    p.Metadata.DeletionTimestamp is not null || p.Status?.Phase is "Succeeded" or "Failed" ||
                    PodProgress.Terminated(p, Names.JobContainer) is not null, ct);
                return pod is null
                    ? $"Job pod {podName} was deleted while the step was running; the step did not finish."
                    : $"Job pod {podName} is {(pod.Metadata.DeletionTimestamp is not null ? "being deleted" : "no longer running")} ({PodProgress.Describe(pod)}); the step did not finish.";
            }
            catch (HookException e)
            {
                ctx.Log.Debug($"Watching job pod {podName} paused: {e.Message}");
                await Task.Delay(TimeSpan.FromSeconds(1), ct);
            }
        }
    }

    static readonly TimeSpan GuardDelay = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// Stops the step's process tree in the job container: an exec stream that ends does not stop what
    /// it started. The tree is found through /proc (no pkill/setsid needed), sent SIGTERM, then SIGKILL.
    /// </summary>
    public static string StopScript(string pidFile) => $$"""
        f={{ShellWords.Quote(pidFile)}}
        i=0; while [ ! -s "$f" ] && [ $i -lt 5 ]; do sleep 0.1; i=$((i+1)); done
        p=$(cat "$f" 2>/dev/null) || exit 0
        [ -n "$p" ] || exit 0
        tree() {
          all=$1; todo=$1
          while [ -n "$todo" ]; do
            next=
            for s in /proc/[0-9]*/stat; do
              read -r l 2>/dev/null < "$s" || continue
              r=${l##*) }; set -- $r
              for t in $todo; do [ "$2" = "$t" ] && { c=${s#/proc/}; next="$next ${c%/stat}"; }; done
            done
            all="$all$next"; todo=$next
          done
          echo $all
        }
        kill -TERM $(tree $p) 2>/dev/null
        i=0; while kill -0 $p 2>/dev/null && [ $i -lt 5 ]; do sleep 0.1; i=$((i+1)); done
        kill -KILL $(tree $p) 2>/dev/null
        true
        """;

    static async Task StopStepProcessesAsync(HookContext ctx, string podName, string pidFile)
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromMilliseconds(1500));
        try
        {
            await ctx.Cluster.ExecAsync(podName, Names.JobContainer, ["sh", "-c", StopScript(pidFile)], Stream.Null, ctx.Stderr, limit.Token);
        }
        catch (Exception e) when (e is HookException or OperationCanceledException)
        {
            ctx.Log.Err.WriteLine($"Could not stop the cancelled step's processes in {podName}: {e.Message}");
        }
    }
}

/// <summary>A step's directory under `_work/_temp` on the runner's side of the work volume: wrapper, out, err, pid, status.</summary>
public sealed record StepDirectory(string Host)
{
    public string Wrapper => Path.Combine(Host, "run.sh");
    public string Out => Path.Combine(Host, "out");
    public string Err => Path.Combine(Host, "err");
    public bool Started => Directory.Exists(Path.Combine(Host, "started"));

    /// <summary>The exit status once the monitor wrote it (it is renamed into place, so never half-written).</summary>
    public int? Status =>
        File.Exists(Path.Combine(Host, "status")) && int.TryParse(File.ReadAllText(Path.Combine(Host, "status")).Trim(), out var code) ? code : null;

    public static StepDirectory Create(string workDirectory)
    {
        var dir = new StepDirectory(Path.Combine(workDirectory, "_temp", $"shipyard-step-{Guid.NewGuid():N}"));
        Directory.CreateDirectory(dir.Host);
        // The job container's user may not be the runner's.
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(dir.Host, (UnixFileMode)0b111_111_111);
        return dir;
    }

    /// <summary>Copies what the file gained since <paramref name="from"/>; returns the new position.</summary>
    public static async Task<long> CopyNewAsync(string path, long from, Stream sink, CancellationToken ct)
    {
        if (!File.Exists(path)) return from;
        await using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.Asynchronous);
        if (f.Length <= from) return from;
        f.Position = from;
        var buffer = new byte[64 * 1024];
        int n;
        while ((n = await f.ReadAsync(buffer, ct)) > 0)
        {
            await sink.WriteAsync(buffer.AsMemory(0, n), ct);
            from += n;
        }
        await sink.FlushAsync(ct);
        return from;
    }

    public void Delete()
    {
        try { Directory.Delete(Host, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
