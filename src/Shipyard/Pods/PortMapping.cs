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
        int Port(string p) => int.TryParse(p, out var n) && n is > 0 and < 65536 ? n : throw new HookException($"Port mapping '{spec}' is not a valid port mapping (expected [host:]container[/protocol]).");
        var container = Port(parts[^1]);
        var host = parts.Length >= 2 && parts[^2].Length > 0 ? Port(parts[^2]) : container;
        return new PortMapping(container, host, protocol);
    }

    // No hostPort: it is a Baseline violation and the job reaches services on localhost anyway.
    public V1ContainerPort ContainerPortSpec() => new() { ContainerPort = ContainerPort, Protocol = Protocol };

    public static Dictionary<string, string> ResponsePorts(IEnumerable<string>? mappings) =>
        (mappings ?? []).Select(Parse).GroupBy(p => p.ContainerPort).ToDictionary(g => g.Key.ToString(), g => g.First().HostPort.ToString());
}
