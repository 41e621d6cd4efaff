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
public static partial class RunScriptStep
{
    public static async Task<int> RunAsync(HookContext ctx, ScriptStepArgs args, HookState? state)
    {
        var podName = state?.JobPod ?? throw new HookException("run_script_step needs the job pod from prepare_job, but the hook state has none.");
        var entryPoint = args.EntryPoint is { Length: > 0 } e ? e : throw new HookException("run_script_step arrived without an entryPoint.");

        // No-volume job pods have the runner image's externals already.
        if (ctx.Local is null) ProvideExternals(ctx, args, entryPoint);
        var step = StepDirectory.Create(ctx.Settings.WorkDirectory);
        var inPod = ctx.JobContainerPath(step.Host);
        await File.WriteAllTextAsync(step.Wrapper, Wrapper(args, entryPoint, inPod, state.JobEnv), ctx.Cancel);
        try
        {
            int exit;
            if (ctx.Local is null)
            {
                await StartAsync(ctx, podName, step, ["sh", "-e", ctx.JobContainerPath(step.Wrapper)], null, () => Task.FromResult(step.Started), ctx.Cancel);
                exit = await FollowAsync(ctx, podName, step);
            }
            else
                exit = await RunInPodAsync(ctx, podName, step, inPod);
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
    /// is safe to retry, and exit 0 means started. A detached monitor runs the runner's command with output to `out`/`err`, records its
    /// pid (for cancellation), waits, and writes the exit status to `status` atomically. Names a shell cannot
    /// `export` (`INPUT_FETCH-DEPTH`) are passed by env(1).
    /// </summary>
    /// <param name="jobEnv">The job container's env (prepare_job's state), set before the step's own, which wins.</param>
    public static string Wrapper(ScriptStepArgs args, string entryPoint, string stepDir, IReadOnlyDictionary<string, string>? jobEnv = null)
    {
        var d = ShellWords.Quote(stepDir);
        var run = new StringBuilder("    set -e\n");
        if (args.WorkingDirectory is { Length: > 0 } wd) run.Append("    cd ").Append(ShellWords.Quote(wd)).Append('\n');
        var viaEnv = new List<string>();
        var env = (jobEnv ?? new Dictionary<string, string>()).Select(kv => KeyValuePair.Create(kv.Key, (string?)kv.Value)).Concat(args.EnvironmentVariables ?? []);
        foreach (var (k, v) in env)
        {
            EnvNames.RequireForScript(k, v);
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
            mkdir "$d/started" 2>/dev/null || { [ -d "$d/started" ] && exit 0; echo "cannot create $d/started" >&2; exit 1; }
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

    /// <summary>
    /// Starts the wrapper. Retried when the API cannot be reached: a second start is a no-op. Exit 0 means it
    /// started; <paramref name="started"/> is asked only when the answer was lost or not 0.
    /// </summary>
    /// <param name="stdin">Opens the start's stdin for each attempt (no-volume mode: the signal that the script is in the pod).</param>
    static async Task StartAsync(HookContext ctx, string podName, StepDirectory step, string[] command, Func<Stream>? stdin, Func<Task<bool>> started, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            int exit;
            try
            {
                await using var input = stdin?.Invoke();
                exit = await ctx.Cluster.ExecAsync(podName, Names.JobContainer, command, input, ctx.Stdout, ctx.Stderr, ct);
            }
            catch (HookException e)
            {
                if (await started()) return; // it started; only the answer was lost
                if (attempt >= 8) throw;
                ctx.Log.Debug($"Starting the step failed ({e.Message}); retrying.");
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(4000, 200 * Math.Pow(2, attempt - 1))), ct);
                continue;
            }
            if (exit == 0 || await started()) return;
            throw new HookException($"The step could not be started in the job container of {podName} (the wrapper exited with {exit}); the job container needs sh, mkdir and write access to {ctx.JobContainerPath(step.Host)}.", exit);
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
