using Shipyard.Driver;
using System.Diagnostics;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.E2E;

/// <summary>prepare_job, run_script_step, run_container_step (image) and cleanup_job on the real cluster.</summary>
[Collection(ClusterCollection.Name)]
public sealed class JobTests(TestCluster cluster)
{
    [Fact]
    public async Task An_alpine_job_container_running_as_another_user_says_so_from_its_own_start()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.AlpineLike)));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        Assert.True(JsonNode.Parse(prepare.Response)!["isAlpine"]!.GetValue<bool>());
        Assert.DoesNotContain("asking it", prepare.Stdout); // the probe answered; no exec was needed
        Assert.Empty(Directory.GetFiles(Path.Combine(job.Work, "_temp"), "_shipyard_os_*"));

        // The runner's command is what runs, as the image's user.
        var step = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "id -u; cat /proc/1/cmdline | tr '\\0' ' '\n")));
        Assert.True(step.ExitCode == 0, step.ToString());
        Assert.Contains("65534\ntail -f /dev/null", step.Stdout);
        Assert.Equal(0, (await job.RunAsync("cleanup_job", new JsonObject())).ExitCode);
    }

    [Fact]
    public async Task Service_is_reachable_on_localhost_and_response_lists_it_with_ports()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var service = Container(cluster.Busybox, entryPoint: "httpd", entryPointArgs: ["-f", "-p", "8080", "-h", "/etc"], ports: ["8080:8080"]);
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox, ports: ["9000:80"]), service));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());

        var response = JsonNode.Parse(prepare.Response)!;
        Assert.False(response["isAlpine"]!.GetValue<bool>());
        Assert.DoesNotContain("asking it", prepare.Stdout);
        Assert.Equal($"{job.RunnerPod}-workflow", response["state"]!["jobPod"]!.GetValue<string>()); // a runner's first job: ARC's name
        Assert.Equal("9000", response["context"]!["container"]!["ports"]!["80"]!.GetValue<string>());
        var services = response["context"]!["services"]!.AsArray();
        Assert.Single(services);
        Assert.Equal("8080", services[0]!["ports"]!["8080"]!.GetValue<string>());

        var script = WriteScript(job, "wget -qO- http://localhost:8080/passwd | head -1\n");
        var step = await job.RunAsync("run_script_step", ScriptStep(job, script));
        Assert.True(step.ExitCode == 0, step.ToString());
        Assert.Contains("root:x:0:0", step.Stdout);

        var pod = await cluster.Client.ReadNamespacedPodAsync(job.JobPod, cluster.Namespace);
        var jobContainer = pod.Spec.Containers.Single(c => c.Name == "job");
        // The job container's env (CI and GITHUB_ACTIONS included) is exported by each step, not set in the pod:
        // the pod names no Secret for it; only the service's env comes from one.
        Assert.Null(jobContainer.Env);
        Assert.All(pod.Spec.Containers.Single(c => c.Name != "job").Env, e => Assert.Equal($"{job.JobPod}-env", e.ValueFrom.SecretKeyRef.Name));
        var env = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "printf '%s %s %s' \"$CI\" \"$GITHUB_ACTIONS\" \"$JOB_VAR\"\n")));
        Assert.True(env.ExitCode == 0, env.ToString());
        Assert.Contains("true true job-value", env.Stdout);
        Assert.Equal(cluster.Env["SHIPYARD_TEST_NODE"], pod.Spec.NodeName);
        Assert.Equal(job.RunnerPod, pod.Metadata.OwnerReferences.Single().Name);
        Assert.False(pod.Spec.AutomountServiceAccountToken);
        // /__e is mounted from the work volume, but no node build is copied until a step names one (ExternalsTests)
        Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(job.Work, "externals")));
        Assert.Equal("mounted", await cluster.ExecAsync(pod.Metadata.Name, "job", "sh", "-c", "test -d /__e && printf mounted"));
    }

    [Fact]
    public async Task Script_step_writes_outputs_env_and_path_into_the_runners_files()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var files = job.NewFileCommands();
        var script = WriteScript(job, """
            echo "answer=42" >> "$GITHUB_OUTPUT"
            echo "FROM_STEP=$STEP_VAR" >> "$GITHUB_ENV"
            echo "cwd=$(pwd)" >> "$GITHUB_OUTPUT"
            echo "path=$PATH" >> "$GITHUB_OUTPUT"
            echo "quote=$TRICKY" >> "$GITHUB_OUTPUT"
            echo "job=$JOB_VAR" >> "$GITHUB_OUTPUT"
            echo "live output"
            echo "to stderr" >&2
            """);
        var run = await job.RunAsync("run_script_step", ScriptStep(job, script,
            new()
            {
                ["GITHUB_OUTPUT"] = "/__w/_temp/_runner_file_commands/" + Path.GetFileName(files.Output),
                ["GITHUB_ENV"] = "/__w/_temp/_runner_file_commands/" + Path.GetFileName(files.Env),
                ["STEP_VAR"] = "step-value",
                ["TRICKY"] = "it's \"quoted\" $HOME `x`",
            }, prependPath: ["/opt/extra/bin"]));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("live output", run.Stdout);
        Assert.Contains("to stderr", run.Stderr);
        var output = await File.ReadAllTextAsync(files.Output);
        Assert.Contains("answer=42\n", output);
        Assert.Contains($"cwd=/__w/{job.Repo}/{job.Repo}\n", output);
        Assert.Contains("path=/opt/extra/bin:", output);
        Assert.Contains("quote=it's \"quoted\" $HOME `x`\n", output);
        Assert.Contains("job=job-value\n", output);
        Assert.Equal("FROM_STEP=step-value\n", await File.ReadAllTextAsync(files.Env));
        // the wrapper with the step's env does not stay on the volume
        Assert.Empty(Directory.GetFiles(Path.Combine(job.Work, "_temp"), "shipyard-step-*"));
    }

    [Fact]
    public async Task Script_step_exit_code_becomes_the_hooks()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var run = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo before\nexit 3\n")));
        Assert.Equal(3, run.ExitCode);
        Assert.Contains("before", run.Stdout);
        Assert.Contains(run.ErrorLines, l => l.Contains("exited with code 3"));
    }

    [Fact]
    public async Task Container_step_writes_output_and_its_exit_code_is_the_hooks()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var files = job.NewFileCommands();
        var env = new Dictionary<string, string>
        {
            ["GITHUB_OUTPUT"] = "/github/file_commands/" + Path.GetFileName(files.Output),
            ["INPUT_WHO"] = "world",
            ["ACTIONS_RUNTIME_TOKEN"] = "super-secret-token-value",
        };
        await File.WriteAllTextAsync(Path.Combine(job.Workspace, "input.txt"), "from-workspace");
        var ok = await job.RunAsync("run_container_step", ContainerStep(job, cluster.Busybox, null, env,
            args: ActionArgs("-c", "echo greeting=hello ${INPUT_WHO} $(cat input.txt) >> $GITHUB_OUTPUT"),
            entryPoint: "sh"));
        Assert.True(ok.ExitCode == 0, ok.ToString());
        Assert.Equal("greeting=hello world from-workspace\n", await File.ReadAllTextAsync(files.Output));
        Assert.Contains("::add-mask::super-secret-token-value", ok.Stdout);

        var failing = await job.RunAsync("run_container_step", ContainerStep(job, cluster.Busybox, null, env, args: ActionArgs("-c", "echo failing; exit 5"), entryPoint: "sh"));
        Assert.Equal(5, failing.ExitCode);
        Assert.Contains("failing", failing.Stdout);
        Assert.Contains(failing.ErrorLines, l => l.Contains("exited with code 5"));

        // step pods and their env Secrets are gone; only the job pod remains (a job without services has no env Secret)
        var pods = await cluster.Client.ListNamespacedPodAsync(cluster.Namespace, labelSelector: $"runner-pod={job.RunnerPod}");
        Assert.Equal([job.JobPod], pods.Items.Where(p => p.Metadata.DeletionTimestamp is null).Select(p => p.Metadata.Name));
        var secrets = await cluster.Client.ListNamespacedSecretAsync(cluster.Namespace, labelSelector: $"runner-pod={job.RunnerPod}");
        Assert.Empty(secrets.Items);
    }

    [Fact]
    public async Task Private_job_image_is_pulled_from_the_tls_registry_with_the_jobs_credentials()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var password = cluster.Env["SHIPYARD_TEST_REGISTRY_PASSWORD"];
        var registry = Registry(cluster.Env["SHIPYARD_TEST_REGISTRY_USER"], password, cluster.PullHost);
        var run = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, $"{cluster.PullHost}/busybox:test", registry)));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains($"::add-mask::{password}", run.Stdout);
        var pod = await cluster.Client.ReadNamespacedPodAsync(job.JobPod, cluster.Namespace);
        Assert.Equal($"{job.JobPod}-registry", pod.Spec.ImagePullSecrets.Single().Name);
        Assert.Equal(0, (await job.RunAsync("cleanup_job", new JsonObject())).ExitCode);
    }

    [Fact]
    public async Task Unpullable_job_image_fails_at_once_with_the_reason_and_leaves_nothing()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var run = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, $"{cluster.PullHost}/does-not-exist:1")));
        Assert.NotEqual(0, run.ExitCode);
        Assert.Contains(run.ErrorLines, l => l.Contains("ErrImagePull") || l.Contains("ImagePullBackOff"));
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(120), run.ToString()); // not the 600 s timeout
        Assert.Equal(0, await cluster.WaitForNoLabelledAsync(job.RunnerPod, TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task Template_adds_label_resources_and_a_sidecar_that_is_not_a_service()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var template = Path.Combine(job.Root, "template.yaml");
        await File.WriteAllTextAsync(template, $"""
            metadata:
              labels:
                team: platform
            spec:
              containers:
                - name: $job
                  resources:
                    limits:
                      memory: 256Mi
                      cpu: "1"
                  env:
                    - name: FROM_TEMPLATE
                      value: "yes"
                - name: sidecar
                  image: {cluster.Busybox}
                  command: ["sleep", "3600"]
            """);
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE"] = template;
        var service = Container(cluster.Busybox, entryPoint: "sleep", entryPointArgs: ["3600"]);
        var run = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox), service));
        Assert.True(run.ExitCode == 0, run.ToString());
        var pod = await cluster.Client.ReadNamespacedPodAsync(job.JobPod, cluster.Namespace);
        Assert.Equal("platform", pod.Metadata.Labels["team"]);
        Assert.Equal(job.RunnerPod, pod.Metadata.Labels["runner-pod"]);
        var jobContainer = pod.Spec.Containers.Single(c => c.Name == "job");
        Assert.Equal("256Mi", jobContainer.Resources.Limits["memory"].ToString());
        Assert.Contains(jobContainer.Env, e => e.Name == "FROM_TEMPLATE" && e.Value == "yes");
        Assert.DoesNotContain(jobContainer.Env, e => e.Name == "JOB_VAR"); // the job's own env is exported by each step
        var step = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo \"$FROM_TEMPLATE $JOB_VAR\"\n")));
        Assert.True(step.ExitCode == 0, step.ToString());
        Assert.Contains("yes job-value", step.Stdout);
        Assert.Equal(["job", "busybox", "sidecar"], pod.Spec.Containers.Select(c => c.Name));
        var services = JsonNode.Parse(run.Response)!["context"]!["services"]!.AsArray();
        Assert.Single(services);
        Assert.Equal("busybox", services[0]!["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Cleanup_removes_every_labelled_object_and_is_idempotent()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        var registry = Registry(cluster.Env["SHIPYARD_TEST_REGISTRY_USER"], cluster.Env["SHIPYARD_TEST_REGISTRY_PASSWORD"], cluster.PullHost);
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, $"{cluster.PullHost}/busybox:test", registry)))).ExitCode);
        Assert.Equal(2, await cluster.CountLabelledAsync(job.RunnerPod)); // job pod, pull Secret
        var first = await job.RunAsync("cleanup_job", new JsonObject());
        Assert.True(first.ExitCode == 0, first.ToString());
        Assert.Equal(0, await cluster.WaitForNoLabelledAsync(job.RunnerPod, TimeSpan.FromSeconds(30)));
        var second = await job.RunAsync("cleanup_job", new JsonObject());
        Assert.True(second.ExitCode == 0, second.ToString());
        Assert.Empty(second.ErrorLines);
        Assert.True(await cluster.Client.ReadNamespacedPodAsync(job.RunnerPod, cluster.Namespace) is not null); // the runner itself stays
    }

    [Fact]
    public async Task Deleting_the_runner_pod_garbage_collects_everything()
    {
        var job = await RunnerJob.StartAsync(cluster);
        var registry = Registry(cluster.Env["SHIPYARD_TEST_REGISTRY_USER"], cluster.Env["SHIPYARD_TEST_REGISTRY_PASSWORD"], cluster.PullHost);
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, $"{cluster.PullHost}/busybox:test", registry)))).ExitCode);
        Assert.Equal(2, await cluster.CountLabelledAsync(job.RunnerPod)); // job pod, pull Secret
        // prepare_job returns once the job container runs, before the kubelet reports it; a 1.20 kubelet that gets
        // the deletion before its own report took over 20 s to let the pod go (CI). This test is about a started job.
        await cluster.WaitForPodAsync(job.State!["jobPod"]!.GetValue<string>(), p => p.Status?.Phase == "Running", TimeSpan.FromSeconds(30));
        await job.DisposeAsync(); // deletes the runner pod only
        // Job pods have a short grace period (5 s), so a quiet node lets them go in ~15 s, not the 40–90 s a 30 s grace
        // took; under the full suite's load the kubelet's final removal took over 20 s twice (CI, session 7), so 45 s.
        var left = await cluster.WaitForNoLabelledAsync(job.RunnerPod, TimeSpan.FromSeconds(45));
        Assert.True(left == 0, await cluster.DescribeLabelledAsync(job.RunnerPod));
    }

    [Fact]
    public async Task Job_pod_deleted_during_a_long_step_fails_the_step_within_seconds()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var step = job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo started\nsleep 300\necho finished\n")));
        await Task.Delay(3000);
        Assert.False(step.IsCompleted);
        var sw = Stopwatch.StartNew();
        await cluster.Client.DeleteNamespacedPodAsync(job.JobPod, cluster.Namespace);
        var run = await step;
        var afterDelete = sw.Elapsed;
        Assert.NotEqual(0, run.ExitCode);
        Assert.DoesNotContain("finished", run.Stdout);
        Assert.Contains(run.ErrorLines, l => l.Contains("did not finish"));
        Assert.True(afterDelete < TimeSpan.FromSeconds(5), $"the hook noticed after {afterDelete}");
    }

    [Fact]
    public async Task User_volume_inside_the_workspace_is_mounted_from_the_work_volume()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        Directory.CreateDirectory(Path.Combine(job.Workspace, "data"));
        await File.WriteAllTextAsync(Path.Combine(job.Workspace, "data", "hello.txt"), "mounted");
        var mounts = new JsonArray(new JsonObject
        {
            ["userProvidedValue"] = $"{job.Workspace}/data:/data", ["sourceVolumePath"] = Path.Combine(job.Workspace, "data"),
            ["targetVolumePath"] = "/data", ["readOnly"] = true,
        });
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox, userMounts: mounts)));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        var run = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "cat /data/hello.txt\n")));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("mounted", run.Stdout);
    }
}
