using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.Driver;

/// <summary>
/// Shipyard against the floor the cluster itself sets, measured in the same run: a bare pod start,
/// a bare exec, a run-to-completion pod and a bare builder pod (same image and flags Shipyard uses).
/// Results are ratios, so they hold on a noisy machine.
/// </summary>
public static class Bench
{
    const string Prefix = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_";
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>
    /// The kubelet reports pod status on 1 s PLEG ticks, so a measurement that starts right after a tick
    /// (e.g. right after the previous pod finished) looks a whole tick faster than one that starts later.
    /// A random 0–1 s pause before every measured operation, floor and Shipyard alike, removes that bias.
    /// </summary>
    static Task Jitter() => Task.Delay(Random.Shared.Next(0, 1000));

    sealed record Sample(string Measure, double Seconds, double CpuMs = double.NaN, double RssMb = double.NaN, string Hook = ThisBuild);

    const string ThisBuild = "this build";

    /// <param name="smallExternals">The old case: a 20-byte stand-in node instead of a runner-sized externals tree.</param>
    /// <param name="baselines">Other hook builds measured in the same run against the same floor (name, binary).</param>
    public static async Task<int> RunAsync(int iterations, int concurrency, string outDir, bool smallExternals, IReadOnlyList<(string Name, string Binary)> baselines)
    {
        var cluster = new LocalCluster("shipyard-bench");
        await cluster.CreateNamespaceAsync();
        var samples = new List<Sample>();
        var started = DateTime.UtcNow;
        var loadBefore = LoadAverage();
        var externals = smallExternals ? null : RunnerExternals.Ensure();
        var hooks = new List<(string Name, string Binary)> { (ThisBuild, cluster.HookBinary) };
        hooks.AddRange(baselines);
        try
        {
            var secret = await cluster.CreateRegistrySecretAsync("bench-registry");
            // The hook authenticates as an ARC runner pod does: a ServiceAccount token bound to the documented Role.
            var kubeconfig = await RoleKubeconfig.CreateAsync(cluster, "role.yaml", "bench-runner");
            for (var i = 1; i <= iterations; i++)
            {
                Console.Error.WriteLine($"[bench] iteration {i}/{iterations}");
                samples.AddRange(await FloorAsync(cluster, secret, externals, i));
                // Rotate which build goes first, so none always runs right after the floor.
                foreach (var (name, binary) in hooks.Skip((i - 1) % hooks.Count).Concat(hooks.Take((i - 1) % hooks.Count)))
                {
                    await using var job = await NewJobAsync(cluster, secret, kubeconfig, $"bench-{i}-{hooks.FindIndex(h => h.Name == name)}", externals);
                    job.HookBinary = binary;
                    samples.AddRange((await ShipyardAsync(job, cluster)).Select(s => s with { Hook = name }));
                }
            }
            Console.Error.WriteLine($"[bench] {concurrency} bare pods, then {concurrency} jobs at once");
            var jobs = await Task.WhenAll(Enumerable.Range(1, concurrency).Select(n => NewJobAsync(cluster, secret, kubeconfig, $"bench-k{n}", externals)));
            var concurrentFloor = await ConcurrentFloorAsync(cluster, jobs);
            var concurrent = await ConcurrentAsync(cluster, jobs);
            var loadAfter = LoadAverage();
            var report = Report(samples, concurrentFloor, concurrent, iterations, concurrency, started, externals, loadBefore, loadAfter, hooks);
            Directory.CreateDirectory(outDir);
            await File.WriteAllTextAsync(Path.Combine(outDir, "latest.md"), report);
            await File.WriteAllLinesAsync(Path.Combine(outDir, "latest.tsv"),
                samples.Select(s => string.Join('\t', s.Hook, s.Measure, s.Seconds.ToString("0.000", Inv), s.CpuMs.ToString("0", Inv), s.RssMb.ToString("0.0", Inv))));
            Chart(samples.Where(s => s.Hook == ThisBuild).ToList(), outDir);
            Console.WriteLine(report);
            return concurrent.Errors == 0 ? 0 : 1;
        }
        finally
        {
            await cluster.DeleteNamespaceAsync();
        }
    }

