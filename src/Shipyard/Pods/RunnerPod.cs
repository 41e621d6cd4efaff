using k8s.Models;

namespace Shipyard.Pods;

/// <summary>
/// The runner pod every object belongs to: its node (RWO work volume), uid (ownerReference), its image (the
/// externals and sync helper of no-volume pods) and the claims it mounts (which mode the job runs in).
/// </summary>
public sealed record RunnerPod(string Name, string Uid, string? NodeName, string? Image = null, IReadOnlyList<string>? Claims = null)
{
    public static RunnerPod From(V1Pod pod)
    {
        var containers = pod.Spec?.Containers ?? [];
        var runner = containers.FirstOrDefault(c => c.Name == "runner") ?? containers.FirstOrDefault();
        // ARC's work volume is an ephemeral one: its claim is named `<pod>-<volume>`.
        var claims = (pod.Spec?.Volumes ?? [])
            .Select(v => v.PersistentVolumeClaim?.ClaimName ?? (v.Ephemeral is not null ? $"{pod.Metadata.Name}-{v.Name}" : null))
            .OfType<string>().ToList();
        return new(pod.Metadata.Name, pod.Metadata.Uid, pod.Spec?.NodeName, runner?.Image, claims);
    }

    /// <summary>Auto mode: the work claim when the runner pod mounts it, pod-local volumes otherwise.</summary>
    public bool MountsClaim(string claimName) => Claims?.Contains(claimName) == true;
}

/// <summary>What every pod Shipyard creates shares: owner, label, placement, no API token.</summary>
/// <param name="SharedWorkVolume">The work claim is ReadWriteMany: pods may run on another node than the runner.</param>
/// <param name="NoWorkVolume">No-volume mode: pods hold their own copy of the files, so any node will do.</param>
public sealed record PodPlacement(RunnerPod Runner, bool UseKubeScheduler, bool SharedWorkVolume = false, bool NoWorkVolume = false)
{
    public V1ObjectMeta Metadata(string name, string role) => new()
    {
        Name = name,
        Labels = new Dictionary<string, string> { [Names.RunnerPodLabel] = Runner.Name, [Names.RoleLabel] = role },
        OwnerReferences = [OwnerReference()],
    };

    public V1OwnerReference OwnerReference() => new()
    {
        ApiVersion = "v1", Kind = "Pod", Name = Runner.Name, Uid = Runner.Uid,
        // The runner pod is not blocked from deletion by what it owns.
        BlockOwnerDeletion = false, Controller = false,
    };

    /// <summary>
    /// Same node as the runner: the work volume is usually ReadWriteOnce. A ReadWriteMany volume only prefers
    /// the runner's node (its data is local there, as the scheduler sees it), so a full node does not hold the job.
    /// </summary>
    public void Place(V1PodSpec spec)
    {
        if (Runner.NodeName is null || NoWorkVolume) return;
        var runnersNode = new V1NodeSelectorTerm
        {
            MatchFields = [new V1NodeSelectorRequirement { Key = "metadata.name", OperatorProperty = "In", Values = [Runner.NodeName] }],
        };
        if (SharedWorkVolume)
        {
            spec.Affinity = new V1Affinity
            {
                NodeAffinity = new V1NodeAffinity
                {
                    PreferredDuringSchedulingIgnoredDuringExecution = [new V1PreferredSchedulingTerm { Weight = 100, Preference = runnersNode }],
                },
            };
            return;
        }
        if (!UseKubeScheduler) { spec.NodeName = Runner.NodeName; return; }
        spec.Affinity = new V1Affinity
        {
            NodeAffinity = new V1NodeAffinity
            {
                RequiredDuringSchedulingIgnoredDuringExecution = new V1NodeSelector { NodeSelectorTerms = [runnersNode] },
            },
        };
    }
}
