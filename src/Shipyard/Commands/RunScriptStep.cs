using System.Text;
using Shipyard.Pods;
using Shipyard.Protocol;

namespace Shipyard.Commands;

/// <summary>
/// run_script_step: the runner already wrote the user's script under `_work/_temp`; a small wrapper
/// beside it sets the step's environment, PATH and directory and execs it in container `job`.
/// The script's exit code becomes the hook's. A job pod that goes away mid-step fails the step;
/// a cancelled step's processes are stopped in the job container, not just abandoned.
/// </summary>
public static class RunScriptStep
{
    public static async Task<int> RunAsync(HookContext ctx, ScriptStepArgs args, HookState? state)
    {
        var podName = state?.JobPod ?? throw new HookException("run_script_step needs the job pod from prepare_job, but the hook state has none.");
        var entryPoint = args.EntryPoint is { Length: > 0 } e ? e : throw new HookException("run_script_step arrived without an entryPoint.");

        var id = Guid.NewGuid().ToString("N");
        var wrapperHost = Path.Combine(ctx.Settings.WorkDirectory, "_temp", $"shipyard-step-{id}.sh");
        var pidHost = Path.Combine(ctx.Settings.WorkDirectory, "_temp", $"shipyard-step-{id}.pid");
        var wrapper = Wrapper(args, entryPoint, ctx.JobContainerPath(pidHost));
        Directory.CreateDirectory(Path.GetDirectoryName(wrapperHost)!);
        await File.WriteAllTextAsync(wrapperHost, wrapper, ctx.Cancel);
        try
        {
            var exit = await ExecWatchingPodAsync(ctx, podName, ["sh", "-e", ctx.JobContainerPath(wrapperHost)]);
            if (exit != 0)
                throw new HookException($"The script step exited with code {exit}.", exit);
            return 0;
        }
        catch (OperationCanceledException) when (ctx.Cancel.IsCancellationRequested)
        {
            await StopStepProcessesAsync(ctx, podName, ctx.JobContainerPath(pidHost));
            throw new HookException("The step was cancelled; its processes in the job container were stopped.", 130);
        }
        finally
        {
            File.Delete(wrapperHost);
            File.Delete(pidHost);
        }
    }

    /// <summary>
    /// POSIX sh: unlink itself (it holds tokens), record its pid for cancellation, cd, export, exec the
    /// runner's command. Names a shell cannot `export` (`INPUT_FETCH-DEPTH`) are passed by env(1).
    /// </summary>
    public static string Wrapper(ScriptStepArgs args, string entryPoint, string pidFile)
    {
        var sb = new StringBuilder();
        sb.Append("rm -f -- \"$0\" 2>/dev/null || true\n");
        sb.Append("{ echo $$ > ").Append(ShellWords.Quote(pidFile)).Append("; } 2>/dev/null || true\n");
        if (args.WorkingDirectory is { Length: > 0 } wd) sb.Append("cd ").Append(ShellWords.Quote(wd)).Append('\n');
        var viaEnv = new List<string>();
        foreach (var (k, v) in args.EnvironmentVariables ?? [])
        {
            EnvNames.RequirePassable(k);
            if (v is not null && v.Contains('\0')) throw new HookException($"The value of environment variable '{k}' contains NUL, which no process environment can hold.");
            if (EnvNames.IsShellName(k)) sb.Append("export ").Append(k).Append('=').Append(ShellWords.Quote(v ?? "")).Append('\n');
            else viaEnv.Add(ShellWords.Quote($"{k}={v}"));
        }
        var prepend = args.PrependPathEntries();
        if (prepend.Count > 0)
            sb.Append("export PATH=").Append(ShellWords.Quote(string.Join(':', prepend))).Append("\":$PATH\"\n");
        sb.Append("exec ");
        if (viaEnv.Count > 0) sb.Append("env ").AppendJoin(' ', viaEnv).Append(' ');
        sb.Append(ShellWords.Quote(entryPoint));
        foreach (var a in args.EntryPointArgs ?? []) sb.Append(' ').Append(ShellWords.Quote(a));
        sb.Append('\n');
        return sb.ToString();
    }

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

    /// <summary>Exec, while a watch on the job pod fails the step within moments if the pod is deleted or stops.</summary>
    static async Task<int> ExecWatchingPodAsync(HookContext ctx, string podName, IReadOnlyList<string> command)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ctx.Cancel);
        var exec = ctx.Cluster.ExecAsync(podName, Names.JobContainer, command, ctx.Stdout, ctx.Stderr, stop.Token);
        var gone = GuardAsync(ctx, podName, exec, stop.Token);
        var first = await Task.WhenAny(exec, gone);
        if (first == gone && gone.IsCompletedSuccessfully && gone.Result.Watched && !exec.IsCompleted)
        {
            await stop.CancelAsync();
            var pod = gone.Result.Pod;
            throw new HookException(pod is null
                ? $"Job pod {podName} was deleted while the step was running; the step did not finish."
                : $"Job pod {podName} is {(pod.Metadata.DeletionTimestamp is not null ? "being deleted" : "no longer running")} ({PodProgress.Describe(pod)}); the step did not finish.");
        }
        try { return await exec; }
        finally
        {
            await stop.CancelAsync();
            try { await gone; } catch (OperationCanceledException) { } catch (Exception) { /* the watch only guards the exec */ }
        }
    }

    /// <summary>
    /// Watches the job pod for deletion or stop. Started only once the step has run for a moment:
    /// most steps are short, and the watch's list + connection cost is then saved entirely.
    /// </summary>
    static async Task<(bool Watched, k8s.Models.V1Pod? Pod)> GuardAsync(HookContext ctx, string podName, Task exec, CancellationToken ct)
    {
        if (await Task.WhenAny(exec, Task.Delay(GuardDelay, ct)) == exec) return (false, null);
        var pod = await ctx.Cluster.WaitForPodAsync(podName, p =>
            p.Metadata.DeletionTimestamp is not null || p.Status?.Phase is "Succeeded" or "Failed" ||
            PodProgress.Terminated(p, Names.JobContainer) is not null, ct);
        return (true, pod);
    }

    static readonly TimeSpan GuardDelay = TimeSpan.FromMilliseconds(500);
}
