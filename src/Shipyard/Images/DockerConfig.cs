using System.Text;
using System.Text.Json;

namespace Shipyard.Images;

public sealed record RegistryLogin(string Username, string Password);

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
            if ((user is null || pass is null) && v.TryGetProperty("auth", out var a) && a.GetString() is { } b64)
            {
                var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(b64));
                var colon = decoded.IndexOf(':');
                if (colon > 0) { user = decoded[..colon]; pass = decoded[(colon + 1)..]; }
            }
            if (user is not null && pass is not null) return new RegistryLogin(user, pass);
        }
        return null;
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
}
