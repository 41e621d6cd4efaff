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
    public async Task A_429_storm_during_prepare_job_is_waited_out_honouring_retry_after()
    {
        var pki = Path.Combine(Path.GetDirectoryName(LocalCluster.EnvFile)!, "pki");
        await using var proxy = new ApiProxy(new IPEndPoint(IPAddress.Loopback, 6443), pki);
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env["KUBECONFIG"] = proxy.WriteKubeconfig(cluster.KubeConfig, Path.Combine(job.Root, "proxied.kubeconfig"));
        proxy.Answer429(4);
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        Assert.Equal(4, proxy.Answered429);
        Assert.True(prepare.Elapsed > TimeSpan.FromSeconds(3.5), $"Retry-After: 1 was not honoured ({prepare.Elapsed})");
        var step = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo after-the-storm\n")));
        Assert.True(step.ExitCode == 0, step.ToString());
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

    [Fact, Trait(RestartsLast.Trait, "yes")]
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

    static System.Text.Json.Nodes.JsonObject CountingContainerStep(RunnerJob job, TestCluster cluster, double seconds = 0.1) =>
        ContainerStep(job, cluster.Busybox, null, new() { ["A"] = "1" },
            ActionArgs("-c", $"i=1; while [ $i -le 100 ]; do echo line $i; i=$((i+1)); sleep {seconds.ToString(System.Globalization.CultureInfo.InvariantCulture)}; done; exit 7"), "sh");

    [Fact]
    public async Task Connections_cut_mid_container_step_lose_no_line_and_keep_the_exit_code()
    {
        await using var proxy = new ApiProxy(new IPEndPoint(IPAddress.Loopback, 6443));
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env["KUBECONFIG"] = proxy.WriteKubeconfig(cluster.KubeConfig, Path.Combine(job.Root, "proxied.kubeconfig"));
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var started = new TaskCompletionSource();
        job.OnOutputLine = l => { if (l == "line 10") started.TrySetResult(); };
        var step = job.RunAsync("run_container_step", CountingContainerStep(job, cluster));
        await started.Task.WaitAsync(TimeSpan.FromSeconds(60));
        proxy.CutAll();
        await Task.Delay(3000);
        proxy.ResetNextConnections(2);
        proxy.CutAll();
        AssertEveryLineOnce(await step);
    }

    [Fact, Trait(RestartsLast.Trait, "yes")]
    public async Task An_api_server_restart_mid_container_step_loses_no_line_and_keeps_the_exit_code()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var started = new TaskCompletionSource();
        job.OnOutputLine = l => { if (l == "line 10") started.TrySetResult(); };
        var step = job.RunAsync("run_container_step", CountingContainerStep(job, cluster));
        await started.Task.WaitAsync(TimeSpan.FromSeconds(60));
        await RestartApiServerAsync();
        AssertEveryLineOnce(await step);
    }

    [Fact]
    public async Task A_stalled_log_stream_is_noticed_and_reopened()
    {
        await using var proxy = new ApiProxy(new IPEndPoint(IPAddress.Loopback, 6443));
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env["KUBECONFIG"] = proxy.WriteKubeconfig(cluster.KubeConfig, Path.Combine(job.Root, "proxied.kubeconfig"));
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var started = new TaskCompletionSource();
        job.OnOutputLine = l => { if (l == "line 5") started.TrySetResult(); };
        var step = job.RunAsync("run_container_step", CountingContainerStep(job, cluster, 0.4)); // 40 s
        await started.Task.WaitAsync(TimeSpan.FromSeconds(60));
        proxy.StallAll(); // connections stay open but carry nothing: only a deadline can notice
        AssertEveryLineOnce(await step);
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
