using System.Text;
using k8s;
using k8s.Models;
namespace Shipyard.Driver;

/// <summary>
/// Real ServiceAccount tokens bound to a Role from deploy/, for running the hook with exactly those permissions
/// and authenticating as an ARC runner pod does (a bearer token, not a client certificate).
/// </summary>
public static class RoleKubeconfig
{
    /// <summary>A ServiceAccount bound to the Role in <paramref name="roleFile"/>; returns a kubeconfig using its token.</summary>
    public static async Task<string> CreateAsync(LocalCluster cluster, string roleFile, string name, Action<V1Role>? edit = null)
    {
        var role = KubernetesYaml.Deserialize<V1Role>(await File.ReadAllTextAsync(Path.Combine(cluster.RepoRoot, "deploy", roleFile)));
        role.Metadata.Name = name;
        edit?.Invoke(role);
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
        if (token is null) throw new InvalidOperationException($"No token Secret appeared for ServiceAccount {name}.");
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
}
