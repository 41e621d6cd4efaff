using Shipyard.Pods;
using Shipyard.Protocol;

namespace Shipyard.Tests;

static class Fixtures
{
    public static readonly RunnerPod Runner = new("arc-runner-abc", "uid-123", "node-7");
    public static readonly PodPlacement Placement = new(Runner, UseKubeScheduler: false);
    public static readonly WorkVolume Work = new("/home/runner/_work", "arc-runner-abc-work");
    public const string Workspace = "/home/runner/_work/repo/repo";

    public static ContainerDefinition Container(string? image = "node:20", string? entryPoint = null, List<string>? args = null,
        Dictionary<string, string?>? env = null, List<string>? ports = null, List<MountVolume>? userMounts = null, RegistryCredentials? registry = null) =>
        new(image, null, args ?? [], entryPoint, "/__w/repo/repo", null, registry, env ?? [], ports ?? [], [], userMounts ?? []);

    public static JobPodOptions JobOptions(string? pullSecret = null, PodPlacement? placement = null) =>
        new("arc-runner-abc-workflow", placement ?? Placement, Work, Workspace, pullSecret);
}
