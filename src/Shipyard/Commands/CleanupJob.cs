namespace Shipyard.Commands;

/// <summary>cleanup_job: every pod and Secret labelled with this runner goes, and no-volume mode's sync manifest. Idempotent.</summary>
public static class CleanupJob
{
    public static async Task RunAsync(HookContext ctx)
    {
        var selector = Names.OfRunner(ctx.Settings.RunnerPodName);
        // ARC's Role has list+delete, not deletecollection.
        foreach (var pod in await ctx.Cluster.ListPodsAsync(selector, ctx.Cancel))
            await ctx.Cluster.DeletePodAsync(pod.Metadata.Name, 0, ctx.Cancel);
        foreach (var secret in await ctx.Cluster.ListSecretsAsync(selector, ctx.Cancel))
            await ctx.Cluster.DeleteSecretAsync(secret.Metadata.Name, ctx.Cancel);
        var sync = Path.Combine(ctx.Settings.WorkDirectory, Sync.WorkManifest.SyncDirectory);
        if (Directory.Exists(sync)) Directory.Delete(sync, recursive: true);
    }
}
