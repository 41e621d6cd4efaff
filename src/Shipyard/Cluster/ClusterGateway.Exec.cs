using System.Net.WebSockets;
using System.Text;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Shipyard.Cluster;

public sealed partial class ClusterGateway
{
    /// <summary>
    /// Runs a command in a container and returns its exit code. Uses v4.channel.k8s.io, which API
    /// servers from 1.4 through today's serve, and never half-closes stdin (no stdin at all).
    /// A stream that closes without the status frame is a failure, never a success.
    /// </summary>
    public Task<int> ExecAsync(string pod, string container, IReadOnlyList<string> command, Stream stdout, Stream stderr, CancellationToken ct) =>
        ExecAsync(pod, container, command, null, stdout, stderr, ct);

    /// <summary>
    /// As above, with <paramref name="stdin"/> sent on channel 0. v4 has no way to close stdin, so the command
    /// must know how many bytes to read (`head -c N`): callers frame what they send, never rely on EOF.
    /// </summary>
    public async Task<int> ExecAsync(string pod, string container, IReadOnlyList<string> command, Stream? stdin, Stream stdout, Stream stderr, CancellationToken ct)
    {
        WebSocket ws;
        try
        {
            ws = await client.WebSocketNamespacedPodExecAsync(pod, Namespace, command, container,
                stderr: true, stdin: stdin is not null, stdout: true, tty: false, webSocketSubProtocol: "v4.channel.k8s.io", cancellationToken: ct);
        }
        catch (Exception e) when (e is WebSocketException or HttpOperationException or HttpRequestException)
        {
            throw new HookException($"Cannot exec in pod {pod} container {container}: {e.Message}");
        }
        using var _ = ws;
        using var stopSending = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var sending = stdin is null ? Task.CompletedTask : SendAsync(ws, stdin, stopSending.Token);
        var buffer = new byte[64 * 1024];
        var message = new MemoryStream();
        var status = new MemoryStream();
        try
        {
            while (true)
            {
                var r = await ws.ReceiveAsync(buffer, ct);
                if (r.MessageType == WebSocketMessageType.Close) break;
                message.Write(buffer, 0, r.Count);
                if (!r.EndOfMessage) continue;
                var bytes = message.GetBuffer().AsMemory(0, (int)message.Length);
                if (bytes.Length > 1)
                {
                    var payload = bytes[1..];
                    switch (bytes.Span[0])
                    {
                        case 1: await stdout.WriteAsync(payload, ct); await stdout.FlushAsync(ct); break;
                        case 2: await stderr.WriteAsync(payload, ct); await stderr.FlushAsync(ct); break;
                        case 3: status.Write(payload.Span); break;
                    }
                }
                message.SetLength(0);
            }
        }
        catch (WebSocketException e)
        {
            throw new HookException($"The exec stream to pod {pod} broke before the command finished: {e.Message}");
        }
        finally
        {
            await stopSending.CancelAsync();
            try { await sending; } catch (Exception e) when (e is OperationCanceledException or WebSocketException or IOException) { }
        }
        if (status.Length == 0)
            throw new HookException($"The exec stream to pod {pod} closed without an exit status; the command's outcome is unknown, so the step fails.");
        return ExitCodeFrom(Encoding.UTF8.GetString(status.ToArray()));
    }

    static async Task SendAsync(WebSocket ws, Stream stdin, CancellationToken ct)
    {
        var frame = new byte[1 + 32 * 1024];
        int n;
        while ((n = await stdin.ReadAsync(frame.AsMemory(1), ct)) > 0)
            await ws.SendAsync(frame.AsMemory(0, n + 1), WebSocketMessageType.Binary, true, ct);
    }

    /// <summary>The v4 status frame: Success, or Failure with an ExitCode cause.</summary>
    public static int ExitCodeFrom(string statusJson)
    {
        var s = KubernetesJson.Deserialize<V1Status>(statusJson);
        if (s.Status == "Success") return 0;
        var code = s.Details?.Causes?.FirstOrDefault(c => c.Reason == "ExitCode")?.Message;
        if (s.Reason == "NonZeroExitCode" && int.TryParse(code, out var exit)) return exit;
        throw new HookException($"exec failed: {s.Message ?? s.Reason ?? statusJson}");
    }
}
