using System.Net;
using k8s.Autorest;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace Shipyard.Cluster;

/// <summary>
/// What a real cluster does to calls — a 429 with Retry-After, a 503 while an API server restarts, a reset
/// connection, a request that never returns — is retried with capped, jittered exponential backoff for a
/// bounded time (about 15 s); every attempt has a timeout. A failure that remains becomes one readable line
/// naming what Shipyard was doing and the server's reason.
/// </summary>
public sealed partial class ClusterGateway
{
    static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(20);

    static ResiliencePipeline TransientPipeline() => new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            // A certificate the pinned CA does not vouch for stays untrusted however often it is asked.
            // A reset connection mostly arrives wrapped in HttpRequestException, but sometimes as the bare SocketException.
            ShouldHandle = new PredicateBuilder().Handle<HttpRequestException>(e => !IsTlsTrustFailure(e)).Handle<TimeoutRejectedException>().Handle<IOException>()
                .Handle<System.Net.Sockets.SocketException>().Handle<HttpOperationException>(e => IsTransient(e.Response.StatusCode)),
            MaxRetryAttempts = 7,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromMilliseconds(200),
            MaxDelay = TimeSpan.FromSeconds(4),
            DelayGenerator = args => ValueTask.FromResult(RetryAfter(args.Outcome.Exception)),
        })
        .AddTimeout(AttemptTimeout)
        .Build();

    static bool IsTlsTrustFailure(HttpRequestException e) => e.InnerException is System.Security.Authentication.AuthenticationException;

    public static bool IsTransient(HttpStatusCode status) =>
        status is HttpStatusCode.TooManyRequests or HttpStatusCode.InternalServerError or HttpStatusCode.BadGateway
            or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout;

    /// <summary>The server's Retry-After (seconds) on a 429/503, capped; null lets the backoff decide.</summary>
    static TimeSpan? RetryAfter(Exception? e)
    {
        if (e is not HttpOperationException h) return null;
        if (h.Response.Headers is { } headers && headers.TryGetValue("Retry-After", out var values) &&
            int.TryParse(values.FirstOrDefault(), out var seconds) && seconds >= 0)
            return TimeSpan.FromSeconds(Math.Min(seconds, 10));
        return null;
    }

    /// <summary>An idempotent call (read, list, delete), retried on transient failures.</summary>
    async Task<T> Call<T>(string what, Func<CancellationToken, Task<T>> call, CancellationToken ct)
    {
        try { return await pipeline.ExecuteAsync(async token => await call(token), ct); }
        catch (HttpOperationException e)
        {
            var detail = e.Response.Content is { Length: > 0 } c ? TryStatusMessage(c) : e.Message;
            throw new HookException($"Kubernetes refused to {what}: {(int)e.Response.StatusCode} {e.Response.ReasonPhrase}: {detail}", details: e.ToString());
        }
        catch (HttpRequestException e) when (IsTlsTrustFailure(e))
        {
            throw new HookException($"TLS with the Kubernetes API failed, so Shipyard could not {what}: {e.InnerException!.Message} " +
                "The API server's certificate must be issued by the CA the kubeconfig or service account names.", details: e.ToString());
        }
        catch (Exception e) when (e is HttpRequestException or TimeoutRejectedException or IOException or System.Net.Sockets.SocketException)
        {
            throw new HookException($"Cannot reach the Kubernetes API to {what} (retried for about 15 s): {e.Message}", details: e.ToString());
        }
    }

    Task Call(string what, Func<CancellationToken, Task> call, CancellationToken ct) =>
        Call<bool>(what, async token => { await call(token); return true; }, ct);

    /// <summary>
    /// A create, retried like a read: when an attempt's answer was lost, a retry meets our own object (409 on
    /// our own name), which means the earlier attempt won; <paramref name="read"/> returns it.
    /// </summary>
    Task<T> Create<T>(string what, Func<CancellationToken, Task<T>> create, Func<CancellationToken, Task<T?>> read, CancellationToken ct) where T : class
    {
        var attempts = 0;
        return Call(what, async token =>
        {
            HttpOperationException conflict;
            try { attempts++; return await create(token); }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.Conflict && attempts > 1) { conflict = e; }
            return await read(token) ?? throw new HttpOperationException(conflict.Message) { Response = conflict.Response, Request = conflict.Request };
        }, ct);
    }
}
