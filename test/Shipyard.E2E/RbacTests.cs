using Shipyard.Driver;
using System.Text;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.E2E;

/// <summary>The hook runs a whole job with only the permissions the README documents (and with ARC's stock Role).</summary>
[Collection(ClusterCollection.Name)]
public sealed class RbacTests(TestCluster cluster)
{
    Task<string> KubeconfigForRoleAsync(string roleFile, string name, Action<V1Role>? edit = null) => RoleKubeconfig.CreateAsync(cluster, roleFile, name, edit);

    async Task RunWholeJobAsync(string kubeconfig)
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env["KUBECONFIG"] = kubeconfig;
        var registry = await cluster.CreateRegistrySecretAsync($"{job.RunnerPod}-login");
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST_PUSH"] = cluster.PushHost + "/rbac";
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST_PULL"] = cluster.PullHost + "/rbac";
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_SECRET_NAME"] = registry;
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_IMAGE"] = cluster.KanikoImage;

        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox,
            Registry(cluster.Env["SHIPYARD_TEST_REGISTRY_USER"], cluster.Env["SHIPYARD_TEST_REGISTRY_PASSWORD"], cluster.PullHost))));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        var script = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo via-role\n")));
        Assert.True(script.ExitCode == 0, script.ToString());
        Assert.Contains("via-role", script.Stdout);

        var files = job.NewFileCommands();
        var image = await job.RunAsync("run_container_step", ContainerStep(job, cluster.Busybox, null,
            new() { ["GITHUB_OUTPUT"] = "/github/file_commands/" + Path.GetFileName(files.Output) }, ActionArgs("-c", "echo x=1 >> $GITHUB_OUTPUT"), "sh"));
        Assert.True(image.ExitCode == 0, image.ToString());
        Assert.Equal("x=1\n", await File.ReadAllTextAsync(files.Output));

        var dir = Path.Combine(job.Work, "_actions", "rbac", "act", "v1");
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, "Dockerfile"), $"FROM {cluster.AnonHost}/busybox:test\nRUN echo {Guid.NewGuid():N} > /id\nENTRYPOINT [\"sh\", \"-c\", \"echo built=yes >> $GITHUB_OUTPUT\"]\n");
        var built = await job.RunAsync("run_container_step", ContainerStep(job, null, Path.Combine(dir, "Dockerfile"),
            new() { ["GITHUB_OUTPUT"] = "/github/file_commands/" + Path.GetFileName(files.Output) }));
        Assert.True(built.ExitCode == 0, built.ToString());
        Assert.EndsWith("built=yes\n", await File.ReadAllTextAsync(files.Output));

        var cleanup = await job.RunAsync("cleanup_job", new JsonObject());
        Assert.True(cleanup.ExitCode == 0, cleanup.ToString());
        Assert.Equal(0, await cluster.WaitForNoLabelledAsync(job.RunnerPod, TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task A_whole_job_runs_with_the_documented_role() =>
        await RunWholeJobAsync(await KubeconfigForRoleAsync("role.yaml", "shipyard-hook"));

    [Fact]
    public async Task A_whole_job_runs_with_arcs_stock_role() =>
        await RunWholeJobAsync(await KubeconfigForRoleAsync("arc-role-stock.yaml", "arc-kube-mode"));

    [Fact]
    public async Task A_role_without_exec_is_refused_by_prepare_job_naming_what_is_missing_and_nothing_is_created()
    {
        var kubeconfig = await KubeconfigForRoleAsync("arc-role-stock.yaml", "no-exec", r => r.Rules = r.Rules.Where(x => !x.Resources.Contains("pods/exec")).ToList());
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env["KUBECONFIG"] = kubeconfig;
        var run = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)));
        Assert.NotEqual(0, run.ExitCode);
        var error = Assert.Single(run.ErrorLines);
        Assert.Contains("pods/exec: get, create", error);
        Assert.DoesNotContain("secrets", error);
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(5), run.ToString());
        Assert.Equal(0, await cluster.CountLabelledAsync(job.RunnerPod));
    }
}
