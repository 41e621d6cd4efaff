using System.Text;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using Shipyard.Driver;

namespace Shipyard.E2E;

/// <summary>`shipyard doctor` inside a (stand-in) runner pod's environment, against the real cluster and registry.</summary>
[Collection(ClusterCollection.Name)]
public sealed class DoctorTests(TestCluster cluster)
{
    const string Prefix = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_";

    async Task<RunnerJob> RunnerWithRegistryAsync(string? password = null)
    {
        var job = await RunnerJob.StartAsync(cluster);
        var secret = password is null
            ? await cluster.CreateRegistrySecretAsync($"{job.RunnerPod}-login")
            : await CreateSecretWithPasswordAsync($"{job.RunnerPod}-login", password);
        job.Env[Prefix + "REGISTRY_HOST_PUSH"] = cluster.PushHost + "/doctor";
        job.Env[Prefix + "REGISTRY_HOST_PULL"] = cluster.PullHost + "/doctor";
        job.Env[Prefix + "REGISTRY_SECRET_NAME"] = secret;
        job.Env[Prefix + "BUILDER_IMAGE"] = "ghcr.io/osscontainertools/kaniko:v1.28.4";
        return job;
    }

    async Task<string> CreateSecretWithPasswordAsync(string name, string password)
    {
        var user = cluster.Env["SHIPYARD_TEST_REGISTRY_USER"];
        var auth = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"));
        var json = new JsonObject { ["auths"] = new JsonObject
        {
            [cluster.PushHost] = new JsonObject { ["auth"] = auth }, [cluster.PullHost] = new JsonObject { ["auth"] = auth },
        } }.ToJsonString();
        await cluster.Client.CreateNamespacedSecretAsync(new V1Secret
        {
            Metadata = new V1ObjectMeta { Name = name }, Type = "kubernetes.io/dockerconfigjson",
            Data = new Dictionary<string, byte[]> { [".dockerconfigjson"] = Encoding.UTF8.GetBytes(json), ["ca.crt"] = File.ReadAllBytes(cluster.Env["SHIPYARD_TEST_REGISTRY_CA"]) },
        }, cluster.Namespace);
        return name;
    }

    static List<JsonObject> Checks(HookRun run) =>
        JsonNode.Parse(run.Stdout)!["checks"]!.AsArray().Select(c => c!.AsObject()).ToList();

    static string Line(HookRun run, string check) =>
        run.Stdout.Split('\n').SingleOrDefault(l => l.Length > 7 && l[7..].StartsWith(check + ":")) ?? throw new Xunit.Sdk.XunitException($"no line for {check}\n{run}");

    /// <summary>Everything doctor could touch: the namespace's objects (with versions) and the registry's files.</summary>
    async Task<string> SnapshotAsync()
    {
        var pods = await cluster.Client.ListNamespacedPodAsync(cluster.Namespace);
        var secrets = await cluster.Client.ListNamespacedSecretAsync(cluster.Namespace);
        var maps = await cluster.Client.ListNamespacedConfigMapAsync(cluster.Namespace);
        var registry = Path.Combine(Path.GetDirectoryName(LocalCluster.EnvFile)!, "registry");
        // A cancelled upload session leaves the registry's own bookkeeping (`_uploads/<id>/hashstates`, which
        // Distribution's upload purger removes); no blob, manifest, tag or repository appears.
        IEnumerable<string> files = Directory.Exists(registry)
            ? Directory.EnumerateFiles(registry, "*", SearchOption.AllDirectories).Where(f => !(f.Contains("/_uploads/") && f.Contains("/hashstates/"))).Order()
            : [];
        var catalog = await RegistryCatalogAsync();
        return string.Join('\n', pods.Items.Select(p => $"pod {p.Metadata.Name} {p.Metadata.ResourceVersion}")
            .Concat(secrets.Items.Select(s => $"secret {s.Metadata.Name} {s.Metadata.ResourceVersion}"))
            .Concat(maps.Items.Select(m => $"configmap {m.Metadata.Name} {m.Metadata.ResourceVersion}"))
            .Concat(files.Select(f => $"file {f}")).Append($"catalog {catalog}"));
    }

