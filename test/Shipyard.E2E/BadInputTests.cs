using Shipyard.Driver;
using System.Text.Json.Nodes;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.E2E;

/// <summary>Bad input: one clear ::error:: line, a non-zero exit, and nothing created.</summary>
[Collection(ClusterCollection.Name)]
public sealed class BadInputTests(TestCluster cluster)
{
    async Task AssertRefused(RunnerJob job, HookRun run, string expected)
    {
        Assert.NotEqual(0, run.ExitCode);
        var errors = run.ErrorLines.ToList();
        Assert.True(errors.Count == 1, run.ToString());
        Assert.Contains(expected, errors[0]);
        Assert.Equal(0, await cluster.CountLabelledAsync(job.RunnerPod));
    }

    [Fact]
    public async Task Malformed_json_is_refused()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        await AssertRefused(job, await job.RunAsync("prepare_job", new JsonObject(), rawStdin: "{\"command\":\"prepare_job\","), "not valid JSON");
    }

    [Fact]
    public async Task Volume_mode_without_the_work_claim_is_refused_before_anything_is_created()
    {
        // The runner pod mounts no claim, and volume mode is asked for by hand: the claim must be looked up.
        await using var job = await RunnerJob.StartAsync(cluster, withClaim: false);
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_MODE"] = "volume";
        job.Env["ACTIONS_RUNNER_CLAIM_NAME"] = "no-such-claim";
        await AssertRefused(job, await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox))), "The work volume claim 'no-such-claim' does not exist");
    }

    [Fact]
    public async Task Unknown_command_is_refused()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        await AssertRefused(job, await job.RunAsync("deploy_everything", PrepareJob(JobContainer(job, cluster.Busybox))), "Unknown hook command 'deploy_everything'");
    }

    [Fact]
    public async Task Missing_runner_pod_name_is_refused()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var run = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)), editEnv: e => e.Remove("ACTIONS_RUNNER_POD_NAME"));
        await AssertRefused(job, run, "ACTIONS_RUNNER_POD_NAME");
    }

    [Fact]
    public async Task Missing_response_file_is_refused()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        await AssertRefused(job, await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)), createResponseFile: false), "response file");
    }

    [Fact]
    public async Task Missing_work_volume_claim_is_refused()
    {
        await using var job = await RunnerJob.StartAsync(cluster, withClaim: false);
        // Auto mode would pick no-volume for a runner pod without the claim; volume mode is asked for here.
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_MODE"] = "volume";
        await AssertRefused(job, await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox))), $"{job.RunnerPod}-work");
    }

    [Fact]
    public async Task Unreadable_template_is_refused()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE"] = Path.Combine(job.Root, "no-such-template.yaml");
        await AssertRefused(job, await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox))), "hook template");
    }

    [Fact]
    public async Task Invalid_template_yaml_is_refused()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var path = Path.Combine(job.Root, "bad.yaml");
        await File.WriteAllTextAsync(path, "spec:\n  containers: [ {name: $job\n");
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE"] = path;
        await AssertRefused(job, await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox))), "not valid YAML");
    }

    [Fact]
    public async Task Volume_outside_the_workspace_is_refused()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var mounts = new JsonArray(new JsonObject
        {
            ["userProvidedValue"] = "/etc:/host-etc", ["sourceVolumePath"] = "/etc", ["targetVolumePath"] = "/host-etc", ["readOnly"] = false,
        });
        await AssertRefused(job, await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox, userMounts: mounts))), "/etc:/host-etc");
    }
}
