using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.Driver;

/// <summary>
/// `bench/run --mode novolume`: what keeping `_work` in sync costs per step, against volume mode's step time in
/// the same run. Each iteration gives a fresh runner of each mode a realistic workspace (3,000 files, 100 MB);
/// before every step the runner changes one file (and writes the step's script, as it does), and the step
/// changes one file in the pod. Reported: prepare_job and step medians per mode, and the added time per step.
/// </summary>
public static class BenchNoVolume
{
    static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    const int Files = 3000;
    const int FileBytes = 100 * 1024 * 1024 / Files;
    const int StepsPerJob = 5;

    public static async Task<int> RunAsync(int iterations, string outDir)
    {
        var cluster = new LocalCluster("shipyard-bench");
        await cluster.CreateNamespaceAsync();
        var workspace = EnsureWorkspace();
        var loadBefore = Bench.LoadAverage();
        var samples = new List<(string Mode, string Measure, double Seconds)>();
        try
        {
            var kubeconfig = await RoleKubeconfig.CreateAsync(cluster, "role.yaml", "bench-runner");
            for (var i = 1; i <= iterations; i++)
            {
                Console.Error.WriteLine($"[bench novolume] iteration {i}/{iterations}");
                // Alternate which mode goes first.
                foreach (var noVolume in i % 2 == 0 ? new[] { true, false } : [false, true])
                    samples.AddRange(await JobAsync(cluster, kubeconfig, workspace, noVolume, $"nv-{i}-{(noVolume ? "n" : "v")}"));
            }
            var report = Report(samples, iterations, loadBefore, Bench.LoadAverage());
            Directory.CreateDirectory(outDir);
            await File.WriteAllTextAsync(Path.Combine(outDir, "novolume-latest.md"), report);
            Console.WriteLine(report);
            return 0;
        }
        finally
        {
            await cluster.DeleteNamespaceAsync();
        }
    }

    static async Task<List<(string, string, double)>> JobAsync(LocalCluster cluster, string kubeconfig, string workspace, bool noVolume, string name)
    {
        var mode = noVolume ? "novolume" : "volume";
        await using var job = await RunnerJob.StartAsync(cluster, name, realNode: true, noVolume: noVolume);
        job.Env["KUBECONFIG"] = kubeconfig;
        RunnerExternals.CopyTree(workspace, Path.Combine(job.Workspace, "src"));
        var result = new List<(string, string, double)>();
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Debian)));
        if (prepare.ExitCode != 0) throw new InvalidOperationException($"prepare_job ({mode}): {prepare}");
        result.Add((mode, "prepare_job", prepare.Elapsed.TotalSeconds));
        for (var s = 1; s <= StepsPerJob; s++)
        {
            await File.AppendAllTextAsync(Path.Combine(job.Workspace, "src", "f0001.bin"), $"runner change {s}\n");
            var step = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, $"echo {s} >> step-changes.txt\n")));
            if (step.ExitCode != 0) throw new InvalidOperationException($"script step ({mode}): {step}");
            result.Add((mode, "run_script_step", step.Elapsed.TotalSeconds));
            if (s == StepsPerJob && noVolume)
                foreach (var line in step.Stdout.Split('\n').Where(l => l.StartsWith("::debug::"))) Console.Error.WriteLine($"[bench novolume] {line}");
            // The hook's own timing of each transfer (`::debug::sync into|from <pod>: … in N ms`).
            foreach (var line in step.Stdout.Split('\n').Where(l => l.StartsWith("::debug::sync ")))
            {
                var ms = System.Text.RegularExpressions.Regex.Match(line, @" in (\d+) ms$");
                if (ms.Success) result.Add((mode, line.Contains("sync into") ? "sync into pod" : "sync back", double.Parse(ms.Groups[1].Value, Inv) / 1000));
            }
        }
        var expected = string.Concat(Enumerable.Range(1, StepsPerJob).Select(s => $"{s}\n"));
        if (await File.ReadAllTextAsync(Path.Combine(job.Workspace, "step-changes.txt")) != expected)
            throw new InvalidOperationException($"{mode}: the steps' changes did not reach the runner");
        await job.RunAsync("cleanup_job", new JsonObject());
        return result;
    }

    /// <summary>3,000 files of ~34 KB in 30 directories (100 MB), deterministic, built once.</summary>
    static string EnsureWorkspace()
    {
        var root = $"/var/cache/shipyard-bench/workspace-{Files}x{FileBytes}";
        if (File.Exists(root + ".complete")) return root;
        if (Directory.Exists(root)) Directory.Delete(root, true);
        var random = new Random(42);
        var buffer = new byte[FileBytes];
        for (var n = 0; n < Files; n++)
        {
            var dir = Path.Combine(root, $"d{n % 30:00}");
            Directory.CreateDirectory(dir);
            random.NextBytes(buffer);
            File.WriteAllBytes(Path.Combine(n == 1 ? root : dir, $"f{n:0000}.bin"), buffer);
        }
        File.WriteAllText(root + ".complete", "");
        return root;
    }

    static string Report(List<(string Mode, string Measure, double Seconds)> samples, int iterations, string loadBefore, string loadAfter)
    {
        double M(string mode, string measure) => Bench.Median(samples.Where(s => s.Mode == mode && s.Measure == measure).Select(s => s.Seconds));
        var sb = new StringBuilder();
        sb.AppendLine($"# No-volume sync cost ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC)");
        sb.AppendLine();
        sb.AppendLine($"{iterations} iterations; each a fresh runner per mode with a workspace of {Files} files / {Files * (long)FileBytes / (1024 * 1024)} MB, " +
            $"{StepsPerJob} script steps each (the runner changes one file before each, the step one in the pod). Load average before {loadBefore}, after {loadAfter}.");
        sb.AppendLine();
        sb.AppendLine("| median | volume | novolume | added |");
        sb.AppendLine("|---|---:|---:|---:|");
        foreach (var measure in new[] { "prepare_job", "run_script_step" })
        {
            var v = M("volume", measure);
            var n = M("novolume", measure);
            sb.AppendLine(Inv, $"| {measure} | {v:0.000} s | {n:0.000} s | {(n - v) * 1000:+0;-0} ms |");
        }
        // The hook's own timings of the step's one exec (no volume-mode counterpart).
        sb.AppendLine(Inv, $"| of which: changes unpacked in the pod | | {M("novolume", "sync into pod"):0.000} s | |");
        sb.AppendLine(Inv, $"| of which: push, step, copy back (one exec) | | {M("novolume", "sync back"):0.000} s | |");
        var added = (M("novolume", "run_script_step") - M("volume", "run_script_step")) * 1000;
        sb.AppendLine();
        sb.AppendLine(Inv, $"Added per script step: {added:0} ms (target < 300 ms): {(added < 300 ? "met" : "missed")}.");
        return sb.ToString();
    }
}
