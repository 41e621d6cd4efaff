using Shipyard.Pods;
using Shipyard.Protocol;
using static Shipyard.Tests.Fixtures;

namespace Shipyard.Tests;

public class JobPodTests
{
    [Fact]
    public void Job_container_gets_default_command_ci_env_no_home_and_the_work_mounts()
    {
        var objects = JobPod.Build(Container(env: new() { ["HOME"] = "/github/home", ["A"] = "1" }), [], JobOptions());
        var pod = objects.Pod;
        var job = pod.Spec.Containers.Single();
        Assert.Equal("job", job.Name);
        // The runner's command runs after a probe that tells prepare_job, through the work volume, whether the image is Alpine.
        Assert.Equal(["sh", "-c", JobPod.OsProbe("/__w/_temp/_shipyard_os_" + pod.Metadata.Name), "sh"], job.Command);
        Assert.Equal(["tail", "-f", "/dev/null"], job.Args);
        Assert.Equal("/__w/repo/repo", job.WorkingDir);
        // The job container's env is exported by each step (the state carries it), so the pod names no Secret.
        Assert.Null(job.Env);
        Assert.Null(objects.EnvSecret);
        Assert.Equal(["A", "GITHUB_ACTIONS", "CI"], objects.JobEnv.Keys);
        Assert.Equal(
            [("/__w", null), ("/__e", "externals"), ("/github/home", "_temp/_github_home"), ("/github/workflow", "_temp/_github_workflow")],
            job.VolumeMounts.Select(m => (m.MountPath, (string?)m.SubPath)));
        Assert.Equal("arc-runner-abc-work", pod.Spec.Volumes.Single().PersistentVolumeClaim.ClaimName);
    }

