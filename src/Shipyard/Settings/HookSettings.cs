namespace Shipyard.Settings;

public enum BuilderKind { Kaniko, Buildah }

/// <summary>When the runner's node builds are copied into the work volume: when a step first names one, or all at job start.</summary>
public enum ExternalsCopy { FirstUse, All }

/// <summary>Where the builder pushes, where the kubelet pulls, and with which Secret.</summary>
public sealed record RegistrySettings(string PushHost, string PullHost, string SecretName, bool Insecure);

/// <summary>Every environment variable Shipyard reads, parsed and validated once.</summary>
public sealed record HookSettings
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
    public TimeSpan BuildTimeout { get; init; } = TimeSpan.FromSeconds(3600);

    public string JobPodName => Names.JobPod(RunnerPodName);

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
        T Bad<T>(T fallback, string error) { errors.Add(error); return fallback; }
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
            Workspace = Get("GITHUB_WORKSPACE"),
            RegistryHost = Get(Prefix + "REGISTRY_HOST"),
            RegistryHostPush = Get(Prefix + "REGISTRY_HOST_PUSH"),
            RegistryHostPull = Get(Prefix + "REGISTRY_HOST_PULL"),
            RegistrySecretName = Get(Prefix + "REGISTRY_SECRET_NAME"),
            RegistryInsecure = Flag(Prefix + "REGISTRY_INSECURE"),
            Builder = builder,
            BuilderImage = Get(Prefix + "BUILDER_IMAGE"),
            BuildCache = Flag(Prefix + "BUILD_CACHE"),
            BuildTimeout = Seconds(Prefix + "BUILD_TIMEOUT_SECONDS", 3600),
        };
        if (errors.Count > 0) throw new HookException(string.Join(" ", errors));
        return settings;
    }
}
