using System.Text;
using System.Text.Json;
using k8s.Models;
using Shipyard.Pods;
using Shipyard.Protocol;

namespace Shipyard.Commands;

/// <summary>`args.registry` of a job or step container becomes a dockerconfigjson Secret for imagePullSecrets.</summary>
public static class RegistryPullSecret
{
    public static bool Wanted(RegistryCredentials? r) => r is { Username.Length: > 0, Password.Length: > 0 };

    public static V1Secret Build(string name, RegistryCredentials r, string image, PodPlacement placement)
    {
        var server = r.ServerUrl is { Length: > 0 } s ? s : RegistryOf(image);
        var auth = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{r.Username}:{r.Password}"));
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject(); w.WriteStartObject("auths"); w.WriteStartObject(server);
            w.WriteString("username", r.Username); w.WriteString("password", r.Password); w.WriteString("auth", auth);
            w.WriteEndObject(); w.WriteEndObject(); w.WriteEndObject();
        }
        return new V1Secret
        {
            ApiVersion = "v1", Kind = "Secret", Type = "kubernetes.io/dockerconfigjson",
            Metadata = placement.Metadata(name, "registry"),
            Data = new Dictionary<string, byte[]> { [".dockerconfigjson"] = ms.ToArray() },
        };
    }

    /// <summary>The registry host of an image reference (`docker.io` when it has none).</summary>
    public static string RegistryOf(string image)
    {
        var slash = image.IndexOf('/');
        if (slash < 0) return "https://index.docker.io/v1/";
        var first = image[..slash];
        return first.Contains('.') || first.Contains(':') || first == "localhost" ? first : "https://index.docker.io/v1/";
    }
}
