using k8s.Models;

namespace Shipyard.Images;

/// <summary>What a builder needs to know about one build. Paths are inside the builder pod.</summary>
public sealed record BuildSpec(
    string Destination,
    string DockerfileName,
    string RegistryAuthority,
    string? CacheRepo,
    bool HasCa,
    bool Insecure)
{
    public const string ContextDir = "/workspace";
    /// <summary>The Dockerfile sits outside the context, as docker has it: a `.dockerignore` may leave it out of `COPY .`.</summary>
    public const string DockerfileDir = "/shipyard/dockerfile";
    public string DockerfilePath => $"{DockerfileDir}/{DockerfileName}";
    public const string CaDir = "/shipyard/registry-ca";
    public const string CaFile = CaDir + "/ca.crt";
}

/// <summary>An in-cluster image builder: the container that builds, pushes, and writes the digest to its termination log.</summary>
public interface IImageBuilder
{
    /// <summary>Goes into the content hash: a different builder may build a different image.</summary>
    string Identity { get; }

    /// <summary>Where the registry Secret's `.dockerconfigjson` is mounted as `config.json`.</summary>
    string DockerConfigDir { get; }

    V1Container Container(BuildSpec spec);

    /// <summary>Pod-level security settings the builder needs beyond the defaults (buildah: Unconfined seccomp).</summary>
    V1PodSecurityContext? PodSecurityContext { get; }
}
