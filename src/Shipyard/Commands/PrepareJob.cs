using k8s.Models;
using Shipyard.Cluster;
using Shipyard.Pods;
using Shipyard.Protocol;
using Shipyard.Runner;
using Shipyard.Settings;
using Shipyard.Sync;

namespace Shipyard.Commands;

/// <summary>
/// prepare_job: the job pod (job container + services) on the runner's node, with the work volume,
/// running before the first step; the response tells the runner ids, ports and whether it is Alpine.
/// </summary>
public static class PrepareJob
{
    public static async Task<PrepareJobResponse> RunAsync(HookContext ctx, PrepareJobArgs args)
    {
        var job = args.Container
            ?? throw new HookException("This runner runs every job in a container on Kubernetes: add `container:` to the job (ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER).");
        var services = args.Services ?? [];
        var template = HookTemplate.Load(ctx.Settings.TemplatePath);

        // Everything that can be refused is checked before anything is created.
        var placement = await ctx.PlacementAsync();
        // Volume mode when the runner pod mounts the work claim; else pod-local volumes kept in sync.
        ctx = ctx.ForRunner(placement.Runner);
        placement = placement with { NoWorkVolume = ctx.Local is not null };
        await RequirePermissionsAsync(ctx);
        // A claim the runner pod mounts exists; only a volume mode set by hand needs asking.
        if (ctx.Local is null && !placement.Runner.MountsClaim(ctx.Settings.ClaimName) && await ctx.Cluster.ClaimExistsAsync(ctx.Settings.ClaimName, ctx.Cancel) == false)
            throw new HookException($"The work volume claim '{ctx.Settings.ClaimName}' does not exist in namespace '{ctx.Cluster.Namespace}' (ACTIONS_RUNNER_CLAIM_NAME).");
        var podName = JobPodName(ctx);
        var pullSecret = RegistryPullSecret.Wanted(job.Registry) ? Names.RegistrySecret(podName) : null;
        var options = new JobPodOptions(podName, placement, ctx.Work, ctx.Settings.Workspace, pullSecret, ctx.Local);
        var objects = JobPod.Build(job, services, options);
        var pod = template is null ? objects.Pod : template.ApplyToJobPod(objects.Pod, objects.ServiceNames);
        var ports = PortMapping.ResponsePorts(job.PortMappings);
        var servicePorts = services.Select(s => PortMapping.ResponsePorts(s.PortMappings)).ToList();

        // Node builds are copied when a step first names one (RunScriptStep), unless all are wanted up front;
        // a no-volume job pod copies them from the runner's image itself.
        if (ctx.Local is null)
        {
            var externals = ctx.Externals;
            externals.CreateMountPoint();
            if (ctx.Settings.ExternalsCopy == ExternalsCopy.All)
                foreach (var build in externals.All())
                    if (externals.EnsureCopied(build)) ctx.Log.Debug($"Copied the runner's externals/{build} to the work volume");
        }

        try
        {
            // An earlier job of this runner whose hook was killed before its cleanup_job left objects: they go first.
            await CleanupJob.RunAsync(ctx);
            if (pullSecret is not null)
            {
                ctx.Log.AddMask(job.Registry!.Password);
                await ctx.Cluster.CreateSecretAsync(RegistryPullSecret.Build(pullSecret, job.Registry, job.Image!, placement), ctx.Cancel);
            }
            if (objects.EnvSecret is not null) await ctx.Cluster.CreateSecretAsync(objects.EnvSecret, ctx.Cancel);
            if (ctx.Local is null) CreateOsMarker(ctx, podName);
            File.WriteAllText(JobPodRecord(ctx), podName + "\n");
            await ctx.Cluster.CreatePodAsync(pod, ctx.Cancel);
            // One limit for the whole start, the no-volume fill included.
            using var startLimit = CancellationTokenSource.CreateLinkedTokenSource(ctx.Cancel);
            startLimit.CancelAfter(ctx.Settings.PrepareJobTimeout);
            if (ctx.Local is not null) await FirstSyncAsync(ctx, podName, startLimit.Token);
            // A lone job container says it runs through the OS marker, up to a kubelet status tick before its pod status does.
            var saysItRuns = ctx.Local is null && pod.Spec.Containers.Count == 1 ? () => OsMarkerWritten(ctx, podName) is not null : (Func<bool>?)null;
            await WaitUntilRunningAsync(ctx, podName, saysItRuns, startLimit.Token);
        }
        catch
        {
            if (ctx.Local is null) File.Delete(OsMarkerPath(ctx, podName));
            await ctx.Cluster.DeletePodAsync(podName, 0, CancellationToken.None);
            if (objects.EnvSecret is not null) await ctx.Cluster.DeleteSecretAsync(objects.EnvSecret.Metadata.Name, CancellationToken.None);
            if (pullSecret is not null) await ctx.Cluster.DeleteSecretAsync(pullSecret, CancellationToken.None);
            throw;
        }

        var isAlpine = await IsAlpineAsync(ctx, podName);
        return new PrepareJobResponse(
            ctx.Local is null ? new HookState(podName, JobEnv: objects.JobEnv) : new HookState(podName, HookState.NoVolumeMode, ctx.Local.RunnerImage, objects.JobEnv),
            new ResponseContext(
                new ResponseContainer(podName, podName, ports),
                services.Select((s, i) => new ResponseContainer(objects.ServiceNames[i], podName, servicePorts[i])).ToList()),
            isAlpine);
    }

