using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using k8s.Models;
using Shipyard.Cluster;
using Shipyard.Images;
using Shipyard.Pods;
using Shipyard.Protocol;
using Shipyard.Settings;

namespace Shipyard.Commands;

public enum CheckStatus { Ok, Warn, Fail }

/// <summary>One line of `shipyard doctor`: what was checked, how it went, what was found, and the fix.</summary>
public sealed record CheckResult(string Check, CheckStatus Status, string Found, string? Fix = null);

public sealed record DoctorReport(bool Ok, List<CheckResult> Checks);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true, WriteIndented = true)]
[JsonSerializable(typeof(DoctorReport))]
public sealed partial class DoctorJson : JsonSerializerContext;

/// <summary>
/// `shipyard doctor [--json]`: run once inside a runner pod (or in CI of the runner image), it reads the
/// settings the hook reads and checks, read-only, what a job will need: settings, template, runner pod and
/// claim, permissions, admission of the pods Shipyard builds (server-side dry run), and the registry of
/// Dockerfile actions (login on both names, push rights by an upload session it cancels). It creates,
/// changes and deletes nothing.
/// </summary>
public static class Doctor
{
    const string SampleImage = "docker.io/library/debian:bookworm";

    public static async Task<int> RunAsync(Func<string, string?> env, bool json, TextWriter stdout, CancellationToken ct)
    {
        var checks = new List<CheckResult>();
        await RunChecksAsync(env, checks, ct);
        var report = new DoctorReport(checks.All(c => c.Status != CheckStatus.Fail), checks);
        if (json) stdout.WriteLine(JsonSerializer.Serialize(report, DoctorJson.Default.DoctorReport));
        else
        {
            foreach (var c in checks)
                stdout.WriteLine($"{Label(c.Status),-6} {c.Check}: {c.Found}{(c.Fix is null ? "" : $" — fix: {c.Fix}")}");
            stdout.WriteLine(report.Ok
                ? $"Shipyard doctor: no check failed ({checks.Count(c => c.Status == CheckStatus.Warn)} warnings)."
                : $"Shipyard doctor: {checks.Count(c => c.Status == CheckStatus.Fail)} checks failed.");
        }
        return report.Ok ? 0 : 1;
    }

    static string Label(CheckStatus s) => s switch { CheckStatus.Ok => "ok", CheckStatus.Warn => "warn", _ => "FAIL" };

