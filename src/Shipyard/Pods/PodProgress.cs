using k8s.Models;

namespace Shipyard.Pods;

/// <summary>
/// Reads a pod's status the way a person would: started, still coming, or never going to start
/// (then throws at once with the real reason instead of waiting out a timeout).
/// </summary>
public static class PodProgress
{
    static readonly HashSet<string> Fatal =
    [
        "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "CrashLoopBackOff",
    ];

    static readonly HashSet<string> PullFailures = ["ErrImagePull", "ImagePullBackOff", "RegistryUnavailable"];

    /// <summary>
    /// Start failures the kubelet retries by itself: pulls, and a Secret or ConfigMap its cache has not synced yet
    /// (`CreateContainerConfigError: failed to sync secret cache: timed out waiting for the condition`, seen on
    /// a loaded node), which is not the missing key or Secret the same reason otherwise means.
    /// </summary>
    static bool Retried(string reason, string? message) => PullFailures.Contains(reason)
        || reason == "CreateContainerConfigError" && (message ?? "").StartsWith("failed to sync", StringComparison.Ordinal);

    /// <summary>True when every container is running (the job pod is ready for exec).</summary>
    public static bool AllRunning(V1Pod pod, StartFailureTracker? pulls = null)
    {
        ThrowIfCannotStart(pod, pulls);
        if (pod.Status?.Phase is "Succeeded" or "Failed")
            throw new HookException($"Pod {pod.Metadata.Name} stopped before the job started: {Describe(pod)}");
        var statuses = pod.Status?.ContainerStatuses ?? [];
        return pod.Status?.Phase == "Running" && statuses.Count == pod.Spec.Containers.Count && statuses.All(s => s.State?.Running is not null);
    }

    /// <summary>True once the container runs or has run (its log can be followed).</summary>
    public static bool Started(V1Pod pod, string container, StartFailureTracker? pulls = null)
    {
        ThrowIfCannotStart(pod, pulls);
        var s = pod.Status?.ContainerStatuses?.FirstOrDefault(c => c.Name == container);
        return s?.State?.Running is not null || s?.State?.Terminated is not null || pod.Status?.Phase is "Succeeded" or "Failed";
    }

    /// <summary>True once the init container runs (or the pod is past it).</summary>
    public static bool InitRunning(V1Pod pod, string container, StartFailureTracker? pulls = null)
    {
        ThrowIfCannotStart(pod, pulls);
        var s = pod.Status?.InitContainerStatuses?.FirstOrDefault(c => c.Name == container);
        if (s?.State?.Terminated is not null)
            throw new HookException($"Pod {pod.Metadata.Name} went past its init container '{container}' before it was filled: {Describe(pod)}");
        return s?.State?.Running is not null;
    }

    /// <summary>A container of a pod that should keep running (the job pod) that has exited.</summary>
    public static V1ContainerStatus? StoppedContainer(V1Pod pod) =>
        pod.Status?.ContainerStatuses?.FirstOrDefault(s => s.State?.Terminated is not null);

    public static V1ContainerStateTerminated? Terminated(V1Pod pod, string container) =>
        pod.Status?.ContainerStatuses?.FirstOrDefault(c => c.Name == container)?.State?.Terminated;

    public static void ThrowIfCannotStart(V1Pod pod, StartFailureTracker? pulls = null)
    {
        var name = pod.Metadata.Name;
        foreach (var s in (pod.Status?.InitContainerStatuses ?? []).Concat(pod.Status?.ContainerStatuses ?? []))
        {
            var waiting = s.State?.Waiting;
            if (waiting?.Reason is not { } reason) continue;
            if (Retried(reason, waiting.Message) ? pulls is null || pulls.GivesUp(s.Name, reason, waiting.Message) : Fatal.Contains(reason))
                throw new HookException($"Pod {name} cannot start container '{s.Name}' ({s.Image}): {reason}: {Clean(waiting.Message)}");
        }
        foreach (var s in pod.Status?.InitContainerStatuses ?? [])
            if (s.State?.Terminated is { ExitCode: not 0 } t)
                throw new HookException($"Pod {name} cannot start: init container '{s.Name}' ({s.Image}) exited with code {t.ExitCode} ({t.Reason}{(t.Message is { Length: > 0 } m ? ": " + Clean(m) : "")}).");
        var scheduled = pod.Status?.Conditions?.FirstOrDefault(c => c.Type == "PodScheduled");
        if (scheduled is { Status: "False", Reason: "Unschedulable" })
            throw new HookException($"Pod {name} cannot be scheduled: {Clean(scheduled.Message)}");
        if (pod.Status?.Reason is { } podReason && pod.Status.Phase == "Failed")
            throw new HookException($"Pod {name} failed: {podReason}: {Clean(pod.Status.Message)}");
    }

    public static string Describe(V1Pod pod)
    {
        var parts = new List<string> { $"phase {pod.Status?.Phase ?? "unknown"}" };
        foreach (var s in pod.Status?.ContainerStatuses ?? [])
        {
            if (s.State?.Waiting is { } w) parts.Add($"{s.Name} waiting: {w.Reason} {Clean(w.Message)}".TrimEnd());
            if (s.State?.Terminated is { } t) parts.Add($"{s.Name} exited {t.ExitCode} ({t.Reason})");
        }
        foreach (var c in pod.Status?.Conditions ?? [])
            if (c.Status == "False" && c.Message is { Length: > 0 }) parts.Add($"{c.Type}: {Clean(c.Message)}");
        return string.Join("; ", parts);
    }

    static string Clean(string? s) => (s ?? "").Replace('\n', ' ').Trim();
}

/// <summary>
/// When a start failure the kubelet retries is final. A missing image or tag is final at once; anything else (a
/// 401 while the kubelet's Secret cache is still syncing, a registry blip, a Secret cache that has not synced)
/// gets the kubelet's next attempt: final when a pull fails a second time or the failure lasts 30 s.
/// </summary>
public sealed class StartFailureTracker(Func<DateTime>? clock = null)
{
    readonly Func<DateTime> now = clock ?? (() => DateTime.UtcNow);
    readonly Dictionary<string, (string Reason, int Failures, DateTime Since)> seen = [];

    public bool GivesUp(string container, string reason, string? message)
    {
        var m = message ?? "";
        if (m.Contains("not found", StringComparison.OrdinalIgnoreCase) || m.Contains("manifest unknown", StringComparison.OrdinalIgnoreCase) ||
            m.Contains("does not exist", StringComparison.OrdinalIgnoreCase) || m.Contains("no such host", StringComparison.OrdinalIgnoreCase))
            return true;
        var (last, failures, since) = seen.TryGetValue(container, out var v) ? v : ("", 0, now());
        if (reason == "ErrImagePull" && last != "ErrImagePull") failures++;
        seen[container] = (reason, failures, since);
        return failures >= 2 || now() - since >= TimeSpan.FromSeconds(30);
    }
}
