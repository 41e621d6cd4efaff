using System.Diagnostics;
using System.Text.Json.Nodes;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.Driver;

/// <summary>
/// One sample workflow job through the hook, exactly as the runner drives it, printed the way a
/// runner user reads the job log: job container + one service, two script steps, an image action
/// and a Dockerfile action (built the first time the demo runs, reused afterwards).
/// </summary>
public static class Demo
{
    const string Prefix = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_";

    public static async Task<int> RunAsync()
    {
        var cluster = new LocalCluster("shipyard-demo");
        await cluster.CreateNamespaceAsync();
        var total = Stopwatch.StartNew();
        var timings = new List<(string, TimeSpan)>();
        var masks = new List<string>();
        try
        {
            await using var job = await RunnerJob.StartAsync(cluster, "demo-runner");
            job.OnOutputLine = line => Show(line, masks);
            var secret = await cluster.CreateRegistrySecretAsync("demo-registry");
            job.Env[Prefix + "REGISTRY_HOST_PUSH"] = cluster.PushHost + "/demo";
            job.Env[Prefix + "REGISTRY_HOST_PULL"] = cluster.PullHost + "/demo";
            job.Env[Prefix + "REGISTRY_SECRET_NAME"] = secret;
            job.Env[Prefix + "BUILDER_IMAGE"] = cluster.KanikoImage;

            async Task<HookRun> Step(string title, string label, string command, JsonNode args)
            {
                Console.WriteLine($"\n\u001b[1m▶ {title}\u001b[0m");
                var run = await job.RunAsync(command, args);
                timings.Add((label, run.Elapsed));
                foreach (var l in run.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)) Console.WriteLine($"  {Mask(l, masks)}");
                if (run.ExitCode != 0) throw new InvalidOperationException($"'{title}' failed with exit code {run.ExitCode}");
                return run;
            }

            var service = Container(cluster.Busybox, entryPoint: "httpd", entryPointArgs: ["-f", "-p", "8080", "-h", "/etc"], ports: ["8080:8080"]);
            var prepared = await Step("Initialize containers", "prepare_job", "prepare_job", PrepareJob(JobContainer(job, cluster.Busybox), service));
            var context = JsonNode.Parse(prepared.Response)!["context"]!;
            Console.WriteLine($"  job pod {context["container"]!["id"]}, service '{context["services"]![0]!["id"]}' on localhost:8080");

            await Step("Run echo \"Hello from $(uname -n)\"", "script 1", "run_script_step",
                ScriptStep(job, WriteScript(job, "echo \"Hello from $(uname -n)\"\necho \"workspace: $PWD\"\n")));
            await Step("Run wget -qO- http://localhost:8080/hostname", "script 2", "run_script_step",
                ScriptStep(job, WriteScript(job, "echo \"the service answers: $(wget -qO- http://localhost:8080/hostname)\"\n")));

            var files = job.NewFileCommands();
            var output = "/github/file_commands/" + Path.GetFileName(files.Output);
            await Step("Run docker://busybox (image action)", "image action", "run_container_step", ContainerStep(job, cluster.Busybox, null,
                new() { ["GITHUB_OUTPUT"] = output, ["INPUT_NAME"] = "Mona" },
                ActionArgs("-c", "echo Hi ${INPUT_NAME}, from an image action; echo image=done >> $GITHUB_OUTPUT"), "sh"));

            var dir = Path.Combine(job.Work, "_actions", "shipyard-demo", "hello-docker-action", "v1");
            Directory.CreateDirectory(dir);
            await File.WriteAllTextAsync(Path.Combine(dir, "Dockerfile"),
                $"FROM {cluster.AnonHost}/busybox:test\nCOPY entrypoint.sh /entrypoint.sh\nRUN chmod +x /entrypoint.sh\nENTRYPOINT [\"/entrypoint.sh\"]\n");
            await File.WriteAllTextAsync(Path.Combine(dir, "entrypoint.sh"),
                "#!/bin/sh\necho \"Hello $1, from a Dockerfile action built inside the cluster\"\necho \"greeting=Hello $1\" >> \"$GITHUB_OUTPUT\"\n");
            var docker = await Step("Run shipyard-demo/hello-docker-action@v1 (Dockerfile action)", "Dockerfile action", "run_container_step",
                ContainerStep(job, null, Path.Combine(dir, "Dockerfile"), new() { ["GITHUB_OUTPUT"] = output }, ActionArgs("Octocat")));
            var built = docker.Stdout.Contains("::group::Building") ? "built" : "reused from the registry";
            Console.WriteLine($"  image {built}; step outputs: {string.Join(", ", File.ReadAllLines(files.Output))}");

            await Step("Stop containers", "cleanup_job", "cleanup_job", new JsonObject());
            Console.WriteLine($"\n\u001b[32mJob succeeded\u001b[0m in {total.Elapsed.TotalSeconds:0.0}s: " +
                string.Join(", ", timings.Select(t => $"{t.Item1} {t.Item2.TotalSeconds:0.0}s")) + $" (Dockerfile image {built})");
            return 0;
        }
        catch (Exception e)
        {
            Console.WriteLine($"\n\u001b[31mJob failed\u001b[0m after {total.Elapsed.TotalSeconds:0.0}s: {e.Message}");
            return 1;
        }
        finally
        {
            await cluster.DeleteNamespaceAsync();
        }
    }


    /// <summary>Renders workflow commands like the runner's log view does.</summary>
    static void Show(string line, List<string> masks)
    {
        if (line.StartsWith("::add-mask::")) { lock (masks) masks.Add(line[12..]); return; }
        if (line.StartsWith("::debug::")) return;
        if (line.StartsWith("::group::")) { Console.WriteLine($"  ▸ {line[9..]}"); return; }
        if (line.StartsWith("::endgroup::")) return;
        if (line.StartsWith("::error::")) { Console.WriteLine($"  \u001b[31mError: {Mask(line[9..], masks)}\u001b[0m"); return; }
        if (line.StartsWith("::warning::")) { Console.WriteLine($"  Warning: {Mask(line[11..], masks)}"); return; }
        Console.WriteLine($"  {Mask(line, masks)}");
    }

    static string Mask(string line, List<string> masks)
    {
        lock (masks) foreach (var m in masks) line = line.Replace(m, "***");
        return line;
    }
}
