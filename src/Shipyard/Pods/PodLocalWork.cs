using k8s.Models;
using Shipyard.Settings;
using Shipyard.Sync;

namespace Shipyard.Pods;

/// <summary>
/// No-volume mode's extra containers, all from the runner's own image (on the node already; it has sh,
/// GNU tar and find): one copies the runner's externals node-locally into the job pod's `/__e`, one waits
/// for the first sync before a step or build starts, one stays to carry files out after the step's
/// container has exited.
/// </summary>
/// <param name="RunnerImage">ACTIONS_RUNNER_IMAGE, or the runner container's image.</param>
/// <param name="ImageExternals">The externals directory inside that image.</param>
public sealed record PodLocalWork(string RunnerImage, string ImageExternals)
{
    public const string SyncContainer = "shipyard-sync";
    public const string FillContainer = "shipyard-fill";
    public const string ExternalsContainer = "shipyard-externals";
    public const string ExternalsVolume = "externals";

    static readonly V1ResourceRequirements Small = new()
    {
        Requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("10m"), ["memory"] = new("16Mi") },
    };

    /// <summary>
    /// The mode rule: the setting, else volume mode exactly when the runner pod mounts the work claim. Null means
    /// volume mode; no-volume mode needs the runner's image (ACTIONS_RUNNER_IMAGE, else the runner container's).
    /// </summary>
    public static PodLocalWork? For(HookSettings settings, RunnerPod runner)
    {
        var noVolume = settings.Mode switch
        {
            WorkMode.NoVolume => true,
            WorkMode.Volume => false,
            _ => !runner.MountsClaim(settings.ClaimName),
        };
        if (!noVolume) return null;
        var image = settings.RunnerImage ?? runner.Image
            ?? throw new HookException("No-volume mode needs the runner's image for the job pod's externals: set ACTIONS_RUNNER_IMAGE (ARC does in kubernetes-novolume mode).");
        return new PodLocalWork(image, settings.RunnerImageExternals);
    }

    public static SyncTarget Target(string pod, string container = SyncContainer) => new(pod, container);

    static V1VolumeMount WorkMount => new() { Name = WorkVolume.Name, MountPath = SyncTarget.PodRoot };

    /// <summary>Idles until the pod goes, exiting at once on SIGTERM (sleep alone would hold the grace period).</summary>
    public V1Container Sync() => new()
    {
        Name = SyncContainer,
        Image = RunnerImage,
        Command = ["sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"],
        VolumeMounts = [WorkMount],
        Resources = Small,
    };

    /// <summary>An init container that holds the pod until Shipyard's first push marked the files ready.</summary>
    public V1Container Fill() => new()
    {
        Name = FillContainer,
        Image = RunnerImage,
        Command = ["sh", "-c", $"until [ -e {SyncTarget.PodRoot}/{WorkManifest.SyncDirectory}/ready ]; do sleep 0.1; done"],
        VolumeMounts = [WorkMount],
        Resources = Small,
    };

    /// <summary>Copies the image's externals into the pod's `/__e` volume: a node-local copy, never the runner's upload.</summary>
    public V1Container ExternalsCopy() => new()
    {
        Name = ExternalsContainer,
        Image = RunnerImage,
        // What the directory holds, not the directory: the volume's root belongs to root, its mode is not ours to set.
        Command = ["sh", "-c", "test -d \"$0\" || { echo \"the runner image has no $0 (ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_RUNNER_IMAGE_EXTERNALS)\" >&2; exit 1; }; " +
            "cd \"$0\" && find . -mindepth 1 -maxdepth 1 -printf '%P\\0' | tar -cf - --null -T - | tar -C /__e -xf - --no-same-owner", ImageExternals],
        VolumeMounts = [new V1VolumeMount { Name = ExternalsVolume, MountPath = "/__e" }],
        Resources = Small,
    };

    public static V1Volume Externals() => new() { Name = ExternalsVolume, EmptyDir = new V1EmptyDirVolumeSource() };

    /// <summary>A step or builder pod gets the fill and sync containers beside its own.</summary>
    public void AddTo(V1PodSpec spec)
    {
        spec.InitContainers = [.. spec.InitContainers ?? [], Fill()];
        spec.Containers = [.. spec.Containers, Sync()];
    }
}
