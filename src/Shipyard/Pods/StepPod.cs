using k8s.Models;
using Shipyard.Protocol;

namespace Shipyard.Pods;

public sealed record StepPodOptions(
    string Name,
    string Image,
    PodPlacement Placement,
    WorkVolume Work,
    string WorkspaceSubPath,
    string EnvSecret,
    IReadOnlyList<string> PullSecrets);

/// <summary>A container action's pod: runs to completion; the exit code is the step's.</summary>
public static class StepPod
{
    public const string Role = "step";

    public static V1Pod Build(ContainerDefinition step, StepPodOptions o)
    {
        var args = ShellWords.Recover(step.EntryPointArgs);
        var container = new V1Container
        {
            Name = Names.StepContainer,
            Image = o.Image,
            // A null entryPoint keeps the image's ENTRYPOINT; args replace its CMD only when given.
            Command = step.EntryPoint is { Length: > 0 } ep ? [ep] : null,
            Args = args.Count > 0 ? args : null,
            WorkingDir = step.WorkingDirectory is { Length: > 0 } wd ? wd : "/github/workspace",
            // Values (tokens among them) live in a Secret, never in the pod spec.
            EnvFrom = [new V1EnvFromSource { SecretRef = new V1SecretEnvSource { Name = o.EnvSecret } }],
            VolumeMounts =
            [
                o.Work.Mount("/github/workspace", o.WorkspaceSubPath),
                o.Work.Mount("/github/home", "_temp/_github_home"),
                o.Work.Mount("/github/workflow", "_temp/_github_workflow"),
                o.Work.Mount("/github/file_commands", "_temp/_runner_file_commands"),
                o.Work.Mount("/github/runner_temp", "_temp"),
            ],
        };
        var spec = new V1PodSpec
        {
            Containers = [container],
            RestartPolicy = "Never",
            AutomountServiceAccountToken = false,
            Volumes = [o.Work.Volume()],
            ImagePullSecrets = o.PullSecrets.Count > 0 ? o.PullSecrets.Select(s => new V1LocalObjectReference { Name = s }).ToList() : null,
        };
        o.Placement.Place(spec);
        return new V1Pod { ApiVersion = "v1", Kind = "Pod", Metadata = o.Placement.Metadata(o.Name, Role), Spec = spec };
    }

    /// <summary>The step's environment as Secret data (read by `envFrom`), with the runner's CI defaults.</summary>
    public static Dictionary<string, string> EnvironmentData(ContainerDefinition step) =>
        PodEnv.WithRunnerDefaults(step.EnvironmentVariables, "container step").ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
}
