using System.Text;
using System.Text.Json.Nodes;
using k8s;
using Shipyard.Driver;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.E2E;

/// <summary>What real ARC runners meet: long generated names, re-runs, services that die, hostile input.</summary>
[Collection(ClusterCollection.Name)]
public sealed class RealWorkflowTests(TestCluster cluster)
{
    [Fact]
    public async Task A_63_character_runner_name_runs_a_whole_job_with_valid_distinct_names()
    {
        var name = ("arc-runner-set-" + Guid.NewGuid().ToString("N") + Guid.NewGuid().ToString("N"))[..62] + "x";
        Assert.Equal(63, name.Length);
        await using var job = await RunnerJob.StartAsync(cluster, name);
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox,
            Registry(cluster.Env["SHIPYARD_TEST_REGISTRY_USER"], cluster.Env["SHIPYARD_TEST_REGISTRY_PASSWORD"], cluster.PullHost))));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        var jobPod = job.State!["jobPod"]!.GetValue<string>();
        Assert.NotEqual(name, jobPod);
        Assert.True(jobPod.Length <= 63);
        var step = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo long-name-ok\n")));
        Assert.True(step.ExitCode == 0, step.ToString());
        var container = await job.RunAsync("run_container_step", ContainerStep(job, cluster.Busybox, null, new() { ["A"] = "1" }, ActionArgs("-c", "echo step-pod-ok"), "sh"));
        Assert.True(container.ExitCode == 0, container.ToString());
        Assert.Contains("step-pod-ok", container.Stdout);
        Assert.Equal(0, (await job.RunAsync("cleanup_job", new JsonObject())).ExitCode);
        Assert.Equal(0, await cluster.WaitForNoLabelledAsync(name, TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task With_a_read_write_many_claim_the_scheduler_places_the_pods_preferring_the_runners_node()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_CLAIM_READ_WRITE_MANY"] = "true";
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        var pod = await cluster.Client.ReadNamespacedPodAsync(job.State!["jobPod"]!.GetValue<string>(), cluster.Namespace);
        Assert.Null(pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution);
        Assert.Equal(cluster.Env["SHIPYARD_TEST_NODE"], pod.Spec.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution.Single().Preference.MatchFields.Single().Values.Single());
        Assert.Equal(cluster.Env["SHIPYARD_TEST_NODE"], pod.Spec.NodeName); // set by the scheduler, not by Shipyard
        var step = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo scheduled\n")));
        Assert.True(step.ExitCode == 0, step.ToString());
        var container = await job.RunAsync("run_container_step", ContainerStep(job, cluster.Busybox, null, [], ActionArgs("-c", "echo step-scheduled"), "sh"));
        Assert.True(container.ExitCode == 0, container.ToString());
        Assert.Contains("step-scheduled", container.Stdout);
        Assert.Equal(0, (await job.RunAsync("cleanup_job", new JsonObject())).ExitCode);
    }

    [Fact]
    public async Task Objects_left_by_an_earlier_job_of_the_same_runner_go_and_the_next_job_pod_has_a_new_name()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        System.Text.Json.Nodes.JsonObject Login() => Registry(cluster.Env["SHIPYARD_TEST_REGISTRY_USER"], cluster.Env["SHIPYARD_TEST_REGISTRY_PASSWORD"], cluster.PullHost);
        var first = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, $"{cluster.PullHost}/busybox:test", Login())));
        Assert.True(first.ExitCode == 0, first.ToString());
        var earlier = job.JobPod;
        // the hook was killed before cleanup_job; the runner's next job starts
        var again = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, $"{cluster.PullHost}/busybox:test", Login())));
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal($"{job.RunnerPod}-workflow", earlier);
        Assert.Matches($"^{job.RunnerPod}-workflow-[0-9a-f]{{8}}$", job.JobPod);
        // the earlier pod is going (its containers may still stop) and its pull Secret is gone; only the new job's objects are left
        var pods = await cluster.Client.ListNamespacedPodAsync(cluster.Namespace, labelSelector: $"runner-pod={job.RunnerPod}");
        Assert.Equal([job.JobPod], pods.Items.Where(p => p.Metadata.DeletionTimestamp is null).Select(p => p.Metadata.Name));
        var secrets = await cluster.Client.ListNamespacedSecretAsync(cluster.Namespace, labelSelector: $"runner-pod={job.RunnerPod}");
        Assert.Equal([$"{job.JobPod}-registry"], secrets.Items.Select(s => s.Metadata.Name));
        // a pod's hostname is its name: the step ran in the new pod, not in a container of the earlier one
        var step = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "cat /etc/hostname\n")));
        Assert.True(step.ExitCode == 0, step.ToString());
        Assert.Contains(job.JobPod, step.Stdout.Split('\n'));
        Assert.Equal(0, (await job.RunAsync("cleanup_job", new System.Text.Json.Nodes.JsonObject())).ExitCode);
        Assert.Equal(0, await cluster.WaitForNoLabelledAsync(job.RunnerPod, TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task A_persistent_runners_next_job_never_runs_a_step_in_the_previous_jobs_container()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        // in the container's own filesystem, not the work volume the two jobs share
        Assert.Equal(0, (await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo first > /tmp/which-job\n")))).ExitCode);
        Assert.Equal(0, (await job.RunAsync("cleanup_job", new System.Text.Json.Nodes.JsonObject())).ExitCode);
        // at once, while the first job pod's container may still be stopping (its 5 s grace)
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var step = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "cat /tmp/which-job 2>/dev/null || echo a-new-container\n")));
        Assert.True(step.ExitCode == 0, step.ToString());
        Assert.Contains("a-new-container", step.Stdout.Split('\n'));
        Assert.Equal(0, (await job.RunAsync("cleanup_job", new System.Text.Json.Nodes.JsonObject())).ExitCode);
    }

    [Fact]
    public async Task A_crashing_service_fails_prepare_job_at_once_naming_it_and_quoting_its_log()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var service = Container(cluster.Busybox, entryPoint: "sh", entryPointArgs: ["-c", "echo starting db; echo 'fatal: bad config' >&2; exit 4"]);
        var run = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox), service));
        Assert.NotEqual(0, run.ExitCode);
        var error = Assert.Single(run.ErrorLines);
        Assert.Contains("Service 'busybox'", error);
        Assert.Contains("exited with code 4", error);
        Assert.Contains("fatal: bad config", error);
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(60), run.ToString()); // not the 600 s timeout
        Assert.Equal(0, await cluster.WaitForNoLabelledAsync(job.RunnerPod, TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task A_service_whose_command_does_not_exist_fails_prepare_job_at_once()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var service = Container(cluster.Busybox, entryPoint: "/no/such/server");
        var run = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox), service));
        Assert.NotEqual(0, run.ExitCode);
        var error = Assert.Single(run.ErrorLines);
        Assert.Contains("busybox", error);
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(60), run.ToString());
        Assert.Equal(0, await cluster.WaitForNoLabelledAsync(job.RunnerPod, TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task Container_step_and_service_get_ci_defaults_and_hyphenated_inputs()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var run = await job.RunAsync("run_container_step", ContainerStep(job, cluster.Busybox, null,
            new() { ["INPUT_FETCH-DEPTH"] = "0", ["DOLLARS"] = "a$$b $(HOME) c" }, entryPoint: "env"));
        Assert.True(run.ExitCode == 0, run.ToString());
        // env(1) itself prints the environment: a shell would drop names it cannot hold, as it does in docker mode too
        var lines = run.Stdout.Split('\n');
        foreach (var expected in new[] { "CI=true", "DOLLARS=a$$b $(HOME) c", "GITHUB_ACTIONS=true", "INPUT_FETCH-DEPTH=0" })
            Assert.True(lines.Contains(expected), $"{expected} missing\n{run}");
    }

    [Theory]
    [InlineData("ports")]
    [InlineData("image")]
    [InlineData("volume")]
    public async Task Input_that_cannot_work_is_refused_in_seconds_with_one_line_and_nothing_created(string what)
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var container = what switch
        {
            "ports" => JobContainer(job, cluster.Busybox, ports: ["1:1:1"]),
            "image" => JobContainer(job, new string('a', 1 << 20)),
            _ => JobContainer(job, cluster.Busybox, userMounts: new JsonArray(new JsonObject
            {
                ["userProvidedValue"] = "../../outside:/x", ["sourceVolumePath"] = "../../outside", ["targetVolumePath"] = "/x", ["readOnly"] = false,
            })),
        };
        var run = await job.RunAsync("prepare_job", PrepareJob(container));
        Assert.NotEqual(0, run.ExitCode);
        var error = Assert.Single(run.ErrorLines);
        Assert.True(error.Length < 400, error[..Math.Min(error.Length, 400)]);
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(5), $"{run.Elapsed}");
        Assert.Equal(0, await cluster.CountLabelledAsync(job.RunnerPod));
    }

    [Fact]
    public async Task Stdin_that_is_not_utf8_and_a_bad_prepend_path_are_refused()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var bytes = Encoding.UTF8.GetBytes("{\"command\":\"cleanup_job\",\"responseFile\":\"x\",\"args\":{\"a\":\"").Concat(new byte[] { 0xff, 0xfe }).Concat(Encoding.UTF8.GetBytes("\"},\"state\":null}\n")).ToArray();
        var notUtf8 = await job.RunAsync("cleanup_job", new JsonObject(), rawStdinBytes: bytes);
        Assert.NotEqual(0, notUtf8.ExitCode);
        Assert.Contains("not valid UTF-8", Assert.Single(notUtf8.ErrorLines));

        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var step = ScriptStep(job, WriteScript(job, "echo should-not-run\n"));
        step["prependPath"] = 42;
        var run = await job.RunAsync("run_script_step", step);
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains("prependPath", Assert.Single(run.ErrorLines));
        Assert.DoesNotContain("should-not-run", run.Stdout);
    }
}
