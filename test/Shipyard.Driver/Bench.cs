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

    sealed record Sample(string Measure, double Seconds, double CpuMs = double.NaN, double RssMb = double.NaN);

    public static async Task<int> RunAsync(int iterations, int concurrency, string outDir)
    {
        var cluster = new LocalCluster("shipyard-bench");
        await cluster.CreateNamespaceAsync();
        var samples = new List<Sample>();
        var started = DateTime.UtcNow;
        try
        {
            var secret = await cluster.CreateRegistrySecretAsync("bench-registry");
            for (var i = 1; i <= iterations; i++)
            {
                Console.Error.WriteLine($"[bench] iteration {i}/{iterations}");
                await using var job = await NewJobAsync(cluster, secret, $"bench-{i}");
                samples.AddRange(await FloorAsync(cluster, job, secret, i));
                samples.AddRange(await ShipyardAsync(job, cluster));
            }
            Console.Error.WriteLine($"[bench] {concurrency} jobs at once");
            var concurrent = await ConcurrentAsync(cluster, secret, concurrency);
            var report = Report(samples, concurrent, iterations, concurrency, started);
            Directory.CreateDirectory(outDir);
            await File.WriteAllTextAsync(Path.Combine(outDir, "latest.md"), report);
            await File.WriteAllLinesAsync(Path.Combine(outDir, "latest.tsv"),
                samples.Select(s => string.Join('\t', s.Measure, s.Seconds.ToString("0.000", Inv), s.CpuMs.ToString("0", Inv), s.RssMb.ToString("0.0", Inv))));
            Chart(samples, outDir);
            Console.WriteLine(report);
            return concurrent.Errors == 0 ? 0 : 1;
        }
        finally
        {
            await cluster.DeleteNamespaceAsync();
        }
    }

    static async Task<RunnerJob> NewJobAsync(LocalCluster cluster, string secret, string name)
    {
        var job = await RunnerJob.StartAsync(cluster, name);
        job.MeasureResources = true;
        job.Env[Prefix + "REGISTRY_HOST_PUSH"] = cluster.PushHost + "/bench";
        job.Env[Prefix + "REGISTRY_HOST_PULL"] = cluster.PullHost + "/bench";
        job.Env[Prefix + "REGISTRY_SECRET_NAME"] = secret;
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

    // ---- the floor ------------------------------------------------------------------------------

    static async Task<List<Sample>> FloorAsync(LocalCluster cluster, RunnerJob job, string secret, int i)
    {
        var c = cluster.Client;
        var ns = cluster.Namespace;
        var node = cluster.Env["SHIPYARD_TEST_NODE"];
        var result = new List<Sample>();

        await Jitter();
        var sw = Stopwatch.StartNew();
        await c.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = $"floor-pod-{i}" },
            Spec = new V1PodSpec { NodeName = node, TerminationGracePeriodSeconds = 0, AutomountServiceAccountToken = false,
                Containers = [new V1Container { Name = "job", Image = cluster.Busybox, Command = ["tail", "-f", "/dev/null"] }] },
        }, ns);
        await WatchUntilAsync(cluster, $"floor-pod-{i}", p => p.Status?.Phase == "Running");
        result.Add(new("floor: bare pod start", sw.Elapsed.TotalSeconds));

        await Jitter();
        sw.Restart();
        var exit = await c.NamespacedPodExecAsync($"floor-pod-{i}", ns, "job", ["true"], false, (_, _, _) => Task.CompletedTask, CancellationToken.None);
        if (exit != 0) throw new InvalidOperationException("floor exec failed");
        result.Add(new("floor: bare exec", sw.Elapsed.TotalSeconds));
        await c.DeleteNamespacedPodAsync($"floor-pod-{i}", ns, gracePeriodSeconds: 0);

        await Jitter();
        sw.Restart();
        await c.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = $"floor-run-{i}" },
            Spec = new V1PodSpec { NodeName = node, RestartPolicy = "Never", AutomountServiceAccountToken = false,
                Containers = [new V1Container { Name = "step", Image = cluster.Busybox, Command = ["sh", "-c", "true"] }] },
        }, ns);
        await WatchUntilAsync(cluster, $"floor-run-{i}", p => p.Status?.Phase is "Succeeded" or "Failed");
        using (var log = await c.ReadNamespacedPodLogAsync($"floor-run-{i}", ns)) await log.CopyToAsync(Stream.Null);
        result.Add(new("floor: run-to-completion pod", sw.Elapsed.TotalSeconds));
        await c.DeleteNamespacedPodAsync($"floor-run-{i}", ns, gracePeriodSeconds: 0);

        // The same run-to-completion pod, shaped like a step pod: five subPath mounts of the work PVC and env from a Secret.
        await c.CreateNamespacedSecretAsync(new V1Secret { Metadata = new V1ObjectMeta { Name = $"floor-env-{i}" }, StringData = new Dictionary<string, string> { ["X"] = "1" } }, ns);
        await Jitter();
        sw.Restart();
        await c.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = $"floor-step-{i}" },
            Spec = new V1PodSpec
            {
                NodeName = node, RestartPolicy = "Never", AutomountServiceAccountToken = false,
                Volumes = [new V1Volume { Name = "work", PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = $"{job.RunnerPod}-work" } }],
                Containers =
                [
                    new V1Container
                    {
                        Name = "step", Image = cluster.Busybox, Command = ["sh", "-c", "true"],
                        EnvFrom = [new V1EnvFromSource { SecretRef = new V1SecretEnvSource { Name = $"floor-env-{i}" } }],
                        VolumeMounts = new[] { ("/github/workspace", $"{job.Repo}/{job.Repo}"), ("/github/home", "_temp/_github_home"), ("/github/workflow", "_temp/_github_workflow"),
                                ("/github/file_commands", "_temp/_runner_file_commands"), ("/github/runner_temp", "_temp") }
                            .Select(m => new V1VolumeMount { Name = "work", MountPath = m.Item1, SubPath = m.Item2 }).ToList(),
                    },
                ],
            },
        }, ns);
        await WatchUntilAsync(cluster, $"floor-step-{i}", p => p.Status?.Phase is "Succeeded" or "Failed");
        using (var log = await c.ReadNamespacedPodLogAsync($"floor-step-{i}", ns)) await log.CopyToAsync(Stream.Null);
        result.Add(new("floor: step-shaped pod (PVC mounts + env Secret)", sw.Elapsed.TotalSeconds));
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
        await Measure("prepare_job", "prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)));
        await Measure("run_script_step", "run_script_step", ScriptStep(job, WriteScript(job, "true\n")));
        await Measure("run_container_step (image)", "run_container_step", ContainerStep(job, cluster.Busybox, null, [], ActionArgs("-c", "true"), "sh"));
        var dockerfile = WriteAction(job, "shipyard", Guid.NewGuid().ToString("N"));
        await Measure("run_container_step (Dockerfile, cold)", "run_container_step", ContainerStep(job, null, dockerfile, []));
        await Measure("run_container_step (Dockerfile, warm)", "run_container_step", ContainerStep(job, null, dockerfile, []));
        await Measure("cleanup_job", "cleanup_job", new JsonObject());
        return result;
    }

    sealed record ConcurrentResult(Dictionary<string, List<double>> Seconds, int Errors, List<string> ErrorText, double WallSeconds);

    static async Task<ConcurrentResult> ConcurrentAsync(LocalCluster cluster, string secret, int k)
    {
        var seconds = new Dictionary<string, List<double>>();
        var errors = new List<string>();
        // One action built beforehand, so every job's Dockerfile step is the warm path.
        var nonce = Guid.NewGuid().ToString("N");
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(1, k).Select(async n =>
        {
            try
            {
                await using var job = await NewJobAsync(cluster, secret, $"bench-k{n}");
                async Task Measure(string measure, string command, JsonNode args)
                {
                    var run = await job.RunAsync(command, args);
                    if (run.ExitCode != 0) throw new InvalidOperationException($"{job.RunnerPod} {measure} exit {run.ExitCode}: {run.ErrorLines.FirstOrDefault()}");
                    lock (seconds) (seconds.TryGetValue(measure, out var l) ? l : seconds[measure] = []).Add(run.Elapsed.TotalSeconds);
                }
                await Measure("prepare_job", "prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)));
                await Measure("run_script_step", "run_script_step", ScriptStep(job, WriteScript(job, "true\n")));
                await Measure("run_container_step (image)", "run_container_step", ContainerStep(job, cluster.Busybox, null, [], ActionArgs("-c", "true"), "sh"));
                await Measure("run_container_step (Dockerfile)", "run_container_step", ContainerStep(job, null, WriteAction(job, "concurrent", nonce), []));
                await Measure("cleanup_job", "cleanup_job", new JsonObject());
            }
            catch (Exception e)
            {
                lock (errors) errors.Add(e.Message.Split('\n')[0]);
            }
        }));
        return new ConcurrentResult(seconds, errors.Count, errors, sw.Elapsed.TotalSeconds);
    }

    // ---- report -----------------------------------------------------------------------------------

    static double Median(IEnumerable<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length == 0 ? double.NaN : s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    static double Percentile(IEnumerable<double> xs, double p)
    {
        var s = xs.Order().ToArray();
        return s.Length == 0 ? double.NaN : s[Math.Min(s.Length - 1, (int)Math.Ceiling(p * s.Length) - 1)];
    }

    /// <summary>Each Shipyard measure, its floor and the target ratio from the benchmark issue.</summary>
    static readonly (string Measure, string Floor, double Target, string Label)[] Ratios =
    [
        ("prepare_job", "floor: bare pod start", 1.10, "prepare_job"),
        ("run_script_step", "floor: bare exec", 1.10, "script step"),
        ("run_container_step (image)", "floor: run-to-completion pod", 1.10, "container (image)"),
        ("run_container_step (image)", "floor: step-shaped pod (PVC mounts + env Secret)", 1.10, "container (image) vs step-shaped pod"),
        ("run_container_step (Dockerfile, cold)", "floor: bare builder pod", 1.15, "container (cold)"),
        ("run_container_step (Dockerfile, warm)", "run_container_step (image)", 1.30, "container (warm)"),
    ];

    static string Report(List<Sample> samples, ConcurrentResult concurrent, int iterations, int k, DateTime started)
    {
        var sb = new StringBuilder();
        sb.AppendLine($"# Shipyard benchmark ({started:yyyy-MM-dd HH:mm} UTC, {iterations} iterations, {Environment.ProcessorCount} cores)");
        sb.AppendLine();
        sb.AppendLine("Wall time in seconds; hook CPU (user+sys) and max RSS from /usr/bin/time around the hook process.");
        sb.AppendLine();
        sb.AppendLine("| measure | median s | min s | max s | ratio to floor (target) | hook CPU ms (median) | max RSS MB |");
        sb.AppendLine("|---|---:|---:|---:|---|---:|---:|");
        var medians = samples.GroupBy(s => s.Measure).ToDictionary(g => g.Key, g => Median(g.Select(s => s.Seconds)));
        foreach (var g in samples.GroupBy(s => s.Measure))
        {
            var secs = g.Select(s => s.Seconds).ToList();
            var ratioText = string.Join("<br>", Ratios.Where(r => r.Measure == g.Key).Select(ratio =>
                $"{medians[g.Key] / medians[ratio.Floor]:0.00} × {ratio.Floor.Replace("floor: ", "")} ({(medians[g.Key] / medians[ratio.Floor] <= ratio.Target ? "≤" : "**>**")} {ratio.Target:0.00})"));
            var cpu = g.Select(s => s.CpuMs).Where(double.IsFinite).ToList();
            var rss = g.Select(s => s.RssMb).Where(double.IsFinite).ToList();
            sb.AppendLine($"| {g.Key} | {Median(secs):0.00} | {secs.Min():0.00} | {secs.Max():0.00} | {ratioText} | {(cpu.Count > 0 ? Median(cpu).ToString("0", Inv) : "")} | {(rss.Count > 0 ? rss.Max().ToString("0.0", Inv) : "")} |");
        }
        sb.AppendLine();
        sb.AppendLine($"## {k} jobs at once (full sequence each, Dockerfile step warm): {concurrent.WallSeconds:0.0} s wall, {concurrent.Errors} errors");
        sb.AppendLine();
        sb.AppendLine("| command | p50 s | p95 s |");
        sb.AppendLine("|---|---:|---:|");
        foreach (var (m, xs) in concurrent.Seconds) sb.AppendLine($"| {m} | {Percentile(xs, 0.5):0.00} | {Percentile(xs, 0.95):0.00} |");
        foreach (var e in concurrent.ErrorText) sb.AppendLine($"\nerror: {e}");
        return sb.ToString();
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
