using System.Text;
using k8s;
using k8s.Models;

namespace Shipyard.Driver;

/// <summary>
/// The real cluster from test/cluster/up, read from its env file; one fresh namespace per run,
/// deleted afterwards so reruns never collide.
/// </summary>
public class LocalCluster
{
    public const string EnvFile = "/var/lib/shipyard-testcluster/env";

    public IReadOnlyDictionary<string, string> Env { get; }
    public Kubernetes Client { get; }
    public string Namespace { get; }
    public string RepoRoot { get; }
    public string HookBinary { get; }
    /// <summary>Per-run scratch on the host: the runners' `_work` directories live here (hostPath PVs).</summary>
    public string Scratch { get; }

    public string PushHost => Env["SHIPYARD_TEST_REGISTRY_PUSH"];
    public string PullHost => Env["SHIPYARD_TEST_REGISTRY_PULL"];
    /// <summary>The registry's storage read-only and without auth: base images as public ones are pulled.</summary>
    public string AnonHost => Env["SHIPYARD_TEST_REGISTRY_ANON"];
    public string Busybox => Env["SHIPYARD_TEST_IMAGE_BUSYBOX"];
    public string AlpineLike => Env["SHIPYARD_TEST_IMAGE_ALPINE_LIKE"];
    public string Debian => Env["SHIPYARD_TEST_IMAGE_DEBIAN"];
    public string KanikoImage => Env["SHIPYARD_TEST_IMAGE_KANIKO"];
    /// <summary>Stands in for ARC's runner image in no-volume mode: sh, GNU tar/find, uid 1001, node in /home/runner/externals.</summary>
    public string RunnerImage => Env["SHIPYARD_TEST_IMAGE_RUNNER"];
    public string BuildahImage => Env["SHIPYARD_TEST_IMAGE_BUILDAH"];
    public string KubeConfig => Env["KUBECONFIG"];

    public LocalCluster(string prefix = "shipyard-e2e")
    {
        Namespace = $"{prefix}-{DateTime.UtcNow:HHmmss}-{Random.Shared.Next(1000, 9999)}";
        if (!File.Exists(EnvFile))
            throw new InvalidOperationException($"{EnvFile} is missing: run test/cluster/up first (the README's test command does).");
        Env = File.ReadAllLines(EnvFile)
            .Select(l => l.StartsWith("export ") ? l[7..] : l)
            .Where(l => l.Contains('='))
            .ToDictionary(l => l[..l.IndexOf('=')], l => l[(l.IndexOf('=') + 1)..].Trim('"'));
        Client = new Kubernetes(KubernetesClientConfiguration.BuildConfigFromConfigFile(Env["KUBECONFIG"]));
        RepoRoot = FindRepoRoot();
        HookBinary = Path.Combine(RepoRoot, "artifacts", "shipyard");
        if (!File.Exists(HookBinary)) throw new InvalidOperationException($"{HookBinary} is missing: run scripts/build first.");
        Scratch = Path.Combine("/var/tmp", prefix, Namespace);
    }

    public async Task CreateNamespaceAsync()
    {
        Directory.CreateDirectory(Scratch);
        await Client.CreateNamespaceAsync(new V1Namespace { Metadata = new V1ObjectMeta { Name = Namespace } });
        for (var i = 0; i < 60; i++)
        {
            var sas = await Client.ListNamespacedServiceAccountAsync(Namespace);
            if (sas.Items.Any(s => s.Metadata.Name == "default")) break;
            await Task.Delay(250);
        }
    }

