using k8s.Models;

namespace Shipyard.Pods;

/// <summary>One docker-style `-p` mapping: `80`, `8080:80`, `127.0.0.1:8080:80/udp`.</summary>
public sealed record PortMapping(int ContainerPort, int HostPort, string Protocol)
{
    public static PortMapping Parse(string spec)
    {
        var s = spec.Trim();
        var protocol = "TCP";
        var slash = s.LastIndexOf('/');
        if (slash >= 0)
        {
            protocol = s[(slash + 1)..].ToUpperInvariant();
            s = s[..slash];
            if (protocol is not ("TCP" or "UDP" or "SCTP")) throw new HookException($"Port mapping '{spec}' has unknown protocol '{protocol}'.");
        }
        var parts = s.Split(':');
        HookException Invalid() => new($"Port mapping '{spec}' is not a valid port mapping (expected [[ip:]host:]container[/protocol]).");
        int Port(string p) => p.Length <= 5 && int.TryParse(p, System.Globalization.NumberStyles.None, null, out var n) && n is > 0 and < 65536 ? n : throw Invalid();
        if (parts.Length > 3) throw Invalid();
        if (parts.Length == 3 && !IsHostIp(parts[0])) throw Invalid();
        var container = Port(parts[^1]);
        var host = parts.Length >= 2 && parts[^2].Length > 0 ? Port(parts[^2]) : container;
        return new PortMapping(container, host, protocol);
    }

    // Docker's `ip:` part: a dotted IPv4 address (IPAddress.TryParse alone would take "1" as 0.0.0.1).
    static bool IsHostIp(string ip) =>
        ip.Split('.').Length == 4 && ip.Split('.').All(o => o.Length is > 0 and <= 3 && o.All(char.IsAsciiDigit)) && System.Net.IPAddress.TryParse(ip, out _);

    // No hostPort: it is a Baseline violation and the job reaches services on localhost anyway.
    public V1ContainerPort ContainerPortSpec() => new() { ContainerPort = ContainerPort, Protocol = Protocol };

    public static Dictionary<string, string> ResponsePorts(IEnumerable<string>? mappings) =>
        (mappings ?? []).Select(Parse).GroupBy(p => p.ContainerPort).ToDictionary(g => g.Key.ToString(), g => g.First().HostPort.ToString());
}
