using k8s.Models;

namespace Shipyard.Images;

/// <summary>
/// Kaniko: builds in userspace as root without privilege (Baseline-compatible). Only documented
/// executor flags are used, so the real executor and any compatible image work the same. `--no-push`
/// with `--oci-layout-path`: the image goes to the work volume and Shipyard pushes it, so the pod that
/// runs the Dockerfile's `RUN` lines holds no push credential.
/// </summary>
public sealed class KanikoBuilder(string image) : IImageBuilder
{
    public string Identity => $"kaniko {image}";
    public string DockerConfigDir => "/kaniko/.docker";
    public V1PodSecurityContext? PodSecurityContext => null;
    public IReadOnlyList<string> OutputDirectories => ["blobs", "blobs/sha256"];

    public V1Container Container(BuildSpec spec)
    {
        var args = new List<string>
        {
            $"--context=dir://{BuildSpec.ContextDir}",
            $"--dockerfile={spec.DockerfilePath}",
            "--no-push",
            $"--oci-layout-path={BuildSpec.OutputDir}",
            // docker keeps what a RUN writes under /var/run; Kaniko drops it unless told not to.
            "--ignore-var-run=false",
        };
        args.AddRange(spec.Labels.Select(l => $"--label={l.Key}={l.Value}"));
        if (spec.CacheRepo is not null) { args.Add("--cache=true"); args.Add($"--cache-repo={spec.CacheRepo}"); }
        args.AddRange(spec.CaAuthorities.Select(a => $"--registry-certificate={a}={BuildSpec.CaFile}"));
        if (spec.InsecureAuthority is not null) args.Add($"--insecure-registry={spec.InsecureAuthority}");
        return new V1Container
        {
            Name = Names.BuilderContainer,
            Image = image,
            Command = ["/kaniko/executor"],
            Args = args,
            Env = [new V1EnvVar { Name = "DOCKER_CONFIG", Value = DockerConfigDir }],
            TerminationMessagePolicy = "FallbackToLogsOnError",
            SecurityContext = new V1SecurityContext { Privileged = false },
        };
    }
}
