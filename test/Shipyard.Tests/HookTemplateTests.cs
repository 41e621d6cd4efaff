using k8s.Models;
using Shipyard.Images;
using Shipyard.Pods;
using static Shipyard.Tests.Fixtures;

namespace Shipyard.Tests;

public class HookTemplateTests
{
    const string Template = """
        metadata:
          labels:
            team: platform
            runner-pod: hijack
          annotations:
            example.com/owner: ci
        spec:
          nodeSelector:
            pool: ci
          securityContext:
            runAsUser: 1001
          volumes:
            - name: scratch
              emptyDir: {}
          containers:
            - name: $job
              image: ignored:1
              resources:
                limits: {memory: 1Gi, cpu: 2}
              env:
                - {name: FROM_TEMPLATE, value: "1"}
              volumeMounts:
                - {name: scratch, mountPath: /scratch}
            - name: $redis
              env:
                - {name: REDIS_ARGS, value: "--save ''"}
            - name: logger
              image: fluent-bit:3
        """;

    static HookTemplate Parse(string yaml = Template) => HookTemplate.Parse(yaml, "test.yaml");

    [Fact]
    public void Job_pod_gets_labels_fields_volumes_merged_containers_and_a_sidecar()
    {
        var (pod, _, names) = JobPod.Build(Container(env: new() { ["A"] = "1" }), [Container("redis:7")], JobOptions());
        pod = Parse().ApplyToJobPod(pod, names);
        Assert.Equal("platform", pod.Metadata.Labels["team"]);
        Assert.Equal("arc-runner-abc", pod.Metadata.Labels["runner-pod"]); // ours win: cleanup depends on it
        Assert.Equal("ci", pod.Metadata.Annotations["example.com/owner"]);
        Assert.Equal("ci", pod.Spec.NodeSelector["pool"]);
        Assert.Equal(1001, pod.Spec.SecurityContext.RunAsUser);
        Assert.Equal(["work", "scratch"], pod.Spec.Volumes.Select(v => v.Name));
        Assert.Equal(["job", "redis", "logger"], pod.Spec.Containers.Select(c => c.Name));
        var job = pod.Spec.Containers[0];
        Assert.Equal("node:20", job.Image);
        Assert.Equal("1Gi", job.Resources.Limits["memory"].ToString());
        Assert.Equal("2", job.Resources.Limits["cpu"].ToString());
        Assert.Equal(["FROM_TEMPLATE"], job.Env.Select(e => e.Name)); // the job's own env is exported by each step
        Assert.Equal("/scratch", job.VolumeMounts.Last().MountPath);
        Assert.Equal("--save ''", pod.Spec.Containers[1].Env.Single(e => e.Name == "REDIS_ARGS").Value);
        Assert.Equal("arc-runner-abc-workflow", pod.Metadata.Name);
    }

    [Fact]
    public void A_template_naming_an_unknown_service_is_refused()
    {
        var (pod, _, names) = JobPod.Build(Container(), [], JobOptions());
        var e = Assert.Throws<HookException>(() => Parse().ApplyToJobPod(pod, names));
        Assert.Contains("$redis", e.Message);
    }

    [Fact]
    public void Step_pod_gets_job_merge_but_no_sidecars()
    {
        var pod = StepPod.Build(Container(), new StepPodOptions("s", "img", Placement, Work, "repo/repo", "s-env", []));
        pod = Parse("""
            spec:
              containers:
                - name: $job
                  resources: {requests: {cpu: 500m}}
                - name: logger
                  image: fluent-bit:3
            """).ApplyToStepPod(pod);
        Assert.Equal(["step"], pod.Spec.Containers.Select(c => c.Name));
        Assert.Equal("500m", pod.Spec.Containers[0].Resources.Requests["cpu"].ToString());
    }

