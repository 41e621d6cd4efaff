using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using k8s.Models;
using Shipyard.Pods;
using Shipyard.Settings;

namespace Shipyard.Images;

public sealed record BuiltImage(string PullReference, string PullSecret, bool Reused);

/// <summary>
/// A Dockerfile action's image: content hash of its context and platform → tag; reuse the tag when the registry
/// holds an image Shipyard built for that content, otherwise build it in a builder pod that holds no push
/// credential, push what it wrote from here, and run it by digest through the pull host.
/// </summary>
public static class DockerfileAction
{
    /// <summary>The image label carrying the content hash: what makes a tag Shipyard's own build, safe to reuse.</summary>
    public const string ContentHashLabel = "dev.shipyard.content-hash";

    public static IImageBuilder BuilderFor(HookSettings s) => s.Builder switch
    {
        BuilderKind.Buildah => new BuildahBuilder(s.BuilderImageOrDefault),
        _ => new KanikoBuilder(s.BuilderImageOrDefault),
    };

    /// <summary>The runner's architecture as Kubernetes names it: the builder runs there, so the image is for it.</summary>
    public static string Architecture => RuntimeInformation.OSArchitecture switch
    {
        System.Runtime.InteropServices.Architecture.X64 => "amd64",
        System.Runtime.InteropServices.Architecture.Arm64 => "arm64",
        System.Runtime.InteropServices.Architecture.Arm => "arm",
        System.Runtime.InteropServices.Architecture.S390x => "s390x",
        System.Runtime.InteropServices.Architecture.Ppc64le => "ppc64le",
        System.Runtime.InteropServices.Architecture.RiscV64 => "riscv64",
        var other => other.ToString().ToLowerInvariant(),
    };