    [Fact]
    public void The_os_probe_writes_its_answer_then_becomes_the_runners_command_with_its_arguments_intact()
    {
        var dir = Directory.CreateTempSubdirectory("shipyard-os-").FullName;
        var marker = Path.Combine(dir, "it's os");
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("/bin/sh",
            ["-c", JobPod.OsProbe(marker), "sh", "printf", "%s|", "a b", "$HOME", "'"]) { RedirectStandardOutput = true })!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        Assert.Equal("a b|$HOME|'|", output);
        Assert.Equal(File.Exists("/etc/alpine-release") ? "alpine\n" : "other\n", File.ReadAllText(marker));
        // A marker it cannot write does not stop the command.
        using var q = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("/bin/sh",
            ["-c", JobPod.OsProbe("/no/such/dir/os"), "sh", "echo", "ran"]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        Assert.Equal("ran\n", q.StandardOutput.ReadToEnd());
        q.WaitForExit();
        Assert.Equal("", q.StandardError.ReadToEnd());
        // prepare_job takes the marker as "it runs": a command that cannot run leaves it empty, and the pod status tells.
        var empty = Path.Combine(dir, "empty");
        File.WriteAllText(empty, "");
        using var r = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("/bin/sh",
            ["-c", JobPod.OsProbe(empty), "sh", "no-such-command-here", "-f"]) { RedirectStandardError = true })!;
        r.StandardError.ReadToEnd();
        r.WaitForExit();
        Assert.Equal(127, r.ExitCode);
        Assert.Equal("", File.ReadAllText(empty));
        Directory.Delete(dir, true);
    }

    [Fact]
    public void Ci_and_github_actions_set_by_the_workflow_are_kept()
    {
        Assert.Equal("false", JobPod.Build(Container(env: new() { ["CI"] = "false" }), [], JobOptions()).JobEnv["CI"]);
        var service = JobPod.Build(Container(), [Container("redis:7", env: new() { ["GITHUB_ACTIONS"] = "no" })], JobOptions());
        Assert.Equal("no", service.EnvSecret!.StringData["redis.GITHUB_ACTIONS"]);
        Assert.Equal("true", service.EnvSecret.StringData["redis.CI"]);
    }

    [Fact]
    public void Pod_belongs_to_the_runner_is_labelled_placed_on_its_node_and_has_no_token()
    {
        var (pod, _, _) = JobPod.Build(Container(), [], JobOptions("arc-runner-abc-workflow-registry"));
        Assert.Equal("arc-runner-abc-workflow", pod.Metadata.Name);
        Assert.Equal("arc-runner-abc", pod.Metadata.Labels["runner-pod"]);
        var owner = pod.Metadata.OwnerReferences.Single();
        Assert.Equal(("Pod", "arc-runner-abc", "uid-123"), (owner.Kind, owner.Name, owner.Uid));
        Assert.Equal("node-7", pod.Spec.NodeName);
        Assert.Null(pod.Spec.Affinity);
        Assert.False(pod.Spec.AutomountServiceAccountToken);
        Assert.Equal("arc-runner-abc-workflow-registry", pod.Spec.ImagePullSecrets.Single().Name);
        Assert.Equal("Never", pod.Spec.RestartPolicy);
    }

    [Fact]
    public void Kube_scheduler_mode_uses_required_node_affinity_instead_of_node_name()
    {
        var (pod, _, _) = JobPod.Build(Container(), [], JobOptions(placement: Placement with { UseKubeScheduler = true }));
        Assert.Null(pod.Spec.NodeName);
        var term = pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms.Single();
        var field = term.MatchFields.Single();
        Assert.Equal(("metadata.name", "In", "node-7"), (field.Key, field.OperatorProperty, field.Values.Single()));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_read_write_many_work_volume_only_prefers_the_runners_node(bool kubeScheduler)
    {
        var placement = Placement with { UseKubeScheduler = kubeScheduler, SharedWorkVolume = true };
        var (pod, _, _) = JobPod.Build(Container(), [], JobOptions(placement: placement));
        Assert.Null(pod.Spec.NodeName);
        Assert.Null(pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution);
        var preferred = pod.Spec.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution.Single();
        Assert.Equal(100, preferred.Weight);
        var field = preferred.Preference.MatchFields.Single();
        Assert.Equal(("metadata.name", "In", "node-7"), (field.Key, field.OperatorProperty, field.Values.Single()));
        // Step and builder pods mount the same volume and follow the same rule.
        var step = new k8s.Models.V1PodSpec();
        placement.Place(step);
        Assert.Null(step.NodeName);
        Assert.NotNull(step.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution);
    }

    [Fact]
    public void Services_are_named_from_their_images_uniquely_with_ports_and_entrypoints()
    {
        var services = new List<ContainerDefinition>
        {
            Container("docker.io/library/redis:7", ports: ["6379:6379"]),
            Container("redis:6"),
            Container("ghcr.io/acme/job@sha256:" + new string('a', 64), entryPoint: "run", args: ["--fast"]),
        };
        var (pod, _, names) = JobPod.Build(Container(), services, JobOptions());
        Assert.Equal(["redis", "redis-2", "service"], names);
        Assert.Equal(["job", "redis", "redis-2", "service"], pod.Spec.Containers.Select(c => c.Name));
        Assert.Equal(6379, pod.Spec.Containers[1].Ports.Single().ContainerPort);
        Assert.Null(pod.Spec.Containers[1].Ports.Single().HostPort);
        Assert.Null(pod.Spec.Containers[1].Command);
        Assert.Equal(["run"], pod.Spec.Containers[3].Command);
        Assert.Equal(["--fast"], pod.Spec.Containers[3].Args);
    }

    [Fact]
    public void User_volumes_in_the_workspace_become_subpath_mounts_and_others_are_refused()
    {
        var inside = new MountVolume("./cache:/cache", Workspace + "/cache", "/cache", true);
        var (pod, _, _) = JobPod.Build(Container(userMounts: [inside]), [], JobOptions());
        var m = pod.Spec.Containers[0].VolumeMounts.Last();
        Assert.Equal(("/cache", "repo/repo/cache", true), (m.MountPath, m.SubPath, m.ReadOnlyProperty));

        var outside = new MountVolume("/var/run/docker.sock:/var/run/docker.sock", "/var/run/docker.sock", "/var/run/docker.sock", false);
        var e = Assert.Throws<HookException>(() => JobPod.Build(Container(userMounts: [outside]), [], JobOptions()));
        Assert.Contains("/var/run/docker.sock", e.Message);
    }

    [Fact]
    public void A_job_container_without_an_image_is_refused()
    {
        Assert.Throws<HookException>(() => JobPod.Build(Container(image: null), [], JobOptions()));
    }

    [Theory]
    [InlineData("80", 80, 80, "TCP")]
    [InlineData("8080:80", 80, 8080, "TCP")]
    [InlineData("127.0.0.1:5353:53/udp", 53, 5353, "UDP")]
    public void Port_mappings_parse_like_docker(string spec, int container, int host, string protocol)
    {
        Assert.Equal(new PortMapping(container, host, protocol), PortMapping.Parse(spec));
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("70000")]
    [InlineData("80/icmp")]
    public void Bad_port_mappings_are_refused(string spec) => Assert.Throws<HookException>(() => PortMapping.Parse(spec));

    [Fact]
    public void Response_ports_map_container_port_to_host_port()
    {
        Assert.Equal(new Dictionary<string, string> { ["80"] = "8080", ["53"] = "53" }, PortMapping.ResponsePorts(["8080:80", "53/udp"]));
        Assert.Empty(PortMapping.ResponsePorts(null));
    }

    [Fact]
    public void Long_runner_names_are_truncated_to_valid_object_names()
    {
        var runner = new string('r', 60);
        Assert.Equal(63, Names.JobPod(runner).Length);
        var step = Names.Fresh(runner, "step");
        Assert.True(step.Length <= 63);
        Assert.Matches("^r+-[0-9a-f]{8}-step-[0-9a-f]{8}$", step);
        Assert.NotEqual(step, Names.Fresh(runner, "step"));
        Assert.True(Names.EnvSecret(step).Length <= 63);
    }
}