    public async Task DeleteNamespaceAsync()
    {
        try { await Client.DeleteNamespaceAsync(Namespace); } catch (k8s.Autorest.HttpOperationException) { }
        foreach (var pv in (await Client.ListPersistentVolumeAsync(labelSelector: $"shipyard-e2e={Namespace}")).Items)
            await Client.DeletePersistentVolumeAsync(pv.Metadata.Name);
        try { Directory.Delete(Scratch, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>A `kubernetes.io/dockerconfigjson` Secret for both registry addresses, plus the registry CA.</summary>
    public async Task<string> CreateRegistrySecretAsync(string name, bool withCa = true, string? password = null)
    {
        var user = Env["SHIPYARD_TEST_REGISTRY_USER"];
        var pass = password ?? Env["SHIPYARD_TEST_REGISTRY_PASSWORD"];
        var auth = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{pass}"));
        System.Text.Json.Nodes.JsonObject Entry() => new() { ["username"] = user, ["password"] = pass, ["auth"] = auth };
        var json = new System.Text.Json.Nodes.JsonObject
        {
            ["auths"] = new System.Text.Json.Nodes.JsonObject { [PushHost] = Entry(), [PullHost] = Entry() },
        }.ToJsonString();
        var data = new Dictionary<string, byte[]> { [".dockerconfigjson"] = Encoding.UTF8.GetBytes(json) };
        if (withCa) data["ca.crt"] = File.ReadAllBytes(Env["SHIPYARD_TEST_REGISTRY_CA"]);
        await Client.CreateNamespacedSecretAsync(new V1Secret
        {
            Metadata = new V1ObjectMeta { Name = name },
            Type = "kubernetes.io/dockerconfigjson",
            Data = data,
        }, Namespace);
        return name;
    }

    public async Task<V1Pod> WaitForPodAsync(string name, Func<V1Pod, bool> done, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var pod = await Client.ReadNamespacedPodAsync(name, Namespace);
            if (done(pod)) return pod;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"pod {name}: {pod.Status?.Phase}");
            await Task.Delay(200);
        }
    }

    public async Task<int> CountLabelledAsync(string runnerPod)
    {
        var selector = $"runner-pod={runnerPod}";
        var pods = await Client.ListNamespacedPodAsync(Namespace, labelSelector: selector);
        var secrets = await Client.ListNamespacedSecretAsync(Namespace, labelSelector: selector);
        return pods.Items.Count + secrets.Items.Count;
    }

    public async Task<string> DescribeLabelledAsync(string runnerPod)
    {
        var selector = $"runner-pod={runnerPod}";
        var pods = await Client.ListNamespacedPodAsync(Namespace, labelSelector: selector);
        var secrets = await Client.ListNamespacedSecretAsync(Namespace, labelSelector: selector);
        return string.Join("; ", pods.Items.Select(p => $"pod {p.Metadata.Name} {p.Status?.Phase} deleting={p.Metadata.DeletionTimestamp} owners={string.Join(",", p.Metadata.OwnerReferences?.Select(o => o.Name + "/" + o.Uid) ?? [])}")
            .Concat(secrets.Items.Select(s => $"secret {s.Metadata.Name} deleting={s.Metadata.DeletionTimestamp} owners={string.Join(",", s.Metadata.OwnerReferences?.Select(o => o.Name + "/" + o.Uid) ?? [])}")));
    }

    /// <summary>Waits until no labelled object is left (pods terminate asynchronously).</summary>
    public async Task<int> WaitForNoLabelledAsync(string runnerPod, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        int n;
        while ((n = await CountLabelledAsync(runnerPod)) > 0 && DateTime.UtcNow < deadline) await Task.Delay(250);
        return n;
    }

    /// <summary>Runs a command in a container (test-side, for looking inside); returns its stdout.</summary>
    public async Task<string> ExecAsync(string pod, string container, params string[] command)
    {
        var stdout = "";
        await Client.NamespacedPodExecAsync(pod, Namespace, container, command, false, async (_, output, _) =>
        {
            using var reader = new StreamReader(output);
            stdout = await reader.ReadToEndAsync();
        }, CancellationToken.None);
        return stdout;
    }

    static string FindRepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Shipyard.slnx"))) return d.FullName;
        throw new InvalidOperationException("Cannot find the repository root (Shipyard.slnx).");
    }
}

