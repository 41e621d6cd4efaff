using k8s.Models;

namespace Shipyard.Pods;

/// <summary>
/// Env for pod containers. Values never go into a pod spec's `value`: Kubernetes expands `$(NAME)` and
/// `$$` there, and anyone who can read the pod could read the tokens. They go into a Secret instead,
/// read through `secretKeyRef` / `envFrom`, which neither expands nor shows them.
/// </summary>
public static class PodEnv
{
    /// <summary>The runner's env for a container, plus `GITHUB_ACTIONS=true` and `CI=true` unless set (as the upstream hook does).</summary>
    public static List<KeyValuePair<string, string>> WithRunnerDefaults(IDictionary<string, string?>? env, string where) =>
        WithRunnerDefaults(env, (k, _) => EnvNames.RequireKubernetesName(k, where), []);

    /// <summary>
    /// The job container's env as every step sees it. It is exported by each step's wrapper (as `docker exec` adds
    /// it to a docker-mode step), not set in the pod: a pod that references no Secret starts sooner, since the kubelet
    /// fetches and watches each Secret a pod's env names through its own rate-limited API client. `HOME` is the image's.
    /// </summary>
    public static Dictionary<string, string> ForJobContainer(IDictionary<string, string?>? env) =>
        new(WithRunnerDefaults(env, EnvNames.RequireForScript, ["HOME"]), StringComparer.Ordinal);

    static List<KeyValuePair<string, string>> WithRunnerDefaults(IDictionary<string, string?>? env, Action<string, string?> require, string[] drop)
    {
        var list = new List<KeyValuePair<string, string>>();
        foreach (var (k, v) in env ?? new Dictionary<string, string?>())
        {
            if (drop.Contains(k)) continue;
            require(k, v);
            list.Add(KeyValuePair.Create(k, v ?? ""));
        }
        foreach (var (k, v) in new[] { ("GITHUB_ACTIONS", "true"), ("CI", "true") })
            if (list.All(e => e.Key != k)) list.Add(KeyValuePair.Create(k, v));
        return list;
    }

    /// <summary>
    /// Env entries of one container of a pod whose values live in <paramref name="secretName"/> under
    /// `&lt;container&gt;.&lt;NAME&gt;` (container names are DNS labels, so the key is unambiguous).
    /// </summary>
    public static List<V1EnvVar> FromSecret(string container, IEnumerable<KeyValuePair<string, string>> env, string secretName, IDictionary<string, string> secretData)
    {
        var vars = new List<V1EnvVar>();
        foreach (var (k, v) in env)
        {
            var key = $"{container}.{k}";
            secretData[key] = v;
            vars.Add(new V1EnvVar
            {
                Name = k,
                ValueFrom = new V1EnvVarSource { SecretKeyRef = new V1SecretKeySelector { Name = secretName, Key = key } },
            });
        }
        return vars;
    }
}
