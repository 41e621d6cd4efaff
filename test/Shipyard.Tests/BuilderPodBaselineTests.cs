using k8s.Models;
using Shipyard.Images;
using Shipyard.Pods;
using static Shipyard.Tests.Fixtures;

namespace Shipyard.Tests;

/// <summary>Builder pods against the Pod Security Standards Baseline rules (kubernetes.io/docs/concepts/security/pod-security-standards).</summary>
public class BuilderPodBaselineTests
{
    static readonly HashSet<string> BaselineCapabilities =
        ["AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"];

    /// <summary>Every Baseline violation of the pod; the seccomp rule is reported separately.</summary>
    static List<string> Violations(V1Pod pod, bool allowUnconfinedSeccomp)
    {
        var v = new List<string>();
        var s = pod.Spec;
        if (s.HostNetwork == true) v.Add("hostNetwork");
        if (s.HostPID == true) v.Add("hostPID");
        if (s.HostIPC == true) v.Add("hostIPC");
        if (s.Volumes?.Any(x => x.HostPath is not null) == true) v.Add("hostPath volume");
        if (s.SecurityContext?.Sysctls?.Count > 0) v.Add("sysctls");
        if (s.SecurityContext?.SeccompProfile?.Type == "Unconfined" && !allowUnconfinedSeccomp) v.Add("pod seccomp Unconfined");
        foreach (var c in s.Containers.Concat(s.InitContainers ?? []))
        {
            var sc = c.SecurityContext;
            if (sc?.Privileged == true) v.Add($"{c.Name}: privileged");
            if (sc?.Capabilities?.Add?.Any(cap => !BaselineCapabilities.Contains(cap)) == true) v.Add($"{c.Name}: capabilities");
            if (sc?.SeccompProfile?.Type == "Unconfined" && !allowUnconfinedSeccomp) v.Add($"{c.Name}: seccomp Unconfined");
            if (sc?.ProcMount is { } pm && pm != "Default") v.Add($"{c.Name}: procMount");
            if (sc?.SeLinuxOptions?.Type is { } t && t is not ("container_t" or "container_init_t" or "container_kvm_t")) v.Add($"{c.Name}: seLinux");
            if (c.Ports?.Any(p => p.HostPort is > 0) == true) v.Add($"{c.Name}: hostPort");
        }
        return v;
    }

    static readonly V1ResourceRequirements Bounded = new()
    {
        Requests = new Dictionary<string, ResourceQuantity> { ["cpu"] = new("250m") },
        Limits = new Dictionary<string, ResourceQuantity> { ["memory"] = new("4Gi") },
    };

    static BuildSpec Spec(bool hasCa = true, string? login = "build-login", string? insecure = null) => new("Dockerfile",
        new Dictionary<string, string> { ["dev.shipyard.content-hash"] = "abc" }, "registry.example:5000/actions/acme-x/cache",
        hasCa ? ["registry.example:5000", "mirror.example"] : [], insecure, login is not null);

    static V1Pod Pod(IImageBuilder builder, bool hasCa = true, string? login = "build-login") => BuilderPod.Build(builder, Spec(hasCa, login),
        new BuilderPodOptions("arc-runner-abc-build-1", Placement, Work, "_temp/shipyard-build-1", login, hasCa, "arm64", Bounded, TimeSpan.FromMinutes(20)));

    [Fact]
    public void Kaniko_builder_pod_meets_baseline()
    {
        var pod = Pod(new KanikoBuilder("kaniko:1"));
        Assert.Empty(Violations(pod, allowUnconfinedSeccomp: false));
        Assert.False(pod.Spec.AutomountServiceAccountToken);
        Assert.Equal("arc-runner-abc", pod.Metadata.OwnerReferences.Single().Name);
        Assert.Equal("arc-runner-abc", pod.Metadata.Labels["runner-pod"]);
        Assert.Equal("node-7", pod.Spec.NodeName);
    }

    [Fact]
    public void Buildah_builder_pod_meets_baseline_except_the_seccomp_it_declares()
    {
        var pod = Pod(new BuildahBuilder("buildah:1"));
        Assert.Empty(Violations(pod, allowUnconfinedSeccomp: true));
        Assert.Equal(["pod seccomp Unconfined"], Violations(pod, allowUnconfinedSeccomp: false));
        // docker's image format (keeps HEALTHCHECK, ONBUILD, SHELL) and the Dockerfile from beside the context.
        var c = pod.Spec.Containers.Single();
        Assert.Contains("--format docker", c.Command[2]);
        Assert.Contains("/shipyard/dockerfile/Dockerfile", c.Command);
    }

    [Fact]
    public void The_checker_itself_catches_violations()
    {
        var pod = Pod(new KanikoBuilder("kaniko:1"));
        pod.Spec.HostNetwork = true;
        pod.Spec.Containers[0].SecurityContext = new V1SecurityContext { Privileged = true, Capabilities = new V1Capabilities { Add = ["SYS_ADMIN"] } };
        pod.Spec.Volumes.Add(new V1Volume { Name = "h", HostPath = new V1HostPathVolumeSource { Path = "/" } });
        Assert.Equal(["hostNetwork", "hostPath volume", "builder: privileged", "builder: capabilities"], Violations(pod, false));
    }

