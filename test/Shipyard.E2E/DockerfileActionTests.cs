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
            FROM {cluster.AnonHost}/busybox:test
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
        // The builder writes an OCI layout and pushes nothing; Shipyard pushes, so the pod holds no Secret at all.
        Assert.Contains("--no-push", builderArgs);
        Assert.Contains("--oci-layout-path=/shipyard/out", builderArgs);
        Assert.DoesNotContain(builderArgs, a => a.StartsWith("--destination"));
        Assert.DoesNotContain(builder.Spec.Volumes, v => v.Secret is not null || v.Projected is not null);
        Assert.Contains(builderArgs, a => a.StartsWith("--label=dev.shipyard.content-hash="));
        Assert.Contains($"Pushed {cluster.PushHost}/actions/acme-hello-action:", run.Stdout);
        Assert.NotEqual(true, builder.Spec.Containers[0].SecurityContext?.Privileged);
        Assert.False(builder.Spec.AutomountServiceAccountToken);
        // Bounded: on the runner's architecture, within the build timeout on the server too, with requests and limits.
        Assert.Equal("amd64", builder.Spec.NodeSelector["kubernetes.io/arch"]);
        Assert.Equal(3600, builder.Spec.ActiveDeadlineSeconds);
        Assert.Equal("4Gi", builder.Spec.Containers[0].Resources.Limits["memory"].ToString());
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
        Assert.Equal(1, await cluster.CountLabelledAsync(job.RunnerPod)); // only the job pod is left
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
            FROM {cluster.AnonHost}/busybox:test
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

    [Theory]
    [InlineData("kaniko")]
    [InlineData("buildah")]
    public async Task A_RUN_line_finds_no_registry_credential_and_the_image_is_still_pushed_and_run_by_digest(string builderKind)
    {
        await using var recorder = await PodRecorder.StartAsync(cluster);
        await using var job = await JobWithRegistryAsync(builderKind);
        var password = cluster.Env["SHIPYARD_TEST_REGISTRY_PASSWORD"];
        var basic = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{cluster.Env["SHIPYARD_TEST_REGISTRY_USER"]}:{password}"));
        var dir = Path.Combine(job.Work, "_actions", "thief", "steal-action", "v1");
        Directory.CreateDirectory(dir);
        // The secret is searched for in halves joined by the shell, so the Dockerfile itself never holds it.
        File.WriteAllText(Path.Combine(dir, "Dockerfile"), $$"""
            FROM {{cluster.AnonHost}}/busybox:test
            RUN echo {{Guid.NewGuid():N}}; a='{{password[..8]}}'; b='{{password[8..]}}'; c='{{basic[..8]}}'; d='{{basic[8..]}}'; \
                find / \( -path /proc -o -path /sys \) -prune -o -print > /tmp/seen; \
                echo "searched $(wc -l < /tmp/seen) paths"; env | sort; ls -la /kaniko/.docker /shipyard 2>&1; \
                if env | grep -q -F -e "$a$b" -e "$c$d"; then echo "STO""LEN from env"; fi; \
                find / \( -path /proc -o -path /sys \) -prune -o -type f -exec grep -l -s -F -e "$a$b" -e "$c$d" {} + > /tmp/found; \
                if [ -s /tmp/found ]; then echo "STO""LEN from files: $(cat /tmp/found)"; fi; \
                echo "builder root: $(ls -A /proc/1/root/ 2>&1 | tr '\n' ' ')"; ls -la /proc/1/root/kaniko/.docker /proc/1/root/shipyard/registry 2>&1; \
                if grep -r -l -s -F -e "$a$b" -e "$c$d" /proc/1/root/kaniko /proc/1/root/shipyard /proc/1/root/workspace /proc/1/root/run/secrets; then echo "STO""LEN from the builder"; fi; \
                echo search-done
            ENTRYPOINT ["sh", "-c", "echo ran-by-digest"]
            """);
        var run = await job.RunAsync("run_container_step", ContainerStep(job, null, Path.Combine(dir, "Dockerfile"), new()));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("search-done", run.Stdout);
        Assert.Matches(@"searched [0-9]{3,} paths", run.Stdout);
        Assert.DoesNotContain("STOLEN", run.Stdout);
        Assert.DoesNotContain(password, run.Stdout.Replace($"::add-mask::{password}", "") + run.Stderr); // masked, never printed
        Assert.Contains("ran-by-digest", run.Stdout);
        var builder = Assert.Single(recorder.Created(job.RunnerPod, "builder"));
        Assert.DoesNotContain(builder.Spec.Volumes, v => v.Secret is not null || v.Projected is not null);
        Assert.DoesNotContain(builder.Spec.Containers[0].Env ?? [], e => e.ValueFrom is not null);
        var image = Assert.Single(recorder.Created(job.RunnerPod, "step")).Spec.Containers[0].Image;
        Assert.Matches($"^{System.Text.RegularExpressions.Regex.Escape(cluster.PullHost)}/actions/thief-steal-action@sha256:[0-9a-f]{{64}}$", image);
        // The digest is the one Shipyard pushed and printed.
        Assert.Contains(image[(image.IndexOf('@') + 1)..], run.Stdout);
        Assert.Empty(Directory.EnumerateDirectories(Path.Combine(job.Work, "_temp"), "shipyard-build-*"));
    }

    [Fact]
    public async Task A_foreign_image_under_the_computed_tag_is_rebuilt_with_a_warning()
    {
        await using var recorder = await PodRecorder.StartAsync(cluster);
        await using var job = await JobWithRegistryAsync();
        var nonce = Guid.NewGuid().ToString("N");
        var dockerfile = WriteAction(job, "foreign", nonce);
        var (first, _) = await RunActionAsync(job, dockerfile);
        Assert.True(first.ExitCode == 0, first.ToString());
        var tag = System.Text.RegularExpressions.Regex.Match(first.Stdout, @"Pushed [^ ]+/actions/foreign-hello-action:([0-9a-f]+) ").Groups[1].Value;
        Assert.NotEmpty(tag);

        // Someone with push rights puts another image under that tag.
        var docker = new DockerCli(Path.Combine(cluster.Scratch, "docker-" + nonce));
        var target = $"{cluster.PullHost}/actions/foreign-hello-action:{tag}";
        await docker.RunAsync($"login -u {cluster.Env["SHIPYARD_TEST_REGISTRY_USER"]} --password-stdin {cluster.PullHost}", cluster.Env["SHIPYARD_TEST_REGISTRY_PASSWORD"]);
        await docker.RunAsync($"tag {cluster.Busybox} {target}");
        await docker.RunAsync($"push -q {target}");
        await docker.RunAsync($"rmi {target}");

        var (again, output) = await RunActionAsync(job, dockerfile, "again");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Contains($"foreign-hello-action:{tag} holds an image Shipyard did not build for this content", again.Stdout);
        Assert.Contains("::warning::", again.Stdout);
        Assert.Equal(2, recorder.Created(job.RunnerPod, "builder").Count);
        Assert.Equal($"greeting=hello again from {nonce}\n", output);
    }

    [Fact]
    public async Task A_wrong_registry_password_fails_in_seconds_with_one_line_naming_the_host_and_status()
    {
        await using var recorder = await PodRecorder.StartAsync(cluster);
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env[Prefix + "REGISTRY_HOST_PUSH"] = cluster.PushHost + "/actions";
        job.Env[Prefix + "REGISTRY_HOST_PULL"] = cluster.PullHost + "/actions";
        job.Env[Prefix + "REGISTRY_SECRET_NAME"] = await cluster.CreateRegistrySecretAsync($"{job.RunnerPod}-bad-login", password: "not-the-password-x1");
        job.Env[Prefix + "BUILDER_IMAGE"] = cluster.KanikoImage;
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var started = DateTime.UtcNow;
        var (run, _) = await RunActionAsync(job, WriteAction(job, "badlogin", Guid.NewGuid().ToString("N")));
        Assert.NotEqual(0, run.ExitCode);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(15), $"took {DateTime.UtcNow - started}");
        var error = Assert.Single(run.ErrorLines);
        Assert.Contains($"authentication failed on the push host {cluster.PushHost} (401 Unauthorized)", error, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("not-the-password-x1", run.Stdout.Replace("::add-mask::not-the-password-x1", "") + run.Stderr);
        Assert.Empty(recorder.Created(job.RunnerPod, "builder"));
        Assert.Empty(Directory.EnumerateDirectories(Path.Combine(job.Work, "_temp"), "shipyard-build-*"));
    }

    [Fact]
    public async Task An_unreachable_registry_fails_with_one_line_and_builds_nothing()
    {
        await using var recorder = await PodRecorder.StartAsync(cluster);
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env[Prefix + "REGISTRY_HOST"] = "127.0.0.1:1/actions"; // nothing listens there
        job.Env[Prefix + "REGISTRY_SECRET_NAME"] = await cluster.CreateRegistrySecretAsync($"{job.RunnerPod}-registry-login");
        job.Env[Prefix + "BUILDER_IMAGE"] = cluster.KanikoImage;
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);
        var (run, _) = await RunActionAsync(job, WriteAction(job, "unreachable", Guid.NewGuid().ToString("N")));
        Assert.NotEqual(0, run.ExitCode);
        var error = Assert.Single(run.ErrorLines);
        Assert.Contains("Cannot reach the push host 127.0.0.1:1", error);
        Assert.Empty(recorder.Created(job.RunnerPod, "builder"));
    }
}
