using System.Text.Json;
using System.Text.RegularExpressions;
using k8s;
using k8s.Models;
using Shipyard.Cluster;
using Shipyard.Pods;
using Shipyard.Protocol;
using Shipyard.Settings;
using static Shipyard.Tests.Fixtures;

namespace Shipyard.Tests;

/// <summary>What the real runner sends (runner-captures) and what real clusters refuse, as pure rules.</summary>
public partial class RealRunnerInputTests
{
    [GeneratedRegex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")]
    private static partial Regex Dns1123Label();

    [Fact]
    public void Runner_names_of_63_characters_give_valid_distinct_names_for_every_object()
    {
        var a = new string('a', 62) + "1";
        var b = new string('a', 62) + "2";
        var dashed = new string('a', 44) + "-" + new string('b', 18); // a cut at 44 would end in '-'
        foreach (var runner in new[] { a, b, dashed, "short" })
        {
            var names = new[]
            {
                Names.JobPod(runner), Names.LaterJobPod(runner), Names.Fresh(runner, "step"), Names.Fresh(runner, "build"),
                Names.EnvSecret(Names.JobPod(runner)), Names.RegistrySecret(Names.JobPod(runner)),
                Names.EnvSecret(Names.Fresh(runner, "step")), Names.RegistrySecret(Names.Fresh(runner, "step")),
            };
            foreach (var n in names)
            {
                Assert.True(n.Length <= 63, n);
                Assert.Matches(Dns1123Label(), n);
            }
            Assert.Equal(names.Length, names.Distinct().Count());
            Assert.DoesNotContain(runner, names);
        }
        Assert.NotEqual(Names.JobPod(a), Names.JobPod(b));
        Assert.NotEqual(Names.EnvSecret(Names.JobPod(a)), Names.EnvSecret(Names.JobPod(b)));
        Assert.Equal("short-workflow", Names.JobPod("short")); // ARC's own name where it fits
        Assert.EndsWith("-workflow", Names.JobPod(a));
        // a later job of the same runner: never a name an earlier job pod had, since exec routes by pod name
        Assert.Matches("^short-workflow-[0-9a-f]{8}$", Names.LaterJobPod("short"));
        Assert.NotEqual(Names.LaterJobPod("short"), Names.LaterJobPod("short"));
        Assert.Matches("-workflow-[0-9a-f]{8}$", Names.LaterJobPod(a));
        Assert.NotEqual(Names.LaterJobPod(a)[..^9], Names.LaterJobPod(b)[..^9]); // the runner's hash, not luck
    }

    [Fact]
    public void Service_env_values_are_only_in_the_secret_and_job_env_only_in_the_state_byte_for_byte()
    {
        var job = Container(env: new() { ["DOLLARS"] = "a$$b $(HOME) c", ["TOKEN"] = "s3cr3t", ["HOME"] = "/github/home" });
        var service = Container("127.0.0.1:5443/busybox:test", env: new() { ["SVC_ENV"] = "s$$1" });
        var objects = JobPod.Build(job, [service], JobOptions());
        var (pod, secret, names) = (objects.Pod, objects.EnvSecret!, objects.ServiceNames);
        var spec = KubernetesJson.Serialize(pod);
        Assert.DoesNotContain("s3cr3t", spec);
        Assert.DoesNotContain("$(HOME)", spec);
        Assert.DoesNotContain("s$$1", spec);
        Assert.DoesNotContain("s3cr3t", KubernetesJson.Serialize(secret));
        Assert.Equal("a$$b $(HOME) c", objects.JobEnv["DOLLARS"]);
        Assert.Equal("s3cr3t", objects.JobEnv["TOKEN"]);
        Assert.DoesNotContain("HOME", objects.JobEnv.Keys);
        Assert.Equal("s$$1", secret.StringData[$"{names[0]}.SVC_ENV"]);
        Assert.Equal("true", secret.StringData[$"{names[0]}.GITHUB_ACTIONS"]);
        Assert.Equal("true", secret.StringData[$"{names[0]}.CI"]);
        Assert.Null(pod.Spec.Containers[0].Env);
        Assert.All(pod.Spec.Containers[1].Env, e => Assert.Null(e.Value));
        Assert.All(pod.Spec.Containers[1].Env, e => Assert.Equal(secret.Metadata.Name, e.ValueFrom.SecretKeyRef.Name));
        Assert.Equal("arc-runner-abc-workflow-env", secret.Metadata.Name);
        Assert.Equal("arc-runner-abc", secret.Metadata.Labels["runner-pod"]);
        Assert.Equal("uid-123", secret.Metadata.OwnerReferences.Single().Uid);
    }

    [Fact]
    public void Hyphenated_input_names_reach_container_steps_with_ci_defaults()
    {
        var data = StepPod.EnvironmentData(Container(env: new() { ["INPUT_FETCH-DEPTH"] = "0", ["a.b"] = "x" }));
        Assert.Equal("0", data["INPUT_FETCH-DEPTH"]);
        Assert.Equal("x", data["a.b"]);
        Assert.Equal("true", data["GITHUB_ACTIONS"]);
        Assert.Equal("true", data["CI"]);
        Assert.Equal("false", StepPod.EnvironmentData(Container(env: new() { ["CI"] = "false" }))["CI"]);
    }

    [Fact]
    public void Job_pods_have_a_short_grace_period()
    {
        Assert.Equal(5, JobPod.Build(Container(), [], JobOptions()).Pod.Spec.TerminationGracePeriodSeconds);
    }

    [Theory]
    [InlineData("node:20")]
    [InlineData("127.0.0.1:5443/debian:test")]
    [InlineData("ghcr.io/acme/tool/sub_x.y-z:v1.2_3")]
    [InlineData("localhost/busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")]
    [InlineData("[::1]:5000/a:b")]
    public void Docker_image_references_are_accepted(string image) => Assert.Equal(image, ImageReference.Require(image, "job container"));

    [Theory]
    [InlineData("Node:20")]
    [InlineData("node:")]
    [InlineData("a b")]
    [InlineData("node@sha256:abc")]
    [InlineData("-node")]
    public void Malformed_image_references_are_refused(string image) => Assert.Throws<HookException>(() => ImageReference.Require(image, "job container"));

    [Fact]
    public void A_megabyte_image_name_is_refused_at_once_with_a_short_line()
    {
        var e = Assert.Throws<HookException>(() => ImageReference.Require(new string('a', 1 << 20), "job container"));
        Assert.True(e.Message.Length < 300, e.Message);
        Assert.Contains("1048576 characters", e.Message);
        // refused by its length, before the reference grammar's regex ever sees a megabyte
        Assert.Contains("longer than any image name can be", e.Message);
        var e2 = Assert.Throws<HookException>(() => ImageReference.Require(new string('a', 300), "job container"));
        Assert.Contains("255", e2.Message);
    }

    [Theory]
    [InlineData("1:1:1")]
    [InlineData("a:1:1")]
    [InlineData("1.2.3.4:1:1:1")]
    [InlineData("8000-8010:8000-8010")]
    [InlineData("+80")]
    public void Port_mappings_docker_would_refuse_are_refused(string spec) => Assert.Throws<HookException>(() => PortMapping.Parse(spec));

    [Fact]
    public void User_volumes_escaping_the_workspace_with_dotdot_are_refused()
    {
        foreach (var source in new[] { Workspace + "/../../../etc", "../outside", Workspace + "/a/../../x" })
        {
            var v = new MountVolume($"{source}:/x", source, "/x", false);
            var e = Assert.Throws<HookException>(() => JobPod.Build(Container(userMounts: [v]), [], JobOptions()));
            Assert.Contains(source, e.Message);
        }
    }

    [Theory]
    [InlineData("""{"prependPath":5}""")]
    [InlineData("""{"prependPath":{"a":1}}""")]
    [InlineData("""{"prependPath":[1]}""")]
    [InlineData("""{"prependPath":true}""")]
    public void A_prepend_path_that_is_neither_array_nor_string_is_refused(string json)
    {
        var args = JsonSerializer.Deserialize(json, ProtocolJson.Default.ScriptStepArgs)!;
        var e = Assert.Throws<HookException>(() => args.PrependPathEntries());
        Assert.Contains("prependPath", e.Message);
    }

    [Fact]
    public void Every_bad_setting_is_reported_at_once_by_name()
    {
        var e = Assert.Throws<HookException>(() => HookSettings.FromEnvironment(k => k switch
        {
            "ACTIONS_RUNNER_USE_KUBE_SCHEDULER" => "maybe",
            "ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS" => "-1",
            HookSettings.Prefix + "BUILDER" => "docker",
            _ => null,
        }));
        foreach (var name in new[] { "ACTIONS_RUNNER_POD_NAME", "ACTIONS_RUNNER_USE_KUBE_SCHEDULER", "ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS", HookSettings.Prefix + "BUILDER" })
            Assert.Contains(name, e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    static V1SubjectRulesReviewStatus Rules(params (string[] Resources, string[] Verbs)[] rules) => new()
    {
        ResourceRules = rules.Select(r => new V1ResourceRule { ApiGroups = [""], Resources = r.Resources, Verbs = r.Verbs }).ToList(),
        NonResourceRules = [],
    };

    [Fact]
    public void Arcs_stock_role_grants_everything_required()
    {
        var stock = Rules((["pods"], ["get", "list", "create", "delete"]), (["pods/exec"], ["get", "create"]),
            (["pods/log"], ["get", "list", "watch"]), (["secrets"], ["get", "list", "create", "delete"]));
        Assert.Empty(Permissions.Missing(stock, Permissions.Required));
        Assert.Empty(Permissions.Missing(Rules((["*"], ["*"])), Permissions.Required));
        Assert.Empty(Permissions.Missing(Rules((["pods", "pods/*", "secrets"], ["*"])), Permissions.Required));
    }

    [Fact]
    public void A_role_without_exec_is_reported_with_what_is_missing()
    {
        var noExec = Rules((["pods"], ["get", "list", "create", "delete"]), (["pods/log"], ["get"]), (["secrets"], ["get", "list", "create", "delete"]));
        Assert.Equal(["pods/exec: get", "pods/exec: create"], Permissions.Missing(noExec, Permissions.Required).Select(p => p.ToString()));
        var named = new V1SubjectRulesReviewStatus
        {
            ResourceRules = [new V1ResourceRule { ApiGroups = [""], Resources = ["*"], Verbs = ["*"], ResourceNames = ["one-pod"] }],
        };
        Assert.Equal(Permissions.Required.Count, Permissions.Missing(named, Permissions.Required).Count);
    }
}

public class PollingTests
{
    [Fact]
    public void Without_watch_polling_is_quick_at_first_then_at_most_every_two_seconds()
    {
        Assert.Equal(TimeSpan.FromMilliseconds(250), ClusterGateway.PollInterval(TimeSpan.Zero));
        Assert.Equal(TimeSpan.FromMilliseconds(250), ClusterGateway.PollInterval(TimeSpan.FromSeconds(2.9)));
        Assert.True(ClusterGateway.PollInterval(TimeSpan.FromSeconds(5)) > TimeSpan.FromMilliseconds(250));
        Assert.Equal(TimeSpan.FromSeconds(2), ClusterGateway.PollInterval(TimeSpan.FromSeconds(10)));
        Assert.Equal(TimeSpan.FromSeconds(2), ClusterGateway.PollInterval(TimeSpan.FromMinutes(30)));
        // a long step: reads per minute after the first seconds
        var reads = 0; var t = TimeSpan.Zero;
        while (t < TimeSpan.FromMinutes(1)) { t += ClusterGateway.PollInterval(t); reads++; }
        Assert.InRange(reads, 30, 50);
    }
}

public class LogResumeTests
{
    [Fact]
    public void A_reopened_log_skips_exactly_the_lines_already_copied()
    {
        var r = new LogResume();
        Assert.Null(r.SinceTime);
        r.Reopened();
        Assert.Equal("a", r.Accept("2026-12-01T09:40:00.1Z a"));
        Assert.Equal("b", r.Accept("2026-12-01T09:40:00.2Z b"));
        Assert.Equal("b2", r.Accept("2026-12-01T09:40:00.2Z b2")); // same instant, another line
        Assert.Equal("2026-12-01T09:40:00Z", r.SinceTime);
        // the stream breaks; the reopened one starts at the second and repeats what was copied
        r.Reopened();
        Assert.Null(r.Accept("2026-12-01T09:40:00.1Z a"));
        Assert.Null(r.Accept("2026-12-01T09:40:00.200000000Z b"));
        Assert.Null(r.Accept("2026-12-01T09:40:00.2Z b2"));
        Assert.Equal("b3", r.Accept("2026-12-01T09:40:00.2Z b3"));
        Assert.Equal("c", r.Accept("2026-12-01T09:40:01.000000001Z c"));
        Assert.Equal("no stamp", r.Accept("no stamp"));
    }
}

public class PullFailureTests
{
    [Fact]
    public void A_missing_image_is_final_at_once_an_auth_failure_gets_the_kubelets_next_attempt()
    {
        var t = DateTime.UtcNow;
        var pulls = new StartFailureTracker(() => t);
        Assert.True(pulls.GivesUp("job", "ErrImagePull", "manifest for x:1 not found: manifest unknown"));
        Assert.False(pulls.GivesUp("step", "ErrImagePull", "no basic auth credentials"));
        Assert.False(pulls.GivesUp("step", "ImagePullBackOff", "Back-off pulling image"));
        Assert.False(pulls.GivesUp("step", "ImagePullBackOff", "Back-off pulling image")); // the same back-off seen again
        Assert.True(pulls.GivesUp("step", "ErrImagePull", "no basic auth credentials")); // failed a second time

        var slow = new StartFailureTracker(() => t);
        Assert.False(slow.GivesUp("svc", "ImagePullBackOff", "Back-off pulling image"));
        t += TimeSpan.FromSeconds(31); // polling may never see the second ErrImagePull
        Assert.True(slow.GivesUp("svc", "ImagePullBackOff", "Back-off pulling image"));
    }

    static k8s.Models.V1Pod Waiting(string reason, string message) => new()
    {
        Metadata = new() { Name = "p" },
        Spec = new() { Containers = [new() { Name = "job" }] },
        Status = new()
        {
            Phase = "Pending",
            ContainerStatuses = [new() { Name = "job", Image = "busybox", State = new() { Waiting = new() { Reason = reason, Message = message } } }],
        },
    };

    [Fact]
    public void A_secret_cache_that_has_not_synced_is_waited_out_but_a_missing_secret_key_is_final()
    {
        // What the kubelet of the test cluster reported once under load (CI, session 4), then started the container.
        var t = DateTime.UtcNow;
        var starts = new StartFailureTracker(() => t);
        var syncing = Waiting("CreateContainerConfigError", "failed to sync secret cache: timed out waiting for the condition");
        Assert.False(Shipyard.Pods.PodProgress.AllRunning(syncing, starts));
        t += TimeSpan.FromSeconds(31);
        Assert.Throws<HookException>(() => Shipyard.Pods.PodProgress.AllRunning(syncing, starts));
        var missing = Waiting("CreateContainerConfigError", "couldn't find key FOO in Secret ns/env");
        Assert.Contains("couldn't find key FOO", Assert.Throws<HookException>(() => Shipyard.Pods.PodProgress.AllRunning(missing, new StartFailureTracker())).Message);
    }
}
