using k8s.Models;
using Shipyard.Images;
using Shipyard.Pods;
using Shipyard.Protocol;

namespace Shipyard.Commands;

/// <summary>
/// run_container_step: a container action runs in its own pod with the work volume mounted where
/// actions expect it; a Dockerfile action is first built in the cluster. Env goes through a Secret,
/// the log is followed live, the container's exit code is the step's, and the pod and Secrets go afterwards.
/// </summary>
public static class RunContainerStep
{
    public static async Task<int> RunAsync(HookContext ctx, ContainerDefinition step)
    {
        var template = HookTemplate.Load(ctx.Settings.TemplatePath);
        var workspace = ctx.Settings.Workspace ?? throw new HookException("GITHUB_WORKSPACE is not set; the runner sets it for every step.");
        var workspaceSubPath = ctx.Work.SubPath(workspace, "GITHUB_WORKSPACE");
        var envData = StepPod.EnvironmentData(step);
        foreach (var (k, v) in envData)
            if (k.EndsWith("TOKEN", StringComparison.Ordinal)) ctx.Log.AddMask(v);
        var placement = await ctx.PlacementAsync();
        var podName = Names.Fresh(ctx.Settings.RunnerPodName, "step");
        // On cancel the pod goes at once, whatever the step's own path is waiting on.
        using var onCancel = ctx.Cancel.Register(() => _ = ctx.Cluster.DeletePodAsync(podName, 0, CancellationToken.None));

        var created = new List<string>();
        try
        {
            string image;
            var pullSecrets = new List<string>();
            if (step.Image is { Length: > 0 } img)
            {
                image = ImageReference.Require(img, "container step");
                if (RegistryPullSecret.Wanted(step.Registry))
                {
                    ctx.Log.AddMask(step.Registry!.Password);
                    var name = Names.RegistrySecret(podName);
                    await ctx.Cluster.CreateSecretAsync(RegistryPullSecret.Build(name, step.Registry, image, placement), ctx.Cancel);
                    created.Add(name);
                    pullSecrets.Add(name);
                }
            }
            else if (step.Dockerfile is { Length: > 0 } dockerfile)
            {
                var built = await DockerfileAction.BuildOrReuseAsync(ctx, dockerfile, placement, template);
                image = built.PullReference;
                pullSecrets.Add(built.PullSecret);
            }
            else throw new HookException("run_container_step needs an image or a dockerfile; it got neither.");

            var envSecret = Names.EnvSecret(podName);
            await ctx.Cluster.CreateSecretAsync(new V1Secret
            {
                ApiVersion = "v1", Kind = "Secret", Type = "Opaque",
                Metadata = placement.Metadata(envSecret, "step-env"),
                StringData = envData,
            }, ctx.Cancel);
            created.Add(envSecret);

            var pod = StepPod.Build(step, new StepPodOptions(podName, image, placement, ctx.Work, workspaceSubPath, envSecret, pullSecrets));
            if (template is not null) pod = template.ApplyToStepPod(pod);
            // No-volume mode: the workspace and `_temp` (file commands, home, workflow) go in before the action starts,
            // and what it wrote comes back after it exits, from the sync container that outlives it.
            string[] shared = [workspaceSubPath, "_temp"];
            var exit = (await ctx.RunPodAsync(pod, Names.StepContainer, ctx.Stdout, null, shared)).ExitCode;
            if (ctx.Local is not null) await ctx.WorkSync.PullAsync(PodLocalWork.Target(podName), shared, ctx.Cancel);
            if (exit != 0) throw new HookException($"The container action exited with code {exit}.", exit);
            return 0;
        }
        finally
        {
            await ctx.Cluster.DeletePodAsync(podName, 0, CancellationToken.None);
            foreach (var s in created) await ctx.Cluster.DeleteSecretAsync(s, CancellationToken.None);
        }
    }
}
