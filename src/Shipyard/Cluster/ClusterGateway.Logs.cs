using System.Text;
using Shipyard.Pods;

namespace Shipyard.Cluster;

public sealed partial class ClusterGateway
{
    /// <summary>A log stream silent this long is reopened: a half-open connection must not hang the step.</summary>
    static readonly TimeSpan LogIdle = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Copies a container's log to <paramref name="sink"/> until the container ends. The stream is read with
    /// timestamps; when it breaks, is cut, or stays silent for 30 s, it is reopened from the last timestamp
    /// seen (`sinceTime`) and lines already copied are skipped, so every line arrives exactly once.
    /// </summary>
    public async Task FollowLogAsync(string pod, string container, Stream sink, CancellationToken ct)
    {
        var resume = new LogResume();
        while (true)
        {
            var path = $"api/v1/namespaces/{Namespace}/pods/{pod}/log?container={Uri.EscapeDataString(container)}&follow=true&timestamps=true" +
                       (resume.SinceTime is { } since ? "&sinceTime=" + Uri.EscapeDataString(since) : "");
            resume.Reopened();
            var ended = false;
            using (var idle = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                try
                {
                    using var response = await Call($"follow the log of pod {pod}", token => client.GetStreamAsync(path, token), ct);
                    using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct), Encoding.UTF8);
                    while (true)
                    {
                        idle.CancelAfter(LogIdle);
                        var line = await reader.ReadLineAsync(idle.Token);
                        if (line is null) { ended = true; break; }
                        if (resume.Accept(line) is not { } text) continue;
                        await sink.WriteAsync(Encoding.UTF8.GetBytes(text + "\n"), ct);
                        await sink.FlushAsync(ct);
                    }
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested) { /* silent too long: reopen */ }
                catch (Exception e) when (e is IOException or HttpRequestException) { /* cut: reopen */ }
            }
            // A stream that ends cleanly may also have been cut by a proxy: it is over when the container is.
            if (ended)
            {
                using var briefly = CancellationTokenSource.CreateLinkedTokenSource(ct);
                briefly.CancelAfter(TimeSpan.FromSeconds(2));
                try
                {
                    var p = await WaitForPodAsync(pod, p => PodProgress.Terminated(p, container) is not null, briefly.Token);
                    if (p is null || PodProgress.Terminated(p, container) is not null) return;
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested) { /* still running: reopen */ }
            }
            else await Task.Delay(200, ct);
        }
    }
}

/// <summary>
/// Which timestamped log lines (`2026-12-01T09:40:00.123456789Z text`) are new after a reconnect: the
/// stream is reopened from the last second seen, so lines up to the last one copied come again.
/// </summary>
public sealed class LogResume
{
    string? lastStamp;
    int atLastStamp;
    readonly Dictionary<string, int> replayed = [];

    /// <summary>`sinceTime` for a reopened stream: the whole second of the last line copied.</summary>
    public string? SinceTime => lastStamp is null ? null : lastStamp[..19] + "Z";

    /// <summary>The line's text when it was not copied before, else null.</summary>
    public string? Accept(string line)
    {
        var space = line.IndexOf(' ');
        var stamp = space > 0 ? Normalize(line[..space]) : null;
        if (stamp is null) return line; // no timestamp: pass through
        var text = line[(space + 1)..];
        var cmp = lastStamp is null ? 1 : string.CompareOrdinal(stamp, lastStamp);
        if (cmp < 0) return null;
        if (cmp == 0)
        {
            // Lines sharing the last timestamp: skip as many as were copied with it.
            replayed.TryGetValue(stamp, out var seen);
            replayed[stamp] = seen + 1;
            if (seen < atLastStamp) return null;
            atLastStamp++;
            return text;
        }
        lastStamp = stamp;
        atLastStamp = 1;
        replayed.Clear();
        replayed[stamp] = 1;
        return text;
    }

    /// <summary>Call before reading a reopened stream, so lines of the last timestamp are counted afresh.</summary>
    public void Reopened() => replayed.Clear();

    /// <summary>RFC 3339 with the fraction padded to nine digits (the API trims trailing zeros), so stamps compare as strings.</summary>
    static string? Normalize(string s)
    {
        if (s.Length < 20 || s[4] != '-' || s[10] != 'T' || !s.EndsWith('Z')) return null;
        var secs = s[..19];
        var frac = s.Length > 20 && s[19] == '.' ? s[20..^1] : "";
        if (frac.Length > 9 || !frac.All(char.IsAsciiDigit)) return null;
        return secs + "." + frac.PadRight(9, '0') + "Z";
    }
}
