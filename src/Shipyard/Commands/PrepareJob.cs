using Shipyard.Pods;
using Shipyard.Protocol;
using Shipyard.Runner;

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
        if (await ctx.Cluster.ClaimExistsAsync(ctx.Settings.ClaimName, ctx.Cancel) == false)
            throw new HookException($"The work volume claim '{ctx.Settings.ClaimName}' does not exist in namespace '{ctx.Cluster.Namespace}' (ACTIONS_RUNNER_CLAIM_NAME).");
        var podName = ctx.Settings.JobPodName;
        var pullSecret = RegistryPullSecret.Wanted(job.Registry) ? Names.RegistrySecret(podName) : null;
        var options = new JobPodOptions(podName, placement, ctx.Work, ctx.Settings.Workspace, pullSecret);
        var (pod, serviceNames) = JobPod.Build(job, services, options);
        if (template is not null) pod = template.ApplyToJobPod(pod, serviceNames);
        var ports = PortMapping.ResponsePorts(job.PortMappings);
        var servicePorts = services.Select(s => PortMapping.ResponsePorts(s.PortMappings)).ToList();

        if (Externals.EnsureCopied(ctx.Settings.ExternalsDirectory, ctx.Work.HostPath("externals")))
            ctx.Log.Debug($"Copied runner externals to {ctx.Work.HostPath("externals")}");

        if (pullSecret is not null)
        {
            ctx.Log.AddMask(job.Registry!.Password);
            await ctx.Cluster.CreateSecretAsync(RegistryPullSecret.Build(pullSecret, job.Registry, job.Image!, placement), ctx.Cancel);
        }
        try
        {
            await ctx.Cluster.CreatePodAsync(pod, ctx.Cancel);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ctx.Cancel);
            timeout.CancelAfter(ctx.Settings.PrepareJobTimeout);
            k8s.Models.V1Pod? running;
            try { running = await ctx.Cluster.WaitForPodAsync(podName, PodProgress.AllRunning, timeout.Token); }
            catch (OperationCanceledException) when (!ctx.Cancel.IsCancellationRequested)
            {
                var last = await ctx.Cluster.ReadPodAsync(podName, ctx.Cancel);
                throw new HookException($"Job pod {podName} was not running after {ctx.Settings.PrepareJobTimeout.TotalSeconds:0}s (ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS): {(last is null ? "gone" : PodProgress.Describe(last))}");
            }
            if (running is null) throw new HookException($"Job pod {podName} was deleted while it was starting.");
        }
        catch
        {
            await ctx.Cluster.DeletePodAsync(podName, 0, CancellationToken.None);
            if (pullSecret is not null) await ctx.Cluster.DeleteSecretAsync(pullSecret, CancellationToken.None);
            throw;
        }

        var isAlpine = await IsAlpineAsync(ctx, podName);
        return new PrepareJobResponse(
            new HookState(podName),
            new ResponseContext(
                new ResponseContainer(podName, podName, ports),
                services.Select((s, i) => new ResponseContainer(serviceNames[i], podName, servicePorts[i])).ToList()),
            isAlpine);
    }

    /// <summary>The runner picks its Alpine (musl) node build for JavaScript actions from this.</summary>
    static async Task<bool> IsAlpineAsync(HookContext ctx, string podName)
    {
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