    public static async Task<BuiltImage> BuildOrReuseAsync(HookContext ctx, string dockerfileHostPath, PodPlacement placement, HookTemplate? template)
    {
        var registry = ctx.Settings.RequireRegistry();
        var dockerfile = Path.GetFullPath(dockerfileHostPath);
        if (!File.Exists(dockerfile)) throw new HookException($"The action's Dockerfile {dockerfile} does not exist on the runner.");
        var contextDir = Path.GetDirectoryName(dockerfile)!;
        var dockerfileSubPath = ctx.Work.SubPath(dockerfile, "The Dockerfile");

        // The push login stays in this process: no pod Shipyard creates ever mounts the registry Secret.
        var secret = await ctx.Cluster.ReadSecretAsync(registry.SecretName, ctx.Cancel)
            ?? throw new HookException($"The registry Secret '{registry.SecretName}' ({HookSettings.Prefix}REGISTRY_SECRET_NAME) does not exist in namespace '{ctx.Cluster.Namespace}'.");
        if (secret.Data?.TryGetValue(".dockerconfigjson", out var dockerConfig) != true || dockerConfig is null)
            throw new HookException($"The registry Secret '{registry.SecretName}' has no .dockerconfigjson key; create it with `kubectl create secret docker-registry`.");
        var caPem = secret.Data.TryGetValue("ca.crt", out var ca) ? ca : null;
        var pushAuthority = DockerConfig.Authority(registry.PushHost);
        var pullAuthority = DockerConfig.Authority(registry.PullHost);
        var login = DockerConfig.LoginFor(dockerConfig, pushAuthority);
        foreach (var s in login?.Secrets ?? []) ctx.Log.AddMask(s);

        var builder = BuilderFor(ctx.Settings);
        var name = ImageNaming.ForDockerfile(dockerfileSubPath);
        var tag = BuildContext.Hash(contextDir, Path.GetFileName(dockerfile), builder.Identity, $"linux/{Architecture}");
        var pushRepo = $"{registry.PushHost}/{name}";
        var repoPath = pushRepo[(pushAuthority.Length + 1)..];
        var title = ActionTitle(dockerfileSubPath);
        var bases = BaseImages.Of(await File.ReadAllTextAsync(dockerfile, ctx.Cancel));

        X509Certificate2Collection? caCerts;
        try { caCerts = caPem is null ? null : RegistryClient.ParseCa(caPem); }
        catch (CryptographicException e) { throw new HookException($"The registry Secret '{registry.SecretName}' has a ca.crt that is not a PEM certificate bundle: {e.Message}"); }
        using var client = new RegistryClient(pushAuthority, login, caCerts, registry.Insecure, TimeSpan.FromSeconds(30),
            DockerConfig.Authorities(dockerConfig), "push host");

        var digest = await Talking(pushAuthority, registry.Insecure, () => ReusableDigestAsync(ctx, client, repoPath, tag));
        if (digest is not null)
        {
            ctx.Log.Info($"Using {pushRepo}:{tag} ({digest}), already built for this content of {title}.");
            return new BuiltImage($"{registry.PullHost}/{name}@{digest}", registry.SecretName, Reused: true);
        }

        // The builder gets exactly what docker would send (the context filtered by `.dockerignore` here) and
        // writes the image next to it; the whole directory goes when the step is done.
        var staged = Path.Combine(ctx.Settings.WorkDirectory, "_temp", $"shipyard-build-{Guid.NewGuid():N}");
        string? loginSecret = null;
        try
        {
            BuildContext.Stage(contextDir, Path.GetFileName(dockerfile), Path.Combine(staged, "context"), Path.Combine(staged, "dockerfile"));
            var output = Path.Combine(staged, "out");
            foreach (var dir in builder.OutputDirectories.Prepend("").Select(d => Path.Combine(output, d)))
            {
                Directory.CreateDirectory(dir);
                File.SetUnixFileMode(dir, AnyoneMayWrite); // not left to the umask
            }
            if (caPem is not null)
            {
                Directory.CreateDirectory(Path.Combine(staged, "ca"));
                await File.WriteAllBytesAsync(Path.Combine(staged, "ca", "ca.crt"), caPem, ctx.Cancel);
            }
            loginSecret = await BuilderLoginAsync(ctx, placement);
            var spec = new BuildSpec(Path.GetFileName(dockerfile),
                new Dictionary<string, string> { [ContentHashLabel] = tag },
                ctx.Settings.BuildCache ? $"{pushRepo}/cache" : null,
                caPem is null ? [] : bases.Select(b => b.Authority).Prepend(pullAuthority).Prepend(pushAuthority).Distinct().ToList(),
                registry.Insecure ? pushAuthority : null,
                loginSecret is not null);
            await BuildAsync(ctx, builder, spec, new BuilderPodOptions(
                Names.Fresh(ctx.Settings.RunnerPodName, "build"), placement, ctx.Work, ctx.Work.SubPath(staged, "The staged build"),
                loginSecret, caPem is not null, Architecture, BuilderResources(ctx.Settings), ctx.Settings.BuildTimeout), template, title);

            var image = ImageLayout.Read(output);
            // Blobs the registry has in a base image's repository are mounted, not uploaded again.
            var mountFrom = bases.Where(b => b.Authority == pushAuthority || b.Authority == pullAuthority).Select(b => b.Repository).ToList();
            using var pushLimit = CancellationTokenSource.CreateLinkedTokenSource(ctx.Cancel);
            pushLimit.CancelAfter(ctx.Settings.BuildTimeout);
            digest = await Talking(pushAuthority, registry.Insecure, () => client.PushAsync(repoPath, tag, image, mountFrom, pushLimit.Token));
            ctx.Log.Info($"Pushed {pushRepo}:{tag} ({digest}, {image.Blobs.Sum(b => b.Size) / 1024} KiB) for {title}.");
        }
        finally
        {
            if (loginSecret is not null) await ctx.Cluster.DeleteSecretAsync(loginSecret, CancellationToken.None);
            if (Directory.Exists(staged)) Directory.Delete(staged, true);
        }
        return new BuiltImage($"{registry.PullHost}/{name}@{digest}", registry.SecretName, Reused: false);
    }

    // Root in the builder writes here; with root squashed to nobody (NFS) too.
    const UnixFileMode AnyoneMayWrite = (UnixFileMode)0b111_111_111;

