using Shipyard.Cluster;
using Shipyard.Output;
using Shipyard.Pods;
using Shipyard.Runner;
using Shipyard.Settings;

namespace Shipyard;

/// <summary>What every command gets: settings, the cluster gateway, the log, and cancellation.</summary>
public sealed record HookContext(HookSettings Settings, ClusterGateway Cluster, Workflow Log, Stream Stdout, Stream Stderr, CancellationToken Cancel)
{
    public WorkVolume Work => new(Settings.WorkDirectory, Settings.ClaimName);

    /// <summary>The runner's externals and their copy on the work volume, which the job container mounts at `/__e`.</summary>
    public Externals Externals => new(Settings.ExternalsDirectory, Work.HostPath("externals"));

    public async Task<PodPlacement> PlacementAsync()
    {
        var runner = await Cluster.ReadPodAsync(Settings.RunnerPodName, Cancel)
            ?? throw new HookException($"The runner pod '{Settings.RunnerPodName}' (ACTIONS_RUNNER_POD_NAME) does not exist in namespace '{Cluster.Namespace}'.");
        return new PodPlacement(RunnerPod.From(runner), Settings.UseKubeScheduler, Settings.ClaimReadWriteMany);
    }

    /// <summary>Maps a runner-host path under `_work` to the job container's `/__w`.</summary>
    public string JobContainerPath(string hostPath) => "/__w/" + Work.SubPath(hostPath, "Path");
}