    static async Task RunChecksAsync(Func<string, string?> env, List<CheckResult> checks, CancellationToken ct)
    {
        HookSettings settings;
        try { settings = HookSettings.FromEnvironment(env); }
        catch (HookException e) { checks.Add(new("settings", CheckStatus.Fail, e.Message, "set the variables named above on the runner container")); return; }
        checks.Add(new("settings", CheckStatus.Ok, $"runner pod {settings.RunnerPodName}, claim {settings.ClaimName}, builder {settings.Builder.ToString().ToLowerInvariant()}"));

        HookTemplate? template = null;
        try
        {
            template = HookTemplate.Load(settings.TemplatePath);
            checks.Add(new("template", CheckStatus.Ok, settings.TemplatePath is null ? "none set" : $"{settings.TemplatePath} loads"));
        }
        catch (HookException e) { checks.Add(new("template", CheckStatus.Fail, e.Message, "fix ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE")); }

        ClusterGateway cluster;
        try { cluster = ClusterGateway.Connect(settings.KubeConfigPath, settings.Namespace); }
        catch (HookException e) { checks.Add(new("cluster", CheckStatus.Fail, e.Message, "run inside the runner pod, or set KUBECONFIG")); return; }
        using var _ = cluster;

        V1Pod? runner;
        try { runner = await cluster.ReadPodAsync(settings.RunnerPodName, ct); }
        catch (HookException e)
        {
            checks.Add(new("runner pod", CheckStatus.Fail, e.Message, "check the API server is reachable and the Role grants pods get"));
            return;
        }
        if (runner is null)
        {
            checks.Add(new("runner pod", CheckStatus.Fail, $"no pod {settings.RunnerPodName} in namespace {cluster.Namespace}", "ACTIONS_RUNNER_POD_NAME must name this runner pod; ACTIONS_RUNNER_KUBERNETES_NAMESPACE its namespace"));
            return;
        }
        checks.Add(new("runner pod", CheckStatus.Ok, $"{settings.RunnerPodName} in namespace {cluster.Namespace} on node {runner.Spec?.NodeName ?? "(not scheduled)"}"));

        PodLocalWork? local;
        try { local = PodLocalWork.For(settings, RunnerPod.From(runner)); }
        catch (HookException e) { checks.Add(new("mode", CheckStatus.Fail, e.Message, "set ACTIONS_RUNNER_IMAGE to the runner's image")); return; }
        checks.Add(new("mode", CheckStatus.Ok, local is null
            ? $"volume: pods mount the work claim {settings.ClaimName}"
            : $"novolume: pod-local volumes kept in sync; externals and sync containers from {local.RunnerImage} ({local.ImageExternals})"));

        if (local is not null) checks.Add(new("work claim", CheckStatus.Ok, "not needed in no-volume mode"));
        else checks.Add(await cluster.ClaimExistsAsync(settings.ClaimName, ct) switch
        {
            true => new("work claim", CheckStatus.Ok, $"{settings.ClaimName} exists"),
            false => new("work claim", CheckStatus.Fail, $"no claim {settings.ClaimName}", "ACTIONS_RUNNER_CLAIM_NAME must name the runner's work volume claim"),
            null => new("work claim", CheckStatus.Warn, "not checked: the Role has no persistentvolumeclaims get", "optional; add it to deploy/role.yaml's rule to have a missing claim reported before a job starts"),
        });

        checks.AddRange(await PermissionChecksAsync(cluster, ct));

        var placement = new PodPlacement(RunnerPod.From(runner), settings.UseKubeScheduler, settings.ClaimReadWriteMany, NoWorkVolume: local is not null);
        checks.AddRange(await AdmissionChecksAsync(cluster, settings, placement, template, local, ct));

        if ((settings.RegistryHost ?? settings.RegistryHostPush ?? settings.RegistryHostPull ?? settings.RegistrySecretName) is not null)
            checks.AddRange(await RegistryChecksAsync(cluster, settings, ct));
        else
            checks.Add(new("registry", CheckStatus.Ok, $"not configured: Dockerfile actions will fail with a line naming {HookSettings.Prefix}REGISTRY_HOST"));

        checks.AddRange(ImageChecks(settings, template));
    }

    static async Task<IEnumerable<CheckResult>> PermissionChecksAsync(ClusterGateway cluster, CancellationToken ct)
    {
        V1SubjectRulesReviewStatus review;
        try { review = await cluster.ReviewOwnRulesAsync(ct); }
        catch (HookException e)
        {
            return [new("permissions", CheckStatus.Warn, e.Message, "the hook checks again at prepare_job")];
        }
        var results = new List<CheckResult>();
        var missing = Permissions.Missing(review, Permissions.Required);
        if (missing.Count == 0)
            results.Add(new("permissions", CheckStatus.Ok, $"all {Permissions.Required.Count} required verbs granted in namespace {cluster.Namespace}"));
        else
            results.Add(new("permissions", review.Incomplete ? CheckStatus.Warn : CheckStatus.Fail,
                "missing " + string.Join("; ", missing.Select(p => $"{p} ({p.Why})")) + (review.Incomplete ? " (the review is incomplete: another authorizer may still allow it)" : ""),
                "grant them as deploy/role.yaml does"));
        foreach (var (p, lost) in Optional)
            if (Permissions.Missing(review, [p]).Count > 0)
                results.Add(new($"permission {p}", CheckStatus.Warn, $"not granted: {lost}", $"optional; add `{p.Verb}` on {p.Resource} (deploy/role.yaml)"));
        return results;
    }

    static readonly (Permission, string)[] Optional =
    [
        (new("pods", "watch", "react to pod changes at once"), "Shipyard polls pod status instead of watching (slower reactions, more API reads)"),
        (new("persistentvolumeclaims", "get", "report a missing work volume"), "a missing work claim is not reported before the job pod is created"),
    ];

