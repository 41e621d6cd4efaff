using k8s.Models;
using Shipyard.Pods;

namespace Shipyard.Cluster;

public sealed partial class ClusterGateway
{
    /// <summary>
    /// Creates a pod that runs to completion (a container step, a build), waits until it starts — failing at
    /// once if it cannot —, follows its log into <paramref name="logSink"/> and returns its terminated state. With
    /// <paramref name="fill"/>, the pod's init container of that name is waited for and the callback run while
    /// it holds the pod (no-volume mode copies the step's files in then).
    /// </summary>
    public async Task<V1ContainerStateTerminated> RunToCompletionAsync(V1Pod pod, string container, Stream logSink, Action<string> debug, TimeSpan? timeout, CancellationToken cancel,
        (string InitContainer, Func<CancellationToken, Task> Run)? fill = null)
    {
        var name = pod.Metadata.Name;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await CreatePodAsync(pod, cancel);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        if (timeout is { } t) limit.CancelAfter(t);
        try
        {
            var pulls = new StartFailureTracker();
            if (fill is { } f)
            {
                _ = await WaitForPodAsync(name, p => PodProgress.InitRunning(p, f.InitContainer, pulls), limit.Token)
                    ?? throw new HookException($"Pod {name} was deleted before it started.");
                await f.Run(limit.Token);
                debug($"{name}: filled after {clock.ElapsedMilliseconds} ms");
            }
            _ = await WaitForPodAsync(name, p => PodProgress.Started(p, container, pulls), limit.Token)
                ?? throw new HookException($"Pod {name} was deleted before it started.");
            debug($"{name}: container started after {clock.ElapsedMilliseconds} ms");
            await FollowLogAsync(name, container, logSink, limit.Token);
            debug($"{name}: log ended after {clock.ElapsedMilliseconds} ms");
            var done = await WaitForPodAsync(name, p => PodProgress.Terminated(p, container) is not null, limit.Token)
                ?? throw new HookException($"Pod {name} was deleted before its container finished; the step did not finish.");
            debug($"{name}: container finished after {clock.ElapsedMilliseconds} ms");
            return PodProgress.Terminated(done, container)!;
        }
        catch (OperationCanceledException) when (!cancel.IsCancellationRequested)
        {
            throw new HookException($"Pod {name} did not finish within {timeout?.TotalSeconds:0}s.");
        }
    }
}