    [Fact]
    public void Builder_pod_takes_only_metadata_and_scheduling()
    {
        var builder = new KanikoBuilder("kaniko:1");
        var pod = BuilderPod.Build(builder, new BuildSpec("Dockerfile", new Dictionary<string, string>(), null, [], null, false),
            new BuilderPodOptions("b", Placement, Work, "_actions/a/b/v1", null, false, "amd64", Bounded, TimeSpan.FromHours(1)));
        pod = Parse().ApplyToBuilderPod(pod);
        Assert.Equal("platform", pod.Metadata.Labels["team"]);
        Assert.Equal("ci", pod.Spec.NodeSelector["pool"]);
        Assert.Null(pod.Spec.SecurityContext);
        Assert.Equal(["builder"], pod.Spec.Containers.Select(c => c.Name));
        // `$job`'s resources are the job container's; the builder keeps the settings' bounds.
        Assert.Equal("2Gi", pod.Spec.Containers[0].Resources.Limits["memory"].ToString());
    }

    static readonly V1ResourceRequirements Bounded = new() { Limits = new Dictionary<string, ResourceQuantity> { ["memory"] = new("2Gi") } };

    [Fact]
    public void A_builder_container_in_the_template_sets_the_builder_resources_and_nothing_else()
    {
        var template = HookTemplate.Parse("""
            spec:
              containers:
                - name: $builder
                  resources: {requests: {cpu: "2"}, limits: {memory: 8Gi}}
                  securityContext: {privileged: false, runAsUser: 0}
                  env: [{name: X, value: y}]
            """, "t.yaml");
        var pod = BuilderPod.Build(new KanikoBuilder("k:1"), new BuildSpec("Dockerfile", new Dictionary<string, string>(), null, [], null, false),
            new BuilderPodOptions("b", Placement, Work, "s", null, false, "amd64", Bounded, TimeSpan.FromHours(1)));
        pod = template.ApplyToBuilderPod(pod);
        Assert.Equal("8Gi", pod.Spec.Containers[0].Resources.Limits["memory"].ToString());
        Assert.Equal("2", pod.Spec.Containers[0].Resources.Requests["cpu"].ToString());
        Assert.Null(pod.Spec.Containers[0].SecurityContext.RunAsUser);
        Assert.DoesNotContain(pod.Spec.Containers[0].Env, e => e.Name == "X");
        // The job pod does not take `$builder` for a service or a sidecar.
        var job = template.ApplyToJobPod(JobPod.Build(Container(), [], JobOptions()).Pod, []);
        Assert.Equal(["job"], job.Spec.Containers.Select(c => c.Name));
    }

    [Theory]
    [InlineData("spec: [unclosed", "not valid YAML")]
    [InlineData("- just\n- a list\n", "must be a pod template")]
    [InlineData("spec:\n  containers: 5\n", "not a valid pod template")]
    public void Broken_templates_are_refused_with_a_reason(string yaml, string expected)
    {
        var e = Assert.Throws<HookException>(() => Parse(yaml));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Missing_template_file_is_refused() =>
        Assert.Contains("Cannot read the hook template", Assert.Throws<HookException>(() => HookTemplate.Load("/no/such/template.yaml")).Message);

    [Theory]
    [InlineData("spec:\n  containers:\n    - name: $job\n      securityContext: {privileged: true}\n", "privileged: true on container '$job'")]
    [InlineData("spec:\n  hostNetwork: true\n", "hostNetwork")]
    [InlineData("spec:\n  volumes:\n    - name: sock\n      hostPath: {path: /var/run/docker.sock}\n", "hostPath volume ('sock')")]
    [InlineData("spec:\n  containers:\n    - name: side\n      image: x:1\n      ports: [{containerPort: 80, hostPort: 80}]\n", "hostPort")]
    public void Templates_that_would_make_a_pod_privileged_or_reach_the_host_are_refused(string yaml, string expected)
    {
        var e = Assert.Throws<HookException>(() => Parse(yaml));
        Assert.Contains(expected, e.Message);
    }
}