    internal static string LoadAverage() => string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));

    static async Task<RunnerJob> NewJobAsync(LocalCluster cluster, string secret, string kubeconfig, string name, string? externals)
    {
        var job = await RunnerJob.StartAsync(cluster, name, externals: externals); // a fresh work volume, as ARC's ephemeral runners have
        job.MeasureResources = true;
        job.Env["KUBECONFIG"] = kubeconfig;
        job.Env[Prefix + "REGISTRY_HOST_PUSH"] = cluster.PushHost + "/bench";
        job.Env[Prefix + "REGISTRY_HOST_PULL"] = cluster.PullHost + "/bench";
        job.Env[Prefix + "REGISTRY_SECRET_NAME"] = secret;
        // The action builds FROM the private registry, so the builder gets a base-image login (a per-build
        // Secret): the heavier of the two paths, and one that older builds (--baseline) can take too.
        job.Env[Prefix + "BUILDER_SECRET_NAME"] = secret;
        job.Env[Prefix + "BUILDER_IMAGE"] = cluster.KanikoImage;
        return job;
    }

    /// <summary>The benchmark action; a fresh nonce makes its content (so its tag) new: a cold build.</summary>
    static string WriteAction(RunnerJob job, string owner, string nonce)
    {
        var dir = Path.Combine(job.Work, "_actions", owner, "bench-action", "v1");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "Dockerfile"), $"FROM {job.Cluster.PushHost}/busybox:test\nCOPY nonce.txt /nonce.txt\nRUN cat /nonce.txt\nENTRYPOINT [\"true\"]\n");
        File.WriteAllText(Path.Combine(dir, "nonce.txt"), nonce);
        return Path.Combine(dir, "Dockerfile");
    }

    /// <summary>A JavaScript action in the workspace, run by the runner's node as `/__e/node20/bin/node`.</summary>
    static JsonObject JavaScriptAction(RunnerJob job)
    {
        var dir = Path.Combine(job.Workspace, "bench-js");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "index.js"), "console.log('js ok');\n");
        return JavaScriptStep(job, "bench-js", "index.js");
    }

    // ---- the floor ------------------------------------------------------------------------------

    static async Task<List<Sample>> FloorAsync(LocalCluster cluster, string secret, string? externals, int i)
    {
        await using var job = await RunnerJob.StartAsync(cluster, $"floor-{i}", externals: externals);
        var c = cluster.Client;
        var ns = cluster.Namespace;
        var node = cluster.Env["SHIPYARD_TEST_NODE"];
        var result = new List<Sample>();

        await Jitter();
        var sw = Stopwatch.StartNew();
        await c.CreateNamespacedPodAsync(BarePod(cluster, $"floor-pod-{i}"), ns);
        await WatchUntilAsync(cluster, $"floor-pod-{i}", p => p.Status?.Phase == "Running");
        result.Add(new("floor: bare pod start", sw.Elapsed.TotalSeconds));

        await Jitter();
        sw.Restart();
        var exit = await c.NamespacedPodExecAsync($"floor-pod-{i}", ns, "job", ["true"], false, (_, _, _) => Task.CompletedTask, CancellationToken.None);
        if (exit != 0) throw new InvalidOperationException("floor exec failed");
        result.Add(new("floor: bare exec", sw.Elapsed.TotalSeconds));
        await c.DeleteNamespacedPodAsync($"floor-pod-{i}", ns, gracePeriodSeconds: 0);

        // The pod a job needs, created directly: the work PVC at the job container's four mounts.
        await Jitter();
        sw.Restart();
        await c.CreateNamespacedPodAsync(JobShapedPod(cluster, $"floor-job-{i}", $"{job.RunnerPod}-work", null), ns);
        await WatchUntilAsync(cluster, $"floor-job-{i}", p => p.Status?.Phase == "Running");
        result.Add(new(JobShapedFloor, sw.Elapsed.TotalSeconds));
        await c.DeleteNamespacedPodAsync($"floor-job-{i}", ns, gracePeriodSeconds: 0);

        await Jitter();
        sw.Restart();
        await c.CreateNamespacedPodAsync(RunToCompletionPod(cluster, $"floor-run-{i}"), ns);
        await WatchUntilAsync(cluster, $"floor-run-{i}", p => p.Status?.Phase is "Succeeded" or "Failed");
        using (var log = await c.ReadNamespacedPodLogAsync($"floor-run-{i}", ns)) await log.CopyToAsync(Stream.Null);
        result.Add(new("floor: run-to-completion pod", sw.Elapsed.TotalSeconds));
        await c.DeleteNamespacedPodAsync($"floor-run-{i}", ns, gracePeriodSeconds: 0);

        // The same run-to-completion pod, shaped like a step pod: five subPath mounts of the work PVC and env from a Secret.
        await c.CreateNamespacedSecretAsync(new V1Secret { Metadata = new V1ObjectMeta { Name = $"floor-env-{i}" }, StringData = new Dictionary<string, string> { ["X"] = "1" } }, ns);
        await Jitter();
        sw.Restart();
        await c.CreateNamespacedPodAsync(StepShapedPod(cluster, $"floor-step-{i}", $"{job.RunnerPod}-work", $"{job.Repo}/{job.Repo}", $"floor-env-{i}"), ns);
        await WatchUntilAsync(cluster, $"floor-step-{i}", p => p.Status?.Phase is "Succeeded" or "Failed");
        using (var log = await c.ReadNamespacedPodLogAsync($"floor-step-{i}", ns)) await log.CopyToAsync(Stream.Null);
        result.Add(new(StepShapedFloor, sw.Elapsed.TotalSeconds));
        await c.DeleteNamespacedPodAsync($"floor-step-{i}", ns, gracePeriodSeconds: 0);

        var dockerfile = WriteAction(job, "floor", Guid.NewGuid().ToString("N"));
        var contextSub = Path.GetRelativePath(job.Work, Path.GetDirectoryName(dockerfile)!);
        await Jitter();
        sw.Restart();
        await c.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = $"floor-build-{i}" },
            Spec = new V1PodSpec
            {
                NodeName = node, RestartPolicy = "Never", AutomountServiceAccountToken = false,
                Volumes =
                [
                    new V1Volume { Name = "work", PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = $"{job.RunnerPod}-work" } },
                    new V1Volume { Name = "registry", Secret = new V1SecretVolumeSource { SecretName = secret, Items = [new V1KeyToPath { Key = ".dockerconfigjson", Path = "config.json" }] } },
                    new V1Volume { Name = "registry-ca", Secret = new V1SecretVolumeSource { SecretName = secret, Items = [new V1KeyToPath { Key = "ca.crt", Path = "ca.crt" }] } },
                ],
                Containers =
                [
                    new V1Container
                    {
                        Name = "builder", Image = cluster.KanikoImage, Command = ["/kaniko/executor"],
                        Args = ["--context=dir:///workspace", "--dockerfile=Dockerfile", $"--destination={cluster.PushHost}/bench/floor:{i}-{Guid.NewGuid():N}",
                                "--digest-file=/dev/termination-log", $"--registry-certificate={cluster.PushHost}=/shipyard/registry-ca/ca.crt"],
                        VolumeMounts =
                        [
                            new V1VolumeMount { Name = "work", MountPath = "/workspace", SubPath = contextSub, ReadOnlyProperty = true },
                            new V1VolumeMount { Name = "registry", MountPath = "/kaniko/.docker", ReadOnlyProperty = true },
                            new V1VolumeMount { Name = "registry-ca", MountPath = "/shipyard/registry-ca", ReadOnlyProperty = true },
                        ],
                    },
                ],
            },
        }, ns);
        var built = await WatchUntilAsync(cluster, $"floor-build-{i}", p => p.Status?.Phase is "Succeeded" or "Failed");
        using (var log = await c.ReadNamespacedPodLogAsync($"floor-build-{i}", ns)) await log.CopyToAsync(Stream.Null);
        if (built.Status.Phase != "Succeeded") throw new InvalidOperationException("floor build failed");
        result.Add(new("floor: bare builder pod", sw.Elapsed.TotalSeconds));
        await c.DeleteNamespacedPodAsync($"floor-build-{i}", ns, gracePeriodSeconds: 0);
        return result;
    }

    /// <summary>The job image doing nothing, no volumes: the cluster's own pod start.</summary>
    static V1Pod BarePod(LocalCluster cluster, string name) => new()
    {
        Metadata = new V1ObjectMeta { Name = name },
        Spec = new V1PodSpec { NodeName = cluster.Env["SHIPYARD_TEST_NODE"], TerminationGracePeriodSeconds = 0, AutomountServiceAccountToken = false,
            Containers = [new V1Container { Name = "job", Image = cluster.Debian, Command = ["tail", "-f", "/dev/null"] }] },
    };

    /// <summary>A pod that runs `true` and ends, no volumes: the floor of a container step.</summary>
    static V1Pod RunToCompletionPod(LocalCluster cluster, string name) => new()
    {
        Metadata = new V1ObjectMeta { Name = name },
        Spec = new V1PodSpec { NodeName = cluster.Env["SHIPYARD_TEST_NODE"], RestartPolicy = "Never", AutomountServiceAccountToken = false,
            Containers = [new V1Container { Name = "step", Image = cluster.Busybox, Command = ["sh", "-c", "true"] }] },
    };

    static V1Pod StepShapedPod(LocalCluster cluster, string name, string claim, string workspaceSubPath, string envSecret) => new()
    {
        Metadata = new V1ObjectMeta { Name = name },
        Spec = new V1PodSpec
        {
            NodeName = cluster.Env["SHIPYARD_TEST_NODE"], RestartPolicy = "Never", AutomountServiceAccountToken = false,
            Volumes = [new V1Volume { Name = "work", PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = claim } }],
            Containers =
            [
                new V1Container
                {
                    Name = "step", Image = cluster.Busybox, Command = ["sh", "-c", "true"],
                    EnvFrom = [new V1EnvFromSource { SecretRef = new V1SecretEnvSource { Name = envSecret } }],
                    VolumeMounts = new[] { ("/github/workspace", workspaceSubPath), ("/github/home", "_temp/_github_home"), ("/github/workflow", "_temp/_github_workflow"),
                            ("/github/file_commands", "_temp/_runner_file_commands"), ("/github/runner_temp", "_temp") }
                        .Select(m => new V1VolumeMount { Name = "work", MountPath = m.Item1, SubPath = m.Item2 }).ToList(),
                },
            ],
        },
    };

    /// <param name="envSecret">The job pod before #12's last change took its env from a Secret; kept as a concurrent floor to show what that cost.</param>
    static V1Pod JobShapedPod(LocalCluster cluster, string name, string claim, string? envSecret) => new()
    {
        Metadata = new V1ObjectMeta { Name = name },
        Spec = new V1PodSpec
        {
            NodeName = cluster.Env["SHIPYARD_TEST_NODE"], TerminationGracePeriodSeconds = 0, AutomountServiceAccountToken = false,
            Volumes = [new V1Volume { Name = "work", PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = claim } }],
            Containers =
            [
                new V1Container
                {
                    Name = "job", Image = cluster.Debian, Command = ["tail", "-f", "/dev/null"],
                    Env = envSecret is null ? null : [new V1EnvVar { Name = "X", ValueFrom = new V1EnvVarSource { SecretKeyRef = new V1SecretKeySelector { Name = envSecret, Key = "job.X" } } }],
                    VolumeMounts = new[] { ("/__w", ""), ("/__e", "externals"), ("/github/home", "_temp/_github_home"), ("/github/workflow", "_temp/_github_workflow") }
                        .Select(m => new V1VolumeMount { Name = "work", MountPath = m.Item1, SubPath = m.Item2 == "" ? null : m.Item2 }).ToList(),
                },
            ],
        },
    };

    /// <summary>
    /// Until the node runs no container of a pod the API no longer has: pods deleted with grace 0 vanish from the API
    /// at once, while the kubelet still stops their containers (exited ones wait for its once-a-minute GC, harmlessly), through the same rate-limited API client it starts
    /// pods with. Each concurrent phase, floor and Shipyard alike, starts on a quiet node.
    /// </summary>
    static async Task QuietAsync(LocalCluster cluster)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            var listed = (await cluster.Client.ListNamespacedPodAsync(cluster.Namespace)).Items.Select(p => p.Metadata.Name).ToHashSet();
            var psi = new ProcessStartInfo("docker", ["ps", "--filter", $"label=io.kubernetes.pod.namespace={cluster.Namespace}", "--format", "{{.Label \"io.kubernetes.pod.name\"}}"])
                { RedirectStandardOutput = true };
            using var docker = Process.Start(psi)!;
            var onNode = (await docker.StandardOutput.ReadToEndAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
            await docker.WaitForExitAsync();
            if (docker.ExitCode == 0 && onNode.All(listed.Contains)) return;
            await Task.Delay(200);
        }
        Console.Error.WriteLine("[bench] the node still had containers of deleted pods after 60 s; going on");
    }

    static async Task<V1Pod> WatchUntilAsync(LocalCluster cluster, string name, Func<V1Pod, bool> done)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        while (true)
        {
            var list = await cluster.Client.CoreV1.ListNamespacedPodAsync(cluster.Namespace, fieldSelector: $"metadata.name={name}", cancellationToken: cts.Token);
            if (list.Items.FirstOrDefault() is { } p && done(p)) return p;
            await foreach (var (_, pod) in cluster.Client.CoreV1.WatchListNamespacedPodAsync(cluster.Namespace, fieldSelector: $"metadata.name={name}",
                               resourceVersion: list.Metadata.ResourceVersion, cancellationToken: cts.Token))
                if (done(pod)) return pod;
        }
    }

    // ---- Shipyard ---------------------------------------------------------------------------------

    static async Task<List<Sample>> ShipyardAsync(RunnerJob job, LocalCluster cluster)
    {
        var result = new List<Sample>();
        async Task Measure(string measure, string command, JsonNode args)
        {
            await Jitter();
            var run = await job.RunAsync(command, args);
            if (run.ExitCode != 0) throw new InvalidOperationException($"{measure} failed:\n{run}");
            result.Add(new(measure, run.Elapsed.TotalSeconds, run.CpuSeconds * 1000, run.MaxRssKb / 1024.0));
        }
        await Measure("prepare_job", "prepare_job", PrepareJob(JobContainer(job, cluster.Debian)));
        await Measure("run_script_step", "run_script_step", ScriptStep(job, WriteScript(job, "true\n")));
        await Measure("JavaScript step (first in job)", "run_script_step", JavaScriptAction(job));
        await Measure("JavaScript step (second)", "run_script_step", JavaScriptAction(job));
        await Measure("run_container_step (image)", "run_container_step", ContainerStep(job, cluster.Busybox, null, [], ActionArgs("-c", "true"), "sh"));
        var dockerfile = WriteAction(job, "shipyard", Guid.NewGuid().ToString("N"));
        await Measure("run_container_step (Dockerfile, cold)", "run_container_step", ContainerStep(job, null, dockerfile, []));
        await Measure("run_container_step (Dockerfile, warm)", "run_container_step", ContainerStep(job, null, dockerfile, []));
        await Measure("cleanup_job", "cleanup_job", new JsonObject());
        return result;
    }

    sealed record ConcurrentResult(Dictionary<string, List<double>> Seconds, int Errors, List<string> ErrorText, double WallSeconds);

    static void Add(Dictionary<string, List<double>> seconds, string measure, double value)
    {
        lock (seconds) (seconds.TryGetValue(measure, out var l) ? l : seconds[measure] = []).Add(value);
    }

    /// <summary>What the cluster does with K of everything at once: pod starts, execs, run-to-completion pods.</summary>
    static async Task<ConcurrentResult> ConcurrentFloorAsync(LocalCluster cluster, RunnerJob[] jobs)
    {
        var k = jobs.Length;
        var c = cluster.Client;
        var ns = cluster.Namespace;
        var seconds = new Dictionary<string, List<double>>();
        var sw = Stopwatch.StartNew();
        await QuietAsync(cluster);
        await Task.WhenAll(Enumerable.Range(1, k).Select(async n =>
        {
            var t = Stopwatch.StartNew();
            await c.CreateNamespacedPodAsync(BarePod(cluster, $"floor-k-pod-{n}"), ns);
            await WatchUntilAsync(cluster, $"floor-k-pod-{n}", p => p.Status?.Phase == "Running");
            Add(seconds, "floor: bare pod start", t.Elapsed.TotalSeconds);
        }));
        // The same number of job-shaped pods, each on one job's work claim (the jobs run after this, on fresh pods).
        await Task.WhenAll(Enumerable.Range(1, k).Select(n => c.CreateNamespacedSecretAsync(new V1Secret
            { Metadata = new V1ObjectMeta { Name = $"floor-k-jobenv-{n}" }, StringData = new Dictionary<string, string> { ["job.X"] = "1" } }, ns)));
        foreach (var (measure, withSecret) in new[] { (JobShapedFloor, false), (JobShapedWithSecretFloor, true) })
        {
            await QuietAsync(cluster);
            await Task.WhenAll(Enumerable.Range(1, k).Select(async n =>
            {
                var t = Stopwatch.StartNew();
                await c.CreateNamespacedPodAsync(JobShapedPod(cluster, $"floor-k-job-{n}", $"{jobs[n - 1].RunnerPod}-work", withSecret ? $"floor-k-jobenv-{n}" : null), ns);
                await WatchUntilAsync(cluster, $"floor-k-job-{n}", p => p.Status?.Phase == "Running");
                Add(seconds, measure, t.Elapsed.TotalSeconds);
            }));
            await Task.WhenAll(Enumerable.Range(1, k).Select(n => c.DeleteNamespacedPodAsync($"floor-k-job-{n}", ns, gracePeriodSeconds: 0)));
        }
        await QuietAsync(cluster);
        await Task.WhenAll(Enumerable.Range(1, k).Select(async n =>
        {
            var t = Stopwatch.StartNew();
            var exit = await c.NamespacedPodExecAsync($"floor-k-pod-{n}", ns, "job", ["true"], false, (_, _, _) => Task.CompletedTask, CancellationToken.None);
            if (exit != 0) throw new InvalidOperationException("floor exec failed");
            Add(seconds, "floor: bare exec", t.Elapsed.TotalSeconds);
        }));
        // What a first JavaScript step must do on a fresh work volume, K at once: copy the node build it names there, then exec.
        if (jobs.All(j => Directory.Exists(Path.Combine(j.Root, "externals", "node20", "lib"))))
        {
            await QuietAsync(cluster);
            await Task.WhenAll(Enumerable.Range(1, k).Select(async n =>
            {
                var target = Path.Combine(jobs[n - 1].Work, ".floor-node20");
                var t = Stopwatch.StartNew();
                using (var cp = Process.Start("cp", ["-a", Path.Combine(jobs[n - 1].Root, "externals", "node20"), target]))
                {
                    await cp.WaitForExitAsync();
                    if (cp.ExitCode != 0) throw new InvalidOperationException("floor copy failed");
                }
                var exit = await c.NamespacedPodExecAsync($"floor-k-pod-{n}", ns, "job", ["true"], false, (_, _, _) => Task.CompletedTask, CancellationToken.None);
                if (exit != 0) throw new InvalidOperationException("floor exec failed");
                Add(seconds, NodeCopyFloor, t.Elapsed.TotalSeconds);
                Directory.Delete(target, true);
            }));
        }
        await Task.WhenAll(Enumerable.Range(1, k).Select(n => c.DeleteNamespacedPodAsync($"floor-k-pod-{n}", ns, gracePeriodSeconds: 0)));
        await QuietAsync(cluster);
        await Task.WhenAll(Enumerable.Range(1, k).Select(async n =>
        {
            var t = Stopwatch.StartNew();
            await c.CreateNamespacedPodAsync(RunToCompletionPod(cluster, $"floor-k-run-{n}"), ns);
            await WatchUntilAsync(cluster, $"floor-k-run-{n}", p => p.Status?.Phase is "Succeeded" or "Failed");
            using (var log = await c.ReadNamespacedPodLogAsync($"floor-k-run-{n}", ns)) await log.CopyToAsync(Stream.Null);
            Add(seconds, "floor: run-to-completion pod", t.Elapsed.TotalSeconds);
        }));
        await Task.WhenAll(Enumerable.Range(1, k).Select(n => c.DeleteNamespacedPodAsync($"floor-k-run-{n}", ns, gracePeriodSeconds: 0)));
        await QuietAsync(cluster);
        // The same, shaped like a step pod (each on one job's work claim).
        await Task.WhenAll(Enumerable.Range(1, k).Select(n => c.CreateNamespacedSecretAsync(new V1Secret
            { Metadata = new V1ObjectMeta { Name = $"floor-k-stepenv-{n}" }, StringData = new Dictionary<string, string> { ["X"] = "1" } }, ns)));
        await Task.WhenAll(Enumerable.Range(1, k).Select(async n =>
        {
            var t = Stopwatch.StartNew();
            await c.CreateNamespacedPodAsync(StepShapedPod(cluster, $"floor-k-step-{n}", $"{jobs[n - 1].RunnerPod}-work", $"{jobs[n - 1].Repo}/{jobs[n - 1].Repo}", $"floor-k-stepenv-{n}"), ns);
            await WatchUntilAsync(cluster, $"floor-k-step-{n}", p => p.Status?.Phase is "Succeeded" or "Failed");
            using (var log = await c.ReadNamespacedPodLogAsync($"floor-k-step-{n}", ns)) await log.CopyToAsync(Stream.Null);
            Add(seconds, StepShapedFloor, t.Elapsed.TotalSeconds);
        }));
        await Task.WhenAll(Enumerable.Range(1, k).Select(n => c.DeleteNamespacedPodAsync($"floor-k-step-{n}", ns, gracePeriodSeconds: 0)));
        return new ConcurrentResult(seconds, 0, [], sw.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// K jobs, command by command: all K prepare_jobs at once, then all K script steps, and so on, so each
    /// command's p50/p95 is read against the floor of K of the same kind of thing at once.
    /// </summary>
    static async Task<ConcurrentResult> ConcurrentAsync(LocalCluster cluster, RunnerJob[] jobs)
    {
        var seconds = new Dictionary<string, List<double>>();
        var errors = new List<string>();
        var failed = new HashSet<RunnerJob>();
        // One action for all jobs, built by the first job before the others' step: every other Dockerfile step is the warm path.
        var nonce = Guid.NewGuid().ToString("N");
        var sw = Stopwatch.StartNew();
        async Task AllAtOnce(string measure, string command, Func<RunnerJob, JsonNode> args)
        {
            await QuietAsync(cluster);
            await Task.WhenAll(jobs.Where(j => !failed.Contains(j)).Select(async job =>
            {
                try
                {
                    var run = await job.RunAsync(command, args(job));
                    if (run.ExitCode != 0) throw new InvalidOperationException($"{job.RunnerPod} {measure} exit {run.ExitCode}: {run.ErrorLines.FirstOrDefault()}");
                    Add(seconds, measure, run.Elapsed.TotalSeconds);
                }
                catch (Exception e)
                {
                    lock (errors) { errors.Add(e.Message.Split('\n')[0]); failed.Add(job); }
                }
            }));
        }
        await AllAtOnce("prepare_job", "prepare_job", job => PrepareJob(JobContainer(job, cluster.Debian)));
        await AllAtOnce("run_script_step", "run_script_step", job => ScriptStep(job, WriteScript(job, "true\n")));
        await AllAtOnce("JavaScript step (first in job)", "run_script_step", JavaScriptAction);
        await AllAtOnce("run_container_step (image)", "run_container_step", job => ContainerStep(job, cluster.Busybox, null, [], ActionArgs("-c", "true"), "sh"));
        var first = await jobs[0].RunAsync("run_container_step", ContainerStep(jobs[0], null, WriteAction(jobs[0], "concurrent", nonce), []));
        if (first.ExitCode != 0) errors.Add($"{jobs[0].RunnerPod} building the shared action exit {first.ExitCode}: {first.ErrorLines.FirstOrDefault()}");
        await AllAtOnce("run_container_step (Dockerfile, warm)", "run_container_step", job => ContainerStep(job, null, WriteAction(job, "concurrent", nonce), []));
        await AllAtOnce("cleanup_job", "cleanup_job", _ => new JsonObject());
        var wall = sw.Elapsed.TotalSeconds;
        foreach (var job in jobs) await job.DisposeAsync();
        return new ConcurrentResult(seconds, errors.Count, errors, wall);
    }

    // ---- report -----------------------------------------------------------------------------------

    internal static double Median(IEnumerable<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length == 0 ? double.NaN : s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    static double Percentile(IEnumerable<double> xs, double p)
    {
        var s = xs.Order().ToArray();
        return s.Length == 0 ? double.NaN : s[Math.Min(s.Length - 1, (int)Math.Ceiling(p * s.Length) - 1)];
    }

    /// <summary>Each Shipyard measure, its floor and the target ratio from the benchmark issues.</summary>
    static readonly (string Measure, string Floor, double Target, string Label)[] Ratios =
    [
        ("prepare_job", "floor: bare pod start", 1.20, "prepare_job"),
        ("prepare_job", JobShapedFloor, 1.10, "prepare_job vs job-shaped pod"),
        ("run_script_step", "floor: bare exec", 1.10, "script step"),
        ("run_container_step (image)", "floor: run-to-completion pod", 1.10, "container (image)"),
        ("run_container_step (image)", StepShapedFloor, 1.10, "container (image) vs step-shaped pod"),
        ("run_container_step (Dockerfile, cold)", "floor: bare builder pod", 1.15, "container (cold)"),
        ("run_container_step (Dockerfile, warm)", "run_container_step (image)", 1.30, "container (warm)"),
    ];

    /// <summary>Hook CPU targets per call (ms), from the job-start issue.</summary>
    static readonly Dictionary<string, double> CpuTargets = new() { ["prepare_job"] = 150, ["run_script_step"] = 50 };

    const string NodeCopyFloor = "floor: cp -a of the node build onto the work volume, then exec";
    const string JobShapedFloor = "floor: job-shaped pod (work PVC mounts)";
    const string JobShapedWithSecretFloor = "floor: job-shaped pod with env from a Secret";
    const string StepShapedFloor = "floor: step-shaped pod (PVC mounts + env Secret)";

    /// <summary>Each concurrent command and the concurrent floor it is read against.</summary>
    static readonly Dictionary<string, string[]> ConcurrentFloors = new()
    {
        ["prepare_job"] = ["floor: bare pod start", JobShapedFloor, JobShapedWithSecretFloor],
        ["run_script_step"] = ["floor: bare exec"],
        ["JavaScript step (first in job)"] = ["floor: bare exec", NodeCopyFloor],
        ["run_container_step (image)"] = ["floor: run-to-completion pod", StepShapedFloor],
        ["run_container_step (Dockerfile, warm)"] = ["floor: run-to-completion pod", StepShapedFloor],
    };

    static string Report(List<Sample> samples, ConcurrentResult floorK, ConcurrentResult concurrent, int iterations, int k, DateTime started,
        string? externals, string loadBefore, string loadAfter, List<(string Name, string Binary)> hooks)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# Shipyard benchmark ({started:yyyy-MM-dd HH:mm} UTC, {iterations} iterations, {Environment.ProcessorCount} cores)");
        sb.AppendLine();
        sb.AppendLine(externals is null
            ? "Externals: the small stand-in (`--small-externals`). "
            : $"Externals: runner-sized ({ExternalsShape(externals)}). ");
        sb.AppendLine("The hook authenticates with a ServiceAccount token bound to `deploy/role.yaml`, as in an ARC runner pod. ");
        sb.AppendLine($"Every job has a fresh work volume. Load average (1/5/15 min) before: {loadBefore}; after: {loadAfter}.");
        sb.AppendLine();
        sb.AppendLine("Wall time in seconds; hook CPU (user+sys) and max RSS from /usr/bin/time around the hook process.");
        sb.AppendLine();
        sb.AppendLine("| measure | median s | min s | max s | ratio to floor (target) | hook CPU ms, median (target) | max RSS MB |");
        sb.AppendLine("|---|---:|---:|---:|---|---:|---:|");
        var mine = samples.Where(s => s.Hook == ThisBuild).ToList();
        var medians = mine.GroupBy(s => s.Measure).ToDictionary(g => g.Key, g => Median(g.Select(s => s.Seconds)));
        foreach (var g in mine.GroupBy(s => s.Measure))
        {
            var secs = g.Select(s => s.Seconds).ToList();
            var ratioText = string.Join("<br>", Ratios.Where(r => r.Measure == g.Key).Select(ratio =>
                $"{medians[g.Key] / medians[ratio.Floor]:0.00} × {ratio.Floor.Replace("floor: ", "")} ({(medians[g.Key] / medians[ratio.Floor] <= ratio.Target ? "≤" : "**>**")} {ratio.Target:0.00})"));
            var cpu = g.Select(s => s.CpuMs).Where(double.IsFinite).ToList();
            var rss = g.Select(s => s.RssMb).Where(double.IsFinite).ToList();
            var cpuText = cpu.Count == 0 ? "" : Median(cpu).ToString("0", Inv);
            if (cpu.Count > 0 && CpuTargets.TryGetValue(g.Key, out var cpuTarget)) cpuText += $" ({(Median(cpu) <= cpuTarget ? "≤" : "**>**")} {cpuTarget:0})";
            sb.AppendLine($"| {g.Key} | {Median(secs):0.00} | {secs.Min():0.00} | {secs.Max():0.00} | {ratioText} | {cpuText} | {(rss.Count > 0 ? rss.Max().ToString("0.0", Inv) : "")} |");
        }
        if (medians.TryGetValue("JavaScript step (first in job)", out var first) && medians.TryGetValue("JavaScript step (second)", out var second))
        {
            var oneOff = first - second;
            sb.AppendLine();
            sb.AppendLine($"First JavaScript step of a job: {first:0.00} s = plain script step {medians["run_script_step"]:0.00} s + node start " +
                          $"{second - medians["run_script_step"]:0.00} s + one-off cost of its node build {oneOff:0.00} s " +
                          $"(first − second JavaScript step; target ≤ 1.00 s: {(oneOff <= 1.0 ? "met" : "**not met**")}).");
        }

        foreach (var (name, _) in hooks.Skip(1))
        {
            var theirs = samples.Where(s => s.Hook == name).GroupBy(s => s.Measure).ToDictionary(g => g.Key, g => g.ToList());
            sb.AppendLine();
            sb.AppendLine($"## This build against {name}, same floor, same run");
            sb.AppendLine();
            sb.AppendLine($"| measure | this build median s | {name} median s | change | this build CPU ms | {name} CPU ms |");
            sb.AppendLine("|---|---:|---:|---:|---:|---:|");
            foreach (var g in mine.GroupBy(s => s.Measure))
            {
                if (!theirs.TryGetValue(g.Key, out var other)) continue;
                var a = Median(g.Select(s => s.Seconds));
                var b = Median(other.Select(s => s.Seconds));
                var cpuA = g.Select(s => s.CpuMs).Where(double.IsFinite).ToList();
                var cpuB = other.Select(s => s.CpuMs).Where(double.IsFinite).ToList();
                sb.AppendLine($"| {g.Key} | {a:0.00} | {b:0.00} | {(a / b - 1) * 100:+0;-0}% | {(cpuA.Count > 0 ? Median(cpuA).ToString("0", Inv) : "")} | {(cpuB.Count > 0 ? Median(cpuB).ToString("0", Inv) : "")} |");
            }
        }

        sb.AppendLine();
        sb.AppendLine($"## {k} jobs at once, command by command (all {k} prepare_jobs, then all {k} script steps, …; Dockerfile step warm): {concurrent.WallSeconds:0.0} s wall, {concurrent.Errors} errors");
        sb.AppendLine();
        sb.AppendLine($"Read against the concurrent floor: {k} bare pods started at once, then {k} job-shaped pods (without, then with, env from a Secret), {k} execs, {k} copies of the node build (`cp -a`) each followed by an exec (large externals only), {k} run-to-completion pods, {k} step-shaped pods ({floorK.WallSeconds:0.0} s). Every phase, floor and Shipyard alike, starts once the node has torn down the pods of the one before.");
        sb.AppendLine();
        sb.AppendLine("| command | p50 s | p95 s | concurrent floor | floor p50 s | floor p95 s | p95 ratio (target) |");
        sb.AppendLine("|---|---:|---:|---|---:|---:|---|");
        foreach (var (m, xs) in concurrent.Seconds)
        {
            var line = $"| {m} | {Percentile(xs, 0.5):0.00} | {Percentile(xs, 0.95):0.00} |";
            var floors = ConcurrentFloors.GetValueOrDefault(m, []).Where(floorK.Seconds.ContainsKey).ToList();
            if (floors.Count == 0) { sb.AppendLine(line + " | | | |"); continue; }
            foreach (var f in floors)
            {
                var fs = floorK.Seconds[f];
                var ratio = Percentile(xs, 0.95) / Percentile(fs, 0.95);
                sb.AppendLine($"{(f == floors[0] ? line : "| | | |")} {f.Replace("floor: ", "")} | {Percentile(fs, 0.5):0.00} | {Percentile(fs, 0.95):0.00} | {ratio:0.00} ({(ratio <= 1.2 ? "≤" : "**>**")} 1.20) |");
            }
        }
        foreach (var e in concurrent.ErrorText) sb.AppendLine($"\nerror: {e}");
        return sb.ToString();
    }

    static string ExternalsShape(string root)
    {
        var files = new DirectoryInfo(root).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }).ToList();
        return $"{string.Join(", ", RunnerExternals.Builds)}; {files.Sum(f => f.LinkTarget is null ? f.Length : 0) / 1e6:0} MB in {files.Count} files";
    }

    /// <summary>latest.png: each Shipyard measure's median as a ratio of its floor, against its target.</summary>
    static void Chart(List<Sample> samples, string outDir)
    {
        var medians = samples.GroupBy(s => s.Measure).ToDictionary(g => g.Key, g => Median(g.Select(s => s.Seconds)));
        var data = Path.Combine(outDir, "ratios.dat");
        File.WriteAllLines(data, Ratios.Select(r =>
            $"\"{r.Label.Replace(" vs ", "\\n vs ")}\" {(medians[r.Measure] / medians[r.Floor]).ToString("0.000", Inv)} {r.Target.ToString("0.00", Inv)}"));
        var script = $"""
            set terminal pngcairo size 1000,440 font "sans,10"
            set output "{Path.Combine(outDir, "latest.png")}"
            set title "Shipyard / cluster floor (median of runs; lower is better, bars under the line meet the target)"
            set style data histogram
            set style fill solid 0.8 border -1
            set boxwidth 0.6
            set bmargin 5
            set yrange [0:*]
            set ylabel "ratio to floor"
            set grid ytics
            set xtics noenhanced
            plot "{data}" using 2:xtic(1) title "Shipyard / floor" lc rgb "#3b7dd8", "" using 0:3 with points title "target" lc rgb "#d83b3b" pt 7 ps 2
            """;
        var gp = Path.Combine(outDir, "chart.gp");
        File.WriteAllText(gp, script);
        try
        {
            using var p = Process.Start(new ProcessStartInfo("gnuplot", [gp]) { RedirectStandardError = true })!;
            p.WaitForExit();
            if (p.ExitCode != 0) Console.Error.WriteLine($"[bench] gnuplot failed: {p.StandardError.ReadToEnd()}");
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Console.Error.WriteLine("[bench] gnuplot is not installed; no chart (bench/run installs it).");
        }
        finally
        {
            File.Delete(gp);
            File.Delete(data);
        }
    }
}
