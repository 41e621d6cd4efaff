using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;

namespace Shipyard.Driver;

public sealed record HookRun(int ExitCode, string Stdout, string Stderr, string Response, TimeSpan Elapsed)
{
    /// <summary>User+system CPU seconds and max RSS of the hook process (when <see cref="RunnerJob.MeasureResources"/>).</summary>
    public double CpuSeconds { get; init; }
    public long MaxRssKb { get; init; }

    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}\n--- response\n{Response}";
    public IEnumerable<string> ErrorLines => Stdout.Split('\n').Where(l => l.StartsWith("::error::"));
}

/// <summary>
/// One runner as ARC runs it, driven exactly as the runner drives the hook: a stand-in runner pod
/// named by ACTIONS_RUNNER_POD_NAME, a host `_work` directory that is the hostPath behind the work
/// PVC, the externals beside it, a pre-created empty response file per call and one JSON line on stdin.
/// </summary>
public sealed class RunnerJob : IAsyncDisposable
{
    readonly LocalCluster cluster;
    public LocalCluster Cluster => cluster;
    public string RunnerPod { get; }
    public string Root { get; }
    public string Work => Path.Combine(Root, "_work");
    public string Repo => "demo";
    public string Workspace => Path.Combine(Work, Repo, Repo);
    public Dictionary<string, string> Env { get; } = new();
    public JsonNode? State { get; set; }
    /// <summary>The job pod prepare_job named in its state (fresh for every job).</summary>
    public string JobPod => State?["jobPod"]?.GetValue<string>() ?? throw new InvalidOperationException("no prepare_job state yet");
    /// <summary>Run the hook under /usr/bin/time to record its CPU time and max RSS.</summary>
    public bool MeasureResources { get; set; }
    /// <summary>Called with each stdout line as the hook prints it (the demo shows the job log live).</summary>
    public Action<string>? OnOutputLine { get; set; }
    /// <summary>The hook binary this runner calls (the benchmark points some runners at an older build).</summary>
    public string HookBinary { get; set; }

    RunnerJob(LocalCluster cluster, string runnerPod)
    {
        this.cluster = cluster;
        RunnerPod = runnerPod;
        Root = Path.Combine(cluster.Scratch, runnerPod);
        HookBinary = cluster.HookBinary;
    }

    /// <param name="realNode">
    /// Put the host's real Node (the runner's own externals carry the same official build) at
    /// `externals/node20/bin/node`, for JavaScript actions; otherwise a tiny stand-in script.
    /// </param>
    /// <param name="externals">A runner-sized externals tree (<see cref="RunnerExternals"/>) this runner's `externals/` links to.</param>
    /// <param name="noVolume">
    /// ARC's kubernetes-novolume runner: no claim, and the runner pod runs the runner image (the test one: Debian,
    /// uid 1001, the host's node in /home/runner/externals), which Shipyard reads from it for the job pod.
    /// </param>
    public static async Task<RunnerJob> StartAsync(LocalCluster cluster, string? name = null, bool withClaim = true, bool realNode = false, string? externals = null, bool noVolume = false)
    {
        var job = new RunnerJob(cluster, name ?? $"runner-{Guid.NewGuid().ToString("N")[..8]}");
        await job.SetUpAsync(withClaim && !noVolume, realNode, externals, noVolume);
        return job;
    }