    [Fact]
    public void Kaniko_gets_documented_flags_writes_an_oci_layout_and_pushes_nothing()
    {
        var pod = Pod(new KanikoBuilder("kaniko:1"));
        var c = pod.Spec.Containers.Single();
        Assert.Equal(["/kaniko/executor"], c.Command);
        Assert.Equal(
        [
            "--context=dir:///workspace", "--dockerfile=/shipyard/dockerfile/Dockerfile", "--no-push", "--oci-layout-path=/shipyard/out",
            "--ignore-var-run=false", "--label=dev.shipyard.content-hash=abc", "--cache=true", "--cache-repo=registry.example:5000/actions/acme-x/cache",
            "--registry-certificate=registry.example:5000=/shipyard/registry-ca/ca.crt", "--registry-certificate=mirror.example=/shipyard/registry-ca/ca.crt",
        ], c.Args);
        // The staged, filtered context and the Dockerfile beside it, both read-only; the output directory writable.
        var context = c.VolumeMounts.Single(m => m.MountPath == "/workspace");
        Assert.Equal(("work", "_temp/shipyard-build-1/context", true), (context.Name, context.SubPath, context.ReadOnlyProperty));
        var dockerfile = c.VolumeMounts.Single(m => m.MountPath == "/shipyard/dockerfile");
        Assert.Equal(("work", "_temp/shipyard-build-1/dockerfile", true), (dockerfile.Name, dockerfile.SubPath, dockerfile.ReadOnlyProperty));
        var output = c.VolumeMounts.Single(m => m.MountPath == "/shipyard/out");
        Assert.Equal(("work", "_temp/shipyard-build-1/out", (bool?)null), (output.Name, output.SubPath, output.ReadOnlyProperty));
        // The CA is public data, staged beside the build: no Secret for it.
        var ca = c.VolumeMounts.Single(m => m.MountPath == "/shipyard/registry-ca");
        Assert.Equal(("work", "_temp/shipyard-build-1/ca", true), (ca.Name, ca.SubPath, ca.ReadOnlyProperty));
        // The only Secret is the per-build login (base images, cache), read-only, as docker config.
        var config = c.VolumeMounts.Single(m => m.MountPath == "/kaniko/.docker");
        Assert.True(config.ReadOnlyProperty);
        var secret = Assert.Single(pod.Spec.Volumes, v => v.Secret is not null).Secret;
        Assert.Equal("build-login", secret.SecretName);
        Assert.Equal((".dockerconfigjson", "config.json"), (secret.Items.Single().Key, secret.Items.Single().Path));
        Assert.Equal("Never", pod.Spec.RestartPolicy);
        Assert.Equal("builder", pod.Metadata.Labels["shipyard.dev/role"]);
    }

    [Fact]
    public void Without_a_login_the_builder_pod_mounts_no_secret_at_all()
    {
        foreach (var builder in new IImageBuilder[] { new KanikoBuilder("k:1"), new BuildahBuilder("b:1") })
        {
            var pod = Pod(builder, login: null);
            Assert.DoesNotContain(pod.Spec.Volumes, v => v.Secret is not null || v.Projected is not null);
            Assert.DoesNotContain(pod.Spec.Containers[0].Env, e => e.ValueFrom is not null);
            Assert.DoesNotContain(pod.Spec.Containers[0].VolumeMounts, m => m.MountPath == builder.DockerConfigDir);
        }
    }

    [Fact]
    public void A_builder_pod_is_bounded_and_pinned_to_the_runners_architecture()
    {
        var pod = Pod(new KanikoBuilder("k:1"));
        Assert.Equal(1200, pod.Spec.ActiveDeadlineSeconds);
        Assert.Equal("4Gi", pod.Spec.Containers[0].Resources.Limits["memory"].ToString());
        Assert.Equal("250m", pod.Spec.Containers[0].Resources.Requests["cpu"].ToString());
        Assert.Equal("arm64", pod.Spec.NodeSelector["kubernetes.io/arch"]);
    }

    [Fact]
    public void Buildah_writes_a_docker_format_image_to_an_oci_layout_and_pushes_nothing()
    {
        var c = Pod(new BuildahBuilder("b:1")).Spec.Containers.Single();
        Assert.Contains("push --format v2s2 shipyard-build \"oci:$out:latest\"", c.Command[2]);
        Assert.DoesNotContain("docker://", c.Command[2]);
        Assert.Equal(["/shipyard/dockerfile/Dockerfile", "/shipyard/out", "true", "--cert-dir=/shipyard/registry-ca", "--label", "dev.shipyard.content-hash=abc",
            "--layers", "--cache-from", "registry.example:5000/actions/acme-x/cache", "--cache-to", "registry.example:5000/actions/acme-x/cache"], c.Command.Skip(4));
    }

    [Fact]
    public void Without_a_ca_no_ca_volume_or_flag_and_insecure_registries_are_named()
    {
        var pod = BuilderPod.Build(new KanikoBuilder("k:1"), new BuildSpec("Dockerfile", new Dictionary<string, string>(), null, [], "r:5000", false),
            new BuilderPodOptions("b", Placement, Work, "ctx", null, false, "amd64", Bounded, TimeSpan.FromHours(1)));
        Assert.DoesNotContain(pod.Spec.Containers[0].VolumeMounts, m => m.MountPath == "/shipyard/registry-ca");
        Assert.DoesNotContain(pod.Spec.Containers[0].Args, a => a.StartsWith("--registry-certificate") || a.StartsWith("--cache"));
        Assert.Contains("--insecure-registry=r:5000", pod.Spec.Containers[0].Args);
    }
}
