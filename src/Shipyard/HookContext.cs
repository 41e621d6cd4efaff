using Shipyard.Cluster;
using Shipyard.Output;
using Shipyard.Pods;
using Shipyard.Protocol;
using Shipyard.Runner;
using Shipyard.Settings;
using Shipyard.Sync;

namespace Shipyard;

/// <summary>What every command gets: settings, the cluster gateway, the log, and cancellation.</summary>
public sealed record HookContext(HookSettings Settings, ClusterGateway Cluster, Workflow Log, Stream Stdout, Stream Stderr, CancellationToken Cancel)
{
    /// <summary>No-volume mode: pods get pod-local volumes and these containers; null in volume mode.</summary>
    public PodLocalWork? Local { get; init; }

    public WorkVolume Work => new(Settings.WorkDirectory, Settings.ClaimName, PodLocal: Local is not null);

    /// <summary>The runner's externals and their copy on the work volume, which the job container mounts at `/__e`.</summary>
    public Externals Externals => new(Settings.ExternalsDirectory, Work.HostPath("externals"));

    /// <summary>No-volume mode: what the job pod's copy of `_work` held after the last sync (kept beside it, never synced).</summary>
    public string SyncManifestPath => Path.Combine(Settings.WorkDirectory, WorkManifest.SyncDirectory, "job-pod-manifest");

    /// <summary>There while a copy back from the job pod is unfinished: the next push then keeps the pod's mark where it is.</summary>
    public string SyncPullFailedPath => SyncManifestPath + ".pull-failed";

    public WorkSync WorkSync => new(Cluster, Settings.WorkDirectory, Log.Debug, Log.Warning);

    public async Task<PodPlacement> PlacementAsync()
    {
        var runner = await Cluster.ReadPodAsync(Settings.RunnerPodName, Cancel)
            ?? throw new HookException($"The runner pod '{Settings.RunnerPodName}' (ACTIONS_RUNNER_POD_NAME) does not exist in namespace '{Cluster.Namespace}'.");
        return new PodPlacement(RunnerPod.From(runner), Settings.UseKubeScheduler, Settings.ClaimReadWriteMany, NoWorkVolume: Local is not null);
    }

    /// <summary>
    /// Runs a step or builder pod to completion. In no-volume mode it gets the fill and sync containers, and
    /// <paramref name="filesIn"/> (subtrees of `_work`) are copied in before its own container starts.
    /// </summary>
    public Task<k8s.Models.V1ContainerStateTerminated> RunPodAsync(k8s.Models.V1Pod pod, string container, Stream logSink, TimeSpan? timeout, IReadOnlyList<string> filesIn)
    {
        if (Local is null) return Cluster.RunToCompletionAsync(pod, container, logSink, Log.Debug, timeout, Cancel);
        Local.AddTo(pod.Spec);
        var fill = PodLocalWork.Target(pod.Metadata.Name, PodLocalWork.FillContainer);
        return Cluster.RunToCompletionAsync(pod, container, logSink, Log.Debug, timeout, Cancel,
            (PodLocalWork.FillContainer, ct => WorkSync.FillAsync(fill, filesIn, ct)));
    }

    /// <summary>prepare_job's choice of mode (<see cref="PodLocalWork.For"/>).</summary>
    public HookContext ForRunner(RunnerPod runner) => this with { Local = PodLocalWork.For(Settings, runner) };

    /// <summary>Later calls follow what prepare_job chose (the state carries it).</summary>
    public HookContext ForState(HookState? state) =>
        state is { NoVolume: true } ? this with { Local = new PodLocalWork(state.RunnerImage ?? Settings.RunnerImage ?? "", Settings.RunnerImageExternals) } : this;

    /// <summary>Maps a runner-host path under `_work` to the job container's `/__w`.</summary>
    public string JobContainerPath(string hostPath) => "/__w/" + Work.SubPath(hostPath, "Path");
}