    async Task SetUpAsync(bool withClaim, bool realNode, string? externals, bool noVolume)
    {
        foreach (var d in new[] { "_temp/_github_home", "_temp/_github_workflow", "_temp/_runner_file_commands", "_temp/_runner_hook_responses", "_actions", "_tool", $"{Repo}/{Repo}" })
            Directory.CreateDirectory(Path.Combine(Work, d));
        if (externals is not null) Directory.CreateSymbolicLink(Path.Combine(Root, "externals"), externals);
        else
        {
            var nodeDir = Path.Combine(Root, "externals", "node20", "bin");
            Directory.CreateDirectory(nodeDir);
            if (realNode)
            {
                var host = HostNode() ?? throw new InvalidOperationException("No node on PATH: the real-node runner needs the machine's Node.js.");
                File.Copy(host, Path.Combine(nodeDir, "node"));
            }
            else await File.WriteAllTextAsync(Path.Combine(nodeDir, "node"), "#!/bin/sh\necho fake-node\n");
            File.SetUnixFileMode(Path.Combine(nodeDir, "node"), (UnixFileMode)0b111_101_101);
        }

        if (withClaim)
        {
            var pvName = $"{cluster.Namespace}-{RunnerPod}";
            await cluster.Client.CreatePersistentVolumeAsync(new V1PersistentVolume
            {
                Metadata = new V1ObjectMeta { Name = pvName, Labels = new Dictionary<string, string> { ["shipyard-e2e"] = cluster.Namespace } },
                Spec = new V1PersistentVolumeSpec
                {
                    Capacity = new Dictionary<string, ResourceQuantity> { ["storage"] = new("1Gi") },
                    AccessModes = ["ReadWriteOnce"],
                    StorageClassName = "",
                    HostPath = new V1HostPathVolumeSource { Path = Work, Type = "Directory" }, // test scaffolding only: stands in for the runner's PVC
                    ClaimRef = new V1ObjectReference { NamespaceProperty = cluster.Namespace, Name = $"{RunnerPod}-work" },
                },
            });
            await cluster.Client.CreateNamespacedPersistentVolumeClaimAsync(new V1PersistentVolumeClaim
            {
                Metadata = new V1ObjectMeta { Name = $"{RunnerPod}-work" },
                Spec = new V1PersistentVolumeClaimSpec
                {
                    AccessModes = ["ReadWriteOnce"], StorageClassName = "", VolumeName = pvName,
                    Resources = new V1VolumeResourceRequirements { Requests = new Dictionary<string, ResourceQuantity> { ["storage"] = new("1Gi") } },
                },
            }, cluster.Namespace);
            // A real runner's claim is bound before its job starts; don't measure the binder's sync period.
            for (var i = 0; i < 150; i++)
            {
                var claim = await cluster.Client.ReadNamespacedPersistentVolumeClaimAsync($"{RunnerPod}-work", cluster.Namespace);
                if (claim.Status?.Phase == "Bound") break;
                await Task.Delay(200);
            }
        }
        // As ARC's runner pod: the work claim mounted at _work in kubernetes mode (Shipyard picks its mode from that).
        await cluster.Client.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = RunnerPod, Labels = new Dictionary<string, string> { ["app"] = "stand-in-runner" } },
            Spec = new V1PodSpec
            {
                Containers =
                [
                    new V1Container
                    {
                        Name = "runner", Image = noVolume ? cluster.RunnerImage : cluster.Busybox, Command = ["sleep", "3600"],
                        VolumeMounts = withClaim ? [new V1VolumeMount { Name = "work", MountPath = "/home/runner/_work" }] : null,
                    },
                ],
                Volumes = withClaim ? [new V1Volume { Name = "work", PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = $"{RunnerPod}-work" } }] : null,
                NodeName = cluster.Env["SHIPYARD_TEST_NODE"],
                TerminationGracePeriodSeconds = 0,
                AutomountServiceAccountToken = false,
            },
        }, cluster.Namespace);
        await cluster.WaitForPodAsync(RunnerPod, p => p.Status?.Phase == "Running", TimeSpan.FromSeconds(60));
    }

    public static string? HostNode()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'))
        {
            var candidate = Path.Combine(dir, "node");
            if (File.Exists(candidate)) return new FileInfo(candidate).ResolveLinkTarget(true)?.FullName ?? candidate;
        }
        return null;
    }

    /// <summary>The environment the runner gives the hook (ARC runner pod env + runner's own).</summary>
    public Dictionary<string, string?> HookEnvironment()
    {
        var env = new Dictionary<string, string?>
        {
            ["PATH"] = Environment.GetEnvironmentVariable("PATH"),
            ["KUBECONFIG"] = cluster.KubeConfig,
            ["ACTIONS_RUNNER_POD_NAME"] = RunnerPod,
            ["ACTIONS_RUNNER_KUBERNETES_NAMESPACE"] = cluster.Namespace,
            ["ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER"] = "true",
            ["RUNNER_WORKSPACE"] = Path.Combine(Work, Repo),
            ["GITHUB_WORKSPACE"] = Workspace,
            ["RUNNER_TEMP"] = Path.Combine(Work, "_temp"),
            ["GITHUB_ACTIONS"] = "true",
        };
        foreach (var (k, v) in Env) env[k] = v;
        return env;
    }

    /// <summary>Runs the hook binary for one command, as the runner does.</summary>
    /// <param name="entry">How the runner starts the hook: null for the binary, "index.js" (the runner's node) or "shipyard.sh" (bash).</param>
    /// <param name="onStarted">Called with the started process (tests signal it, as the runner does to cancel).</param>
    public async Task<HookRun> RunAsync(string command, JsonNode args, bool createResponseFile = true, string? rawStdin = null,
        Action<Dictionary<string, string?>>? editEnv = null, string? entry = null, Action<Process>? onStarted = null, byte[]? rawStdinBytes = null)
    {
        var responseFile = Path.Combine(Work, "_temp", "_runner_hook_responses", $"{Guid.NewGuid()}.json");
        if (createResponseFile) await File.WriteAllTextAsync(responseFile, "");
        var input = new JsonObject
        {
            ["command"] = command,
            ["responseFile"] = responseFile,
            ["args"] = args,
            ["state"] = State?.DeepClone(),
        };
        var timeFile = Path.Combine(Root, $"time-{Guid.NewGuid():N}");
        var artifacts = Path.GetDirectoryName(cluster.HookBinary)!;
        string[] launch = entry switch
        {
            null => [HookBinary],
            "index.js" => [HostNode() ?? "node", Path.Combine(artifacts, "index.js")],
            "shipyard.sh" => ["/bin/bash", Path.Combine(artifacts, "shipyard.sh")],
            _ => throw new ArgumentException($"unknown hook entry {entry}"),
        };
        var psi = MeasureResources
            ? new ProcessStartInfo("/usr/bin/time", ["-f", "%U %S %M", "-o", timeFile, .. launch])
            : new ProcessStartInfo(launch[0], launch[1..]);
        psi.RedirectStandardInput = true;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.WorkingDirectory = Workspace;
        psi.UseShellExecute = false;
        psi.Environment.Clear();
        var env = HookEnvironment();
        editEnv?.Invoke(env);
        foreach (var (k, v) in env) if (v is not null) psi.Environment[k] = v;
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        var sw = Stopwatch.StartNew();
        using var p = new Process { StartInfo = psi };
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (stdout) stdout.Append(e.Data).Append('\n');
            OnOutputLine?.Invoke(e.Data);
        };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.Append(e.Data).Append('\n'); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        onStarted?.Invoke(p);
        if (rawStdinBytes is not null) await p.StandardInput.BaseStream.WriteAsync(rawStdinBytes);
        else await p.StandardInput.WriteAsync((rawStdin ?? input.ToJsonString()) + "\n");
        p.StandardInput.Close();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        await p.WaitForExitAsync(timeout.Token);
        var elapsed = sw.Elapsed;
        double cpu = 0; long rss = 0;
        if (MeasureResources && File.Exists(timeFile))
        {
            var parts = File.ReadAllLines(timeFile).Last().Split(' ');
            if (parts.Length == 3)
            {
                cpu = double.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture) + double.Parse(parts[1], System.Globalization.CultureInfo.InvariantCulture);
                rss = long.Parse(parts[2]);
            }
            File.Delete(timeFile);
        }
        string Text(StringBuilder b) { lock (b) return b.ToString(); }
        var run = new HookRun(p.ExitCode, Text(stdout), Text(stderr), File.Exists(responseFile) ? await File.ReadAllTextAsync(responseFile) : "", elapsed)
        {
            CpuSeconds = cpu, MaxRssKb = rss,
        };
        if (run.ExitCode == 0 && command == "prepare_job" && run.Response.Length > 0) State = JsonNode.Parse(run.Response)!["state"];
        return run;
    }

    /// <summary>Runs the hook binary with arguments (e.g. `doctor --json`) in the runner's environment, without hook input.</summary>
    public async Task<HookRun> RunToolAsync(string[] args, Action<Dictionary<string, string?>>? editEnv = null)
    {
        var psi = new ProcessStartInfo(HookBinary, args)
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Root,
        };
        psi.Environment.Clear();
        var env = HookEnvironment();
        editEnv?.Invoke(env);
        foreach (var (k, v) in env) if (v is not null) psi.Environment[k] = v;
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await p.WaitForExitAsync(timeout.Token);
        return new HookRun(p.ExitCode, await stdout, await stderr, "", sw.Elapsed);
    }

    /// <summary>Like the runner: creates the empty file-command files for one step and returns their host paths.</summary>
    public (string Output, string Env, string Path, string State, string Summary) NewFileCommands()
    {
        string Make(string kind)
        {
            var f = System.IO.Path.Combine(Work, "_temp", "_runner_file_commands", $"{kind}_{Guid.NewGuid()}");
            File.WriteAllText(f, "");
            return f;
        }
        return (Make("set_output"), Make("set_env"), Make("add_path"), Make("save_state"), Make("step_summary"));
    }

    public async ValueTask DisposeAsync()
    {
        try { await cluster.Client.DeleteNamespacedPodAsync(RunnerPod, cluster.Namespace, gracePeriodSeconds: 0); }
        catch (k8s.Autorest.HttpOperationException) { }
    }
}
