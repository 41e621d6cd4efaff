using k8s.Models;

namespace Shipyard.Images;

/// <summary>
/// buildah with chroot isolation and vfs storage: unprivileged, but its chroot/mount calls need
/// `seccompProfile: Unconfined`, which the pod requests itself (allowed on Privileged-level namespaces only).
/// `--format docker` keeps what the OCI format drops (HEALTHCHECK, ONBUILD, SHELL), as docker does.
/// </summary>
public sealed class BuildahBuilder(string image) : IImageBuilder
{
    public string Identity => $"buildah {image}";
    public string DockerConfigDir => "/shipyard/registry";
    public V1PodSecurityContext? PodSecurityContext => new() { SeccompProfile = new V1SeccompProfile { Type = "Unconfined" } };

    // Arguments reach the script as "$@"-style positionals, never spliced into shell text.
    const string Script = """
        set -eu
        dest=$1 dockerfile=$2 tls=$3 certs=$4
        set -- --storage-driver vfs
        buildah "$@" build --isolation chroot --format docker --authfile "$DOCKER_CONFIG/config.json" --tls-verify="$tls" $certs \
          -f "$dockerfile" -t "$dest" /workspace
        buildah "$@" push --authfile "$DOCKER_CONFIG/config.json" --tls-verify="$tls" $certs \
          --digestfile /dev/termination-log "$dest" "docker://$dest"
        """;

    public V1Container Container(BuildSpec spec) => new()
    {
        Name = Names.BuilderContainer,
        Image = image,
        Command = ["sh", "-c", Script, "buildah-build", spec.Destination, spec.DockerfilePath,
                   spec.Insecure ? "false" : "true", spec.HasCa ? $"--cert-dir={BuildSpec.CaDir}" : ""],
        Env =
        [
            new V1EnvVar { Name = "DOCKER_CONFIG", Value = DockerConfigDir },
            new V1EnvVar { Name = "BUILDAH_ISOLATION", Value = "chroot" },
            new V1EnvVar { Name = "STORAGE_DRIVER", Value = "vfs" },
        ],
        TerminationMessagePolicy = "File",
        SecurityContext = new V1SecurityContext { Privileged = false },
    };
}
