using k8s.Models;
using Shipyard.Protocol;

namespace Shipyard.Pods;

/// <summary>Inputs of the job pod beyond the runner's container definitions.</summary>
public sealed record JobPodOptions(
    string Name,
    PodPlacement Placement,
    WorkVolume Work,
    string? WorkspaceHostPath,
    string? PullSecret);

/// <summary>The job pod: container `job` (the job container) and one container per service.</summary>
public static class JobPod
{
    public const string Role = "job";

    public static (V1Pod Pod, IReadOnlyList<string> ServiceNames) Build(ContainerDefinition job, IReadOnlyList<ContainerDefinition> services, JobPodOptions o)
    {
        var taken = new HashSet<string> { Names.JobContainer };
        var serviceNames = services.Select(s => Names.ServiceContainer(s.Image ?? "", taken)).ToList();
        var containers = new List<V1Container> { JobContainer(job, o) };
        containers.AddRange(services.Select((s, i) => ServiceContainer(s, serviceNames[i], o)));

        var spec = new V1PodSpec
        {
            Containers = containers,
            RestartPolicy = "Never",
            AutomountServiceAccountToken = false,
            Volumes = [o.Work.Volume()],
            ImagePullSecrets = o.PullSecret is null ? null : [new V1LocalObjectReference { Name = o.PullSecret }],
        };
        o.Placement.Place(spec);
        return (new V1Pod { ApiVersion = "v1", Kind = "Pod", Metadata = o.Placement.Metadata(o.Name, Role), Spec = spec }, serviceNames);
    }

    static V1Container JobContainer(ContainerDefinition job, JobPodOptions o)
    {
        var image = Require(job.Image, "job container");
        // The runner sends `tail -f /dev/null` itself; older runners send nothing.
        var command = job.EntryPoint is { Length: > 0 } ep ? new List<string> { ep } : ["tail"];
        var args = job.EntryPoint is { Length: > 0 } ? job.EntryPointArgs ?? [] : ["-f", "/dev/null"];
        var env = (job.EnvironmentVariables ?? [])
            .Where(kv => kv.Key != "HOME")
            .Select(kv => new V1EnvVar { Name = kv.Key, Value = kv.Value ?? "" })
            .ToList();
        foreach (var (k, v) in new[] { ("GITHUB_ACTIONS", "true"), ("CI", "true") })
            if (env.All(e => e.Name != k)) env.Add(new V1EnvVar { Name = k, Value = v });

        var mounts = new List<V1VolumeMount>
        {
            o.Work.Mount("/__w"),
            o.Work.Mount("/__e", "externals", readOnly: true),
            o.Work.Mount("/github/home", "_temp/_github_home"),
            o.Work.Mount("/github/workflow", "_temp/_github_workflow"),
        };
        mounts.AddRange(UserMounts(job, o));
        return new V1Container
        {
            Name = Names.JobContainer,
            Image = image,
            Command = command,
            Args = args.ToList(),
            WorkingDir = job.WorkingDirectory,
            Env = env,
            Ports = Ports(job),
            VolumeMounts = mounts,
        };
    }

    static V1Container ServiceContainer(ContainerDefinition service, string name, JobPodOptions o)
    {
        var image = Require(service.Image, $"service '{name}'");
        var hasEntryPoint = service.EntryPoint is { Length: > 0 };
        var args = service.EntryPointArgs is { Count: > 0 } a ? a.ToList() : null;
        return new V1Container
        {
            Name = name,
            Image = image,
            Command = hasEntryPoint ? [service.EntryPoint!] : null,
            Args = args,
            WorkingDir = service.WorkingDirectory,
            Env = (service.EnvironmentVariables ?? []).Select(kv => new V1EnvVar { Name = kv.Key, Value = kv.Value ?? "" }).ToList(),
            Ports = Ports(service),
            VolumeMounts = UserMounts(service, o).ToList() is { Count: > 0 } m ? m : null,
        };
    }

    static List<V1ContainerPort>? Ports(ContainerDefinition c) =>
        c.PortMappings is { Count: > 0 } p ? p.Select(PortMapping.Parse).Select(m => m.ContainerPortSpec()).ToList() : null;

    /// <summary>`-v` volumes: only paths in the workspace exist on the work volume.</summary>
    public static IEnumerable<V1VolumeMount> UserMounts(ContainerDefinition c, JobPodOptions o)
    {
        foreach (var v in c.UserMountVolumes ?? [])
        {
            var source = v.SourceVolumePath ?? "";
            var target = v.TargetVolumePath ?? throw new HookException($"Volume '{v.UserProvidedValue}' has no target path.");
            if (o.WorkspaceHostPath is null)
                throw new HookException($"Volume '{v.UserProvidedValue}' cannot be mounted: GITHUB_WORKSPACE is not set.");
            var hostPath = Path.IsPathRooted(source) ? source : Path.Combine(o.WorkspaceHostPath, source);
            var ws = Path.TrimEndingDirectorySeparator(Path.GetFullPath(o.WorkspaceHostPath));
            var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(hostPath));
            if (full != ws && !full.StartsWith(ws + "/", StringComparison.Ordinal))
                throw new HookException($"Volume '{v.UserProvidedValue ?? source}' cannot be mounted: on Kubernetes only paths inside the workspace ({o.WorkspaceHostPath}) are on the work volume.");
            yield return o.Work.Mount(target, o.Work.SubPath(full, "Volume source"), v.ReadOnly);
        }
    }

    static string Require(string? image, string what) => image is { Length: > 0 } i ? i
        : throw new HookException($"The {what} has no image; Dockerfile-based job and service containers are not supported.");
}
