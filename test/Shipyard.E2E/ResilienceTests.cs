using System.Net;
using k8s;
using Shipyard.Driver;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.E2E;

/// <summary>Faults injected into the real connections between the hook and kube-apiserver, through <see cref="ApiProxy"/>.</summary>
[Collection(ClusterCollection.Name)]
public sealed class ResilienceTests(TestCluster cluster)
{
    [Fact]
    public async Task Reset_connections_during_prepare_job_and_cleanup_are_retried()
    {
        await using var proxy = new ApiProxy(new IPEndPoint(IPAddress.Loopback, 6443));
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env["KUBECONFIG"] = proxy.WriteKubeconfig(cluster.KubeConfig, Path.Combine(job.Root, "proxied.kubeconfig"));

        proxy.ResetNextConnections(3);
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        Assert.Equal(3, proxy.Reset);

        var step = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo through-the-proxy\n")));
        Assert.True(step.ExitCode == 0, step.ToString());

        proxy.ResetNextConnections(2);
        var cleanup = await job.RunAsync("cleanup_job", new System.Text.Json.Nodes.JsonObject());
        Assert.True(cleanup.ExitCode == 0, cleanup.ToString());
        Assert.Equal(5, proxy.Reset);
        Assert.Equal(0, await cluster.WaitForNoLabelledAsync(job.RunnerPod, TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task An_api_server_that_stays_unreachable_fails_with_one_readable_line()
    {
        await using var proxy = new ApiProxy(new IPEndPoint(IPAddress.Loopback, 6443));
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env["KUBECONFIG"] = proxy.WriteKubeconfig(cluster.KubeConfig, Path.Combine(job.Root, "proxied.kubeconfig"));
        proxy.ResetNextConnections(1000);
        var run = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)));
        Assert.NotEqual(0, run.ExitCode);
        var error = Assert.Single(run.ErrorLines);
        Assert.Contains("Cannot reach the Kubernetes API to read pod", error);
        Assert.DoesNotContain("failed unexpectedly", error);
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(40), $"{run.Elapsed}");
        Assert.Equal(0, await cluster.CountLabelledAsync(job.RunnerPod));
    }

    const string Counter = "i=1; while [ $i -le 100 ]; do echo \"line $i\"; i=$((i+1)); sleep 0.1; done\nexit 7\n";

    static void AssertEveryLineOnce(HookRun run)
    {
        var lines = run.Stdout.Split('\n').Where(l => l.StartsWith("line ")).ToList();
        Assert.True(Enumerable.Range(1, 100).Select(i => $"line {i}").SequenceEqual(lines), $"{lines.Count} lines\n{run}");
        Assert.Equal(7, run.ExitCode);
        Assert.Contains(run.ErrorLines, l => l.Contains("exited with code 7"));
    }

    [Fact]
    public async Task Connections_cut_mid_script_step_lose_no_line_and_keep_the_exit_code()
    {
        await using var proxy = new ApiProxy(new IPEndPoint(IPAddress.Loopback, 6443));
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env["KUBECONFIG"] = proxy.WriteKubeconfig(cluster.KubeConfig, Path.Combine(job.Root, "proxied.kubeconfig"));
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var step = job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, Counter)));
        await Task.Delay(2500);
        proxy.ResetNextConnections(4);
        proxy.CutAll();
        await Task.Delay(3000);
        proxy.CutAll();
        AssertEveryLineOnce(await step);
    }

    [Fact]
    public async Task An_api_server_restart_mid_script_step_loses_no_line_and_keeps_the_exit_code()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var step = job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, Counter)));
        await Task.Delay(2000);
        await RestartApiServerAsync();
        AssertEveryLineOnce(await step);
    }

    [Fact]
    public async Task A_job_pod_deleted_while_the_api_is_unreachable_fails_the_step_once_it_is_back()
    {
        await using var proxy = new ApiProxy(new IPEndPoint(IPAddress.Loopback, 6443));
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env["KUBECONFIG"] = proxy.WriteKubeconfig(cluster.KubeConfig, Path.Combine(job.Root, "proxied.kubeconfig"));
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var step = job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo started\nsleep 300\necho finished\n")));
        await Task.Delay(2000);
        proxy.ResetNextConnections(100000);
        proxy.CutAll();
        await cluster.Client.DeleteNamespacedPodAsync(job.State!["jobPod"]!.GetValue<string>(), cluster.Namespace);
        await Task.Delay(5000);
        Assert.False(step.IsCompleted);
        proxy.ResetNextConnections(0);
        var back = System.Diagnostics.Stopwatch.StartNew();
        var run = await step;
        Assert.NotEqual(0, run.ExitCode);
        Assert.DoesNotContain("finished", run.Stdout);
        Assert.Contains(run.ErrorLines, l => l.Contains("did not finish"));
        Assert.True(back.Elapsed < TimeSpan.FromSeconds(20), $"noticed {back.Elapsed} after the API came back");
    }

    async Task RestartApiServerAsync()
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(Path.Combine(cluster.RepoRoot, "test", "cluster", "restart-apiserver"), ["--kill", "--down-seconds", "3"])
        {
            RedirectStandardError = true,
        })!;
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, await p.StandardError.ReadToEndAsync());
    }
}