    /// <summary>The pods a job creates, built as the hook builds them, dry-run created so the cluster's admission judges them.</summary>
    static async Task<IEnumerable<CheckResult>> AdmissionChecksAsync(ClusterGateway cluster, HookSettings settings, PodPlacement placement, HookTemplate? template, PodLocalWork? local, CancellationToken ct)
    {
        var work = new WorkVolume(settings.WorkDirectory, settings.ClaimName, PodLocal: local is not null);
        var sample = new ContainerDefinition(SampleImage, null, [], null, "/__w/repo/repo", null, null, new() { ["CI"] = "true" }, [], [], []);
        var pods = new List<(string What, Func<V1Pod> Build)>
        {
            ("job pod", () =>
            {
                var o = JobPod.Build(sample, [], new JobPodOptions(Names.Fresh(settings.RunnerPodName, "doctor"), placement, work, settings.Workspace, null, local));
                return template is null ? o.Pod : template.ApplyToJobPod(o.Pod, o.ServiceNames);
            }),
            ("step pod", () =>
            {
                var name = Names.Fresh(settings.RunnerPodName, "doctor");
                var pod = StepPod.Build(sample, new StepPodOptions(name, SampleImage, placement, work, "repo/repo", Names.EnvSecret(name), []));
                if (template is not null) pod = template.ApplyToStepPod(pod);
                local?.AddTo(pod.Spec);
                return pod;
            }),
        };
        if (settings.RegistrySecretName is not null)
            pods.Add(("builder pod", () =>
            {
                var builder = DockerfileAction.BuilderFor(settings);
                var spec = new BuildSpec("Dockerfile", new Dictionary<string, string> { [DockerfileAction.ContentHashLabel] = "doctor" }, null, [],
                    settings.RegistryInsecure ? DockerConfig.Authority(settings.RegistryHostPush ?? settings.RegistryHost ?? "registry") : null, settings.BuilderSecretName is not null);
                var pod = BuilderPod.Build(builder, spec, new BuilderPodOptions(Names.Fresh(settings.RunnerPodName, "doctor"), placement, work, "_temp/shipyard-build-doctor",
                    settings.BuilderSecretName, false, DockerfileAction.Architecture, DockerfileAction.BuilderResources(settings), settings.BuildTimeout));
                if (template is not null) pod = template.ApplyToBuilderPod(pod);
                local?.AddTo(pod.Spec);
                return pod;
            }));
        var results = new List<CheckResult>();
        foreach (var (what, build) in pods)
        {
            V1Pod pod;
            try { pod = build(); }
            catch (HookException e) { results.Add(new($"admission: {what}", CheckStatus.Fail, $"cannot be built: {e.Message}", "fix the hook template")); continue; }
            var refused = await cluster.DryRunCreatePodAsync(pod, ct);
            results.Add(refused is null
                ? new($"admission: {what}", CheckStatus.Ok, "admitted (server-side dry run)")
                : new($"admission: {what}", CheckStatus.Fail, $"refused: {refused}", "allow it in the namespace's admission policy (Pod Security level, webhooks) or change the hook template"));
        }
        return results;
    }

    static async Task<IEnumerable<CheckResult>> RegistryChecksAsync(ClusterGateway cluster, HookSettings settings, CancellationToken ct)
    {
        RegistrySettings registry;
        try { registry = settings.RequireRegistry(); }
        catch (HookException e) { return [new("registry settings", CheckStatus.Fail, e.Message, "set the variables named above")]; }
        var results = new List<CheckResult>();
        var secret = await cluster.ReadSecretAsync(registry.SecretName, ct);
        byte[]? config = null;
        if (secret?.Data?.TryGetValue(".dockerconfigjson", out config) != true || config is null)
            return [new("registry secret", CheckStatus.Fail, secret is null ? $"no Secret {registry.SecretName} in namespace {cluster.Namespace}" : $"Secret {registry.SecretName} has no .dockerconfigjson",
                "kubectl create secret generic … --type=kubernetes.io/dockerconfigjson --from-file=.dockerconfigjson=config.json (README: Registry Secret)")];
        var pushAuthority = DockerConfig.Authority(registry.PushHost);
        var pullAuthority = DockerConfig.Authority(registry.PullHost);
        RegistryLogin? pushLogin, pullLogin;
        try { (pushLogin, pullLogin) = (DockerConfig.LoginFor(config, pushAuthority), DockerConfig.LoginFor(config, pullAuthority)); }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            return [new("registry secret", CheckStatus.Fail, $"{registry.SecretName}'s .dockerconfigjson is not valid: {e.Message}", "recreate it from a docker config.json")];
        }
        var hosts = pushAuthority == pullAuthority ? [pushAuthority] : new[] { pushAuthority, pullAuthority };
        var missing = hosts.Where(h => (h == pushAuthority ? pushLogin : pullLogin) is null).ToList();
        results.Add(missing.Count == 0
            ? new("registry secret", CheckStatus.Ok, $"{registry.SecretName} has credentials for {string.Join(" and ", hosts)}")
            : new("registry secret", CheckStatus.Fail, $"{registry.SecretName} has no credentials for {string.Join(" and ", missing)}", "add an `auths` entry for each registry name"));

