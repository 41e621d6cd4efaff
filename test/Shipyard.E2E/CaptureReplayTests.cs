using System.Text.Json.Nodes;
using k8s;
using Shipyard.Driver;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.E2E;

/// <summary>
/// Every job in test/runner-captures/ (what the real runner 2.336 sent, byte for byte) replayed against
/// the real cluster, checked against what the captures' README says the job sees.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class CaptureReplayTests(TestCluster cluster)
{
    const string Prefix = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_";

    static void Ok(ReplayedCall call) => Assert.True(call.Run.ExitCode == 0, $"{call.Command} {call.Action}: {call.Run}");

    async Task AssertCleanedUpAsync(RunnerJob job, List<ReplayedCall> calls)
    {
        var cleanup = calls.Last();
        Assert.Equal("cleanup_job", cleanup.Command);
        Ok(cleanup);
        Assert.Equal(0, await cluster.WaitForNoLabelledAsync(job.RunnerPod, TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task Job_container_services_outputs()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var calls = await CaptureReplay.RunAsync(job, "job-container-services-outputs.jsonl", new Dictionary<string, string>
        {
            ["s1"] = "echo \"in=$IN_CONTAINER jl=$JOB_LEVEL\"\necho one=1 >> \"$GITHUB_OUTPUT\"\necho 'FROM_S1=abc def' >> \"$GITHUB_ENV\"\n",
            ["s2"] = "echo \"from_s1=[$FROM_S1]\"\n",
            ["svc"] = "until (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; do sleep 0.2; done\nexec 3<>/dev/tcp/127.0.0.1/8080\nprintf 'GET /passwd HTTP/1.0\\r\\n\\r\\n' >&3\nhead -1 <&3\n",
            ["fail"] = "echo failing now\nexit 3\n",
            ["after"] = "echo after the failure\n",
        });
        var prepare = calls[0];
        Ok(prepare);
        var response = JsonNode.Parse(prepare.Run.Response)!;
        Assert.False(response["isAlpine"]!.GetValue<bool>());
        Assert.Equal("8080", response["context"]!["services"]![0]!["ports"]!["8080"]!.GetValue<string>());
        Assert.Equal(job.State!["jobPod"]!.GetValue<string>(), response["state"]!["jobPod"]!.GetValue<string>());

        var s1 = calls.Single(c => c.Action == "s1");
        Ok(s1);
        Assert.Contains("in=c1 jl=jl\n", s1.Run.Stdout);
        Assert.Equal("one=1\n", s1.File("GITHUB_OUTPUT"));
        Assert.Equal("FROM_S1=abc def\n", s1.File("GITHUB_ENV"));
        var s2 = calls.Single(c => c.Action == "s2");
        Ok(s2);
        Assert.Contains("from_s1=[abc def]\n", s2.Run.Stdout);
        var svc = calls.Single(c => c.Action == "svc");
        Ok(svc);
        Assert.Contains("200 OK", svc.Run.Stdout);
        var fail = calls.Single(c => c.Action == "fail");
        Assert.Equal(3, fail.Run.ExitCode);
        Assert.Contains("failing now", fail.Run.Stdout);
        Assert.Contains(fail.Run.ErrorLines, l => l.Contains("exited with code 3"));
        var after = calls.Single(c => c.Action == "after");
        Ok(after);
        Assert.Contains("after the failure", after.Run.Stdout);
        await AssertCleanedUpAsync(job, calls);
    }

    [Fact]
    public async Task Local_dockerfile_action()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var secret = await cluster.CreateRegistrySecretAsync($"{job.RunnerPod}-registry-login");
        job.Env[Prefix + "REGISTRY_HOST_PUSH"] = cluster.PushHost + "/captures";
        job.Env[Prefix + "REGISTRY_HOST_PULL"] = cluster.PullHost + "/captures";
        job.Env[Prefix + "REGISTRY_SECRET_NAME"] = secret;
        // The captured action builds FROM the same private registry: the builder gets a base-image login of its own.
        job.Env[Prefix + "BUILDER_SECRET_NAME"] = await cluster.CreateRegistrySecretAsync($"{job.RunnerPod}-base-login", withCa: false);
        job.Env[Prefix + "BUILDER_IMAGE"] = cluster.KanikoImage;
        var calls = await CaptureReplay.RunAsync(job, "local-dockerfile-action.jsonl", new Dictionary<string, string>
        {
            ["read"] = "echo \"FROM_DOCKER_ACTION=$FROM_DOCKER_ACTION\"\n",
        });
        Ok(calls[0]);
        var hello = calls.Single(c => c.Action == "hello");
        Ok(hello);
        Assert.Contains("argc=2 arg1=[tester & co] arg2=[second arg]\n", hello.Run.Stdout);
        Assert.Contains("INPUT_WHO=[tester & co] pwd=/github/workspace GITHUB_WORKSPACE=/github/workspace\n", hello.Run.Stdout);
        Assert.Contains("::notice title=from-docker-action::hello tester & co", hello.Run.Stdout);
        Assert.Equal("greeting=Hello tester & co\n", hello.File("GITHUB_OUTPUT"));
        Assert.Equal("FROM_DOCKER_ACTION=yes\n", hello.File("GITHUB_ENV"));
        Assert.Contains("::add-mask::fake-access-token", hello.Run.Stdout);
        var read = calls.Single(c => c.Action == "read");
        Ok(read);
        Assert.Contains("FROM_DOCKER_ACTION=yes\n", read.Run.Stdout);
        await AssertCleanedUpAsync(job, calls);
    }

    [Fact]
    public async Task Image_action_and_js_action()
    {
        await using var job = await RunnerJob.StartAsync(cluster, realNode: true);
        var calls = await CaptureReplay.RunAsync(job, "image-action-and-js-action.jsonl", new Dictionary<string, string>
        {
            ["read"] = "echo read-step ran\n",
        });
        Ok(calls[0]);
        var img = calls.Single(c => c.Action == "img");
        Ok(img);
        Assert.Contains("hi from an image action, INPUT_X=ex\n", img.Run.Stdout);
        Assert.Equal("img=ok\n", img.File("GITHUB_OUTPUT"));
        var js = calls.Single(c => c.Action == "js");
        Ok(js);
        Assert.Matches(@"node v20\.[0-9.]+ on linux, INPUT_NAME=mona, cwd=/__w/demo/demo\n", js.Run.Stdout);
        Assert.Contains("::warning title=from-js-action::js says hi to mona\n", js.Run.Stdout);
        Assert.Equal("shout=MONA\n", js.File("GITHUB_OUTPUT"));
        Ok(calls.Single(c => c.Action == "read"));
        await AssertCleanedUpAsync(job, calls);
    }

    [Fact]
    public async Task Checkout_like_js_action()
    {
        await using var job = await RunnerJob.StartAsync(cluster, realNode: true);
        var calls = await CaptureReplay.RunAsync(job, "checkout-like-js-action.jsonl", new Dictionary<string, string>());
        Ok(calls[0]);
        var js = calls.Single(c => c.Action == "js");
        Ok(js);
        Assert.Contains("INPUT_FETCH-DEPTH=0 INPUT_PERSIST-CREDENTIALS=true\n", js.Run.Stdout);
        Assert.Equal("depth=0\n", js.File("GITHUB_OUTPUT"));
        Assert.Empty(js.Run.ErrorLines);
        await AssertCleanedUpAsync(job, calls);
    }

    [Fact]
    public async Task Dollar_env_and_composite()
    {
        await using var job = await RunnerJob.StartAsync(cluster, realNode: true);
        var calls = await CaptureReplay.RunAsync(job, "dollar-env-and-composite.jsonl", new Dictionary<string, string>
        {
            ["d"] = "printf 'DOLLARS=[%s]\\n' \"$DOLLARS\"\n",
            ["c"] = "echo \"composite says x\"\n",
        });
        Ok(calls[0]);
        var d = calls.Single(c => c.Action == "d");
        Ok(d);
        Assert.Contains("DOLLARS=[a$$b $(HOME) c]\n", d.Run.Stdout);
        var composite = calls.Where(c => c.Action == "c").ToList();
        Assert.Equal(2, composite.Count);
        Ok(composite[0]);
        Assert.Contains("composite says x\n", composite[0].Run.Stdout);
        Ok(composite[1]);
        Assert.Contains("INPUT_FETCH-DEPTH=5 INPUT_PERSIST-CREDENTIALS=true\n", composite[1].Run.Stdout);
        Assert.Equal("depth=5\n", composite[1].File("GITHUB_OUTPUT"));
        await AssertCleanedUpAsync(job, calls);
    }

    [Fact]
    public async Task Service_env_is_byte_exact_and_no_value_is_in_the_pod_spec()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var lines = File.ReadAllLines(Path.Combine(CaptureReplay.Folder(cluster), "dollar-env-and-composite.jsonl"));
        var prepare = JsonNode.Parse(CaptureReplay.Substitute(lines[0], job))!["args"]!;
        var run = await job.RunAsync("prepare_job", prepare.DeepClone());
        Assert.True(run.ExitCode == 0, run.ToString());
        var podName = job.State!["jobPod"]!.GetValue<string>();
        var service = JsonNode.Parse(run.Response)!["context"]!["services"]![0]!["id"]!.GetValue<string>();
        Assert.Equal("s$$1", await cluster.ExecAsync(podName, service, "sh", "-c", "printf %s \"$SVC_ENV\""));
        // The job container's env reaches its steps (exported by each step's wrapper), byte for byte.
        var step = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "printf '[%s]' \"$DOLLARS\"\n")));
        Assert.True(step.ExitCode == 0, step.ToString());
        Assert.Contains("[a$$b $(HOME) c]", step.Stdout);
        Assert.Equal("true", await cluster.ExecAsync(podName, service, "sh", "-c", "printf %s \"$CI\""));
        var pod = await cluster.Client.ReadNamespacedPodAsync(podName, cluster.Namespace);
        var spec = KubernetesJson.Serialize(pod.Spec);
        Assert.DoesNotContain("a$$b", spec);
        Assert.DoesNotContain("s$$1", spec);
        Assert.Null(pod.Spec.Containers.Single(c => c.Name == "job").Env);
        Assert.Equal(0, (await job.RunAsync("cleanup_job", new JsonObject())).ExitCode);
    }
}
