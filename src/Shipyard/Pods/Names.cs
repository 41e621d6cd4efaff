using System.Security.Cryptography;
using System.Text;

namespace Shipyard;

/// <summary>Object names and labels; every object is findable by `runner-pod=&lt;runner&gt;`.</summary>
public static class Names
{
    public const string RunnerPodLabel = "runner-pod";
    public const string RoleLabel = "shipyard.dev/role";
    public const string JobContainer = "job";
    public const string StepContainer = "step";
    public const string BuilderContainer = "builder";

    public static string JobPod(string runnerPod) => Truncate($"{runnerPod}-workflow", 63);

    /// <summary>A fresh name for a per-step object: `&lt;runner&gt;-&lt;kind&gt;-&lt;8 hex&gt;`, at most 63 chars.</summary>
    public static string PerStep(string runnerPod, string kind)
    {
        var suffix = $"-{kind}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
        return Truncate(runnerPod, 63 - suffix.Length).TrimEnd('-', '.') + suffix;
    }

    public static string RegistrySecret(string podName) => Truncate(podName, 63 - "-registry".Length).TrimEnd('-', '.') + "-registry";
    public static string EnvSecret(string podName) => Truncate(podName, 63 - "-env".Length).TrimEnd('-', '.') + "-env";

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
        for (var i = 2; !taken.Add(name); i++) name = Truncate(baseName, 60) + "-" + i;
        return name;
    }

    public static string Dns1123(string s)
    {
        var sb = new StringBuilder();
        foreach (var c in s.ToLowerInvariant())
            sb.Append(c is (>= 'a' and <= 'z') or (>= '0' and <= '9') ? c : '-');
        return Truncate(sb.ToString().Trim('-'), 63).Trim('-');
    }

    public static string Truncate(string s, int max) => s.Length <= max ? s : s[..max];
}
