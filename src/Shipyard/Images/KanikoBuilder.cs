using k8s.Models;

namespace Shipyard.Images;

/// <summary>
/// Kaniko: builds in userspace as root without privilege (Baseline-compatible). Only documented
/// executor flags are used, so the real executor and any compatible image work the same.
/// </summary>
public sealed class KanikoBuilder(string image) : IImageBuilder
{
    public string Identity => $"kaniko {image}";
    public string DockerConfigDir => "/kaniko/.docker";
    public V1PodSecurityContext? PodSecurityContext => null;

    public V1Container Container(BuildSpec spec)
    {
        var args = new List<string>
        {
            $"--context=dir://{BuildSpec.ContextDir}",
            $"--dockerfile={spec.DockerfilePath}",
            $"--destination={spec.Destination}",
            // The digest comes back through the container's terminated state; no log scraping.
            "--digest-file=/dev/termination-log",
            // docker keeps what a RUN writes under /var/run; Kaniko drops it unless told not to.
            "--ignore-var-run=false",
        };
        if (spec.CacheRepo is not null) { args.Add("--cache=true"); args.Add($"--cache-repo={spec.CacheRepo}"); }
        if (spec.HasCa) args.Add($"--registry-certificate={spec.RegistryAuthority}={BuildSpec.CaFile}");
        if (spec.Insecure) args.Add($"--insecure-registry={spec.RegistryAuthority}");
        return new V1Container
        {
            Name = Names.BuilderContainer,
            Image = image,
            Command = ["/kaniko/executor"],
            Args = args,
            Env = [new V1EnvVar { Name = "DOCKER_CONFIG", Value = DockerConfigDir }],
            TerminationMessagePolicy = "File",
            SecurityContext = new V1SecurityContext { Privileged = false },
        };
    }
}
