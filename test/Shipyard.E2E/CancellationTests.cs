using System.Diagnostics;
using System.Runtime.InteropServices;
using k8s;
using Shipyard.Driver;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.E2E;

/// <summary>
/// The runner cancels a step by sending SIGINT to the process it started (node for index.js, bash for
/// shipyard.sh). The hook must stop the user's process in the cluster, not just its own connection.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class CancellationTests(TestCluster cluster)
{
    [DllImport("libc", SetLastError = true)]
    static extern int kill(int pid, int signal);

    const int SIGINT = 2;

    /// <summary>Starts the step through the entry, signals the process once the step printed `started`; returns the run and the seconds from signal to exit.</summary>
    static async Task<(HookRun Run, TimeSpan AfterSignal)> CancelMidStepAsync(RunnerJob job, string command, System.Text.Json.Nodes.JsonNode args, string entry)
    {
        var started = new TaskCompletionSource();
        job.OnOutputLine = l => { if (l.Contains("started")) started.TrySetResult(); };
        Process? process = null;
        var run = job.RunAsync(command, args, entry: entry, onStarted: p => process = p);
        await started.Task.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.False(run.IsCompleted);
        var sw = Stopwatch.StartNew();
        Assert.Equal(0, kill(process!.Id, SIGINT));
        var result = await run;
        job.OnOutputLine = null;
        return (result, sw.Elapsed);
    }

    [Theory]
    [InlineData("index.js")]
    [InlineData("shipyard.sh")]
    public async Task Cancelling_a_script_step_stops_the_users_process_in_the_job_container(string entry)
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        var pod = job.State!["jobPod"]!.GetValue<string>();
        var script = WriteScript(job, "echo started\nsh -c 'sleep 31337' &\nsleep 31338\necho finished\n");

        var (run, afterSignal) = await CancelMidStepAsync(job, "run_script_step", ScriptStep(job, script), entry);

        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains(run.ErrorLines, l => l.Contains("cancelled"));
        Assert.DoesNotContain("finished", run.Stdout);
        Assert.True(afterSignal < TimeSpan.FromSeconds(2), $"exited {afterSignal} after SIGINT\n{run}");
        // the script, its child and its background child are gone from the job container
        var left = await cluster.ExecAsync(pod, "job", "sh", "-c", "ps -o args | grep '[s]leep 3133' || true");
        Assert.True(left.Length == 0, left);
        // the job pod still runs the next step
        var next = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo next-step\n")));
        Assert.True(next.ExitCode == 0, next.ToString());
    }

    [Theory]
    [InlineData("index.js")]
    [InlineData("shipyard.sh")]
    public async Task Cancelling_a_container_step_deletes_its_pod_and_leaves_only_the_job(string entry)
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());

        var (run, afterSignal) = await CancelMidStepAsync(job, "run_container_step",
            ContainerStep(job, cluster.Busybox, null, new() { ["A"] = "1" }, ActionArgs("-c", "echo started; sleep 31337"), "sh"), entry);

        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains(run.ErrorLines, l => l.Contains("cancelled"));
        Assert.True(afterSignal < TimeSpan.FromSeconds(2), $"exited {afterSignal} after SIGINT\n{run}");
        var pods = await cluster.Client.ListNamespacedPodAsync(cluster.Namespace, labelSelector: $"runner-pod={job.RunnerPod}");
        Assert.Equal([job.State!["jobPod"]!.GetValue<string>()], pods.Items.Select(p => p.Metadata.Name));
        var secrets = await cluster.Client.ListNamespacedSecretAsync(cluster.Namespace, labelSelector: $"runner-pod={job.RunnerPod}");
        Assert.Empty(secrets.Items); // the step's env Secret is gone, and a job without services has none
    }
}
