using System.Security.Cryptography.X509Certificates;
using System.Text;
using k8s.Models;
using Shipyard.Pods;
using Shipyard.Settings;

namespace Shipyard.Images;

public sealed record BuiltImage(string PullReference, string PullSecret, bool Reused);

/// <summary>
/// A Dockerfile action's image: content hash of its context → tag; reuse the tag when the registry
/// already has it, otherwise build it in a builder pod, pushed through the push host and pulled by
/// digest through the pull host.
/// </summary>
public static class DockerfileAction
{
    public static IImageBuilder BuilderFor(HookSettings s) => s.Builder switch
    {
        BuilderKind.Buildah => new BuildahBuilder(s.BuilderImageOrDefault),
        _ => new KanikoBuilder(s.BuilderImageOrDefault),
    };

    public static async Task<BuiltImage> BuildOrReuseAsync(HookContext ctx, string dockerfileHostPath, PodPlacement placement, HookTemplate? template)
    {
        var registry = ctx.Settings.RequireRegistry();
        var dockerfile = Path.GetFullPath(dockerfileHostPath);
        if (!File.Exists(dockerfile)) throw new HookException($"The action's Dockerfile {dockerfile} does not exist on the runner.");
        var contextDir = Path.GetDirectoryName(dockerfile)!;
        var dockerfileSubPath = ctx.Work.SubPath(dockerfile, "The Dockerfile");

        var secret = await ctx.Cluster.ReadSecretAsync(registry.SecretName, ctx.Cancel)
            ?? throw new HookException($"The registry Secret '{registry.SecretName}' ({HookSettings.Prefix}REGISTRY_SECRET_NAME) does not exist in namespace '{ctx.Cluster.Namespace}'.");
        if (secret.Data?.TryGetValue(".dockerconfigjson", out var dockerConfig) != true || dockerConfig is null)
            throw new HookException($"The registry Secret '{registry.SecretName}' has no .dockerconfigjson key; create it with `kubectl create secret docker-registry`.");
        var caPem = secret.Data.TryGetValue("ca.crt", out var ca) ? ca : null;
        var pushAuthority = DockerConfig.Authority(registry.PushHost);
        var login = DockerConfig.LoginFor(dockerConfig, pushAuthority);
        if (login is not null) ctx.Log.AddMask(login.Password);

        var builder = BuilderFor(ctx.Settings);
        var name = ImageNaming.ForDockerfile(dockerfileSubPath);
        var tag = BuildContext.Hash(contextDir, Path.GetFileName(dockerfile), builder.Identity);
        var pushRepo = $"{registry.PushHost}/{name}";
        var repoPath = pushRepo[(pushAuthority.Length + 1)..];
        var title = ActionTitle(dockerfileSubPath);

        string? digest = null;
        using (var client = new RegistryClient(login, caPem is null ? null : X509Certificate2.CreateFromPem(Encoding.UTF8.GetString(caPem)), registry.Insecure, TimeSpan.FromSeconds(30)))
        {
            try { digest = await client.FindDigestAsync(pushAuthority, repoPath, tag, ctx.Cancel); }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Security.Authentication.AuthenticationException)
            {
                ctx.Log.Warning($"Could not ask {pushAuthority} whether {name}:{tag} exists ({e.Message}); building it.");
            }
        }
        var reused = digest is not null;
        if (reused)
        {
            ctx.Log.Info($"Using {pushRepo}:{tag} ({digest}), already built for this content of {title}.");
        }
        else
        {
            var spec = new BuildSpec($"{pushRepo}:{tag}", Path.GetFileName(dockerfile), pushAuthority,
                ctx.Settings.BuildCache ? $"{pushRepo}/cache" : null, caPem is not null, registry.Insecure);
            // The builder gets exactly what docker would send: the context filtered by `.dockerignore` here.
            var staged = Path.Combine(ctx.Settings.WorkDirectory, "_temp", $"shipyard-build-{Guid.NewGuid():N}");
            try
            {
                BuildContext.Stage(contextDir, Path.GetFileName(dockerfile), Path.Combine(staged, "context"), Path.Combine(staged, "dockerfile"));
                digest = await BuildAsync(ctx, builder, spec, new BuilderPodOptions(
                    Names.PerStep(ctx.Settings.RunnerPodName, "build"), placement, ctx.Work, ctx.Work.SubPath(staged, "The staged build"), registry.SecretName, caPem is not null), template, title);
            }
            finally
            {
                if (Directory.Exists(staged)) Directory.Delete(staged, true);
            }
        }
        return new BuiltImage($"{registry.PullHost}/{name}@{digest}", registry.SecretName, reused);
    }

    static async Task<string> BuildAsync(HookContext ctx, IImageBuilder builder, BuildSpec spec, BuilderPodOptions options, HookTemplate? template, string title)
    {
        var pod = BuilderPod.Build(builder, spec, options);
        using var onCancel = ctx.Cancel.Register(() => _ = ctx.Cluster.DeletePodAsync(options.Name, 0, CancellationToken.None));
        if (template is not null) pod = template.ApplyToBuilderPod(pod);
        var tail = new TailLines(ctx.Stdout, 40);
        ctx.Log.Group($"Building {title}");
        V1ContainerStateTerminated finished;
        try
        {
            finished = await ctx.Cluster.RunToCompletionAsync(pod, Names.BuilderContainer, tail, ctx.Log.Debug, ctx.Settings.BuildTimeout, ctx.Cancel);
        }
        finally
        {
            ctx.Log.EndGroup();
            await ctx.Cluster.DeletePodAsync(options.Name, 0, CancellationToken.None);
        }
        if (finished.ExitCode != 0)
            throw new HookException($"Building {title} failed with exit code {finished.ExitCode}{(tail.LastInstruction is { } at ? $" at `{at}`" : "")}: {tail.LastError() ?? "see the build log above"}", finished.ExitCode);
        // The termination message carries the digest (--digest-file / --digestfile=/dev/termination-log).
        var message = finished.Message?.Trim();
        if (message is null || !message.StartsWith("sha256:", StringComparison.Ordinal))
            throw new HookException($"The builder for {title} finished but reported no image digest (termination message: '{message}').");
        return message.Split('\n')[0].Trim();
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
sealed partial class TailLines(Stream inner, int keep) : Stream
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
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
