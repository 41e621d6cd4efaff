using k8s.Models;
using Shipyard.Protocol;

namespace Shipyard.Pods;

/// <summary>Inputs of the job pod beyond the runner's container definitions.</summary>
public sealed record JobPodOptions(
    string Name,
    PodPlacement Placement,
    WorkVolume Work,
    string? WorkspaceHostPath,
    string? PullSecret,
    PodLocalWork? Local = null)
{
    /// <summary>The Secret holding the services' env values.</summary>
    public string EnvSecret => Names.EnvSecret(Name);
}

/// <summary>
/// The job pod and the Secret its services' env comes from (none without services), created together,
/// deleted together; and the job container's env, which each step's wrapper exports (<see cref="PodEnv.ForJobContainer"/>).
/// </summary>
public sealed record JobPodObjects(V1Pod Pod, V1Secret? EnvSecret, IReadOnlyList<string> ServiceNames)
{
    public Dictionary<string, string> JobEnv { get; init; } = [];
}

/// <summary>The job pod: container `job` (the job container) and one container per service.</summary>
public static class JobPod
{
    public const string Role = "job";

    /// <summary>Short, so a deleted runner's job pod goes in seconds: `tail -f /dev/null` ignores SIGTERM.</summary>
    public const long TerminationGraceSeconds = 5;

    public static JobPodObjects Build(ContainerDefinition job, IReadOnlyList<ContainerDefinition> services, JobPodOptions o)
    {
        var taken = new HashSet<string> { Names.JobContainer };
        var serviceNames = services.Select(s => Names.ServiceContainer(s.Image ?? "", taken)).ToList();
        var envData = new Dictionary<string, string>(StringComparer.Ordinal);
        var jobEnv = PodEnv.ForJobContainer(job.EnvironmentVariables);
        var containers = new List<V1Container> { JobContainer(job, o) };
        containers.AddRange(services.Select((s, i) => ServiceContainer(s, serviceNames[i], o, envData)));

        var spec = new V1PodSpec
        {
            Containers = containers,
            RestartPolicy = "Never",
            AutomountServiceAccountToken = false,
            Volumes = o.Local is null ? [o.Work.Volume()] : [o.Work.Volume(), PodLocalWork.Externals()],
            // The files go in before the job container starts: directories are the runner's, as on a work volume.
            InitContainers = o.Local is null ? null : [o.Local.ExternalsCopy(), o.Local.Fill()],
            ImagePullSecrets = o.PullSecret is null ? null : [new V1LocalObjectReference { Name = o.PullSecret }],
            TerminationGracePeriodSeconds = TerminationGraceSeconds,
        };
        if (o.Local is not null) containers.Add(o.Local.Sync());
        o.Placement.Place(spec);
        var secret = envData.Count == 0 ? null : new V1Secret
        {
            ApiVersion = "v1", Kind = "Secret", Type = "Opaque",
            Metadata = o.Placement.Metadata(o.EnvSecret, "job-env"),
            StringData = envData,
        };
        var pod = new V1Pod { ApiVersion = "v1", Kind = "Pod", Metadata = o.Placement.Metadata(o.Name, Role), Spec = spec };
        return new JobPodObjects(pod, secret, serviceNames) { JobEnv = jobEnv };
    }

    /// <summary>Where (below `_work`) the job container writes `alpine` or `other` as it starts, in volume mode.</summary>
    public static string OsMarker(string podName) => $"_temp/_shipyard_os_{podName}";

    /// <summary>
    /// $@ the runner's command. Written only when that command can be run, since prepare_job takes the marker as
    /// "the job container runs"; a marker that cannot be written only costs prepare_job an exec.
    /// </summary>
    public static string OsProbe(string marker) =>
        $$"""{ command -v "$1" >/dev/null && if [ -f /etc/alpine-release ]; then echo alpine; else echo other; fi > {{ShellWords.Quote(marker)}}; } 2>/dev/null; exec "$@" """.TrimEnd();

    static V1Container JobContainer(ContainerDefinition job, JobPodOptions o)
    {
        var image = ImageReference.Require(job.Image, "job container");
        // The runner sends `tail -f /dev/null` itself; older runners send nothing.
        List<string> command = job.EntryPoint is { Length: > 0 } ep ? [ep] : ["tail"];
        List<string> args = job.EntryPoint is { Length: > 0 } ? [.. job.EntryPointArgs ?? []] : ["-f", "/dev/null"];
        if (o.Local is null)
        {
            // Says on the work volume whether it is Alpine, then becomes the runner's command: no exec to ask.
            args = [.. command, .. args];
            command = ["sh", "-c", OsProbe("/__w/" + OsMarker(o.Name)), "sh"];
        }

        var mounts = new List<V1VolumeMount>
        {
            o.Work.Mount("/__w"),
            o.Local is null ? o.Work.Mount("/__e", "externals", readOnly: true)
                : new V1VolumeMount { Name = PodLocalWork.ExternalsVolume, MountPath = "/__e", ReadOnlyProperty = true },
            o.Work.Mount("/github/home", "_temp/_github_home"),
            o.Work.Mount("/github/workflow", "_temp/_github_workflow"),
        };
        mounts.AddRange(UserMounts(job, o));
        return new V1Container
        {
            Name = Names.JobContainer,
            Image = image,
            Command = command,
            Args = args,
            WorkingDir = job.WorkingDirectory,
            Ports = Ports(job),
            VolumeMounts = mounts,
        };
    }

    static V1Container ServiceContainer(ContainerDefinition service, string name, JobPodOptions o, Dictionary<string, string> envData)
    {
        var image = ImageReference.Require(service.Image, $"service '{name}'");
        var hasEntryPoint = service.EntryPoint is { Length: > 0 };
        var args = service.EntryPointArgs is { Count: > 0 } a ? a.ToList() : null;
        return new V1Container
        {
            Name = name,
            Image = image,
            Command = hasEntryPoint ? [service.EntryPoint!] : null,
            Args = args,
            WorkingDir = service.WorkingDirectory,
            Env = PodEnv.FromSecret(name, PodEnv.WithRunnerDefaults(service.EnvironmentVariables, $"service '{name}'"), o.EnvSecret, envData),
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
}
