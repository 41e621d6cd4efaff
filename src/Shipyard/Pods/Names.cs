using System.Security.Cryptography;
using System.Text;

namespace Shipyard;

/// <summary>
/// Object names and labels; every object is findable by `runner-pod=&lt;runner&gt;`. ARC generates runner
/// pod names of up to 63 characters, so every derived name is built by <see cref="Derived"/>: the plain
/// `&lt;base&gt;-&lt;suffix&gt;` when it fits, else a shortened base plus a hash of the whole base, so two
/// long runner names never share a job pod and no name ends in `-` or `.`.
/// </summary>
public static class Names
{
    public const string RunnerPodLabel = "runner-pod";
    public const string RoleLabel = "shipyard.dev/role";
    public const string JobContainer = "job";
    public const string StepContainer = "step";
    public const string BuilderContainer = "builder";
    public const int MaxLength = 63;

    /// <summary>Selects every object of this runner's jobs.</summary>
    public static string OfRunner(string runnerPod) => $"{RunnerPodLabel}={runnerPod}";

    /// <summary>A runner's first job pod: ARC's and the upstream hook's name.</summary>
    public static string JobPod(string runnerPod) => Derived(runnerPod, "workflow");

    /// <summary>
    /// A later job pod of the same runner: the kubelet routes exec by pod name, so reusing the name while the
    /// earlier pod's containers still stop (they outlive its API object by up to its grace period) could run a
    /// step in the earlier job's container.
    /// </summary>
    public static string LaterJobPod(string runnerPod) => Fresh(runnerPod, "workflow");

    /// <summary>A name used once: `&lt;runner&gt;-&lt;kind&gt;-&lt;8 hex&gt;`, at most 63 chars.</summary>
    public static string Fresh(string runnerPod, string kind) =>
        Derived(runnerPod, $"{kind}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}");

    public static string RegistrySecret(string podName) => Derived(podName, "registry");
    public static string EnvSecret(string podName) => Derived(podName, "env");

    /// <summary>`base-suffix` within 63 characters, distinct for distinct bases.</summary>
    public static string Derived(string baseName, string suffix)
    {
        var plain = $"{baseName}-{suffix}";
        if (plain.Length <= MaxLength) return plain;
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(baseName)))[..8];
        var keep = MaxLength - suffix.Length - hash.Length - 2;
        var head = baseName[..Math.Max(0, Math.Min(keep, baseName.Length))].TrimEnd('-', '.');
        return head.Length == 0 ? $"{hash}-{suffix}" : $"{head}-{hash}-{suffix}";
    }

    /// <summary>A DNS-1123 label for a service container, from its image (`docker.io/library/redis:7` -> `redis`).</summary>
    public static string ServiceContainer(string image, ISet<string> taken)
    {
        var last = image.Split('@')[0];
        last = last[(last.LastIndexOf('/') + 1)..];
        var colon = last.IndexOf(':');
        if (colon >= 0) last = last[..colon];
        var baseName = Dns1123(last);
        if (baseName.Length == 0 || baseName == JobContainer) baseName = "service";
        var name = baseName;
        for (var i = 2; !taken.Add(name); i++) name = Truncate(baseName, 60).TrimEnd('-') + "-" + i;
        return name;
    }

    public static string Dns1123(string s)
    {
        var sb = new StringBuilder();
        foreach (var c in s.ToLowerInvariant())
            sb.Append(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') ? c : '-');
        return Truncate(sb.ToString().Trim('-'), MaxLength).Trim('-');
    }

    public static string Truncate(string s, int max) => s.Length <= max ? s : s[..max];
}
