namespace Shipyard.Settings;

public enum BuilderKind { Kaniko, Buildah }

/// <summary>When the runner's node builds are copied into the work volume: when a step first names one, or all at job start.</summary>
public enum ExternalsCopy { FirstUse, All }

/// <summary>
/// How the runner shares `_work` with the pods: the work claim mounted by every pod (`volume`, ARC's
/// `kubernetes`), or pod-local volumes kept in sync over exec (`novolume`, ARC's `kubernetes-novolume`).
/// </summary>
public enum WorkMode { Auto, Volume, NoVolume }

/// <summary>Where the builder pushes, where the kubelet pulls, and with which Secret.</summary>
public sealed record RegistrySettings(string PushHost, string PullHost, string SecretName, bool Insecure);

/// <summary>Every environment variable Shipyard reads, parsed and validated once.</summary>
public sealed partial record HookSettings
{
    public const string Prefix = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_";
    public const string DefaultKanikoImage = "ghcr.io/osscontainertools/kaniko:v1.28.4";
    public const string DefaultBuildahImage = "quay.io/buildah/stable:v1.42.0";

    public required string RunnerPodName { get; init; }
    public string? Namespace { get; init; }
    /// <summary>Outside a cluster (tests, local runs): the first existing file of KUBECONFIG.</summary>
    public string? KubeConfigPath { get; init; }
    public required string ClaimName { get; init; }
    public string? TemplatePath { get; init; }
    public bool UseKubeScheduler { get; init; }
    /// <summary>The work claim is ReadWriteMany: pods prefer the runner's node instead of being pinned to it.</summary>
    public bool ClaimReadWriteMany { get; init; }
    public TimeSpan PrepareJobTimeout { get; init; } = TimeSpan.FromSeconds(600);
    /// <summary>The runner's `_work` directory on the runner host; the work PVC's root.</summary>
    public required string WorkDirectory { get; init; }
    /// <summary>The runner's own externals (node etc.), copied to `_work/externals` for the job container.</summary>
    public required string ExternalsDirectory { get; init; }
    public ExternalsCopy ExternalsCopy { get; init; } = ExternalsCopy.FirstUse;
    /// <summary>Auto: volume mode when the runner pod mounts the work claim, no-volume mode otherwise.</summary>
    public WorkMode Mode { get; init; } = WorkMode.Auto;
    /// <summary>The runner's own image (ARC sets ACTIONS_RUNNER_IMAGE in no-volume mode); else read from the runner pod.</summary>
    public string? RunnerImage { get; init; }
    /// <summary>Where the runner image holds its externals; no-volume pods copy them from there, node-locally.</summary>
    public string RunnerImageExternals { get; init; } = DefaultRunnerImageExternals;
    public const string DefaultRunnerImageExternals = "/home/runner/externals";
    /// <summary>GITHUB_WORKSPACE on the runner host.</summary>
    public string? Workspace { get; init; }

    public string? RegistryHost { get; init; }
    public string? RegistryHostPush { get; init; }
    public string? RegistryHostPull { get; init; }
    public string? RegistrySecretName { get; init; }
    public bool RegistryInsecure { get; init; }
    public BuilderKind Builder { get; init; } = BuilderKind.Kaniko;
    public string? BuilderImage { get; init; }
    public bool BuildCache { get; init; }
    /// <summary>Read-only logins for private base images; whatever the builder pod holds, a `RUN` line can read.</summary>
    public string? BuilderSecretName { get; init; }
    /// <summary>A login with push rights on the cache repository only (`&lt;push host&gt;/&lt;action&gt;/cache`).</summary>
    public string? BuildCacheSecretName { get; init; }
    /// <summary>Requests and limits of builder pods (`cpu`, `memory` → quantity); a template's `$builder` resources win.</summary>
    public IReadOnlyDictionary<string, string> BuilderRequests { get; init; } = DefaultBuilderRequests;
    public IReadOnlyDictionary<string, string> BuilderLimits { get; init; } = DefaultBuilderLimits;
    public static readonly IReadOnlyDictionary<string, string> DefaultBuilderRequests = new Dictionary<string, string> { ["cpu"] = "250m", ["memory"] = "256Mi" };
    public static readonly IReadOnlyDictionary<string, string> DefaultBuilderLimits = new Dictionary<string, string> { ["memory"] = "4Gi" };
    public TimeSpan BuildTimeout { get; init; } = TimeSpan.FromSeconds(3600);