    /// <summary>
    /// `&lt;runner&gt;-workflow` for the runner's first job (an ephemeral runner's only one); a fresh name for every
    /// later one (<see cref="Names.LaterJobPod"/>). A file on the runner's `_work` tells which, as the API cannot:
    /// a deleted pod's containers keep stopping after its object is gone.
    /// </summary>
    static string JobPodRecord(HookContext ctx) => Path.Combine(ctx.Settings.WorkDirectory, WorkManifest.JobPodRecord);

    static string JobPodName(HookContext ctx) =>
        File.Exists(JobPodRecord(ctx)) ? Names.LaterJobPod(ctx.Settings.RunnerPodName) : Names.JobPod(ctx.Settings.RunnerPodName);

    /// <summary>
    /// No-volume mode: while the fill init container holds the job pod, it gets the runner's whole `_work` (actions
    /// already downloaded, the workspace), so the job container starts on the runner's files and directories.
    /// </summary>
    static async Task FirstSyncAsync(HookContext ctx, string podName, CancellationToken limit)
    {
        var pulls = new StartFailureTracker();
        await WaitForJobPodAsync(ctx, podName, p => PodProgress.InitRunning(p, PodLocalWork.FillContainer, pulls), "did not get to copying the runner's files", limit);
        var filled = await ctx.WorkSync.FillAsync(PodLocalWork.Target(podName, PodLocalWork.FillContainer), null, ctx.Cancel);
        filled.Save(ctx.SyncManifestPath);
    }

    /// <summary>A Role without exec, logs or secrets would fail the job at its first step; say so now, listing all of it.</summary>
    static async Task RequirePermissionsAsync(HookContext ctx)
    {
        V1SubjectRulesReviewStatus review;
        try { review = await ctx.Cluster.ReviewOwnRulesAsync(ctx.Cancel); }
        catch (HookException e)
        {
            ctx.Log.Debug($"{e.Message}; continuing without the permission check.");
            return;
        }
        var missing = Permissions.Missing(review, Permissions.Required);
        if (missing.Count == 0) return;
        // Other authorizers (webhooks) may still allow what RBAC rules do not list.
        if (review.Incomplete)
        {
            ctx.Log.Debug($"The permission review is incomplete; not granted by listed rules: {string.Join(", ", missing)}");
            return;
        }
        throw new HookException(
            $"The runner's service account lacks permissions the job needs in namespace '{ctx.Cluster.Namespace}': " +
            string.Join("; ", missing.GroupBy(p => p.Resource).Select(g => $"{g.Key}: {string.Join(", ", g.Select(p => p.Verb))}")) +
            " (see deploy/role.yaml).");
    }

    /// <summary>
    /// Waits for every container to run; a service that exits or cannot start fails at once, quoting its log.
    /// <paramref name="saysItRuns"/>: the pod's only container tells it sooner than the kubelet's status (its 1 s
    /// relist); exec reaches a running container either way.
    /// </summary>
    static async Task WaitUntilRunningAsync(HookContext ctx, string podName, Func<bool>? saysItRuns, CancellationToken limit)
    {
        V1ContainerStatus? stopped = null;
        var pulls = new StartFailureTracker();
        using var toldSooner = new CancellationTokenSource();
        var watch = WaitForJobPodAsync(ctx, podName, p =>
        {
            stopped = PodProgress.StoppedContainer(p);
            return stopped is not null || PodProgress.AllRunning(p, pulls);
        }, "was not running", limit, toldSooner.Token);
        while (saysItRuns is not null && !watch.IsCompleted && !limit.IsCancellationRequested)
        {
            if (saysItRuns())
            {
                ctx.Log.Debug("The job container says it runs; not waiting for the pod status to say so.");
                await toldSooner.CancelAsync();
                try { await watch; } catch (Exception) when (toldSooner.IsCancellationRequested) { } // decided: it runs
                return;
            }
            await Task.WhenAny(watch, Task.Delay(5, limit)); // one small read on the work volume: cheap enough to poll finely
        }
        await watch;
        if (stopped is null) return;

        var what = stopped.Name == Names.JobContainer ? "The job container" : $"Service '{stopped.Name}'";
        var t = stopped.State.Terminated;
        var log = await ctx.Cluster.ReadLogTailAsync(podName, stopped.Name, 10, ctx.Cancel);
        var quoted = log.Count == 0 ? "it wrote no log" : "its last log lines:\n" + string.Join('\n', log.Select(l => "  " + l));
        throw new HookException($"{what} ({stopped.Image}) exited with code {t.ExitCode} ({t.Reason}{(t.Message is { Length: > 0 } m ? ": " + m.Trim() : "")}) before the job started; {quoted}");
    }

