using Shipyard.Driver;
using k8s;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.E2E;

/// <summary>Dockerfile container actions, built in the cluster by an unprivileged builder pod.</summary>
[Collection(ClusterCollection.Name)]
public sealed class DockerfileActionTests(TestCluster cluster)
{
    const string Prefix = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_";

    async Task<RunnerJob> JobWithRegistryAsync(string builder = "kaniko")
    {
        var job = await RunnerJob.StartAsync(cluster);
        var secret = await cluster.CreateRegistrySecretAsync($"{job.RunnerPod}-registry-login");
        job.Env[Prefix + "REGISTRY_HOST_PUSH"] = cluster.PushHost + "/actions";
        job.Env[Prefix + "REGISTRY_HOST_PULL"] = cluster.PullHost + "/actions";
        job.Env[Prefix + "REGISTRY_SECRET_NAME"] = secret;
        job.Env[Prefix + "BUILDER"] = builder;
        job.Env[Prefix + "BUILDER_IMAGE"] = builder == "buildah" ? cluster.BuildahImage : cluster.KanikoImage;
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        return job;
    }

    /// <summary>Writes a repository action where the runner downloads it; returns the Dockerfile path.</summary>
    string WriteAction(RunnerJob job, string owner, string nonce, string run = "RUN chmod +x /action/entrypoint.sh")
    {
        var dir = Path.Combine(job.Work, "_actions", owner, "hello-action", "v1");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "Dockerfile"), $"""
            FROM {cluster.PushHost}/busybox:test
            COPY . /action
            {run}
            ENTRYPOINT ["/action/entrypoint.sh"]
            """);
        File.WriteAllText(Path.Combine(dir, "entrypoint.sh"), "#!/bin/sh\necho \"action says $1\"\necho \"greeting=hello $1 from $(cat /action/nonce.txt)\" >> \"$GITHUB_OUTPUT\"\n");
        File.WriteAllText(Path.Combine(dir, "nonce.txt"), nonce);
        File.WriteAllText(Path.Combine(dir, ".dockerignore"), "notes/\n*.md\n");
        Directory.CreateDirectory(Path.Combine(dir, "notes"));
        File.WriteAllText(Path.Combine(dir, "notes", "todo.txt"), "ignored");
        File.WriteAllText(Path.Combine(dir, "README.md"), "ignored");
        return Path.Combine(dir, "Dockerfile");
    }

    async Task<(HookRun Run, string Output)> RunActionAsync(RunnerJob job, string dockerfile, string who = "world")
    {
        var files = job.NewFileCommands();
        var run = await job.RunAsync("run_container_step", ContainerStep(job, null, dockerfile,
            new() { ["GITHUB_OUTPUT"] = "/github/file_commands/" + Path.GetFileName(files.Output) }, args: ActionArgs(who)));
        return (run, await File.ReadAllTextAsync(files.Output));
    }

    static void CopyAction(RunnerJob from, RunnerJob to, string owner)
    {
        var src = Path.Combine(from.Work, "_actions", owner);
        foreach (var f in Directory.EnumerateFiles(src, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to.Work, "_actions", owner, Path.GetRelativePath(src, f));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(f, target, true);
        }
    }

    [Fact]
    public async Task Kaniko_builds_once_pushes_via_push_host_runs_via_pull_host_and_reuses_on_the_next_job()
    {
        var nonce = Guid.NewGuid().ToString("N");
        await using var recorder = await PodRecorder.StartAsync(cluster);
        await using var first = await JobWithRegistryAsync();
        var dockerfile = WriteAction(first, "acme", nonce);

        var (run, output) = await RunActionAsync(first, dockerfile);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("::group::Building acme/hello-action@v1", run.Stdout);
        Assert.Contains("(kaniko test double)", run.Stdout); // the builder's own log, live in the hook output
        Assert.Contains("::endgroup::", run.Stdout);
        Assert.Contains("action says world", run.Stdout);
        Assert.Equal($"greeting=hello world from {nonce}\n", output);

        var builder = Assert.Single(recorder.Created(first.RunnerPod, "builder"));
        var builderArgs = builder.Spec.Containers[0].Args;
        Assert.Contains(builderArgs, a => a.StartsWith($"--destination={cluster.PushHost}/actions/acme-hello-action:"));
        Assert.Contains("--digest-file=/dev/termination-log", builderArgs);
        Assert.NotEqual(true, builder.Spec.Containers[0].SecurityContext?.Privileged);
        Assert.False(builder.Spec.AutomountServiceAccountToken);
        var stepImage = Assert.Single(recorder.Created(first.RunnerPod, "step")).Spec.Containers[0].Image;
        Assert.StartsWith($"{cluster.PullHost}/actions/acme-hello-action@sha256:", stepImage);
        // the builder pod is gone after the build
        Assert.DoesNotContain((await cluster.Client.ListNamespacedPodAsync(cluster.Namespace, labelSelector: $"runner-pod={first.RunnerPod},shipyard.dev/role=builder")).Items,
            p => p.Metadata.DeletionTimestamp is null);

        await using var second = await JobWithRegistryAsync();
        CopyAction(first, second, "acme");
        var (again, output2) = await RunActionAsync(second, Path.Combine(second.Work, "_actions", "acme", "hello-action", "v1", "Dockerfile"), "again");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains("already built", again.Stdout);
        Assert.Equal($"greeting=hello again from {nonce}\n", output2);
        Assert.Empty(recorder.Created(second.RunnerPod, "builder"));
        Assert.Equal(stepImage, Assert.Single(recorder.Created(second.RunnerPod, "step")).Spec.Containers[0].Image);
    }

    [Fact]
    public async Task A_changed_context_file_rebuilds_and_a_dockerignored_one_does_not()
    {
        await using var recorder = await PodRecorder.StartAsync(cluster);
        await using var job = await JobWithRegistryAsync();
        var dockerfile = WriteAction(job, "rebuild", Guid.NewGuid().ToString("N"));
        Assert.Equal(0, (await RunActionAsync(job, dockerfile)).Run.ExitCode);
        Assert.Single(recorder.Created(job.RunnerPod, "builder"));

        var dir = Path.GetDirectoryName(dockerfile)!;
        File.WriteAllText(Path.Combine(dir, "notes", "todo.txt"), "changed but ignored");
        File.WriteAllText(Path.Combine(dir, "README.md"), "changed but ignored");
        var ignored = await RunActionAsync(job, dockerfile);
        Assert.True(ignored.Run.ExitCode == 0, ignored.Run.ToString());
        Assert.Contains("already built", ignored.Run.Stdout);
        Assert.Single(recorder.Created(job.RunnerPod, "builder"));

        var changedNonce = Guid.NewGuid().ToString("N");
        File.WriteAllText(Path.Combine(dir, "nonce.txt"), changedNonce);
        var changed = await RunActionAsync(job, dockerfile);
        Assert.True(changed.Run.ExitCode == 0, changed.Run.ToString());
        Assert.Equal(2, recorder.Created(job.RunnerPod, "builder").Count);
        Assert.Equal($"greeting=hello world from {changedNonce}\n", changed.Output);
    }

    [Fact]
    public async Task A_failing_RUN_fails_the_step_with_the_exit_code_and_the_instruction()
    {
        await using var job = await JobWithRegistryAsync();
        var dockerfile = WriteAction(job, "broken", Guid.NewGuid().ToString("N"), run: "RUN echo compiling && exit 3");
        var (run, output) = await RunActionAsync(job, dockerfile);
        Assert.Equal(3, run.ExitCode); // the RUN's own exit code, which Kaniko (and the double) pass on
        Assert.Equal("", output);
        var error = Assert.Single(run.ErrorLines);
        Assert.DoesNotContain('\u001b', error); // Kaniko's coloured log is read without its escapes
        Assert.Contains("broken/hello-action@v1", error);
        Assert.Contains($"exit code {run.ExitCode}", error);
        Assert.True(error.Contains("at `RUN echo compiling && exit 3`") && error.Contains("exit status 3"), run.ToString());
        Assert.Equal(2, await cluster.CountLabelledAsync(job.RunnerPod)); // only the job pod and its env Secret are left
    }

    [Theory]
    [InlineData("kaniko")]
    [InlineData("buildah")]
    public async Task The_builder_gets_the_context_docker_would_send_and_nothing_is_left_behind(string builder)
    {
        await using var job = await JobWithRegistryAsync(builder);
        var dir = Path.Combine(job.Work, "_actions", "ctx", "list-action", "v1");
        foreach (var f in new[] { "node_modules/left-pad/index.js", "lib/node_modules/x/index.js", "src/index.js", "src/keep.md", "secret.txt", "docs/a.md" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(dir, f))!);
            File.WriteAllText(Path.Combine(dir, f), f);
        }
        File.SetUnixFileMode(Path.Combine(dir, "src", "index.js"), (UnixFileMode)0b111_101_101);
        // The most common line of JavaScript actions, a re-include, and the Dockerfile itself left out of COPY.
        File.WriteAllText(Path.Combine(dir, ".dockerignore"), "**/node_modules\nsecret.txt\n*.md\n**/*.md\n!src/keep.md\nDockerfile\n");
        File.WriteAllText(Path.Combine(dir, "Dockerfile"), $"""
            FROM {cluster.PushHost}/busybox:test
            COPY . /ctx
            ENTRYPOINT ["sh", "-c", "cd /ctx && find . | sort && ls -l src/index.js"]
            """);
        var files = job.NewFileCommands();
        var run = await job.RunAsync("run_container_step", ContainerStep(job, null, Path.Combine(dir, "Dockerfile"), new()));
        Assert.True(run.ExitCode == 0, run.ToString());
        var listing = run.Stdout.Split('\n').Where(l => l.StartsWith("./") || l == ".").ToList();
        Assert.Equal([".", "./.dockerignore", "./docs", "./lib", "./src", "./src/index.js", "./src/keep.md"], listing);
        Assert.Contains("-rwxr-xr-x", run.Stdout);
        Assert.Empty(Directory.EnumerateDirectories(Path.Combine(job.Work, "_temp"), "shipyard-build-*"));
    }

    [Fact]
    public async Task Two_jobs_building_the_same_action_at_once_both_succeed()
    {
        var nonce = Guid.NewGuid().ToString("N");
        await using var a = await JobWithRegistryAsync();
        await using var b = await JobWithRegistryAsync();
        var dockerfile = WriteAction(a, "twins", nonce);
        CopyAction(a, b, "twins");
        var results = await Task.WhenAll(
            RunActionAsync(a, dockerfile, "a"),
            RunActionAsync(b, Path.Combine(b.Work, "_actions", "twins", "hello-action", "v1", "Dockerfile"), "b"));
        Assert.True(results[0].Run.ExitCode == 0, results[0].Run.ToString());
        Assert.True(results[1].Run.ExitCode == 0, results[1].Run.ToString());
        Assert.Equal($"greeting=hello a from {nonce}\n", results[0].Output);
        Assert.Equal($"greeting=hello b from {nonce}\n", results[1].Output);
    }

    [Fact]
    public async Task Missing_registry_settings_give_one_line_naming_the_variables_and_create_nothing()
    {
        await using var recorder = await PodRecorder.StartAsync(cluster);
        await using var job = await RunnerJob.StartAsync(cluster);
        var dockerfile = WriteAction(job, "unconfigured", Guid.NewGuid().ToString("N"));
        var (run, _) = await RunActionAsync(job, dockerfile);
        Assert.NotEqual(0, run.ExitCode);
        var error = Assert.Single(run.ErrorLines);
        Assert.Contains(Prefix + "REGISTRY_HOST", error);
        Assert.Contains(Prefix + "REGISTRY_SECRET_NAME", error);
        Assert.Equal(0, await cluster.CountLabelledAsync(job.RunnerPod));
        Assert.Empty(recorder.Created(job.RunnerPod, "builder"));
        Assert.Empty(recorder.Created(job.RunnerPod, "step"));
    }

    [Fact]
    public async Task Buildah_builder_builds_and_runs_the_action()
    {
        var nonce = Guid.NewGuid().ToString("N");
        await using var recorder = await PodRecorder.StartAsync(cluster);
        await using var job = await JobWithRegistryAsync("buildah");
        var dockerfile = WriteAction(job, "viabuildah", nonce);
        var (run, output) = await RunActionAsync(job, dockerfile);
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("::group::Building viabuildah/hello-action@v1", run.Stdout);
        Assert.Equal($"greeting=hello world from {nonce}\n", output);
        var builder = Assert.Single(recorder.Created(job.RunnerPod, "builder"));
        Assert.Equal("Unconfined", builder.Spec.SecurityContext?.SeccompProfile?.Type);
        Assert.NotEqual(true, builder.Spec.Containers[0].SecurityContext?.Privileged);
    }
}
