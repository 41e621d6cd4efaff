using Shipyard.Settings;

namespace Shipyard.Tests;

public class SettingsTests
{
    static HookSettings From(Dictionary<string, string> env) => HookSettings.FromEnvironment(k => env.GetValueOrDefault(k));

    static Dictionary<string, string> Base() => new()
    {
        ["ACTIONS_RUNNER_POD_NAME"] = "arc-runner-abc",
        ["RUNNER_WORKSPACE"] = "/home/runner/_work/repo",
        ["GITHUB_WORKSPACE"] = "/home/runner/_work/repo/repo",
    };

    [Fact]
    public void Defaults_follow_arc()
    {
        var s = From(Base());
        Assert.Equal("arc-runner-abc-work", s.ClaimName);
        Assert.Equal("/home/runner/_work", s.WorkDirectory);
        Assert.Equal("/home/runner/externals", s.ExternalsDirectory);
        Assert.Equal(TimeSpan.FromSeconds(600), s.PrepareJobTimeout);
        Assert.False(s.UseKubeScheduler);
        Assert.Equal(BuilderKind.Kaniko, s.Builder);
        Assert.Equal(HookSettings.DefaultKanikoImage, s.BuilderImageOrDefault);
        Assert.Equal(ExternalsCopy.FirstUse, s.ExternalsCopy);
        Assert.False(s.ClaimReadWriteMany);
    }

    [Fact]
    public void Externals_can_be_copied_all_at_job_start()
    {
        var env = Base();
        env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_EXTERNALS_COPY"] = "all";
        Assert.Equal(ExternalsCopy.All, From(env).ExternalsCopy);
    }

    [Fact]
    public void Missing_pod_name_is_a_clear_error()
    {
        var env = Base();
        env.Remove("ACTIONS_RUNNER_POD_NAME");
        Assert.Contains("ACTIONS_RUNNER_POD_NAME", Assert.Throws<HookException>(() => From(env)).Message);
    }

    [Theory]
    [InlineData("ACTIONS_RUNNER_USE_KUBE_SCHEDULER", "maybe")]
    [InlineData("ACTIONS_RUNNER_PREPARE_JOB_TIMEOUT_SECONDS", "-5")]
    [InlineData("ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER", "docker")]
    [InlineData("ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_EXTERNALS_COPY", "lazy")]
    [InlineData("ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_CLAIM_READ_WRITE_MANY", "rwx")]
    [InlineData("ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_MEMORY_LIMIT", "4 GB")]
    [InlineData("ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_CPU_REQUEST", "-1")]
    public void Bad_values_name_the_variable(string name, string value)
    {
        var env = Base();
        env[name] = value;
        Assert.Contains(name, Assert.Throws<HookException>(() => From(env)).Message);
    }

    [Fact]
    public void Registry_push_and_pull_hosts_are_preferred_over_the_host()
    {
        var env = Base();
        env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST"] = "ghcr.io/acme/";
        env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_SECRET_NAME"] = "login";
        Assert.Equal(new RegistrySettings("ghcr.io/acme", "ghcr.io/acme", "login", false), From(env).RequireRegistry());
        env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST_PUSH"] = "registry.ci.svc:5000";
        env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST_PULL"] = "localhost:30500";
        Assert.Equal(new RegistrySettings("registry.ci.svc:5000", "localhost:30500", "login", false), From(env).RequireRegistry());
    }

    [Fact]
    public void Missing_registry_settings_name_every_variable_to_set()
    {
        var e = Assert.Throws<HookException>(() => From(Base()).RequireRegistry());
        Assert.Contains("ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_HOST", e.Message);
        Assert.Contains("ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_REGISTRY_SECRET_NAME", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Buildah_has_its_own_default_image()
    {
        var env = Base();
        env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER"] = "buildah";
        Assert.Equal(HookSettings.DefaultBuildahImage, From(env).BuilderImageOrDefault);
    }

    [Fact]
    public void Builder_pods_are_bounded_by_default_and_each_bound_can_be_set_or_removed()
    {
        var s = From(Base());
        Assert.Equal(new Dictionary<string, string> { ["cpu"] = "250m", ["memory"] = "256Mi" }, s.BuilderRequests);
        Assert.Equal(new Dictionary<string, string> { ["memory"] = "4Gi" }, s.BuilderLimits);
        var env = Base();
        env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_CPU_LIMIT"] = "2";
        env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_MEMORY_LIMIT"] = "none";
        env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_MEMORY_REQUEST"] = "1.5Gi";
        s = From(env);
        Assert.Equal(new Dictionary<string, string> { ["cpu"] = "2" }, s.BuilderLimits);
        Assert.Equal("1.5Gi", s.BuilderRequests["memory"]);
    }

    [Fact]
    public void The_layer_cache_needs_its_own_secret_and_every_bad_variable_is_named_at_once()
    {
        var env = Base();
        env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILD_CACHE"] = "true";
        env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_MEMORY_LIMIT"] = "lots";
        var message = Assert.Throws<HookException>(() => From(env)).Message;
        Assert.Contains("BUILD_CACHE_SECRET_NAME", message);
        Assert.Contains("BUILDER_MEMORY_LIMIT", message);
        env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILD_CACHE_SECRET_NAME"] = "cache-login";
        env.Remove("ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_BUILDER_MEMORY_LIMIT");
        Assert.Equal("cache-login", From(env).BuildCacheSecretName);
    }
}
