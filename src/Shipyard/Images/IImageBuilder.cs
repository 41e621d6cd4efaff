using k8s.Models;

namespace Shipyard.Images;

/// <summary>What a builder needs to know about one build. Paths are inside the builder pod.</summary>
/// <param name="Labels">Image labels (the content hash Shipyard checks before reusing a tag).</param>
/// <param name="CaAuthorities">Registries whose certificates the registry Secret's CA vouches for.</param>
/// <param name="InsecureAuthority">A registry spoken to over plain HTTP (REGISTRY_INSECURE).</param>
/// <param name="HasLogin">A docker config is mounted at <see cref="IImageBuilder.DockerConfigDir"/>.</param>
public sealed record BuildSpec(
    string DockerfileName,
    IReadOnlyDictionary<string, string> Labels,
    string? CacheRepo,
    IReadOnlyList<string> CaAuthorities,
    string? InsecureAuthority,
    bool HasLogin)
{
    public const string ContextDir = "/workspace";
    /// <summary>The Dockerfile sits outside the context, as docker has it: a `.dockerignore` may leave it out of `COPY .`.</summary>
    public const string DockerfileDir = "/shipyard/dockerfile";
    public string DockerfilePath => $"{DockerfileDir}/{DockerfileName}";
    /// <summary>Where the builder writes the image; Shipyard pushes it from there.</summary>
    public const string OutputDir = "/shipyard/out";
    public const string CaDir = "/shipyard/registry-ca";
    public const string CaFile = CaDir + "/ca.crt";
}

/// <summary>
/// An in-cluster image builder: the container that builds a Dockerfile and writes the image to
/// <see cref="BuildSpec.OutputDir"/> (an OCI image layout). It never pushes the image.
/// </summary>
public interface IImageBuilder
{
    /// <summary>Goes into the content hash: a different builder may build a different image.</summary>
    string Identity { get; }

    /// <summary>Where a docker config (base-image and cache logins, never the push login) is mounted as `config.json`.</summary>
    string DockerConfigDir { get; }

    /// <summary>
    /// Directories under the output the builder writes into but does not have to create: Shipyard makes them, so
    /// the runner (not root) owns every directory and can remove what the builder left.
    /// </summary>
    IReadOnlyList<string> OutputDirectories { get; }

    V1Container Container(BuildSpec spec);

    /// <summary>Pod-level security settings the builder needs beyond the defaults (buildah: Unconfined seccomp).</summary>
    V1PodSecurityContext? PodSecurityContext { get; }
}
