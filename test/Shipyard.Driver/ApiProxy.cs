using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

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
    readonly List<Pair> open = [];

    sealed class Pair(TcpClient a, TcpClient b)
    {
        public TcpClient A => a;
        public TcpClient B => b;
        public volatile bool Stalled;
        public long Carried;
        public long Sent;
    }
    long cutAfter = long.MaxValue;
    long cutUploadAfter = long.MaxValue;
    int cutUploads;

    /// <summary>From now on, a connection is reset once it has carried <paramref name="bytes"/> bytes from the API server: a transfer cut mid-way.</summary>
    public void CutConnectionsAfter(long bytes) => Interlocked.Exchange(ref cutAfter, bytes);

    /// <summary>
    /// The next <paramref name="connections"/> connections that carry more than <paramref name="bytes"/> bytes to the
    /// API server (an upload: exec stdin) are reset mid-way; later ones pass.
    /// </summary>
    public void CutUploadsAfter(long bytes, int connections)
    {
        Interlocked.Exchange(ref cutUploadAfter, bytes);
        Interlocked.Exchange(ref cutUploads, connections);
    }

    public int CutMidway { get; private set; }
    int resetNext;
    int answer429;
    readonly X509Certificate2? serverCert;
    readonly X509Certificate2? clientCert;

    public int Port => ((IPEndPoint)listener.LocalEndpoint).Port;
    public int Accepted { get; private set; }
    public int Reset { get; private set; }

    /// <param name="pki">
    /// The test cluster's PKI folder: when given, the proxy terminates TLS with the API server's own
    /// certificate and speaks to the API server with the admin client certificate, so it can answer HTTP
    /// itself (429 storms); otherwise TLS passes through untouched.
    /// </param>
    public ApiProxy(IPEndPoint upstream, string? pki = null)
    {
        this.upstream = upstream;
        if (pki is not null)
        {
            serverCert = X509CertificateLoader.LoadPkcs12(X509Certificate2.CreateFromPemFile(Path.Combine(pki, "apiserver.crt"), Path.Combine(pki, "apiserver.key")).Export(X509ContentType.Pkcs12), null);
            clientCert = X509CertificateLoader.LoadPkcs12(X509Certificate2.CreateFromPemFile(Path.Combine(pki, "admin.crt"), Path.Combine(pki, "admin.key")).Export(X509ContentType.Pkcs12), null);
        }
        listener.Start();
        _ = AcceptLoopAsync();
    }

    /// <summary>The next <paramref name="n"/> requests (each on its own connection) are answered `429 Too Many Requests` with `Retry-After: 1`.</summary>
    public void Answer429(int n) => Interlocked.Exchange(ref answer429, n);

    public int Answered429 { get; private set; }

    /// <summary>The next <paramref name="n"/> connections are accepted and reset at once (RST), as a load balancer or a restarting API server does.</summary>
    public void ResetNextConnections(int n) => Interlocked.Exchange(ref resetNext, n);

    /// <summary>Resets every connection open now (watches, log streams, exec websockets).</summary>
    public void CutAll()
    {
        lock (open)
        {
            foreach (var pair in open) { Abort(pair.A); Abort(pair.B); }
            open.Clear();
        }
    }

    /// <summary>Every connection open now stops carrying data without closing: a half-open connection.</summary>
    public void StallAll()
    {
        lock (open) foreach (var pair in open) pair.Stalled = true;
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
            _ = serverCert is null ? PairAsync(client) : TerminatingPairAsync(client);
        }
    }

    async Task PairAsync(TcpClient client)
    {
        var server = new TcpClient();
        try { await server.ConnectAsync(upstream, stop.Token); }
        catch (Exception) { Abort(client); return; }
        var pair = new Pair(client, server);
        lock (open) open.Add(pair);
        await Task.WhenAny(PumpAsync(client.GetStream(), server.GetStream(), pair), PumpAsync(server.GetStream(), client.GetStream(), pair, downstream: true));
        lock (open) open.Remove(pair);
        client.Dispose(); server.Dispose();
    }

    /// <summary>TLS on both sides; the first request of a connection may be answered here instead of upstream.</summary>
    async Task TerminatingPairAsync(TcpClient client)
    {
        try
        {
            var down = new SslStream(client.GetStream());
            await down.AuthenticateAsServerAsync(new SslServerAuthenticationOptions
            {
                ServerCertificate = serverCert, ClientCertificateRequired = false,
                RemoteCertificateValidationCallback = (_, _, _, _) => true,
            }, stop.Token);
            if (Interlocked.Decrement(ref answer429) >= 0)
            {
                await ReadHeadAsync(down);
                Answered429++;
                await down.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"), stop.Token);
                await down.FlushAsync(stop.Token);
                client.Dispose();
                return;
            }
            Interlocked.Exchange(ref answer429, 0);
            var server = new TcpClient();
            await server.ConnectAsync(upstream, stop.Token);
            var up = new SslStream(server.GetStream(), false, (_, _, _, _) => true);
            await up.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "127.0.0.1", ClientCertificates = [clientCert!],
            }, stop.Token);
            var pair = new Pair(client, server);
            lock (open) open.Add(pair);
            await Task.WhenAny(PumpAsync(down, up, pair), PumpAsync(up, down, pair, downstream: true));
            lock (open) open.Remove(pair);
            server.Dispose();
        }
        catch (Exception) { /* a cut or a close */ }
        client.Dispose();
    }

    static async Task ReadHeadAsync(Stream s)
    {
        var seen = new StringBuilder();
        var b = new byte[1];
        while (!seen.ToString().EndsWith("\r\n\r\n") && await s.ReadAsync(b) == 1) seen.Append((char)b[0]);
    }

    async Task PumpAsync(Stream a, Stream b, Pair pair, bool downstream = false)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            int n;
            while ((n = await a.ReadAsync(buffer, stop.Token)) > 0)
            {
                if (pair.Stalled) await Task.Delay(Timeout.Infinite, stop.Token);
                var cut = downstream
                    ? (pair.Carried += n) > Interlocked.Read(ref cutAfter)
                    : (pair.Sent += n) > Interlocked.Read(ref cutUploadAfter) && Interlocked.Decrement(ref cutUploads) >= 0;
                if (cut)
                {
                    CutMidway++;
                    Abort(pair.A); Abort(pair.B);
                    return;
                }
                await b.WriteAsync(buffer.AsMemory(0, n), stop.Token);
                await b.FlushAsync(stop.Token);
            }
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
