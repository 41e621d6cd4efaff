using System.Text;
using Shipyard.Pods;
using Shipyard.Protocol;

namespace Shipyard.Commands;

/// <summary>
/// run_script_step: the runner already wrote the user's script under `_work/_temp`; a small wrapper
/// beside it sets the step's environment, PATH and directory and execs it in container `job`.
/// The script's exit code becomes the hook's. A job pod that goes away mid-step fails the step.
/// </summary>
public static class RunScriptStep
{
    public static async Task<int> RunAsync(HookContext ctx, ScriptStepArgs args, HookState? state)
    {
        var podName = state?.JobPod ?? throw new HookException("run_script_step needs the job pod from prepare_job, but the hook state has none.");
        var entryPoint = args.EntryPoint is { Length: > 0 } e ? e : throw new HookException("run_script_step arrived without an entryPoint.");

        var wrapperHost = Path.Combine(ctx.Settings.WorkDirectory, "_temp", $"shipyard-step-{Guid.NewGuid():N}.sh");
        Directory.CreateDirectory(Path.GetDirectoryName(wrapperHost)!);
        await File.WriteAllTextAsync(wrapperHost, Wrapper(args, entryPoint), ctx.Cancel);
        try
        {
            var exit = await ExecWatchingPodAsync(ctx, podName, ["sh", "-e", ctx.JobContainerPath(wrapperHost)]);
            if (exit != 0)
                throw new HookException($"The script step exited with code {exit}.", exit);
            return 0;
        }
        finally
        {
            File.Delete(wrapperHost);
        }
    }

    /// <summary>POSIX sh: unlink itself (it holds tokens), cd, export, exec the runner's command.</summary>
    public static string Wrapper(ScriptStepArgs args, string entryPoint)
    {
        var sb = new StringBuilder();
        sb.Append("rm -f -- \"$0\" 2>/dev/null || true\n");
        if (args.WorkingDirectory is { Length: > 0 } wd) sb.Append("cd ").Append(ShellWords.Quote(wd)).Append('\n');
        foreach (var (k, v) in args.EnvironmentVariables ?? [])
        {
            if (k.Length == 0 || !(char.IsAsciiLetter(k[0]) || k[0] == '_') || !k.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
                throw new HookException($"Environment variable name '{k}' is not valid in a shell.");
            sb.Append("export ").Append(k).Append('=').Append(ShellWords.Quote(v ?? "")).Append('\n');
        }
        var prepend = args.PrependPathEntries();
        if (prepend.Count > 0)
            sb.Append("export PATH=").Append(ShellWords.Quote(string.Join(':', prepend))).Append("\":$PATH\"\n");
        sb.Append("exec ").Append(ShellWords.Quote(entryPoint));
        foreach (var a in args.EntryPointArgs ?? []) sb.Append(' ').Append(ShellWords.Quote(a));
        sb.Append('\n');
        return sb.ToString();
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