        X509Certificate2Collection? ca = null;
        if (secret.Data.TryGetValue("ca.crt", out var caPem))
        {
            try
            {
                ca = RegistryClient.ParseCa(caPem);
                results.Add(new("registry CA", CheckStatus.Ok, string.Join("; ", ca.Select(c => $"ca.crt: {c.Subject}, valid until {c.NotAfter:yyyy-MM-dd}"))));
            }
            catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or ArgumentException)
            {
                results.Add(new("registry CA", CheckStatus.Fail, $"ca.crt does not parse as a PEM certificate: {e.Message}", "put the registry's CA certificate (PEM) under key ca.crt"));
            }
        }

        using var client = new RegistryClient(pushAuthority, pushLogin, ca, registry.Insecure, TimeSpan.FromSeconds(5), DockerConfig.Authorities(config), "push host");
        var repoPath = $"{registry.PushHost}/shipyard-doctor"[(pushAuthority.Length + 1)..];
        try
        {
            var status = await client.PingAsync(repoPath, ct);
            results.Add(status == HttpStatusCode.OK
                ? new("registry push host", CheckStatus.Ok, $"{pushAuthority} answers /v2/ over {(registry.Insecure ? "HTTP" : "TLS")} with the Secret's login")
                : new("registry push host", CheckStatus.Fail, status == HttpStatusCode.Unauthorized
                    ? $"authentication failed on the push host {pushAuthority} (401 Unauthorized)"
                    : $"{pushAuthority} answers /v2/ with {(int)status} {status}", status == HttpStatusCode.Unauthorized ? $"fix the credentials for {pushAuthority} in {registry.SecretName}" : "check the registry"));
            if (status == HttpStatusCode.OK)
            {
                var (allowed, detail) = await client.OpenAndCancelUploadAsync(repoPath, ct);
                results.Add(allowed
                    ? new("registry push rights", CheckStatus.Ok, $"{pushAuthority}/{repoPath}: {detail}")
                    : new("registry push rights", CheckStatus.Fail, $"cannot push to {pushAuthority}/{repoPath}: {detail}", "give the Secret's login push rights on the registry path"));
            }
        }
        catch (RegistryAuthenticationException e)
        {
            results.Add(new("registry push host", CheckStatus.Fail, e.Message, $"fix the credentials for {pushAuthority} in {registry.SecretName}"));
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Security.Authentication.AuthenticationException)
        {
            results.Add(new("registry push host", CheckStatus.Fail, $"cannot reach {pushAuthority} over {(registry.Insecure ? "HTTP" : "TLS")}: {e.Message}",
                "the runner pod must reach the push host; a private CA goes under ca.crt in the Secret"));
        }
        return results;
    }

    static IEnumerable<CheckResult> ImageChecks(HookSettings settings, HookTemplate? template)
    {
        var images = new List<(string What, string Image)>();
        if (settings.RegistrySecretName is not null || settings.RegistryHost is not null) images.Add(("builder image", settings.BuilderImageOrDefault));
        foreach (var (name, image) in template?.ContainerImages() ?? []) images.Add(($"template container {name}", image));
        foreach (var (what, image) in images)
        {
            var lastPart = image[(image.LastIndexOf('/') + 1)..];
            var pinned = image.Contains('@');
            var tag = lastPart.Contains(':') ? lastPart[(lastPart.IndexOf(':') + 1)..] : null;
            yield return pinned ? new(what, CheckStatus.Ok, $"{image} (by digest)")
                : tag is null or "latest" ? new(what, CheckStatus.Warn, $"{image} is not pinned ({(tag is null ? "no tag" : "latest")}): it can change under running jobs", "name it by a version tag or digest")
                : new(what, CheckStatus.Ok, $"{image} (tag {tag})");
        }
    }
}
