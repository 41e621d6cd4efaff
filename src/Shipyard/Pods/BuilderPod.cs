using k8s.Models;
using Shipyard.Images;

namespace Shipyard.Pods;

public sealed record BuilderPodOptions(
    string Name,
    PodPlacement Placement,
    WorkVolume Work,
    /// <summary>The staged build under `_temp`: `context/` (the filtered context) and `dockerfile/`.</summary>
    string StagedSubPath,
    string RegistrySecret,
    bool HasCa);

/// <summary>The builder pod: the staged, filtered context and the Dockerfile read-only, the registry Secret, nothing else.</summary>
public static class BuilderPod
{
    public const string Role = "builder";

    public static V1Pod Build(IImageBuilder builder, BuildSpec spec, BuilderPodOptions o)
    {
        var container = builder.Container(spec);
        container.VolumeMounts =
        [
            o.Work.Mount(BuildSpec.ContextDir, o.StagedSubPath + "/context", readOnly: true),
            o.Work.Mount(BuildSpec.DockerfileDir, o.StagedSubPath + "/dockerfile", readOnly: true),
            new V1VolumeMount { Name = "registry", MountPath = builder.DockerConfigDir, ReadOnlyProperty = true },
        ];
        var volumes = new List<V1Volume>
        {
            o.Work.Volume(),
            new()
            {
                Name = "registry",
                Secret = new V1SecretVolumeSource
                {
                    SecretName = o.RegistrySecret,
                    Items = [new V1KeyToPath { Key = ".dockerconfigjson", Path = "config.json" }],
                },
            },
        };
        if (o.HasCa)
        {
            container.VolumeMounts.Add(new V1VolumeMount { Name = "registry-ca", MountPath = BuildSpec.CaDir, ReadOnlyProperty = true });
            volumes.Add(new V1Volume
            {
                Name = "registry-ca",
                Secret = new V1SecretVolumeSource { SecretName = o.RegistrySecret, Items = [new V1KeyToPath { Key = "ca.crt", Path = "ca.crt" }] },
            });
        }
        var spec2 = new V1PodSpec
        {
            Containers = [container],
            RestartPolicy = "Never",
            AutomountServiceAccountToken = false,
            EnableServiceLinks = false,
            Volumes = volumes,
            SecurityContext = builder.PodSecurityContext,
        };
        o.Placement.Place(spec2);
        return new V1Pod { ApiVersion = "v1", Kind = "Pod", Metadata = o.Placement.Metadata(o.Name, Role), Spec = spec2 };
    }
}
