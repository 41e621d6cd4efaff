using System.Text.Json.Nodes;
using Shipyard.Driver;

namespace Shipyard.E2E;

/// <summary>One hook call of a replayed capture: what the runner sent, what the hook did, what the step wrote.</summary>
public sealed record ReplayedCall(string Command, string? Action, JsonObject Args, HookRun Run, IReadOnlyDictionary<string, string> FileCommands)
{
    public string File(string name) => FileCommands.TryGetValue(name, out var v) ? v : "";
}

/// <summary>
/// Replays a file of `test/runner-captures/` as the real runner would: the capture's paths, images and
/// registry password become the test cluster's, the repository is laid out in the workspace, each
/// `run_script_step` gets the script the test gives for its step id (`GITHUB_ACTION`), the file-command
/// files are created empty before each step (as the runner does) and read back after it, and the state
/// of each response is threaded into the next call.
/// </summary>
public static class CaptureReplay
{
    static readonly string[] FileCommandVars = ["GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STATE", "GITHUB_STEP_SUMMARY"];

    public static string Folder(LocalCluster cluster) => Path.Combine(cluster.RepoRoot, "test", "runner-captures");

    public static async Task<List<ReplayedCall>> RunAsync(RunnerJob job, string captureFile, IReadOnlyDictionary<string, string> scripts)
    {
        var cluster = job.Cluster;
        LayOutWorkspace(Path.Combine(Folder(cluster), "workspace"), job.Workspace);
        File.WriteAllText(Path.Combine(job.Work, "_temp", "_github_workflow", "event.json"), "{}");
        var calls = new List<ReplayedCall>();
        foreach (var raw in File.ReadAllLines(Path.Combine(Folder(cluster), captureFile)).Where(l => l.Length > 0))
        {
            var input = JsonNode.Parse(Substitute(raw, job))!.AsObject();
            var command = input["command"]!.GetValue<string>();
            var args = input["args"]!.AsObject();
            var env = args["environmentVariables"] as JsonObject;
            var action = env?["GITHUB_ACTION"]?.GetValue<string>();

            string? script = null;
            if (command == "run_script_step" && args["entryPointArgs"]!.AsArray().Select(a => a!.GetValue<string>()).LastOrDefault(a => a.EndsWith(".sh")) is { } sh)
            {
                script = HostPath(job, sh);
                if (!scripts.TryGetValue(action!, out var body)) throw new InvalidOperationException($"{captureFile}: no script given for step '{action}'");
                await File.WriteAllTextAsync(script, body);
            }
            var files = new Dictionary<string, string>();
            foreach (var v in FileCommandVars)
                if (env?[v]?.GetValue<string>() is { } path) { files[v] = HostPath(job, path); await File.WriteAllTextAsync(files[v], ""); }

            var run = await job.RunAsync(command, args.DeepClone());
            if (script is not null) File.Delete(script); // the runner deletes it after the call
            calls.Add(new ReplayedCall(command, action, args, run,
                files.ToDictionary(kv => kv.Key, kv => File.Exists(kv.Value) ? File.ReadAllText(kv.Value) : "")));
        }
        return calls;
    }

    /// <summary>The capture's runner (`/home/runner`), registry and password become this test cluster's.</summary>
    public static string Substitute(string raw, RunnerJob job) => raw
        .Replace("/home/runner/_work", job.Work)
        .Replace("/home/runner/externals", Path.Combine(job.Root, "externals"))
        .Replace("/home/runner", job.Root)
        .Replace("127.0.0.1:5443", job.Cluster.PullHost)
        .Replace("172.17.0.1:5443", job.Cluster.PushHost)
        .Replace("REGISTRY-PASSWORD", job.Cluster.Env["SHIPYARD_TEST_REGISTRY_PASSWORD"]);

    /// <summary>A job-container path (`/__w/…`, `/github/file_commands/…`) or runner path as the runner's own file.</summary>
    static string HostPath(RunnerJob job, string path) =>
        path.StartsWith("/__w/") ? Path.Combine(job.Work, path["/__w/".Length..])
        : path.StartsWith("/github/file_commands/") ? Path.Combine(job.Work, "_temp", "_runner_file_commands", path["/github/file_commands/".Length..])
        : path;

    static void LayOutWorkspace(string from, string to)
    {
        foreach (var f in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, f));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(f, target, overwrite: true);
            File.SetUnixFileMode(target, File.GetUnixFileMode(f) | UnixFileMode.UserWrite);
        }
    }
}
