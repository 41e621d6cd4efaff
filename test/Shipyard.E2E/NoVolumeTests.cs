using System.Net;
using System.Text.Json.Nodes;
using k8s;
using Shipyard.Driver;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.E2E;

/// <summary>
/// ARC's kubernetes-novolume mode on the real cluster (its API server offers exec only over v4.channel.k8s.io):
/// a runner pod without any volume, a job pod with pod-local volumes, and the runner's `_work` kept in sync
/// both ways, so what steps write is what the runner reads and what the runner writes is what later steps see.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class NoVolumeTests(TestCluster cluster)
{
    const string Prefix = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_";

    static string FileCommand(string hostPath) => "/__w/_temp/_runner_file_commands/" + Path.GetFileName(hostPath);

    [Fact]
    public async Task A_whole_job_runs_with_pod_local_volumes_and_the_runner_sees_every_file_steps_write()
    {
        await using var recorder = await PodRecorder.StartAsync(cluster);
        await using var job = await RunnerJob.StartAsync(cluster, noVolume: true);
        var secret = await cluster.CreateRegistrySecretAsync($"{job.RunnerPod}-registry");
        job.Env[Prefix + "REGISTRY_HOST_PUSH"] = cluster.PushHost + "/actions";
        job.Env[Prefix + "REGISTRY_HOST_PULL"] = cluster.PullHost + "/actions";
        job.Env[Prefix + "REGISTRY_SECRET_NAME"] = secret;
        job.Env[Prefix + "BUILDER_IMAGE"] = cluster.KanikoImage;

        // What the runner has before the job container starts: a downloaded action and a file in the workspace.
        var action = Path.Combine(job.Work, "_actions", "acme", "js-action", "v1");
        Directory.CreateDirectory(action);
        await File.WriteAllTextAsync(Path.Combine(action, "index.js"), """
            const fs = require('fs');
            fs.appendFileSync(process.env.GITHUB_OUTPUT, `node=${process.version}\n`);
            fs.writeFileSync('from-js.txt', fs.readFileSync('a.txt', 'utf8').toUpperCase());
            console.log('js action ran');
            """);
        await File.WriteAllTextAsync(Path.Combine(job.Workspace, "seed.txt"), "seeded-by-runner");

        var service = Container(cluster.Busybox, entryPoint: "httpd", entryPointArgs: ["-f", "-p", "8080", "-h", "/etc"], ports: ["8080:8080"]);
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Debian), service));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        var state = JsonNode.Parse(prepare.Response)!["state"]!;
        Assert.Equal("novolume", state["mode"]!.GetValue<string>());

        var runner = await cluster.Client.ReadNamespacedPodAsync(job.RunnerPod, cluster.Namespace);
        Assert.Null(runner.Spec.Volumes);
        var pod = await cluster.Client.ReadNamespacedPodAsync(job.JobPod, cluster.Namespace);
        Assert.All(pod.Spec.Volumes, v => Assert.NotNull(v.EmptyDir));
        Assert.Equal(["shipyard-externals", "shipyard-fill"], pod.Spec.InitContainers.Select(c => c.Name));
        Assert.All(pod.Spec.InitContainers, c => Assert.Equal(cluster.RunnerImage, c.Image));
        Assert.Contains(pod.Spec.Containers, c => c.Name == "shipyard-sync" && c.Image == cluster.RunnerImage);
        // The externals came from the runner's image, not from the runner's upload.
        Assert.False(Directory.Exists(Path.Combine(job.Work, "externals")));

        // 1. A script step reads what the runner had, writes files, file commands, a link, removes a file.
        var files = job.NewFileCommands();
        var step1 = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, """
            cat seed.txt; echo
            bash -c 'exec 3<>/dev/tcp/localhost/8080; printf "GET /passwd HTTP/1.0\r\n\r\n" >&3; grep root: <&3'
            echo hello-from-pod > a.txt
            mkdir -p sub/deeper && printf 'x' > sub/deeper/b.txt && chmod 0705 sub/deeper
            mkdir private && echo secret > private/key && chmod 0700 private
            ln -s a.txt link
            rm seed.txt
            echo "answer=42" >> "$GITHUB_OUTPUT"
            echo "FROM_STEP=yes" >> "$GITHUB_ENV"
            echo "/opt/tools" >> "$GITHUB_PATH"
            echo "## summary" >> "$GITHUB_STEP_SUMMARY"
            echo "saved=1" >> "$GITHUB_STATE"
            echo "to stderr" >&2
            """), new()
        {
            ["GITHUB_OUTPUT"] = FileCommand(files.Output), ["GITHUB_ENV"] = FileCommand(files.Env), ["GITHUB_PATH"] = FileCommand(files.Path),
            ["GITHUB_STEP_SUMMARY"] = FileCommand(files.Summary), ["GITHUB_STATE"] = FileCommand(files.State),
        }));
        Assert.True(step1.ExitCode == 0, step1.ToString());
        Assert.Contains("seeded-by-runner", step1.Stdout);
        Assert.Contains("root:x:0:0", step1.Stdout);
        Assert.Contains("to stderr", step1.Stderr);
        Assert.Equal("answer=42\n", await File.ReadAllTextAsync(files.Output));
        Assert.Equal("FROM_STEP=yes\n", await File.ReadAllTextAsync(files.Env));
        Assert.Equal("/opt/tools\n", await File.ReadAllTextAsync(files.Path));
        Assert.Equal("## summary\n", await File.ReadAllTextAsync(files.Summary));
        Assert.Equal("saved=1\n", await File.ReadAllTextAsync(files.State));
        Assert.Equal("hello-from-pod\n", await File.ReadAllTextAsync(Path.Combine(job.Workspace, "a.txt")));
        Assert.Equal("x", await File.ReadAllTextAsync(Path.Combine(job.Workspace, "sub", "deeper", "b.txt")));
        Assert.Equal((UnixFileMode)0b111_000_101, File.GetUnixFileMode(Path.Combine(job.Workspace, "sub", "deeper")));
        Assert.Equal("a.txt", new FileInfo(Path.Combine(job.Workspace, "link")).LinkTarget);
        Assert.False(File.Exists(Path.Combine(job.Workspace, "seed.txt")));
        // root's 0700 directory is not readable by the runner image's user: said, not silently dropped, not a failure.
        Assert.Contains(step1.Stdout.Split('\n'), l => l.StartsWith("::warning::") && l.Contains("demo/demo/private/"));
        Assert.False(File.Exists(Path.Combine(job.Workspace, "private", "key")));
        Assert.Empty(Directory.GetDirectories(Path.Combine(job.Work, "_temp"), "shipyard-step-*"));

        // 2. What the runner writes between steps reaches the pod; a failing step's files still come back.
        await File.WriteAllTextAsync(Path.Combine(job.Workspace, "runner-added.txt"), "added-by-runner");
        var step2 = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, """
            cat runner-added.txt; echo
            test ! -e seed.txt && echo seed-still-gone
            echo partial > after-fail.txt
            exit 3
            """)));
        Assert.Equal(3, step2.ExitCode);
        Assert.Contains("added-by-runner", step2.Stdout);
        Assert.Contains("seed-still-gone", step2.Stdout);
        Assert.Equal("partial\n", await File.ReadAllTextAsync(Path.Combine(job.Workspace, "after-fail.txt")));

        // 3. A JavaScript action from _actions, on the node the runner image carries.
        var jsFiles = job.NewFileCommands();
        var js = await job.RunAsync("run_script_step", new JsonObject
        {
            ["entryPointArgs"] = new JsonArray("/__w/_actions/acme/js-action/v1/index.js"),
            ["entryPoint"] = "/__e/node20/bin/node",
            ["environmentVariables"] = new JsonObject { ["GITHUB_OUTPUT"] = FileCommand(jsFiles.Output) },
            ["prependPath"] = new JsonArray(),
            ["workingDirectory"] = $"/__w/{job.Repo}/{job.Repo}",
        });
        Assert.True(js.ExitCode == 0, js.ToString());
        Assert.Contains("js action ran", js.Stdout);
        Assert.StartsWith("node=v", await File.ReadAllTextAsync(jsFiles.Output));
        Assert.Equal("HELLO-FROM-POD\n", await File.ReadAllTextAsync(Path.Combine(job.Workspace, "from-js.txt")));

        // 4. An image action in its own pod: the workspace goes in, what it wrote comes back.
        var imageFiles = job.NewFileCommands();
        var image = await job.RunAsync("run_container_step", ContainerStep(job, cluster.Busybox, null,
            new() { ["GITHUB_OUTPUT"] = "/github/file_commands/" + Path.GetFileName(imageFiles.Output) },
            args: ActionArgs("-c", "echo seen=$(cat a.txt) >> $GITHUB_OUTPUT; echo made-in-container > from-container.txt; echo image action ran"),
            entryPoint: "sh"));
        Assert.True(image.ExitCode == 0, image.ToString());
        Assert.Contains("image action ran", image.Stdout);
        Assert.Equal("seen=hello-from-pod\n", await File.ReadAllTextAsync(imageFiles.Output));
        Assert.Equal("made-in-container\n", await File.ReadAllTextAsync(Path.Combine(job.Workspace, "from-container.txt")));

        // 5. A Dockerfile action from the workspace, built in a no-volume builder pod (new content: never reused).
        var local = Path.Combine(job.Workspace, "my-action");
        Directory.CreateDirectory(local);
        await File.WriteAllTextAsync(Path.Combine(local, "Dockerfile"), $"""
            FROM {cluster.AnonHost}/busybox:test
            LABEL nonce={Guid.NewGuid():N}
            COPY entrypoint.sh /entrypoint.sh
            ENTRYPOINT ["sh", "/entrypoint.sh"]
            """);
        await File.WriteAllTextAsync(Path.Combine(local, "entrypoint.sh"), "echo built=$(cat from-container.txt) >> \"$GITHUB_OUTPUT\"\necho from-dockerfile > from-dockerfile.txt\n");
        var builtFiles = job.NewFileCommands();
        var built = await job.RunAsync("run_container_step", ContainerStep(job, null, Path.Combine(local, "Dockerfile"),
            new() { ["GITHUB_OUTPUT"] = "/github/file_commands/" + Path.GetFileName(builtFiles.Output) }));
        Assert.True(built.ExitCode == 0, built.ToString());
        Assert.Equal("built=made-in-container\n", await File.ReadAllTextAsync(builtFiles.Output));
        Assert.Equal("from-dockerfile\n", await File.ReadAllTextAsync(Path.Combine(job.Workspace, "from-dockerfile.txt")));
        Assert.Empty(Directory.GetDirectories(Path.Combine(job.Work, "_temp"), "shipyard-build-*"));

        // 6. The job pod sees what the container steps wrote.
        var step3 = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "cat from-container.txt from-dockerfile.txt from-js.txt; echo \"job=$JOB_VAR\"\n")));
        Assert.True(step3.ExitCode == 0, step3.ToString());
        Assert.Contains("made-in-container\nfrom-dockerfile\nHELLO-FROM-POD", step3.Stdout);
        Assert.Contains("job=job-value\n", step3.Stdout); // the job container's env, exported by the step

        // Every pod, as Shipyard created it: pod-local volumes only, no node pinned, nothing privileged, no API token.
        var created = new[] { "job", "step", "builder" }.SelectMany(role => recorder.Created(job.RunnerPod, role)).ToList();
        Assert.Equal(4, created.Count); // the job pod, the image and the Dockerfile action's pods, one builder
        Assert.All(created, p =>
        {
            Assert.All(p.Spec.Volumes, v => Assert.True(v.EmptyDir is not null || v.Secret is not null, $"{p.Metadata.Name}: volume {v.Name}"));
            Assert.Null(p.Spec.NodeName);
            Assert.Null(p.Spec.Affinity?.NodeAffinity);
            Assert.False(p.Spec.AutomountServiceAccountToken);
            Assert.NotEqual(true, p.Spec.HostNetwork);
            Assert.All(p.Spec.Containers.Concat(p.Spec.InitContainers ?? []), c => Assert.NotEqual(true, c.SecurityContext?.Privileged));
        });

        var cleanup = await job.RunAsync("cleanup_job", new JsonObject());
        Assert.True(cleanup.ExitCode == 0, cleanup.ToString());
        Assert.Equal(0, await cluster.WaitForNoLabelledAsync(job.RunnerPod, TimeSpan.FromSeconds(30)));
        Assert.False(Directory.Exists(Path.Combine(job.Work, ".shipyard-sync")));
    }

    /// <summary>A no-volume runner whose hook reaches the API server only through <paramref name="proxy"/>, its job pod running.</summary>
    async Task<RunnerJob> PreparedBehindAsync(ApiProxy proxy, string image)
    {
        var job = await RunnerJob.StartAsync(cluster, noVolume: true);
        job.Env["KUBECONFIG"] = proxy.WriteKubeconfig(cluster.KubeConfig, Path.Combine(job.Root, "proxied.kubeconfig"));
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, image)));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        return job;
    }

    [Fact]
    public async Task A_copy_back_cut_mid_way_fails_the_step_and_leaves_no_partial_file()
    {
        await using var proxy = new ApiProxy(new IPEndPoint(IPAddress.Loopback, 6443));
        await using var job = await PreparedBehindAsync(proxy, cluster.Debian);

        // Every connection that carries more than 2 MB from the API server is reset: the 16 MB copy back never arrives whole.
        proxy.CutConnectionsAfter(2_000_000);
        var step = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "head -c 16000000 /dev/urandom > big.bin\necho wrote-big\n")));
        Assert.NotEqual(0, step.ExitCode);
        Assert.True(proxy.CutMidway > 0, "the proxy never cut a transfer");
        var error = Assert.Single(step.ErrorLines);
        Assert.Contains("from pod", error);
        Assert.False(File.Exists(Path.Combine(job.Workspace, "big.bin")));

        proxy.CutConnectionsAfter(long.MaxValue);
        var again = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "ls -l big.bin | wc -l\n")));
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(16_000_000, new FileInfo(Path.Combine(job.Workspace, "big.bin")).Length);
    }

    [Fact]
    public async Task A_push_cut_mid_way_is_sent_again_and_a_push_that_never_arrives_fails_before_the_step_runs()
    {
        await using var proxy = new ApiProxy(new IPEndPoint(IPAddress.Loopback, 6443));
        await using var job = await PreparedBehindAsync(proxy, cluster.Debian);
        var big = new byte[6_000_000];
        Random.Shared.NextBytes(big);
        await File.WriteAllBytesAsync(Path.Combine(job.Workspace, "from-runner.bin"), big);

        // The exec that pushes, starts and follows is cut while it sends: the push goes again on its own, the step runs once.
        proxy.CutUploadsAfter(2_000_000, connections: 1);
        var survived = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo run >> runs.txt; wc -c < from-runner.bin\n")));
        Assert.True(survived.ExitCode == 0, survived.ToString());
        Assert.Equal(1, proxy.CutMidway);
        Assert.Contains("6000000", survived.Stdout);
        Assert.Equal("run\n", await File.ReadAllTextAsync(Path.Combine(job.Workspace, "runs.txt")));

        // Every upload cut: the step fails with one line and its script never starts.
        await File.WriteAllBytesAsync(Path.Combine(job.Workspace, "second.bin"), big);
        proxy.CutUploadsAfter(2_000_000, connections: 100);
        var failed = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo run >> runs.txt\n")));
        Assert.NotEqual(0, failed.ExitCode);
        Assert.Contains("into pod", Assert.Single(failed.ErrorLines));

        proxy.CutUploadsAfter(long.MaxValue, 0);
        var after = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "cat runs.txt; wc -c < second.bin\n")));
        Assert.True(after.ExitCode == 0, after.ToString());
        Assert.Contains("run\n6000000", after.Stdout);
        Assert.Equal("run\n", await File.ReadAllTextAsync(Path.Combine(job.Workspace, "runs.txt")));
    }

    [Theory]
    // Cut mid-step: the follow resumes from the bytes already shown.
    [InlineData(30, 7, 1500)]
    // The step ends while the follow reconnects: the cut follow may run on in the pod and reach the status first;
    // the one that resumes still needs it.
    [InlineData(12, 5, 1000)]
    public async Task A_step_whose_output_stream_is_cut_resumes_where_it_stopped_and_keeps_its_exit_code(int lines, int exit, int cutAfterMs)
    {
        await using var proxy = new ApiProxy(new IPEndPoint(IPAddress.Loopback, 6443));
        await using var job = await PreparedBehindAsync(proxy, cluster.Busybox);

        var run = job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job,
            $"i=1; while [ $i -le {lines} ]; do echo line $i; i=$((i+1)); sleep 0.1; done; echo done > finished.txt; exit {exit}\n")));
        await Task.Delay(cutAfterMs);
        proxy.CutAll();
        var step = await run;
        Assert.True(step.ExitCode == exit, step.ToString());
        var shown = step.Stdout.Split('\n').Where(l => l.StartsWith("line ")).ToList();
        Assert.Equal(Enumerable.Range(1, lines).Select(i => $"line {i}"), shown); // each once, in order
        Assert.Equal("done\n", await File.ReadAllTextAsync(Path.Combine(job.Workspace, "finished.txt")));
    }

    [Fact]
    public async Task Doctor_reports_no_volume_mode_and_the_cluster_admits_its_pods()
    {
        await using var job = await RunnerJob.StartAsync(cluster, noVolume: true);
        var run = await job.RunToolAsync(["doctor", "--json"]);
        var checks = JsonNode.Parse(run.Stdout)!["checks"]!.AsArray().Select(c => c!.AsObject()).ToList();
        string Line(string name) => checks.Single(c => c["check"]!.GetValue<string>() == name).ToJsonString();
        Assert.Contains("novolume", Line("mode"));
        Assert.Contains(cluster.RunnerImage, Line("mode"));
        Assert.Contains("not needed", Line("work claim"));
        Assert.Contains("admitted", Line("admission: job pod"));
        Assert.Contains("admitted", Line("admission: step pod"));
    }
}