    async Task<string> RegistryCatalogAsync()
    {
        using var handler = new HttpClientHandler();
        var ca = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(File.ReadAllText(cluster.Env["SHIPYARD_TEST_REGISTRY_CA"]));
        handler.ServerCertificateCustomValidationCallback = (_, cert, _, _) =>
        {
            using var chain = new System.Security.Cryptography.X509Certificates.X509Chain();
            chain.ChainPolicy.TrustMode = System.Security.Cryptography.X509Certificates.X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = System.Security.Cryptography.X509Certificates.X509RevocationMode.NoCheck;
            return cert is not null && chain.Build(cert);
        };
        using var http = new HttpClient(handler);
        using var req = new HttpRequestMessage(HttpMethod.Get, $"https://{cluster.PullHost}/v2/_catalog");
        req.Headers.Authorization = new("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{cluster.Env["SHIPYARD_TEST_REGISTRY_USER"]}:{cluster.Env["SHIPYARD_TEST_REGISTRY_PASSWORD"]}")));
        using var res = await http.SendAsync(req);
        return await res.Content.ReadAsStringAsync();
    }

    [Fact]
    public async Task Passes_with_the_documented_role_in_seconds_and_changes_nothing()
    {
        await using var job = await RunnerWithRegistryAsync();
        job.Env["KUBECONFIG"] = await RoleKubeconfig.CreateAsync(cluster, "role.yaml", "doctor-role");
        var before = await SnapshotAsync();
        var run = await job.RunToolAsync(["doctor"]);
        var after = await SnapshotAsync();
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.DoesNotContain("FAIL", run.Stdout);
        foreach (var check in new[] { "settings", "template", "runner pod", "work claim", "permissions", "admission: job pod", "admission: step pod", "admission: builder pod", "registry secret", "registry CA", "registry push host", "registry push rights", "builder image" })
            Assert.StartsWith("ok", Line(run, check));
        Assert.Contains("opened and cancelled", Line(run, "registry push rights"));
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(5), $"{run.Elapsed}");
        Assert.Equal(before, after);
        Assert.DoesNotContain(cluster.Env["SHIPYARD_TEST_REGISTRY_PASSWORD"], run.Stdout + run.Stderr);
    }

    [Fact]
    public async Task Passes_with_arcs_stock_role_with_the_documented_warnings_as_json()
    {
        await using var job = await RunnerWithRegistryAsync();
        job.Env["KUBECONFIG"] = await RoleKubeconfig.CreateAsync(cluster, "arc-role-stock.yaml", "doctor-stock");
        var run = await job.RunToolAsync(["doctor", "--json"]);
        Assert.True(run.ExitCode == 0, run.ToString());
        var report = JsonNode.Parse(run.Stdout)!;
        Assert.True(report["ok"]!.GetValue<bool>());
        var checks = Checks(run);
        Assert.DoesNotContain(checks, c => c["status"]!.GetValue<string>() == "Fail");
        var warned = checks.Where(c => c["status"]!.GetValue<string>() == "Warn").Select(c => c["check"]!.GetValue<string>()).ToList();
        Assert.Contains("permission pods: watch", warned);
        Assert.Contains("work claim", warned);
        Assert.Contains("permission persistentvolumeclaims: get", warned);
        Assert.Contains(checks, c => c["check"]!.GetValue<string>() == "permissions" && c["status"]!.GetValue<string>() == "Ok");
    }

    [Fact]
    public async Task Fails_naming_pods_exec_when_the_role_lacks_it()
    {
        await using var job = await RunnerWithRegistryAsync();
        job.Env["KUBECONFIG"] = await RoleKubeconfig.CreateAsync(cluster, "role.yaml", "doctor-noexec", r => r.Rules = r.Rules.Where(x => !x.Resources.Contains("pods/exec")).ToList());
        var run = await job.RunToolAsync(["doctor"]);
        Assert.Equal(1, run.ExitCode);
        var line = Line(run, "permissions");
        Assert.StartsWith("FAIL", line);
        Assert.Contains("pods/exec: get", line);
        Assert.Contains("pods/exec: create", line);
    }

    [Fact]
    public async Task Fails_naming_authentication_on_the_push_host_with_a_wrong_password()
    {
        await using var job = await RunnerWithRegistryAsync(password: "wrong-password");
        var run = await job.RunToolAsync(["doctor"]);
        Assert.Equal(1, run.ExitCode);
        var line = Line(run, "registry push host");
        Assert.StartsWith("FAIL", line);
        Assert.Contains($"authentication failed on the push host {cluster.PushHost}", line);
        Assert.DoesNotContain("wrong-password", run.Stdout + run.Stderr);
    }

    [Fact]
    public async Task Fails_on_a_template_that_makes_a_pod_privileged_and_on_bad_settings()
    {
        await using var job = await RunnerWithRegistryAsync();
        var template = Path.Combine(job.Root, "privileged.yaml");
        await File.WriteAllTextAsync(template, "spec:\n  containers:\n    - name: $job\n      securityContext:\n        privileged: true\n");
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE"] = template;
        var run = await job.RunToolAsync(["doctor"]);
        Assert.Equal(1, run.ExitCode);
        Assert.StartsWith("FAIL", Line(run, "template"));
        Assert.Contains("privileged: true", Line(run, "template"));

        job.Env.Remove("ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE");
        job.Env["ACTIONS_RUNNER_USE_KUBE_SCHEDULER"] = "perhaps";
        job.Env[Prefix + "BUILDER"] = "docker";
        var bad = await job.RunToolAsync(["doctor"]);
        Assert.Equal(1, bad.ExitCode);
        var settings = Line(bad, "settings");
        Assert.Contains("ACTIONS_RUNNER_USE_KUBE_SCHEDULER", settings);
        Assert.Contains(Prefix + "BUILDER", settings);
    }

    [Theory]
    [InlineData("index.js")]
    [InlineData("shipyard.sh")]
    public async Task Is_reachable_through_both_entry_scripts(string entry)
    {
        await using var job = await RunnerWithRegistryAsync();
        var artifacts = Path.GetDirectoryName(cluster.HookBinary)!;
        var launcher = entry == "index.js" ? "node" : "/bin/bash";
        var psi = new System.Diagnostics.ProcessStartInfo(launcher, [Path.Combine(artifacts, entry), "doctor", "--json"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment.Clear();
        foreach (var (k, v) in job.HookEnvironment()) if (v is not null) psi.Environment[k] = v;
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, stdout);
        Assert.True(JsonNode.Parse(stdout)!["ok"]!.GetValue<bool>());
    }
}
