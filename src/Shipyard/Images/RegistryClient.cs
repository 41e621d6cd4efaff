using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

namespace Shipyard.Images;

/// <summary>
/// Asks a registry (v2 API) whether a tag exists and what its digest is; answers Basic and Bearer
/// token challenges with the login from the registry Secret. Trusts an extra CA when given.
/// </summary>
public sealed class RegistryClient : IDisposable
{
    static readonly string[] ManifestTypes =
    [
        "application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
    ];

    readonly HttpClient http;
    readonly string scheme;
    readonly RegistryLogin? login;

    public RegistryClient(RegistryLogin? login, X509Certificate2? ca, bool insecure, TimeSpan timeout)
    {
        this.login = login;
        scheme = insecure ? "http" : "https";
        var handler = new SocketsHttpHandler { AllowAutoRedirect = true };
        if (ca is not null)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = (_, cert, _, errors) =>
            {
                if (errors == SslPolicyErrors.None) return true;
                if (cert is null || (errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0) return false;
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(ca);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(new X509Certificate2(cert));
            };
        }
        http = new HttpClient(handler) { Timeout = timeout };
    }

    public void Dispose() => http.Dispose();

    /// <summary>The manifest digest of `authority/repository:tag`, or null when the tag does not exist.</summary>
    public async Task<string?> FindDigestAsync(string authority, string repository, string tag, CancellationToken ct)
    {
        var url = $"{scheme}://{authority}/v2/{repository}/manifests/{tag}";
        // Basic credentials up front save a round trip on Basic registries; Bearer ones answer 401 with their challenge.
        using var first = await SendAsync(url, Basic(), ct);
        HttpResponseMessage response = first;
        HttpResponseMessage? retried = null;
        try
        {
            if (first.StatusCode == HttpStatusCode.Unauthorized)
            {
                var auth = await AuthorizationAsync(first.Headers.WwwAuthenticate.FirstOrDefault(), repository, ct);
                retried = await SendAsync(url, auth, ct);
                response = retried;
            }
            if (response.StatusCode == HttpStatusCode.NotFound) return null;
            if (!response.IsSuccessStatusCode)
                throw new HttpRequestException($"registry answered {(int)response.StatusCode} {response.ReasonPhrase} for {authority}/{repository}:{tag}");
            if (response.Headers.TryGetValues("Docker-Content-Digest", out var d) && d.FirstOrDefault() is { } digest) return digest;
            // No digest header: fetch the manifest and hash it, as the registry would.
            using var get = new HttpRequestMessage(HttpMethod.Get, url);
            if (response.RequestMessage?.Headers.Authorization is { } a) get.Headers.Authorization = a;
            foreach (var t in ManifestTypes) get.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(t));
            using var body = await http.SendAsync(get, ct);
            body.EnsureSuccessStatusCode();
            return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(await body.Content.ReadAsByteArrayAsync(ct)));
        }
        finally { retried?.Dispose(); }
    }

    /// <summary>`GET /v2/` with the login: the HTTP status the registry ends with (200 when the login works).</summary>
    public async Task<HttpStatusCode> PingAsync(string authority, string repository, CancellationToken ct)
    {
        var url = $"{scheme}://{authority}/v2/";
        using var first = await SendAsync(HttpMethod.Get, url, Basic(), ct);
        if (first.StatusCode != HttpStatusCode.Unauthorized) return first.StatusCode;
        var auth = await AuthorizationAsync(first.Headers.WwwAuthenticate.FirstOrDefault(), repository, ct, push: false);
        if (auth is null) return first.StatusCode;
        using var second = await SendAsync(HttpMethod.Get, url, auth, ct);
        return second.StatusCode;
    }

    /// <summary>
    /// Proves push rights without pushing: opens a blob upload session in <paramref name="repository"/> and
    /// cancels it at once (DELETE of the session), so nothing is left in the registry.
    /// </summary>
    public async Task<(bool Allowed, string Detail)> OpenAndCancelUploadAsync(string authority, string repository, CancellationToken ct)
    {
        var url = $"{scheme}://{authority}/v2/{repository}/blobs/uploads/";
        using var first = await SendAsync(HttpMethod.Post, url, Basic(), ct);
        HttpResponseMessage response = first;
        HttpResponseMessage? retried = null;
        try
        {
            if (first.StatusCode == HttpStatusCode.Unauthorized)
            {
                var auth = await AuthorizationAsync(first.Headers.WwwAuthenticate.FirstOrDefault(), repository, ct, push: true);
                retried = await SendAsync(HttpMethod.Post, url, auth, ct);
                response = retried;
            }
            if (response.StatusCode != HttpStatusCode.Accepted)
                return (false, $"{(int)response.StatusCode} {response.ReasonPhrase}");
            if (response.Headers.Location is not { } location) return (true, "session opened (no Location to cancel)");
            var cancelUrl = location.IsAbsoluteUri ? location : new Uri(new Uri($"{scheme}://{authority}"), location);
            using var cancel = await SendAsync(HttpMethod.Delete, cancelUrl.ToString(), response.RequestMessage?.Headers.Authorization, ct);
            return (true, $"upload session opened and cancelled ({(int)cancel.StatusCode})");
        }
        finally { retried?.Dispose(); }
    }

    Task<HttpResponseMessage> SendAsync(HttpMethod method, string url, AuthenticationHeaderValue? auth, CancellationToken ct)
    {
        var req = new HttpRequestMessage(method, url);
        req.Headers.Authorization = auth;
        if (method == HttpMethod.Post) req.Content = new ByteArrayContent([]);
        return http.SendAsync(req, ct);
    }

    Task<HttpResponseMessage> SendAsync(string url, AuthenticationHeaderValue? auth, CancellationToken ct)
    {
        var req = new HttpRequestMessage(HttpMethod.Head, url);
        foreach (var t in ManifestTypes) req.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(t));
        req.Headers.Authorization = auth;
        return http.SendAsync(req, ct);
    }

    async Task<AuthenticationHeaderValue?> AuthorizationAsync(AuthenticationHeaderValue? challenge, string repository, CancellationToken ct, bool push = false)
    {
        if (challenge is null) return Basic();
        if (challenge.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase)) return Basic();
        if (!challenge.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase)) return null;
        var p = ParseChallenge(challenge.Parameter ?? "");
        if (!p.TryGetValue("realm", out var realm)) return null;
        var query = new List<string>();
        if (p.TryGetValue("service", out var service)) query.Add("service=" + Uri.EscapeDataString(service));
        query.Add("scope=" + Uri.EscapeDataString(p.TryGetValue("scope", out var scope) ? scope : $"repository:{repository}:{(push ? "pull,push" : "pull")}"));
        using var req = new HttpRequestMessage(HttpMethod.Get, realm + (realm.Contains('?') ? "&" : "?") + string.Join('&', query));
        req.Headers.Authorization = Basic();
        using var res = await http.SendAsync(req, ct);
        res.EnsureSuccessStatusCode();
        using var doc = JsonDocument.Parse(await res.Content.ReadAsStreamAsync(ct));
        var token = doc.RootElement.TryGetProperty("token", out var t) ? t.GetString()
            : doc.RootElement.TryGetProperty("access_token", out var at) ? at.GetString() : null;
        return token is null ? null : new AuthenticationHeaderValue("Bearer", token);
    }

    AuthenticationHeaderValue? Basic() => login is null ? null
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
