using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Shipyard.Cluster;

/// <summary>
/// The one place Shipyard talks to the Kubernetes API. Thin: create/read/delete objects, watch a
/// pod, follow logs, exec. Commands decide; this only carries.
/// </summary>
public sealed partial class ClusterGateway : IDisposable
{
    readonly StreamingKubernetes client;
    readonly Polly.ResiliencePipeline pipeline = TransientPipeline();

    public string Namespace { get; }

    /// <summary>Without `pods/watch`: quick reads while a pod is likely to change (start-up), then at most one read per 2 s.</summary>
    public static TimeSpan PollInterval(TimeSpan waited) =>
        waited < TimeSpan.FromSeconds(3) ? TimeSpan.FromMilliseconds(250)
        : TimeSpan.FromMilliseconds(Math.Min(2000, 250 * Math.Pow(2, (waited.TotalSeconds - 3) / 2 + 1)));

    ClusterGateway(StreamingKubernetes client, string ns)
    {
        this.client = client;
        Namespace = ns;
    }

    /// <param name="apiServerOnly">This process will open TLS to the API server and nothing else (see <see cref="TrustOnlyApiServerCa"/>).</param>
    public static ClusterGateway Connect(string? kubeConfigPath, string? namespaceOverride, bool apiServerOnly = false, Action<string>? debug = null)
    {
        KubernetesClientConfiguration config;
        try
        {
            config = KubernetesClientConfiguration.IsInCluster()
                ? KubernetesClientConfiguration.InClusterConfig()
                : KubernetesClientConfiguration.BuildConfigFromConfigFile(kubeConfigPath);
        }
        catch (Exception e)
        {
            throw new HookException($"Cannot find Kubernetes credentials (in-cluster service account or KUBECONFIG): {e.Message}");
        }
        // Log follows, watches and builds run for as long as the step does; callers bound them with tokens.
        config.HttpClientTimeout = Timeout.InfiniteTimeSpan;
        if (apiServerOnly) TrustOnlyApiServerCa(config, debug ?? (_ => { }));
        return new ClusterGateway(new StreamingKubernetes(config), namespaceOverride ?? config.Namespace ?? "default");
    }

    public void Dispose() => client.Dispose();

    // ---- pods -------------------------------------------------------------------------------

    public Task<V1Pod?> ReadPodAsync(string name, CancellationToken ct = default) =>
        Call($"read pod {name}", token => ReadPodOnceAsync(name, token), ct);

    // One attempt, no retry: also the read-back inside a retried create.
    Task<V1Pod?> ReadPodOnceAsync(string name, CancellationToken ct) =>
        NullIfMissing(client.CoreV1.ReadNamespacedPodAsync(name, Namespace, cancellationToken: ct));

    public Task<V1Pod> CreatePodAsync(V1Pod pod, CancellationToken ct = default) =>
        Create($"create pod {pod.Metadata.Name}", token => client.CoreV1.CreateNamespacedPodAsync(pod, Namespace, cancellationToken: token),
            token => ReadPodOnceAsync(pod.Metadata.Name, token), ct);