    /// <summary>
    /// The tag's digest when it holds an image Shipyard built for this content (its config carries the content
    /// hash); null when there is none or when it is something else, which is rebuilt over.
    /// </summary>
    static async Task<string?> ReusableDigestAsync(HookContext ctx, RegistryClient client, string repository, string tag)
    {
        var manifest = await client.FindManifestAsync(repository, tag, ctx.Cancel);
        if (manifest is null) return null;
        string? found = null;
        try
        {
            using var doc = JsonDocument.Parse(manifest.Bytes);
            if (doc.RootElement.TryGetProperty("config", out var config) && config.TryGetProperty("digest", out var d) && d.GetString() is { } configDigest)
            {
                var configBytes = await client.GetBlobAsync(repository, configDigest, 4 << 20, ctx.Cancel);
                using var image = JsonDocument.Parse(configBytes);
                if (image.RootElement.TryGetProperty("config", out var c) && c.ValueKind == JsonValueKind.Object
                    && c.TryGetProperty("Labels", out var labels) && labels.ValueKind == JsonValueKind.Object
                    && labels.TryGetProperty(ContentHashLabel, out var hash))
                    found = hash.GetString();
            }
        }
        catch (JsonException) { }
        if (found == tag) return manifest.Digest;
        ctx.Log.Warning($"{repository}:{tag} holds an image Shipyard did not build for this content ({(found is null ? $"no {ContentHashLabel} label" : $"{ContentHashLabel} {found}")}); building it again.");
        return null;
    }

    /// <summary>
    /// The logins the builder may hold — read-only base-image logins (BUILDER_SECRET_NAME) and the cache's
    /// (BUILD_CACHE_SECRET_NAME) — as one per-build Secret, or null when there are none: then no Secret is mounted.
    /// </summary>
    static async Task<string?> BuilderLoginAsync(HookContext ctx, PodPlacement placement)
    {
        var s = ctx.Settings;
        var configs = new List<byte[]>();
        foreach (var (secretName, variable) in new[] { (s.BuilderSecretName, "BUILDER_SECRET_NAME"), (s.BuildCache ? s.BuildCacheSecretName : null, "BUILD_CACHE_SECRET_NAME") })
        {
            if (secretName is null) continue;
            var secret = await ctx.Cluster.ReadSecretAsync(secretName, ctx.Cancel)
                ?? throw new HookException($"The Secret '{secretName}' ({HookSettings.Prefix}{variable}) does not exist in namespace '{ctx.Cluster.Namespace}'.");
            if (secret.Data?.TryGetValue(".dockerconfigjson", out var config) != true || config is null)
                throw new HookException($"The Secret '{secretName}' ({HookSettings.Prefix}{variable}) has no .dockerconfigjson key; create it with `kubectl create secret docker-registry`.");
            foreach (var authority in DockerConfig.Authorities(config))
                foreach (var secretValue in DockerConfig.LoginFor(config, authority)?.Secrets ?? []) ctx.Log.AddMask(secretValue);
            configs.Add(config);
        }
        if (configs.Count == 0) return null;
        var name = Names.Fresh(s.RunnerPodName, "build-login");
        await ctx.Cluster.CreateSecretAsync(new V1Secret
        {
            ApiVersion = "v1", Kind = "Secret", Type = "kubernetes.io/dockerconfigjson",
            Metadata = placement.Metadata(name, BuilderPod.Role),
            Data = new Dictionary<string, byte[]> { [".dockerconfigjson"] = DockerConfig.Merge(configs) },
        }, ctx.Cancel);
        return name;
    }

    public static V1ResourceRequirements BuilderResources(HookSettings s) => new()
    {
        Requests = s.BuilderRequests.Count == 0 ? null : s.BuilderRequests.ToDictionary(kv => kv.Key, kv => new ResourceQuantity(kv.Value)),
        Limits = s.BuilderLimits.Count == 0 ? null : s.BuilderLimits.ToDictionary(kv => kv.Key, kv => new ResourceQuantity(kv.Value)),
    };

    /// <summary>A registry that cannot be reached or refuses the login stops the step with one line, before any build.</summary>
    static async Task<T> Talking<T>(string authority, bool insecure, Func<Task<T>> call)
    {
        try { return await call(); }
        catch (RegistryAuthenticationException e) { throw new HookException(Sentence(e.Message)); }
        catch (HttpRequestException e) when (e.InnerException is System.Security.Authentication.AuthenticationException tls)
        {
            throw new HookException($"Cannot reach the push host {authority} over TLS: {tls.Message} (a private CA goes under ca.crt in the registry Secret).");
        }
        catch (HttpRequestException e) when (e.StatusCode is null && e.InnerException is not null)
        {
            throw new HookException($"Cannot reach the push host {authority} over {(insecure ? "HTTP" : "TLS")}: {e.Message}");
        }
        catch (HttpRequestException e) { throw new HookException(Sentence(e.Message)); }
    }

    static string Sentence(string s) => s[..1].ToUpperInvariant() + s[1..] + (s.EndsWith('.') ? "" : ".");

