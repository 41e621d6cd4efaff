using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Shipyard.Images;

/// <summary>
/// A login for one registry: username and password, or an `identitytoken` (an OAuth2 refresh token, as
/// `docker login` stores for token-based registries), exchanged at the registry's token realm.
/// </summary>
public sealed record RegistryLogin(string Username, string Password, string? IdentityToken = null)
{
    /// <summary>What must never be printed.</summary>
    public IEnumerable<string> Secrets => new[] { Password, IdentityToken }.OfType<string>().Where(s => s.Length > 0);
}

/// <summary>Reads credentials for one registry out of a `.dockerconfigjson` document.</summary>
public static class DockerConfig
{
    public static RegistryLogin? LoginFor(byte[] dockerConfigJson, string authority)
    {
        using var doc = JsonDocument.Parse(dockerConfigJson);
        if (!doc.RootElement.TryGetProperty("auths", out var auths) || auths.ValueKind != JsonValueKind.Object) return null;
        foreach (var entry in auths.EnumerateObject())
        {
            if (!string.Equals(Authority(entry.Name), authority, StringComparison.OrdinalIgnoreCase)) continue;
            var v = entry.Value;
            string? user = v.TryGetProperty("username", out var u) ? u.GetString() : null;
            string? pass = v.TryGetProperty("password", out var p) ? p.GetString() : null;
            var identity = v.TryGetProperty("identitytoken", out var it) ? it.GetString() : null;
            if ((user is null || pass is null) && v.TryGetProperty("auth", out var a) && a.GetString() is { Length: > 0 } b64)
            {
                var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(b64));
                var colon = decoded.IndexOf(':');
                if (colon > 0) { user = decoded[..colon]; pass = decoded[(colon + 1)..]; }
            }
            if (identity is { Length: > 0 }) return new RegistryLogin(user ?? "<token>", pass ?? "", identity);
            if (user is not null && pass is not null) return new RegistryLogin(user, pass);
        }
        return null;
    }

    /// <summary>The registry authorities a config has entries for.</summary>
    public static IReadOnlyList<string> Authorities(byte[] dockerConfigJson)
    {
        using var doc = JsonDocument.Parse(dockerConfigJson);
        if (!doc.RootElement.TryGetProperty("auths", out var auths) || auths.ValueKind != JsonValueKind.Object) return [];
        return auths.EnumerateObject().Select(e => Authority(e.Name)).ToList();
    }

    /// <summary>One config with every `auths` entry of the given ones; a later config's entry for the same name wins.</summary>
    public static byte[] Merge(IEnumerable<byte[]> configs)
    {
        var auths = new JsonObject();
        foreach (var config in configs)
        {
            if (JsonNode.Parse(config)?["auths"] is not JsonObject entries) continue;
            foreach (var (name, value) in entries) auths[name] = value?.DeepClone();
        }
        return Encoding.UTF8.GetBytes(new JsonObject { ["auths"] = auths }.ToJsonString());
    }

    /// <summary>`https://ghcr.io/v1/` and `ghcr.io/owner` both name the registry `ghcr.io`.</summary>
    public static string Authority(string hostOrUrl)
    {
        var s = hostOrUrl;
        var scheme = s.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0) s = s[(scheme + 3)..];
        var slash = s.IndexOf('/');
        return slash >= 0 ? s[..slash] : s;
    }

    /// <summary>The host of an authority, without port (`[::1]:5000` → `::1`).</summary>
    public static string Host(string authority)
    {
        if (authority.StartsWith('[')) return authority[1..authority.IndexOf(']')];
        var colon = authority.LastIndexOf(':');
        return colon >= 0 ? authority[..colon] : authority;
    }
}
