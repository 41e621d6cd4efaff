using Shipyard.Driver;
using System.Text;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.E2E;

/// <summary>The hook runs a whole job with only the permissions the README documents (and with ARC's stock Role).</summary>
[Collection(ClusterCollection.Name)]
public sealed class RbacTests(TestCluster cluster)
{
    /// <summary>A ServiceAccount bound to the Role in <paramref name="roleFile"/>; returns a kubeconfig using its token.</summary>
    async Task<string> KubeconfigForRoleAsync(string roleFile, string name)
    {
        var role = KubernetesYaml.Deserialize<V1Role>(await File.ReadAllTextAsync(Path.Combine(cluster.RepoRoot, "deploy", roleFile)));
        role.Metadata.Name = name;
        await cluster.Client.CreateNamespacedRoleAsync(role, cluster.Namespace);
        await cluster.Client.CreateNamespacedServiceAccountAsync(new V1ServiceAccount { Metadata = new V1ObjectMeta { Name = name } }, cluster.Namespace);
        await cluster.Client.CreateNamespacedRoleBindingAsync(new V1RoleBinding
        {
            Metadata = new V1ObjectMeta { Name = name },
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "Role", Name = name },
            Subjects = [new Rbacv1Subject { Kind = "ServiceAccount", Name = name, NamespaceProperty = cluster.Namespace }],
        }, cluster.Namespace);
        string? token = null;
        for (var i = 0; i < 100 && token is null; i++)
        {
            var secrets = await cluster.Client.ListNamespacedSecretAsync(cluster.Namespace);
            token = secrets.Items.FirstOrDefault(s => s.Type == "kubernetes.io/service-account-token" &&
                s.Metadata.Annotations?["kubernetes.io/service-account.name"] == name)?.Data?["token"] is { } t ? Encoding.UTF8.GetString(t) : null;
            if (token is null) await Task.Delay(200);
        }
        Assert.NotNull(token);
        var admin = await File.ReadAllTextAsync(cluster.KubeConfig);
        var ca = admin.Split("certificate-authority: ")[1].Split('}')[0].Trim();
        var path = Path.Combine(cluster.Scratch, $"{name}.kubeconfig");
        await File.WriteAllTextAsync(path, $"""
            apiVersion: v1
            kind: Config
            clusters: [{"{"}name: local, cluster: {"{"}server: "https://127.0.0.1:6443", certificate-authority: {ca}{"}"}{"}"}]
            users: [{"{"}name: sa, user: {"{"}token: {token}{"}"}{"}"}]
            contexts: [{"{"}name: local, context: {"{"}cluster: local, user: sa, namespace: {cluster.Namespace}{"}"}{"}"}]
            current-context: local
            """);
        return path;
    }

    async Task RunWholeJobAsync(string kubeconfig)
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env["KUBECONFIG"] = kubeconfig;
        var registry = await cluster.CreateRegistrySecretAsync($"{job.RunnerPod}-login");
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST_PUSH"] = cluster.PushHost + "/rbac";
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST_PULL"] = cluster.PullHost + "/rbac";
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_SECRET_NAME"] = registry;
        job.Env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_IMAGE"] = cluster.KanikoImage;

        var prepare = await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox,
            Registry(cluster.Env["SHIPYARD_TEST_REGISTRY_USER"], cluster.Env["SHIPYARD_TEST_REGISTRY_PASSWORD"], cluster.PullHost))));
        Assert.True(prepare.ExitCode == 0, prepare.ToString());
        var script = await job.RunAsync("run_script_step", ScriptStep(job, WriteScript(job, "echo via-role\n")));
        Assert.True(script.ExitCode == 0, script.ToString());
        Assert.Contains("via-role", script.Stdout);

        var files = job.NewFileCommands();
        var image = await job.RunAsync("run_container_step", ContainerStep(job, cluster.Busybox, null,
            new() { ["GITHUB_OUTPUT"] = "/github/file_commands/" + Path.GetFileName(files.Output) }, ActionArgs("-c", "echo x=1 >> $GITHUB_OUTPUT"), "sh"));
        Assert.True(image.ExitCode == 0, image.ToString());
        Assert.Equal("x=1\n", await File.ReadAllTextAsync(files.Output));

        var dir = Path.Combine(job.Work, "_actions", "rbac", "act", "v1");
        Directory.CreateDirectory(dir);
        await File.WriteAllTextAsync(Path.Combine(dir, "Dockerfile"), $"FROM {cluster.PushHost}/busybox:test\nRUN echo {Guid.NewGuid():N} > /id\nENTRYPOINT [\"sh\", \"-c\", \"echo built=yes >> $GITHUB_OUTPUT\"]\n");
        var built = await job.RunAsync("run_container_step", ContainerStep(job, null, Path.Combine(dir, "Dockerfile"),
            new() { ["GITHUB_OUTPUT"] = "/github/file_commands/" + Path.GetFileName(files.Output) }));
        Assert.True(built.ExitCode == 0, built.ToString());
        Assert.EndsWith("built=yes\n", await File.ReadAllTextAsync(files.Output));

        var cleanup = await job.RunAsync("cleanup_job", new JsonObject());
        Assert.True(cleanup.ExitCode == 0, cleanup.ToString());
        Assert.Equal(0, await cluster.WaitForNoLabelledAsync(job.RunnerPod, TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task A_whole_job_runs_with_the_documented_role() =>
        await RunWholeJobAsync(await KubeconfigForRoleAsync("role.yaml", "shipyard-hook"));

    [Fact]
    public async Task A_whole_job_runs_with_arcs_stock_role() =>
        await RunWholeJobAsync(await KubeconfigForRoleAsync("arc-role-stock.yaml", "arc-kube-mode"));
}