    static async Task BuildAsync(HookContext ctx, IImageBuilder builder, BuildSpec spec, BuilderPodOptions options, HookTemplate? template, string title)
    {
        var pod = BuilderPod.Build(builder, spec, options);
        using var onCancel = ctx.Cancel.Register(() => _ = ctx.Cluster.DeletePodAsync(options.Name, 0, CancellationToken.None));
        if (template is not null)
        {
            pod = template.ApplyToBuilderPod(pod);
            BuilderPod.RequireArchitecture(pod.Spec, options.Architecture);
        }
        var tail = new TailLines(ctx.Stdout, 40);
        ctx.Log.Group($"Building {title}");
        V1ContainerStateTerminated finished;
        try
        {
            // No-volume mode: the staged context goes in, the image layout the builder wrote comes back.
            finished = await ctx.RunPodAsync(pod, Names.BuilderContainer, tail, ctx.Settings.BuildTimeout, [options.StagedSubPath]);
            if (ctx.Local is not null && finished.ExitCode == 0)
                await ctx.WorkSync.PullAsync(PodLocalWork.Target(options.Name), [options.StagedSubPath + "/out"], ctx.Cancel);
        }
        finally
        {
            ctx.Log.EndGroup();
            await ctx.Cluster.DeletePodAsync(options.Name, 0, CancellationToken.None);
        }
        if (finished.ExitCode != 0)
            throw new HookException($"Building {title} failed with exit code {finished.ExitCode}{(tail.LastInstruction is { } at ? $" at `{at}`" : "")}: {tail.LastError() ?? "see the build log above"}", finished.ExitCode);
    }

    /// <summary>`owner/repo@ref[/path]` or `./path` for the log.</summary>
    static string ActionTitle(string dockerfileSubPath)
    {
        var parts = dockerfileSubPath.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToList();
        parts.RemoveAt(parts.Count - 1);
        if (parts.Count >= 4 && parts[0] == "_actions")
            return $"{parts[1]}/{parts[2]}@{parts[3]}" + (parts.Count > 4 ? "/" + string.Join('/', parts.Skip(4)) : "");
        return parts.Count >= 2 ? "./" + string.Join('/', parts.Skip(2)) : string.Join('/', parts);
    }
}

/// <summary>Passes the builder log through and remembers its last lines, for the one-line error.</summary>
sealed partial class TailLines(Stream inner, int keep) : WriteOnlyStream
{
    readonly Queue<string> lines = new();
    readonly StringBuilder current = new();

    /// <summary>The last Dockerfile instruction the builder announced (Kaniko `INFO[..] RUN ..`, buildah `STEP 3/4: RUN ..`).</summary>
    public string? LastInstruction { get; private set; }

    /// <summary>Kaniko colours its log (`ESC[36mINFO ESC[0m[0000] RUN …`); lines are read without the escapes.</summary>
    [System.Text.RegularExpressions.GeneratedRegex(@"\x1B\[[0-9;?]*[ -/]*[@-~]")]
    private static partial System.Text.RegularExpressions.Regex AnsiEscape();

    [System.Text.RegularExpressions.GeneratedRegex(@"(?:^STEP \d+/\d+: |^INFO\[[^\]]*\]\s+)((?:FROM|RUN|COPY|ADD|WORKDIR|USER|ENV|ARG|LABEL|EXPOSE|VOLUME|ENTRYPOINT|CMD|SHELL|HEALTHCHECK|ONBUILD|STOPSIGNAL)\b.*)$")]
    private static partial System.Text.RegularExpressions.Regex Instruction();

    public string? LastError()
    {
        var all = lines.Append(AnsiEscape().Replace(current.ToString(), "")).Where(l => l.Trim().Length > 0).ToList();
        return all.LastOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase))?.Trim() ?? all.LastOrDefault()?.Trim();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        inner.Write(buffer);
        foreach (var c in Encoding.UTF8.GetString(buffer))
        {
            if (c != '\n') { current.Append(c); continue; }
            var line = AnsiEscape().Replace(current.ToString(), "").TrimEnd('\r');
            if (Instruction().Match(line) is { Success: true } m) LastInstruction = m.Groups[1].Value.Trim();
            lines.Enqueue(line);
            current.Clear();
            if (lines.Count > keep) lines.Dequeue();
        }
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override void Flush() => inner.Flush();
}
