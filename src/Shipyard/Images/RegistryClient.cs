using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

namespace Shipyard.Images;

/// <summary>A manifest as the registry holds it: the digest is the digest of exactly these bytes.</summary>
public sealed record RegistryManifest(string Digest, string MediaType, byte[] Bytes);

/// <summary>
/// One registry's v2 API with the login from the registry Secret: manifests and blobs read, images pushed
/// (<see cref="PushAsync"/>). Basic and Bearer challenges are answered; a token realm is used only over HTTPS (or
/// the registry's own scheme) and only on the registry's host or a host the Secret names; credentials never
/// follow a redirect to another host. Trusts the system store plus the Secret's `ca.crt` (roots and intermediates).
/// </summary>
public sealed partial class RegistryClient : IDisposable
{
    public static readonly string[] ManifestTypes =
    [
        "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    ];

    readonly HttpClient http;
    readonly string scheme;
    readonly string authority;
    readonly RegistryLogin? login;
    readonly HashSet<string> tokenHosts;
    /// <summary>How errors name the registry: "the push host 172.17.0.1:5443".</summary>
    readonly string shownAs;
    /// <summary>For each request until its answer's headers; an upload's body is bounded only by the caller's token.</summary>
    readonly TimeSpan timeout;
    /// <summary>Authorization per scope, so a push asks the token realm once, not once per request.</summary>
    readonly ConcurrentDictionary<string, AuthenticationHeaderValue?> authByScope = new();

    public RegistryClient(string authority, RegistryLogin? login, X509Certificate2Collection? ca, bool insecure, TimeSpan timeout,
        IEnumerable<string>? secretAuthorities = null, string role = "registry")
    {
        this.authority = authority;
        this.login = login;
        this.timeout = timeout;
        scheme = insecure ? "http" : "https";
        shownAs = $"{role} {authority}";
        tokenHosts = new HashSet<string>((secretAuthorities ?? []).Append(authority).Select(DockerConfig.Host), StringComparer.OrdinalIgnoreCase);
        // Redirects are followed by hand (FollowAsync): the handler would keep no say over where credentials go.
        var handler = new SocketsHttpHandler { AllowAutoRedirect = false };
        if (ca is { Count: > 0 })
        {
            var roots = ca.Where(c => c.SubjectName.RawData.AsSpan().SequenceEqual(c.IssuerName.RawData)).ToList();
            var intermediates = ca.Where(c => !roots.Contains(c)).ToList();
            handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, presented, errors) =>
            {
                if (errors == SslPolicyErrors.None) return true;
                if (cert is null || (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0) return false;
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.AddRange(roots.ToArray());
                chain.ChainPolicy.ExtraStore.AddRange(intermediates.ToArray());
                if (presented is not null)
                    foreach (var e in presented.ChainElements) chain.ChainPolicy.ExtraStore.Add(e.Certificate);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(new X509Certificate2(cert));
            };
        }
        http = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    public void Dispose() => http.Dispose();

    /// <summary>Every certificate of a PEM bundle (a registry's `ca.crt` may hold its intermediates too).</summary>
    public static X509Certificate2Collection ParseCa(byte[] pem)
    {
        var all = new X509Certificate2Collection();
        all.ImportFromPem(Encoding.UTF8.GetString(pem));
        if (all.Count == 0) throw new CryptographicException("no PEM certificate found");
        return all;
    }

    string Url(string path) => $"{scheme}://{authority}{path}";

    /// <summary>The manifest `repository:reference`, or null when there is none.</summary>
    public async Task<RegistryManifest?> FindManifestAsync(string repository, string reference, CancellationToken ct)
    {
        using var response = await SendAsync(() =>
        {
            var req = new HttpRequestMessage(HttpMethod.Get, Url($"/v2/{repository}/manifests/{reference}"));
            foreach (var t in ManifestTypes) req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(t));
            return req;
        }, Pull(repository), ct, follow: true);
        if (response.StatusCode == HttpStatusCode.NotFound) return null;
        await EnsureAsync(response, $"reading {repository}:{reference}", ct);
        var bytes = await response.Content.ReadAsByteArrayAsync(ct);
        var mediaType = response.Content.Headers.ContentType?.MediaType ?? "";
        return new RegistryManifest(Digest(bytes), mediaType, bytes);
    }

    /// <summary>A small blob (an image config), at most <paramref name="maxBytes"/>.</summary>
    public async Task<byte[]> GetBlobAsync(string repository, string digest, int maxBytes, CancellationToken ct)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, Url($"/v2/{repository}/blobs/{digest}")), Pull(repository), ct, follow: true);
        await EnsureAsync(response, $"reading blob {digest} of {repository}", ct);
        if (response.Content.Headers.ContentLength > maxBytes) throw new HttpRequestException($"the {shownAs} sent blob {digest} of {repository} larger than {maxBytes} bytes");
        var bytes = await response.Content.ReadAsByteArrayAsync(ct);
        if (Digest(bytes) != digest) throw new HttpRequestException($"the {shownAs} sent blob {digest} of {repository} not matching its digest");
        return bytes;
    }

    /// <summary>`GET /v2/` with the login: the HTTP status the registry ends with (200 when the login works).</summary>
    public async Task<HttpStatusCode> PingAsync(string repository, CancellationToken ct)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, Url("/v2/")), Pull(repository), ct);
        return response.StatusCode;
    }

    /// <summary>
    /// Proves push rights without pushing: opens a blob upload session in <paramref name="repository"/> and
    /// cancels it at once (DELETE of the session), so nothing is left in the registry.
    /// </summary>
    public async Task<(bool Allowed, string Detail)> OpenAndCancelUploadAsync(string repository, CancellationToken ct)
    {
        using var response = await SendAsync(() => Post($"/v2/{repository}/blobs/uploads/"), Push(repository), ct);
        if (response.StatusCode != HttpStatusCode.Accepted) return (false, $"{(int)response.StatusCode} {response.ReasonPhrase}");
        if (response.Headers.Location is not { } location) return (true, "session opened (no Location to cancel)");
        using var cancel = await SendAsync(() => new HttpRequestMessage(HttpMethod.Delete, Resolve(location)), Push(repository), ct);
        return (true, $"upload session opened and cancelled ({(int)cancel.StatusCode})");
    }

    HttpRequestMessage Post(string path) => new(HttpMethod.Post, Url(path)) { Content = new ByteArrayContent([]) };

    Uri Resolve(Uri location) => location.IsAbsoluteUri ? location : new Uri(new Uri(Url("/")), location);

    static string Pull(string repository) => $"repository:{repository}:pull";
    static string Push(string repository) => $"repository:{repository}:pull,push";

    public static string Digest(ReadOnlySpan<byte> bytes) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>
    /// Sends with the authorization cached for <paramref name="scope"/>; on a 401, answers the challenge once and
    /// sends again. <paramref name="make"/> builds a fresh request each time (a body stream is read once).
    /// </summary>
    async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> make, string scope, CancellationToken ct, bool follow = false, bool upload = false)
    {
        var cached = authByScope.TryGetValue(scope, out var known);
        var response = await SendOnceAsync(make(), cached ? known : Basic(), follow, upload, ct);
        if (response.StatusCode != HttpStatusCode.Unauthorized) return response;
        var challenge = response.Headers.WwwAuthenticate.FirstOrDefault();
        response.Dispose();
        var auth = await AuthorizationAsync(challenge, scope, ct);
        authByScope[scope] = auth;
        return await SendOnceAsync(make(), auth, follow, upload, ct);
    }

    async Task<HttpResponseMessage> SendOnceAsync(HttpRequestMessage request, AuthenticationHeaderValue? auth, bool follow, bool upload, CancellationToken ct)
    {
        request.Headers.Authorization = auth;
        var response = await TimedAsync(request, upload, ct);
        for (var hops = 0; follow && hops < 5 && IsRedirect(response.StatusCode) && response.Headers.Location is { } location; hops++)
        {
            var next = location.IsAbsoluteUri ? location : new Uri(request.RequestUri!, location);
            var again = new HttpRequestMessage(request.Method, next);
            foreach (var a in request.Headers.Accept) again.Headers.Accept.Add(a);
            // Blob storage behind a registry (S3, a CDN) gets no registry credential.
            if (SameOrigin(request.RequestUri!, next)) again.Headers.Authorization = request.Headers.Authorization;
            response.Dispose();
            request = again;
            response = await TimedAsync(request, false, ct);
        }
        return response;
    }

    async Task<HttpResponseMessage> TimedAsync(HttpRequestMessage request, bool upload, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (!upload) limit.CancelAfter(timeout);
        try { return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, limit.Token); }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new HttpRequestException($"the {shownAs} did not answer within {timeout.TotalSeconds:0} s ({request.Method} {request.RequestUri?.AbsolutePath})");
        }
    }

    static bool IsRedirect(HttpStatusCode s) => s is HttpStatusCode.MovedPermanently or HttpStatusCode.Found or HttpStatusCode.SeeOther
        or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;

    static bool SameOrigin(Uri a, Uri b) => a.Scheme == b.Scheme && string.Equals(a.Authority, b.Authority, StringComparison.OrdinalIgnoreCase);

    /// <summary>A failed answer as one line; an authentication failure names the host and the status.</summary>
    async Task EnsureAsync(HttpResponseMessage response, string doing, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode) return;
        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden) throw AuthFailure(response.StatusCode, response.ReasonPhrase);
        var body = "";
        try { body = (await response.Content.ReadAsStringAsync(ct)).ReplaceLineEndings(" ").Trim(); } catch (HttpRequestException) { }
        if (body.Length > 300) body = body[..300] + "…";
        throw new HttpRequestException($"the {shownAs} answered {(int)response.StatusCode} {response.ReasonPhrase} {doing}{(body.Length > 0 ? ": " + body : "")}", null, response.StatusCode);
    }

    RegistryAuthenticationException AuthFailure(HttpStatusCode status, string? reason) =>
        new($"authentication failed on the {shownAs} ({(int)status} {reason ?? status.ToString()})");

    async Task<AuthenticationHeaderValue?> AuthorizationAsync(AuthenticationHeaderValue? challenge, string scope, CancellationToken ct)
    {
        if (challenge is null || challenge.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase))
        {
            if (Basic() is { } basic) return basic;
            throw AuthFailure(HttpStatusCode.Unauthorized, "Unauthorized; the registry Secret has no login for it");
        }
        if (!challenge.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase))
            throw new RegistryAuthenticationException($"the {shownAs} asks for {challenge.Scheme} authentication, which Shipyard does not speak (Basic and Bearer)");
        var p = ParseChallenge(challenge.Parameter ?? "");
        if (!p.TryGetValue("realm", out var realmText) || !Uri.TryCreate(realmText, UriKind.Absolute, out var realm))
            throw new RegistryAuthenticationException($"the {shownAs} sent a Bearer challenge without a usable realm");
        CheckRealm(realm);
        var query = new List<KeyValuePair<string, string>>();
        if (p.TryGetValue("service", out var service)) query.Add(new("service", service));
        foreach (var s in scope.Split(' ')) query.Add(new("scope", s));

        HttpRequestMessage req;
        if (login?.IdentityToken is { } refresh)
        {
            // docker's OAuth2 flow for an identity token: a refresh_token grant at the realm.
            var form = new List<KeyValuePair<string, string>>(query) { new("grant_type", "refresh_token"), new("client_id", "shipyard"), new("refresh_token", refresh) };
            req = new HttpRequestMessage(HttpMethod.Post, realm) { Content = new FormUrlEncodedContent(form) };
        }
        else
        {
            var qs = string.Join('&', query.Select(kv => $"{kv.Key}={Uri.EscapeDataString(kv.Value)}"));
            req = new HttpRequestMessage(HttpMethod.Get, realmText + (realmText.Contains('?') ? "&" : "?") + qs);
            req.Headers.Authorization = Basic();
        }
        using (req)
        using (var res = await TimedAsync(req, false, ct))
        {
            if (res.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden) throw AuthFailure(res.StatusCode, res.ReasonPhrase);
            if (!res.IsSuccessStatusCode) throw new HttpRequestException($"the token service of the {shownAs} answered {(int)res.StatusCode} {res.ReasonPhrase}");
            using var doc = JsonDocument.Parse(await res.Content.ReadAsStreamAsync(ct));
            var token = doc.RootElement.TryGetProperty("token", out var t) ? t.GetString()
                : doc.RootElement.TryGetProperty("access_token", out var at) ? at.GetString() : null;
            return token is { Length: > 0 } ? new AuthenticationHeaderValue("Bearer", token)
                : throw new RegistryAuthenticationException($"the token service of the {shownAs} answered without a token");
        }
    }

    void CheckRealm(Uri realm)
    {
        if (RealmRefusal(realm, scheme, tokenHosts) is { } why) throw new RegistryAuthenticationException($"the {shownAs} names a token realm {why}");
    }

    /// <summary>
    /// Why a token realm must not get the login, or null: a realm elsewhere would receive the Secret's password, so
    /// only the registry's own host or one the Secret names, over HTTPS (plain HTTP only for a plain-HTTP registry).
    /// </summary>
    public static string? RealmRefusal(Uri realm, string registryScheme, IReadOnlySet<string> allowedHosts)
    {
        if (realm.Scheme != "https" && realm.Scheme != registryScheme)
            return $"over {realm.Scheme} ({realm.GetLeftPart(UriPartial.Path)}); Shipyard sends credentials only over HTTPS";
        if (!allowedHosts.Contains(realm.Host.Trim('[', ']')))
            return $"on another host ({realm.Host}); Shipyard sends credentials only to the registry's host or a host the registry Secret names";
        return null;
    }

    AuthenticationHeaderValue? Basic() => login is null || login.IdentityToken is not null ? null
        : new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{login.Username}:{login.Password}")));

    /// <summary>`realm="https://x/token",service="x",scope="repository:a:pull"` to a dictionary.</summary>
    public static Dictionary<string, string> ParseChallenge(string parameter)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var i = 0;
        while (i < parameter.Length)
        {
            while (i < parameter.Length && (parameter[i] == ',' || char.IsWhiteSpace(parameter[i]))) i++;
            var eq = parameter.IndexOf('=', i);
            if (eq < 0) break;
            var key = parameter[i..eq].Trim();
            i = eq + 1;
            string value;
            if (i < parameter.Length && parameter[i] == '"')
            {
                var end = parameter.IndexOf('"', i + 1);
                if (end < 0) end = parameter.Length;
                value = parameter[(i + 1)..end];
                i = end + 1;
            }
            else
            {
                var end = parameter.IndexOf(',', i);
                if (end < 0) end = parameter.Length;
                value = parameter[i..end].Trim();
                i = end;
            }
            result[key] = value;
        }
        return result;
    }
}

/// <summary>The registry refused the login, or asked for it somewhere Shipyard will not send it. Never retried.</summary>
public sealed class RegistryAuthenticationException(string message) : Exception(message);
