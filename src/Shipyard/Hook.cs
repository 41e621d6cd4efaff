using System.Text.Json;
using Shipyard.Cluster;
using Shipyard.Commands;
using Shipyard.Output;
using Shipyard.Protocol;
using Shipyard.Settings;

namespace Shipyard;

/// <summary>One hook invocation, as the runner makes it.</summary>
public static class Hook
{
    public static async Task<int> RunAsync(TextReader stdin, Func<string, string?> env, Workflow log, Stream stdout, Stream stderr, CancellationToken cancel)
    {
        try
        {
            var input = ReadInput(stdin);
            var settings = HookSettings.FromEnvironment(env);
            // Parsed before connecting: whether this call talks to a registry decides how TLS trust is set up.
            var prepareArgs = input.Command == "prepare_job" ? Args(input, ProtocolJson.Default.PrepareJobArgs) : null;
            var scriptArgs = input.Command == "run_script_step" ? Args(input, ProtocolJson.Default.ScriptStepArgs) : null;
            var containerArgs = input.Command == "run_container_step" ? Args(input, ProtocolJson.Default.ContainerDefinition) : null;
            var usesRegistry = containerArgs?.Dockerfile is { Length: > 0 };
            using var cluster = ClusterGateway.Connect(settings.KubeConfigPath, settings.Namespace, apiServerOnly: !usesRegistry, log.Debug);
            var ctx = new HookContext(settings, cluster, log, stdout, stderr, cancel).ForState(input.State);
            switch (input.Command)
            {
                case "prepare_job":
                    var prepared = await PrepareJob.RunAsync(ctx, prepareArgs!);
                    WriteResponse(input.ResponseFile!, JsonSerializer.Serialize(prepared, ProtocolJson.Default.PrepareJobResponse));
                    return 0;
                case "run_script_step":
                    return await RunScriptStep.RunAsync(ctx, scriptArgs!, input.State);
                case "run_container_step":
                    return await RunContainerStep.RunAsync(ctx, containerArgs!);
                default: // cleanup_job; ReadInput refused anything else
                    await CleanupJob.RunAsync(ctx);
                    return 0;
            }
        }
        catch (HookException e)
        {
            log.Error(e.Message);
            if (e.Details is not null) log.Err.WriteLine(e.Details);
            return e.ExitCode == 0 ? 1 : e.ExitCode;
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            log.Error("The step was cancelled; it did not finish.");
            return 130;
        }
        catch (Exception e) when (e is HttpRequestException or IOException or k8s.Autorest.HttpOperationException or System.Net.WebSockets.WebSocketException)
        {
            // A connection that broke where no retry is safe (a stream in flight): one line, the trace on stderr.
            log.Error($"A connection to the Kubernetes API broke and the step's outcome is unknown, so it fails: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            log.Err.WriteLine(e.ToString());
            return 1;
        }
        catch (Exception e)
        {
            log.Error($"Shipyard failed unexpectedly: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            log.Err.WriteLine(e.ToString());
            return 1;
        }
    }

    static readonly HashSet<string> Commands = ["prepare_job", "run_script_step", "run_container_step", "cleanup_job"];

    static HookInput ReadInput(TextReader stdin)
    {
        string? line;
        try { line = stdin.ReadLine(); }
        catch (System.Text.DecoderFallbackException e)
        {
            throw new HookException("The hook input on stdin is not valid UTF-8; the runner sends one line of UTF-8 JSON.", details: e.Message);
        }
        if (string.IsNullOrWhiteSpace(line)) throw new HookException("The hook got no input on stdin; the runner sends one line of JSON.");
        HookInput? input;
        try { input = JsonSerializer.Deserialize(line, ProtocolJson.Default.HookInput); }
        catch (JsonException e) { throw new HookException("The hook input on stdin is not valid JSON; the runner sends one line of JSON.", details: e.Message); }
        if (input is null) throw new HookException("The hook input is empty JSON.");
        if (input.Command is null || !Commands.Contains(input.Command))
            throw new HookException($"Unknown hook command '{input.Command}'; expected one of {string.Join(", ", Commands)}.");
        if (input.ResponseFile is not { Length: > 0 } rf)
            throw new HookException("The hook input has no responseFile.");
        if (!File.Exists(rf))
            throw new HookException($"The response file {rf} does not exist; the runner creates it before starting the hook.");
        return input;
    }

    static T Args<T>(HookInput input, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        try
        {
            return input.Args.ValueKind == JsonValueKind.Object ? input.Args.Deserialize(type)! : throw new HookException($"{input.Command} arrived without args.");
        }
        catch (JsonException e) { throw new HookException($"The {input.Command} args do not have the runner's shape.", details: e.Message); }
    }

    static void WriteResponse(string path, string json) => File.WriteAllText(path, json);
}
