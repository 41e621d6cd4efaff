using System.Text.Json;
using System.Text.Json.Serialization;

namespace Shipyard.Protocol;

/// <summary>The one JSON line the runner writes to the hook's stdin.</summary>
public sealed record HookInput(
    string? Command,
    string? ResponseFile,
    JsonElement Args,
    HookState? State);

/// <summary>What the hook carries between calls of one job; the runner stores it verbatim.</summary>
/// <param name="Mode">`novolume` when prepare_job chose pod-local volumes; later calls follow it.</param>
/// <param name="RunnerImage">No-volume mode: the image of the fill and sync containers.</param>
public sealed record HookState(
    string? JobPod,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Mode = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? RunnerImage = null,
    // The job container's env, exported by each script step (JobPod); the runner keeps state in memory only.
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Dictionary<string, string>? JobEnv = null)
{
    public const string NoVolumeMode = "novolume";
    [JsonIgnore] public bool NoVolume => Mode == NoVolumeMode;
}

public sealed record RegistryCredentials(string? Username, string? Password, string? ServerUrl);

public sealed record MountVolume(string? UserProvidedValue, string? SourceVolumePath, string? TargetVolumePath, bool ReadOnly);

/// <summary>The runner's ContainerInfo as sent for the job container, services and container steps.</summary>
public sealed record ContainerDefinition(
    string? Image,
    string? Dockerfile,
    List<string>? EntryPointArgs,
    string? EntryPoint,
    string? WorkingDirectory,
    string? CreateOptions,
    RegistryCredentials? Registry,
    Dictionary<string, string?>? EnvironmentVariables,
    List<string>? PortMappings,
    List<MountVolume>? SystemMountVolumes,
    List<MountVolume>? UserMountVolumes);

public sealed record PrepareJobArgs(ContainerDefinition? Container, List<ContainerDefinition>? Services);

public sealed record ScriptStepArgs(
    List<string>? EntryPointArgs,
    string? EntryPoint,
    Dictionary<string, string?>? EnvironmentVariables,
    JsonElement PrependPath,
    string? WorkingDirectory)
{
    /// <summary>An array on current runners, a ':'-joined string on runners up to 2.293.</summary>
    public IReadOnlyList<string> PrependPathEntries() => PrependPath.ValueKind switch
    {
        JsonValueKind.Array => PrependPath.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()!
            : throw new HookException($"run_script_step's prependPath must list strings; it holds {e.ValueKind}: {Shorten(e.GetRawText())}")).Where(s => s.Length > 0).ToList(),
        JsonValueKind.String => (PrependPath.GetString() ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries),
        JsonValueKind.Undefined or JsonValueKind.Null => [],
        _ => throw new HookException($"run_script_step's prependPath must be an array of paths (or a ':'-joined string); it is {PrependPath.ValueKind}: {Shorten(PrependPath.GetRawText())}"),
    };

    static string Shorten(string s) => s.Length > 60 ? s[..60] + "…" : s;
}

public sealed record PrepareJobResponse(HookState State, ResponseContext Context, bool IsAlpine);

public sealed record ResponseContext(ResponseContainer? Container, List<ResponseContainer> Services);

public sealed record ResponseContainer(string Id, string Network, Dictionary<string, string> Ports);

public sealed record StateResponse(HookState State);

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DictionaryKeyPolicy = JsonKnownNamingPolicy.Unspecified,
    PropertyNameCaseInsensitive = true,
    UseStringEnumConverter = true)]
[JsonSerializable(typeof(HookInput))]
[JsonSerializable(typeof(PrepareJobArgs))]
[JsonSerializable(typeof(ScriptStepArgs))]
[JsonSerializable(typeof(ContainerDefinition))]
[JsonSerializable(typeof(PrepareJobResponse))]
[JsonSerializable(typeof(StateResponse))]
[JsonSerializable(typeof(Dictionary<string, string>))]
public sealed partial class ProtocolJson : JsonSerializerContext;
