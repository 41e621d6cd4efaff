using k8s.Models;
using Shipyard.Images;

namespace Shipyard.Pods;

/// <param name="StagedSubPath">The build's directory under `_temp`: `context/` (the filtered context), `dockerfile/`,
/// `out/` (where the builder writes the image) and, with a registry CA, `ca/`.</param>
/// <param name="LoginSecret">Base-image and cache logins (never the push login), or null: then the pod mounts no Secret.</param>
/// <param name="Architecture">The runner's CPU architecture (`amd64`): the image is built for the platform its hash names.</param>
/// <param name="Deadline">The build timeout, enforced by the server too, so a build a killed hook left stops.</param>
public sealed record BuilderPodOptions(
    string Name,
    PodPlacement Placement,
    WorkVolume Work,
    string StagedSubPath,
    string? LoginSecret,
    bool HasCa,
    string Architecture,
    V1ResourceRequirements Resources,
    TimeSpan Deadline);

/// <summary>The builder pod: the staged context and Dockerfile read-only, its output directory, at most a read-only login.</summary>
public static class BuilderPod
{
    public const string Role = "builder";
    public const string ArchLabel = "kubernetes.io/arch";

    public static V1Pod Build(IImageBuilder builder, BuildSpec spec, BuilderPodOptions o)
    {
        var container = builder.Container(spec);
        container.Resources = o.Resources;
        container.VolumeMounts =
        [
            o.Work.Mount(BuildSpec.ContextDir, o.StagedSubPath + "/context", readOnly: true),
            o.Work.Mount(BuildSpec.DockerfileDir, o.StagedSubPath + "/dockerfile", readOnly: true),
            o.Work.Mount(BuildSpec.OutputDir, o.StagedSubPath + "/out"),
        ];
        var volumes = new List<V1Volume> { o.Work.Volume() };
        if (o.HasCa) container.VolumeMounts.Add(o.Work.Mount(BuildSpec.CaDir, o.StagedSubPath + "/ca", readOnly: true));
        if (o.LoginSecret is not null)
        {
            container.VolumeMounts.Add(new V1VolumeMount { Name = "login", MountPath = builder.DockerConfigDir, ReadOnlyProperty = true });
            volumes.Add(new V1Volume
            {
                Name = "login",
                Secret = new V1SecretVolumeSource { SecretName = o.LoginSecret, Items = [new V1KeyToPath { Key = ".dockerconfigjson", Path = "config.json" }] },
            });
        }
        var podSpec = new V1PodSpec
        {
            Containers = [container],
            RestartPolicy = "Never",
            AutomountServiceAccountToken = false,
            EnableServiceLinks = false,
            Volumes = volumes,
            SecurityContext = builder.PodSecurityContext,
            ActiveDeadlineSeconds = (long)o.Deadline.TotalSeconds,
        };
        o.Placement.Place(podSpec);
        RequireArchitecture(podSpec, o.Architecture);
        return new V1Pod { ApiVersion = "v1", Kind = "Pod", Metadata = o.Placement.Metadata(o.Name, Role), Spec = podSpec };
    }

    /// <summary>Also after a template replaced the node selector: an image's tag names its platform.</summary>
    public static void RequireArchitecture(V1PodSpec spec, string architecture)
    {
        spec.NodeSelector ??= new Dictionary<string, string>();
        spec.NodeSelector[ArchLabel] = architecture;
    }
}
