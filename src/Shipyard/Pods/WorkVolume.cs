using k8s.Models;

namespace Shipyard.Pods;

/// <summary>
/// The runner's `_work` directory is the root of the work PVC. Runner-host paths under it become
/// subPath mounts, so job, step and builder pods see exactly the runner's files. In no-volume mode the
/// same mounts come from a pod-local emptyDir that Shipyard keeps in sync with the runner's `_work`.
/// </summary>
public sealed record WorkVolume(string HostRoot, string ClaimName, bool PodLocal = false)
{
    public const string Name = "work";

    public V1Volume Volume() => PodLocal
        ? new() { Name = Name, EmptyDir = new V1EmptyDirVolumeSource() }
        : new() { Name = Name, PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = ClaimName } };

    /// <summary>The subPath of a runner-host path, or null when it is outside the work volume.</summary>
    public string? TrySubPath(string hostPath)
    {
        var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(HostRoot));
        // GetFullPath also folds the `/./` of local actions (`<_work>/repo/repo/./my-action`).
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(hostPath));
        if (full == root) return "";
        return full.StartsWith(root + "/", StringComparison.Ordinal) ? full[(root.Length + 1)..] : null;
    }

    public string SubPath(string hostPath, string what) => TrySubPath(hostPath)
        ?? throw new HookException($"{what} '{hostPath}' is outside the runner's work directory '{HostRoot}', so no pod can mount it.");

    public V1VolumeMount Mount(string mountPath, string subPath = "", bool readOnly = false) => new()
    {
        Name = Name, MountPath = mountPath, SubPath = subPath.Length == 0 ? null : subPath, ReadOnlyProperty = readOnly ? true : null,
    };

    public string HostPath(string subPath) => Path.Combine(HostRoot, subPath);
}
