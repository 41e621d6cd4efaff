using Shipyard.Driver;
using System.Collections.Concurrent;
using k8s;
using k8s.Models;

namespace Shipyard.E2E;

/// <summary>Watches the test namespace and records every pod created while it runs.</summary>
public sealed class PodRecorder : IAsyncDisposable
{
    readonly ConcurrentDictionary<string, V1Pod> seen = new();
    readonly CancellationTokenSource stop = new();
    readonly Task loop;

    PodRecorder(TestCluster cluster, TaskCompletionSource started)
    {
        loop = Task.Run(async () =>
        {
            var list = await cluster.Client.CoreV1.ListNamespacedPodAsync(cluster.Namespace, cancellationToken: stop.Token);
            var events = cluster.Client.CoreV1.WatchListNamespacedPodAsync(cluster.Namespace,
                resourceVersion: list.Metadata.ResourceVersion, cancellationToken: stop.Token);
            started.SetResult();
            try
            {
                await foreach (var (type, pod) in events)
                    if (type == WatchEventType.Added) seen.TryAdd(pod.Metadata.Name, pod);
            }
            catch (OperationCanceledException) { }
            catch (HttpRequestException) when (stop.IsCancellationRequested) { }
        });
    }

    public static async Task<PodRecorder> StartAsync(TestCluster cluster)
    {
        var started = new TaskCompletionSource();
        var r = new PodRecorder(cluster, started);
        await started.Task;
        await Task.Delay(200); // the watch request is in flight before anything is created
        return r;
    }

    public IReadOnlyList<V1Pod> Created(string runnerPod, string role) =>
        seen.Values.Where(p => Label(p, "runner-pod") == runnerPod && Label(p, "shipyard.dev/role") == role).ToList();

    static string? Label(V1Pod p, string key) => p.Metadata.Labels is { } l && l.TryGetValue(key, out var v) ? v : null;

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        try { await loop; } catch (OperationCanceledException) { }
    }
}
