using Shipyard.Pods;
using Shipyard.Protocol;
using static Shipyard.Tests.Fixtures;

namespace Shipyard.Tests;

public class StepPodTests
{
    static StepPodOptions Options(params string[] pullSecrets) =>
        new("arc-runner-abc-step-1234abcd", "ghcr.io/acme/action@sha256:1", Placement, Work, "repo/repo", "arc-runner-abc-step-1234abcd-env", pullSecrets);

    [Fact]
    public void Env_comes_from_a_secret_and_the_runner_directories_are_mounted()
    {
        var pod = StepPod.Build(Container(env: new() { ["ACTIONS_RUNTIME_TOKEN"] = "tok-3f9a77" }), Options());
        var c = pod.Spec.Containers.Single();
        Assert.Null(c.Env);
        Assert.Equal("arc-runner-abc-step-1234abcd-env", c.EnvFrom.Single().SecretRef.Name);
        Assert.DoesNotContain("tok-3f9a77", k8s.KubernetesJson.Serialize(pod));
        Assert.Equal(
            [("/github/workspace", "repo/repo"), ("/github/home", "_temp/_github_home"), ("/github/workflow", "_temp/_github_workflow"),
             ("/github/file_commands", "_temp/_runner_file_commands"), ("/github/runner_temp", "_temp")],
            c.VolumeMounts.Select(m => (m.MountPath, m.SubPath)));
        Assert.Equal("Never", pod.Spec.RestartPolicy);
        Assert.False(pod.Spec.AutomountServiceAccountToken);
        Assert.Equal("step", pod.Metadata.Labels["shipyard.dev/role"]);
        Assert.Null(pod.Spec.ImagePullSecrets);
    }

    [Fact]
    public void Null_entrypoint_keeps_the_image_entrypoint_and_args_are_recovered()
    {
        var pod = StepPod.Build(Container(args: ["\"a", "b\"", "\"c\""]), Options("reg"));
        var c = pod.Spec.Containers[0];
        Assert.Null(c.Command);
        Assert.Equal(["a b", "c"], c.Args);
        Assert.Equal("reg", pod.Spec.ImagePullSecrets.Single().Name);
    }

    [Fact]
    public void Entrypoint_is_the_command_and_empty_args_keep_nothing()
    {
        var c = StepPod.Build(Container(entryPoint: "/entry.sh"), Options()).Spec.Containers[0];
        Assert.Equal(["/entry.sh"], c.Command);
        Assert.Null(c.Args);
    }

    [Fact]
    public void Env_names_kubernetes_cannot_carry_are_refused()
    {
        Assert.Throws<HookException>(() => StepPod.EnvironmentData(Container(env: new() { ["BAD NAME"] = "x" })));
        Assert.Equal("", StepPod.EnvironmentData(Container(env: new() { ["EMPTY"] = null }))["EMPTY"]);
    }

    [Theory]
    [InlineData(new[] { "\"a", "b\"", "\"c\"" }, new[] { "a b", "c" })]
    [InlineData(new[] { "\"--flag=x\"" }, new[] { "--flag=x" })]
    [InlineData(new[] { "\"it's\"" }, new[] { "it's" })]
    [InlineData(new string[0], new string[0])]
    public void Quoted_split_args_are_recovered(string[] sent, string[] expected) => Assert.Equal(expected, ShellWords.Recover(sent));

    [Fact]
    public void Unterminated_quotes_are_refused() => Assert.Throws<HookException>(() => ShellWords.Split("\"open"));

    [Fact]
    public void Quote_survives_sh() => Assert.Equal("'it'\\''s'", ShellWords.Quote("it's"));
}
