using k8s.Models;

namespace Shipyard.Images;

/// <summary>
/// buildah with chroot isolation and vfs storage: unprivileged, but its chroot/mount calls need
/// `seccompProfile: Unconfined`, which the pod requests itself (allowed on Privileged-level namespaces only).
/// `--format docker` keeps what the OCI format drops (HEALTHCHECK, ONBUILD, SHELL), as docker does, and the image
/// goes into an OCI layout with that docker manifest and config as they are (`push --format v2s2 … oci:`; without
/// the format, `oci:` converts them and the three are gone again).
/// </summary>
public sealed class BuildahBuilder(string image) : IImageBuilder
{
    public string Identity => $"buildah {image}";
    public string DockerConfigDir => "/shipyard/registry";
    public V1PodSecurityContext? PodSecurityContext => new() { SeccompProfile = new V1SeccompProfile { Type = "Unconfined" } };
    public IReadOnlyList<string> OutputDirectories => ["blobs", "blobs/sha256"];

    // Arguments reach the script as positionals, never spliced into shell text.
    const string Script = """
        set -eu
        dockerfile=$1 out=$2 tls=$3 certs=$4; shift 4
        auth=; [ -f "${DOCKER_CONFIG:-/nonexistent}/config.json" ] && auth="--authfile=$DOCKER_CONFIG/config.json"
        buildah --storage-driver vfs build --isolation chroot --format docker $auth --tls-verify="$tls" $certs "$@" \
          -f "$dockerfile" -t shipyard-build /workspace
        buildah --storage-driver vfs push --format v2s2 shipyard-build "oci:$out:latest"
        """;

    static readonly V1EnvVar[] Isolation =
    [
        new() { Name = "BUILDAH_ISOLATION", Value = "chroot" },
        new() { Name = "STORAGE_DRIVER", Value = "vfs" },
    ];

    public V1Container Container(BuildSpec spec)
    {
        var command = new List<string>
        {
            "sh", "-c", Script, "buildah-build", spec.DockerfilePath, BuildSpec.OutputDir,
            spec.InsecureAuthority is null ? "true" : "false", spec.CaAuthorities.Count > 0 ? $"--cert-dir={BuildSpec.CaDir}" : "",
        };
        foreach (var (k, v) in spec.Labels) { command.Add("--label"); command.Add($"{k}={v}"); }
        if (spec.CacheRepo is not null) command.AddRange(["--layers", "--cache-from", spec.CacheRepo, "--cache-to", spec.CacheRepo]);
        return new V1Container
        {
            Name = Names.BuilderContainer,
            Image = image,
            Command = command,
            // buildah refuses to run with a DOCKER_CONFIG that holds no config.json.
            Env = spec.HasLogin
                ? [new V1EnvVar { Name = "DOCKER_CONFIG", Value = DockerConfigDir }, .. Isolation]
                : [.. Isolation],
            TerminationMessagePolicy = "FallbackToLogsOnError",
            SecurityContext = new V1SecurityContext { Privileged = false },
        };
    }
}