    /// <summary>Registry settings for Dockerfile actions, or the one-line error naming what to set.</summary>
    public RegistrySettings RequireRegistry()
    {
        var push = RegistryHostPush ?? RegistryHost;
        var pull = RegistryHostPull ?? RegistryHost;
        var missing = new List<string>();
        if (push is null || pull is null) missing.Add(Prefix + "REGISTRY_HOST (or both " + Prefix + "REGISTRY_HOST_PUSH and " + Prefix + "REGISTRY_HOST_PULL)");
        if (RegistrySecretName is null) missing.Add(Prefix + "REGISTRY_SECRET_NAME");
        if (missing.Count > 0)
            throw new HookException($"Dockerfile container actions are built in the cluster and need a registry: set {string.Join(" and ", missing)} on the runner container.");
        return new RegistrySettings(push!.TrimEnd('/'), pull!.TrimEnd('/'), RegistrySecretName!, RegistryInsecure);
    }

    public string BuilderImageOrDefault => BuilderImage ?? (Builder == BuilderKind.Buildah ? DefaultBuildahImage : DefaultKanikoImage);

    public static HookSettings FromEnvironment(Func<string, string?> env)
    {
        // Every bad variable is reported at once, each by name, so one fix-and-retry is enough.
        var errors = new List<string>();
        string? Get(string name) => env(name) is { Length: > 0 } v ? v.Trim() : null;
        bool Flag(string name)
        {
            var v = Get(name);
            if (v is null) return false;
            switch (v.ToLowerInvariant())
            {
                case "true" or "1" or "yes": return true;
                case "false" or "0" or "no": return false;
                default: errors.Add($"{name} must be true or false, not '{v}'."); return false;
            }
        }
        TimeSpan Seconds(string name, int fallback)
        {
            var v = Get(name);
            if (v is null) return TimeSpan.FromSeconds(fallback);
            if (!int.TryParse(v, out var s) || s <= 0) { errors.Add($"{name} must be a positive number of seconds, not '{v}'."); return TimeSpan.FromSeconds(fallback); }
            return TimeSpan.FromSeconds(s);
        }

        var pod = Get("ACTIONS_RUNNER_POD_NAME");
        if (pod is null) errors.Add("ACTIONS_RUNNER_POD_NAME is not set; it must name the runner pod (ARC sets it in containerMode: kubernetes).");
        var runnerWorkspace = Get("RUNNER_WORKSPACE");
        // RUNNER_WORKSPACE is `<_work>/<repo>`; `<_work>/../externals` holds the runner's externals.
        var work = runnerWorkspace is null ? "/home/runner/_work" : Path.GetDirectoryName(Path.GetFullPath(runnerWorkspace.TrimEnd('/')))!;
        var builder = Get(Prefix + "BUILDER")?.ToLowerInvariant() switch
        {
            null or "kaniko" => BuilderKind.Kaniko,
            "buildah" => BuilderKind.Buildah,
            var other => Bad(BuilderKind.Kaniko, $"{Prefix}BUILDER must be kaniko or buildah, not '{other}'."),
        };
        var externalsCopy = Get(Prefix + "EXTERNALS_COPY")?.ToLowerInvariant() switch
        {
            null or "first-use" => ExternalsCopy.FirstUse,
            "all" => ExternalsCopy.All,
            var other => Bad(ExternalsCopy.FirstUse, $"{Prefix}EXTERNALS_COPY must be first-use or all, not '{other}'."),
        };
        var mode = Get(Prefix + "MODE")?.ToLowerInvariant() switch
        {
            null or "auto" => WorkMode.Auto,
            "volume" or "kubernetes" => WorkMode.Volume,
            "novolume" or "kubernetes-novolume" => WorkMode.NoVolume,
            var other => Bad(WorkMode.Auto, $"{Prefix}MODE must be auto, volume or novolume, not '{other}'."),
        };
        var imageExternals = Get(Prefix + "RUNNER_IMAGE_EXTERNALS") ?? DefaultRunnerImageExternals;
        if (!imageExternals.StartsWith('/')) errors.Add($"{Prefix}RUNNER_IMAGE_EXTERNALS must be an absolute path in the runner image, not '{imageExternals}'.");
        T Bad<T>(T fallback, string error) { errors.Add(error); return fallback; }
        // BUILDER_CPU_REQUEST, BUILDER_MEMORY_LIMIT, …: a quantity, or `none` to leave it unset.
        IReadOnlyDictionary<string, string> Quantities(string kind, IReadOnlyDictionary<string, string> defaults)
        {
            var result = new Dictionary<string, string>(defaults);
            foreach (var resource in new[] { "cpu", "memory" })
            {
                var name = $"{Prefix}BUILDER_{resource.ToUpperInvariant()}_{kind}";
                var v = Get(name);
                if (v is null) continue;
                if (v.Equals("none", StringComparison.OrdinalIgnoreCase)) { result.Remove(resource); continue; }
                if (!QuantityPattern().IsMatch(v)) { errors.Add($"{name} must be a Kubernetes quantity such as 500m, 2 or 4Gi (or none), not '{v}'."); continue; }
                result[resource] = v;
            }
            return result;
        }
        var settings = new HookSettings
        {
            RunnerPodName = pod ?? "",
            Namespace = Get("ACTIONS_RUNNER_KUBERNETES_NAMESPACE"),
            KubeConfigPath = Get("KUBECONFIG")?.Split(':', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(File.Exists),
            ClaimName = Get("ACTIONS_RUNNER_CLAIM_NAME") ?? $"{pod}-work",
            TemplatePath = Get("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE"),
            UseKubeScheduler = Flag("ACTIONS_RUNNER_USE_KUBE_SCHEDULER"),
            ClaimReadWriteMany = Flag(Prefix + "CLAIM_READ_WRITE_MANY"),
            PrepareJobTimeout = Seconds("ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS", 600),
            WorkDirectory = work,
            ExternalsDirectory = Path.GetFullPath(Path.Combine(work, "..", "externals")),
            ExternalsCopy = externalsCopy,
            Mode = mode,
            RunnerImage = Get("ACTIONS_RUNNER_IMAGE"),
            RunnerImageExternals = imageExternals.TrimEnd('/') is { Length: > 0 } e ? e : "/",
            Workspace = Get("GITHUB_WORKSPACE"),
            RegistryHost = Get(Prefix + "REGISTRY_HOST"),
            RegistryHostPush = Get(Prefix + "REGISTRY_HOST_PUSH"),
            RegistryHostPull = Get(Prefix + "REGISTRY_HOST_PULL"),
            RegistrySecretName = Get(Prefix + "REGISTRY_SECRET_NAME"),
            RegistryInsecure = Flag(Prefix + "REGISTRY_INSECURE"),
            Builder = builder,
            BuilderImage = Get(Prefix + "BUILDER_IMAGE"),
            BuildCache = Flag(Prefix + "BUILD_CACHE"),
            BuilderSecretName = Get(Prefix + "BUILDER_SECRET_NAME"),
            BuildCacheSecretName = Get(Prefix + "BUILD_CACHE_SECRET_NAME"),
            BuilderRequests = Quantities("REQUEST", DefaultBuilderRequests),
            BuilderLimits = Quantities("LIMIT", DefaultBuilderLimits),
            BuildTimeout = Seconds(Prefix + "BUILD_TIMEOUT_SECONDS", 3600),
        };
        if (settings.BuildCache && settings.BuildCacheSecretName is null)
            errors.Add($"{Prefix}BUILD_CACHE=true needs {Prefix}BUILD_CACHE_SECRET_NAME: the layer cache is pushed by the builder pod, so it gets its own login with push rights on the cache repository only, never the registry Secret.");
        if (errors.Count > 0) throw new HookException(string.Join(" ", errors));
        return settings;
    }

    /// <summary>Kubernetes' quantity grammar: a decimal number with an optional binary, decimal or exponent suffix.</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"^[+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$")]
    private static partial System.Text.RegularExpressions.Regex QuantityPattern();
}
