using System.Net;
using System.Net.Sockets;

namespace Shipyard.Driver;

/// <summary>
/// Test-only TCP proxy between the hook and kube-apiserver (TLS passes through untouched; the kubeconfig
/// it writes points at the proxy). Faults are injected into real connections: reset the next N, or cut
/// every open one.
/// </summary>
public sealed class ApiProxy : IAsyncDisposable
{
    readonly TcpListener listener = new(IPAddress.Loopback, 0);
    readonly IPEndPoint upstream;
    readonly CancellationTokenSource stop = new();
    readonly List<(TcpClient A, TcpClient B)> open = [];
    int resetNext;

    public int Port => ((IPEndPoint)listener.LocalEndpoint).Port;
    public int Accepted { get; private set; }
    public int Reset { get; private set; }

    public ApiProxy(IPEndPoint upstream)
    {
        this.upstream = upstream;
        listener.Start();
        _ = AcceptLoopAsync();
    }

    /// <summary>The next <paramref name="n"/> connections are accepted and reset at once (RST), as a load balancer or a restarting API server does.</summary>
    public void ResetNextConnections(int n) => Interlocked.Exchange(ref resetNext, n);

    /// <summary>Resets every connection open now (watches, log streams, exec websockets).</summary>
    public void CutAll()
    {
        lock (open)
        {
            foreach (var (a, b) in open) { Abort(a); Abort(b); }
            open.Clear();
        }
    }

    /// <summary>A copy of <paramref name="kubeconfig"/> whose server is this proxy (the API server's certificate names 127.0.0.1).</summary>
    public string WriteKubeconfig(string kubeconfig, string path)
    {
        File.WriteAllText(path, File.ReadAllText(kubeconfig).Replace($"https://127.0.0.1:{upstream.Port}", $"https://127.0.0.1:{Port}"));
        return path;
    }

    async Task AcceptLoopAsync()
    {
        while (!stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await listener.AcceptTcpClientAsync(stop.Token); }
            catch (Exception) { return; }
            Accepted++;
            if (Interlocked.Decrement(ref resetNext) >= 0) { Reset++; Abort(client); continue; }
            Interlocked.Exchange(ref resetNext, 0);
            _ = PairAsync(client);
        }
    }

    async Task PairAsync(TcpClient client)
    {
        var server = new TcpClient();
        try { await server.ConnectAsync(upstream, stop.Token); }
        catch (Exception) { Abort(client); return; }
        lock (open) open.Add((client, server));
        await Task.WhenAny(PumpAsync(client, server), PumpAsync(server, client));
        lock (open) open.Remove((client, server));
        client.Dispose(); server.Dispose();
    }

    async Task PumpAsync(TcpClient from, TcpClient to)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            var a = from.GetStream(); var b = to.GetStream();
            int n;
            while ((n = await a.ReadAsync(buffer, stop.Token)) > 0) await b.WriteAsync(buffer.AsMemory(0, n), stop.Token);
        }
        catch (Exception) { /* a cut or a close: the pair ends */ }
    }

    static void Abort(TcpClient c)
    {
        try { c.Client.LingerState = new LingerOption(true, 0); c.Client.Close(); } catch (Exception) { }
        c.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        stop.Cancel();
        listener.Stop();
        CutAll();
        return ValueTask.CompletedTask;
    }
}
