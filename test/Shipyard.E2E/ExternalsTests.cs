using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using k8s;
using Shipyard.Driver;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.E2E;

/// <summary>
/// Job start without copying the runner's externals: a node build reaches `/__e` when a step first names it,
/// whole, and runs as it does from the runner's own tree; the TLS set-up that makes calls cheap trusts the
/// API server through its CA and nothing else.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class ExternalsTests(TestCluster cluster)
{
    /// <summary>externals/ with the host's real node as node20 (plus npm as a link), stand-ins for node24 and node20_alpine.</summary>
    string ExternalsTree()
    {
        var root = Path.Combine(cluster.Scratch, $"externals-{Guid.NewGuid():N}");
        var node20 = Path.Combine(root, "node20");
        Directory.CreateDirectory(Path.Combine(node20, "bin"));
        Directory.CreateDirectory(Path.Combine(node20, "lib", "node_modules", "npm", "bin"));
        File.Copy(RunnerJob.HostNode()!, Path.Combine(node20, "bin", "node"));
        File.WriteAllText(Path.Combine(node20, "lib", "node_modules", "npm", "bin", "npm-cli.js"), "console.log('npm stand-in ' + process.version)\n");
        File.CreateSymbolicLink(Path.Combine(node20, "bin", "npm"), "../lib/node_modules/npm/bin/npm-cli.js");
        foreach (var build in new[] { "node24", "node20_alpine" })
        {
            var node = Path.Combine(root, build, "bin", "node");
            Directory.CreateDirectory(Path.GetDirectoryName(node)!);
            File.WriteAllText(node, $"#!/bin/sh\necho \"{build} stand-in $*\"\n");
            File.SetUnixFileMode(node, (UnixFileMode)0b111_101_101);
        }
        return root;
    }

    static string[] Copied(RunnerJob job) =>
        Directory.EnumerateFileSystemEntries(Path.Combine(job.Work, "externals")).Select(Path.GetFileName).Order().ToArray()!;

    [Fact]
    public async Task A_node_build_reaches_the_job_container_when_a_step_first_names_it()
    {
        await using var job = await RunnerJob.StartAsync(cluster, externals: ExternalsTree());
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Debian)));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        Assert.Empty(Copied(job)); // nothing copied at job start

        var dir = Path.Combine(job.Workspace, "js-action");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "index.js"), "console.log(`js ${process.version} from ${process.execPath}`)\n");
        var js = await job.RunAsync("run_script_step", JavaScriptStep(job, "js-action", "index.js"));
        Assert.True(js.ExitCode == 0, js.ToString());
        Assert.Matches(@"js v20\.[0-9.]+ from /__e/node20/bin/node\n", js.Stdout);
        Assert.Equal(["node20"], Copied(job));
        Assert.Equal("../lib/node_modules/npm/bin/npm-cli.js", new FileInfo(Path.Combine(job.Work, "externals", "node20", "bin", "npm")).LinkTarget);

        // A `run:` script that calls a build by its /__e path gets it too; npm through its link runs under that node.
        var run = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "/__e/node24/bin/node --version\n/__e/node20/bin/node /__e/node20/bin/npm\n")));
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.Contains("node24 stand-in --version\n", run.Stdout);
        Assert.Matches(@"npm stand-in v20\.", run.Stdout);
        Assert.Equal(["node20", "node24"], Copied(job));

        // In an Alpine job container the runner names its musl build instead.
        var alpine = JavaScriptStep(job, "js-action", "index.js");
        alpine["entryPoint"] = "/__e/node20_alpine/bin/node";
        var musl = await job.RunAsync("run_script_step", alpine);
        Assert.True(musl.ExitCode == 0, musl.ToString());
        Assert.Contains("node20_alpine stand-in /__w/demo/demo/./js-action/index.js\n", musl.Stdout);
        Assert.Equal(["node20", "node20_alpine", "node24"], Copied(job));

        // None is copied again, and a plain script step copies nothing.
        var plain = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo plain\n")));
        Assert.True(plain.ExitCode == 0, plain.ToString());
        Assert.DoesNotContain("Copied the runner's externals", plain.Stdout);
        Assert.Equal(0, (await job.RunAsync("cleanup_job", new JsonObject())).ExitCode);
    }

    [Fact]
    public async Task Every_build_is_copied_at_job_start_when_asked()
    {
        await using var job = await RunnerJob.StartAsync(cluster, externals: ExternalsTree());
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_EXTERNALS_COPY"] = "all";
        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Debian)));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        Assert.Equal(["node20", "node20_alpine", "node24"], Copied(job));
        var ls = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "ls /__e\n")));
        Assert.True(ls.ExitCode == 0, ls.ToString());
        Assert.Contains("node20\nnode20_alpine\nnode24\n", ls.Stdout);
        Assert.Equal(0, (await job.RunAsync("cleanup_job", new JsonObject())).ExitCode);
    }

    [Fact]
    public async Task An_api_server_certificate_from_another_ca_fails_at_once_with_one_line()
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=not-the-cluster-ca", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var foreign = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var caFile = Path.Combine(job.Root, "foreign-ca.crt");
        await File.WriteAllTextAsync(caFile, foreign.ExportCertificatePem());
        var admin = await File.ReadAllTextAsync(cluster.KubeConfig);
        var ca = admin.Split("certificate-authority: ")[1].Split('}')[0].Trim();
        var kubeconfig = Path.Combine(job.Root, "foreign.kubeconfig");
        await File.WriteAllTextAsync(kubeconfig, admin.Replace(ca, caFile));
        job.Env["KUBECONFIG"] = kubeconfig;

        var started = DateTime.UtcNow;
        var run = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)));
        Assert.NotEqual(0, run.ExitCode);
        var error = Assert.Single(run.ErrorLines);
        Assert.Contains("TLS with the Kubernetes API failed", error);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5), $"took {DateTime.UtcNow - started}");
        Assert.Empty((await cluster.Client.ListNamespacedPodAsync(cluster.Namespace, labelSelector: $"runner-pod={job.RunnerPod}")).Items);
    }
}