    /// <summary>A 404 means the object is not there: null, not an error.</summary>
    static async Task<T?> NullIfMissing<T>(Task<T> call) where T : class
    {
        try { return await call; }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound) { return null; }
    }

    /// <summary>Server-side dry run (`dryRun=All`): admission (Pod Security, webhooks) runs, nothing is stored. Null when admitted, else the server's reason.</summary>
    public async Task<string?> DryRunCreatePodAsync(V1Pod pod, CancellationToken ct = default)
    {
        try { await client.CoreV1.CreateNamespacedPodAsync(pod, Namespace, dryRun: "All", cancellationToken: ct); return null; }
        catch (HttpOperationException e)
        {
            return $"{(int)e.Response.StatusCode}: {(e.Response.Content is { Length: > 0 } c ? TryStatusMessage(c) : e.Message)}";
        }
    }

    public Task DeletePodAsync(string name, int? graceSeconds = null, CancellationToken ct = default) =>
        Call($"delete pod {name}", async token =>
        {
            try { await client.CoreV1.DeleteNamespacedPodAsync(name, Namespace, gracePeriodSeconds: graceSeconds, cancellationToken: token); }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound) { }
        }, ct);

    public async Task<IList<V1Pod>> ListPodsAsync(string labelSelector, CancellationToken ct = default) =>
        (await Call($"list pods {labelSelector}", token => client.CoreV1.ListNamespacedPodAsync(Namespace, labelSelector: labelSelector, cancellationToken: token), ct)).Items;

    /// <summary>
    /// Watches one pod until <paramref name="done"/> says so (it may throw to fail fast). Returns the
    /// pod, or null once it is gone. Lists first, then watches from that resourceVersion; relists on expiry.
    /// </summary>
    public async Task<V1Pod?> WaitForPodAsync(string name, Func<V1Pod, bool> done, CancellationToken ct)
    {
        var waiting = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var list = await Call($"read pod {name}", token => client.CoreV1.ListNamespacedPodAsync(Namespace, fieldSelector: $"metadata.name={name}", cancellationToken: token), ct);
            var pod = list.Items.FirstOrDefault();
            if (pod is null) return null;
            if (done(pod)) return pod;
            var path = $"api/v1/namespaces/{Namespace}/pods?watch=true&fieldSelector={Uri.EscapeDataString("metadata.name=" + name)}" +
                       $"&resourceVersion={list.Metadata.ResourceVersion}&timeoutSeconds={WatchSeconds}";
            HttpResponseMessage response;
            try { response = await client.GetStreamAsync(path, ct); }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Forbidden)
            {
                // ARC's stock Role has no `watch` on pods: poll instead, backing off for long waits.
                await Task.Delay(PollInterval(waiting.Elapsed), ct);
                continue;
            }
            catch (Exception e) when (e is HttpRequestException or IOException || e is HttpOperationException h && IsTransient(h.Response.StatusCode))
            {
                await Task.Delay(PollInterval(TimeSpan.Zero), ct); // the relist above retries and reports
                continue;
            }
            using var _ = response;
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
            while (await ReadWatchLineAsync(reader, ct) is { } line)
            {
                if (line.Length == 0) continue;
                using var doc = JsonDocument.Parse(line);
                var type = doc.RootElement.GetProperty("type").GetString();
                if (type == "ERROR") break; // e.g. 410 Gone: relist
                if (type == "DELETED") return null;
                if (type is "ADDED" or "MODIFIED")
                {
                    pod = KubernetesJson.Deserialize<V1Pod>(doc.RootElement.GetProperty("object"));
                    if (done(pod)) return pod;
                }
            }
        }
    }

    /// <summary>The server ends each watch after this long; a watch silent for longer than that plus 5 s is half-open and is replaced.</summary>
    const int WatchSeconds = 25;

    /// <summary>A watch line, or null when the stream ended, broke or went silent: either way the caller relists and watches again.</summary>
    static async Task<string?> ReadWatchLineAsync(StreamReader reader, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(WatchSeconds + 5));
        try { return await reader.ReadLineAsync(deadline.Token); }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested) { return null; }
        catch (Exception e) when (e is IOException or HttpRequestException) { return null; }
    }

    /// <summary>The last lines a container wrote (empty when it wrote nothing or the log cannot be read).</summary>
    public async Task<IReadOnlyList<string>> ReadLogTailAsync(string pod, string container, int lines, CancellationToken ct)
    {
        try
        {
            using var log = await client.CoreV1.ReadNamespacedPodLogAsync(pod, Namespace, container: container, tailLines: lines, cancellationToken: ct);
            using var reader = new StreamReader(log);
            var text = await reader.ReadToEndAsync(ct);
            return text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r')).ToList();
        }
        catch (HttpOperationException) { return []; }
    }

    // ---- secrets, claims --------------------------------------------------------------------

    public Task<V1Secret> CreateSecretAsync(V1Secret secret, CancellationToken ct = default) =>
        Create($"create secret {secret.Metadata.Name}", token => client.CoreV1.CreateNamespacedSecretAsync(secret, Namespace, cancellationToken: token),
            token => ReadSecretOnceAsync(secret.Metadata.Name, token), ct);

    public Task<V1Secret?> ReadSecretAsync(string name, CancellationToken ct = default) =>
        Call($"read secret {name}", token => ReadSecretOnceAsync(name, token), ct);

    Task<V1Secret?> ReadSecretOnceAsync(string name, CancellationToken ct) =>
        NullIfMissing(client.CoreV1.ReadNamespacedSecretAsync(name, Namespace, cancellationToken: ct));

    public Task DeleteSecretAsync(string name, CancellationToken ct = default) =>
        Call($"delete secret {name}", async token =>
        {
            try { await client.CoreV1.DeleteNamespacedSecretAsync(name, Namespace, cancellationToken: token); }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound) { }
        }, ct);

    public async Task<IList<V1Secret>> ListSecretsAsync(string labelSelector, CancellationToken ct = default) =>
        (await Call($"list secrets {labelSelector}", token => client.CoreV1.ListNamespacedSecretAsync(Namespace, labelSelector: labelSelector, cancellationToken: token), ct)).Items;

    /// <summary>True/false when known; null when the Role does not allow reading claims (ARC's default Role).</summary>
    public Task<bool?> ClaimExistsAsync(string name, CancellationToken ct = default) =>
        Call<bool?>($"read claim {name}", async token =>
        {
            try { await client.CoreV1.ReadNamespacedPersistentVolumeClaimAsync(name, Namespace, cancellationToken: token); return true; }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound) { return false; }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Forbidden) { return null; }
        }, ct);

    static string TryStatusMessage(string body)
    {
        try { return KubernetesJson.Deserialize<V1Status>(body).Message ?? body; }
        catch (JsonException) { return body; }
    }

    /// <summary>The client, plus one raw streaming GET (watch) through its own auth and TLS.</summary>
    sealed class StreamingKubernetes(KubernetesClientConfiguration config) : Kubernetes(config)
    {
        public Task<HttpResponseMessage> GetStreamAsync(string relative, CancellationToken ct)
        {
            var uri = new Uri(BaseUri.ToString().TrimEnd('/') + "/" + relative);
            return SendRequestRaw("", new HttpRequestMessage(HttpMethod.Get, uri), ct);
        }
    }
}