    /// <summary>Watches the starting job pod until <paramref name="done"/>; a pod that cannot get there fails with one line.</summary>
    /// <param name="stop">Stops the watch without a verdict (an OperationCanceledException).</param>
    static async Task WaitForJobPodAsync(HookContext ctx, string podName, Func<V1Pod, bool> done, string notThere, CancellationToken limit, CancellationToken stop = default)
    {
        V1Pod? pod;
        using var watching = CancellationTokenSource.CreateLinkedTokenSource(limit, stop);
        try { pod = await ctx.Cluster.WaitForPodAsync(podName, done, watching.Token); }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { throw; }
        catch (HookException e)
        {
            throw await WithInitLogAsync(ctx, podName, e);
        }
        catch (OperationCanceledException) when (!ctx.Cancel.IsCancellationRequested)
        {
            var last = await ctx.Cluster.ReadPodAsync(podName, ctx.Cancel);
            throw new HookException($"Job pod {podName} {notThere} after {ctx.Settings.PrepareJobTimeout.TotalSeconds:0}s (ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS): {(last is null ? "gone" : PodProgress.Describe(last))}");
        }
        if (pod is null) throw new HookException($"Job pod {podName} was deleted while it was starting.");
    }

    /// <summary>A start failure with an init container that failed (no-volume mode's externals copy) also quotes that container's log.</summary>
    static async Task<HookException> WithInitLogAsync(HookContext ctx, string podName, HookException e)
    {
        try
        {
            var init = (await ctx.Cluster.ReadPodAsync(podName, ctx.Cancel))?.Status?.InitContainerStatuses?.FirstOrDefault(s => s.State?.Terminated is { ExitCode: not 0 });
            if (init is null) return e;
            var lines = await ctx.Cluster.ReadLogTailAsync(podName, init.Name, 5, ctx.Cancel);
            return new HookException(e.Message + (lines.Count == 0 ? "" : " Its log: " + string.Join(" | ", lines)));
        }
        catch (HookException) { return e; } // the API is what failed: the first reason stands
    }

    /// <summary>The runner's side of <see cref="JobPod.OsMarker"/>.</summary>
    static string OsMarkerPath(HookContext ctx, string podName) => ctx.Work.HostPath(JobPod.OsMarker(podName));

    /// <summary>Empty and writable by any user, so a job container that does not run as the runner's user can still fill it in.</summary>
    static void CreateOsMarker(HookContext ctx, string podName)
    {
        var marker = OsMarkerPath(ctx, podName);
        Directory.CreateDirectory(Path.GetDirectoryName(marker)!);
        File.WriteAllText(marker, "");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(marker, (UnixFileMode)0b110_110_110);
    }

    /// <summary>`alpine` or `other` once the job container's probe has written it whole, else null.</summary>
    static string? OsMarkerWritten(HookContext ctx, string podName)
    {
        string text;
        try { text = File.ReadAllText(OsMarkerPath(ctx, podName)); }
        catch (IOException) { return null; }
        return text is "alpine\n" or "other\n" ? text.TrimEnd() : null;
    }

    /// <summary>The runner picks its Alpine (musl) node build for JavaScript actions from this.</summary>
    static async Task<bool> IsAlpineAsync(HookContext ctx, string podName)
    {
        if (ctx.Local is null)
        {
            // The job container wrote it as it started; it is there by the time the pod is seen running, or very soon after.
            for (var i = 0; i < 20; i++)
            {
                if (OsMarkerWritten(ctx, podName) is { } os)
                {
                    File.Delete(OsMarkerPath(ctx, podName));
                    return os == "alpine";
                }
                await Task.Delay(50, ctx.Cancel);
            }
            ctx.Log.Debug("The job container did not say whether it is Alpine; asking it.");
        }
        try
        {
            return await ctx.Cluster.ExecAsync(podName, Names.JobContainer, ["sh", "-c", "test -f /etc/alpine-release"], Stream.Null, Stream.Null, ctx.Cancel) == 0;
        }
        catch (HookException e)
        {
            ctx.Log.Debug($"Could not detect Alpine in the job container: {e.Message}");
            return false;
        }
    }
}
