using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Shipyard.Images;

namespace Shipyard.Tests;

/// <summary>
/// The registry client against a registry's recorded answers, replayed by a plain-HTTP server on loopback
/// (the e2e tests run it against the real TLS + htpasswd registry).
/// </summary>
public sealed class RegistryClientTests : IDisposable
{
    /// <summary>Serves the answers a handler gives, and records every request it saw.</summary>
    sealed class Recorded : IDisposable
    {
        HttpListener listener = new();
        public readonly List<(string Method, string Url, string? Authorization, string Body)> Requests = [];
        public string Authority { get; }

        public Recorded(string ip, Func<HttpListenerRequest, string, (int Status, Dictionary<string, string> Headers, string Body)> answer)
        {
            for (var attempt = 0; ; attempt++)
            {
                var port = Random.Shared.Next(20000, 60000);
                Authority = $"{ip}:{port}";
                listener.Prefixes.Clear();
                listener.Prefixes.Add($"http://{Authority}/");
                try { listener.Start(); break; }
                catch (HttpListenerException) when (attempt < 20) { listener.Close(); listener = new HttpListener(); } // a closed listener cannot start again
            }
            _ = Task.Run(async () =>
            {
                while (listener.IsListening)
                {
                    HttpListenerContext c;
                    try { c = await listener.GetContextAsync(); } catch (Exception) { return; }
                    var body = await new StreamReader(c.Request.InputStream).ReadToEndAsync();
                    lock (Requests) Requests.Add((c.Request.HttpMethod, c.Request.Url!.PathAndQuery, c.Request.Headers["Authorization"], body));
                    var (status, headers, text) = answer(c.Request, body);
                    c.Response.StatusCode = status;
                    foreach (var (k, v) in headers) c.Response.AddHeader(k, v);
                    var bytes = Encoding.UTF8.GetBytes(text);
                    c.Response.ContentLength64 = bytes.Length;
                    await c.Response.OutputStream.WriteAsync(bytes);
                    c.Response.Close();
                }
            });
        }

        public void Dispose() { listener.Stop(); listener.Close(); }
    }

    readonly List<IDisposable> servers = [];
    public void Dispose() { foreach (var s in servers) s.Dispose(); }

    Recorded Serve(string ip, Func<HttpListenerRequest, string, (int, Dictionary<string, string>, string)> answer)
    {
        var s = new Recorded(ip, answer);
        servers.Add(s);
        return s;
    }

    static (int, Dictionary<string, string>, string) Answer(int status, string body = "", params (string, string)[] headers) =>
        (status, headers.ToDictionary(h => h.Item1, h => h.Item2), body);

    const string Manifest = """{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"digest":"sha256:c","size":2},"layers":[]}""";

    static RegistryClient Client(string authority, RegistryLogin? login, IEnumerable<string>? secretAuthorities = null) =>
        new(authority, login, null, insecure: true, TimeSpan.FromSeconds(5), secretAuthorities, "push host");

    [Fact]
    public async Task A_bearer_registry_is_asked_for_a_token_once_per_scope_with_the_basic_login()
    {
        Recorded registry = null!;
        registry = Serve("127.0.0.1", (req, _) =>
        {
            if (req.Url!.AbsolutePath == "/token")
                return Answer(200, """{"token":"tok-1"}""");
            if (req.Headers["Authorization"] != "Bearer tok-1")
                return Answer(401, "", ("WWW-Authenticate", $"Bearer realm=\"http://{registry.Authority}/token\",service=\"reg\",scope=\"repository:a/b:pull\""));
            return Answer(200, Manifest, ("Content-Type", "application/vnd.docker.distribution.manifest.v2+json"));
        });
        using var client = Client(registry.Authority, new RegistryLogin("u", "p"));
        var first = await client.FindManifestAsync("a/b", "t1", CancellationToken.None);
        var second = await client.FindManifestAsync("a/b", "t2", CancellationToken.None);
        Assert.Equal(RegistryClient.Digest(Encoding.UTF8.GetBytes(Manifest)), first!.Digest);
        Assert.Equal("application/vnd.docker.distribution.manifest.v2+json", second!.MediaType);
        var token = Assert.Single(registry.Requests, r => r.Url.StartsWith("/token"));
        Assert.Equal("/token?service=reg&scope=repository%3Aa%2Fb%3Apull", token.Url);
        Assert.Equal("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("u:p")), token.Authorization);
        Assert.Equal(4, registry.Requests.Count); // 401, token, t1, t2: the token is kept for the scope
    }

    [Fact]
    public async Task An_identity_token_is_exchanged_with_a_refresh_token_grant_and_no_password_is_sent()
    {
        Recorded registry = null!;
        registry = Serve("127.0.0.1", (req, body) =>
        {
            if (req.Url!.AbsolutePath == "/oauth2/token")
                return body.Contains("grant_type=refresh_token") && body.Contains("refresh_token=id-tok") ? Answer(200, """{"access_token":"acc-9"}""") : Answer(400);
            if (req.Headers["Authorization"] != "Bearer acc-9")
                return Answer(401, "", ("WWW-Authenticate", $"Bearer realm=\"http://{registry.Authority}/oauth2/token\",service=\"reg\""));
            return Answer(404);
        });
        var login = DockerConfig.LoginFor(Encoding.UTF8.GetBytes("{\"auths\":{\"" + registry.Authority + "\":{\"auth\":\"\",\"identitytoken\":\"id-tok\"}}}"), registry.Authority);
        Assert.Equal("id-tok", login!.IdentityToken);
        using var client = Client(registry.Authority, login);
        Assert.Null(await client.FindManifestAsync("a/b", "missing", CancellationToken.None));
        var exchange = Assert.Single(registry.Requests, r => r.Url.StartsWith("/oauth2/token"));
        Assert.Equal("POST", exchange.Method);
        Assert.Contains("scope=repository%3Aa%2Fb%3Apull", exchange.Body);
        Assert.Contains("service=reg", exchange.Body);
        Assert.All(registry.Requests, r => Assert.False(r.Authorization?.StartsWith("Basic") == true));
    }

    [Fact]
    public async Task A_token_realm_on_another_host_gets_nothing_and_the_refusal_is_one_line()
    {
        var elsewhere = Serve("127.0.0.2", (_, _) => Answer(200, """{"token":"x"}"""));
        var registry = Serve("127.0.0.1", (_, _) =>
            Answer(401, "", ("WWW-Authenticate", $"Bearer realm=\"http://{elsewhere.Authority}/token\",service=\"reg\"")));
        using var client = Client(registry.Authority, new RegistryLogin("u", "secret-pw"));
        var e = await Assert.ThrowsAsync<RegistryAuthenticationException>(() => client.FindManifestAsync("a/b", "t", CancellationToken.None));
        Assert.Equal("the push host " + registry.Authority + " names a token realm on another host (127.0.0.2); Shipyard sends credentials only to the registry's host or a host the registry Secret names", e.Message);
        Assert.Empty(elsewhere.Requests);
    }

    [Fact]
    public async Task A_token_realm_on_a_host_the_secret_names_is_used()
    {
        var auth = Serve("127.0.0.2", (_, _) => Answer(200, """{"token":"t"}"""));
        var registry = Serve("127.0.0.1", (req, _) => req.Headers["Authorization"] == "Bearer t" ? Answer(404)
            : Answer(401, "", ("WWW-Authenticate", $"Bearer realm=\"http://{auth.Authority}/token\"")));
        using var client = Client(registry.Authority, new RegistryLogin("u", "p"), [registry.Authority, auth.Authority]);
        Assert.Null(await client.FindManifestAsync("a/b", "t", CancellationToken.None));
        Assert.Single(auth.Requests);
    }

    [Theory]
    [InlineData("http://registry.example/token", "https", "over http")]
    [InlineData("https://evil.example/token", "https", "on another host (evil.example)")]
    [InlineData("https://registry.example:8443/token", "https", null)]
    [InlineData("http://registry.example/token", "http", null)]
    [InlineData("https://auth.example/token", "https", null)]
    public void Token_realms_only_over_https_and_only_on_known_hosts(string realm, string registryScheme, string? refusal)
    {
        var hosts = new HashSet<string>(["registry.example", "auth.example"], StringComparer.OrdinalIgnoreCase);
        var why = RegistryClient.RealmRefusal(new Uri(realm), registryScheme, hosts);
        if (refusal is null) Assert.Null(why);
        else Assert.StartsWith(refusal, why);
    }

    [Fact]
    public async Task A_redirect_to_another_host_is_followed_without_the_credential()
    {
        var storage = Serve("127.0.0.2", (_, _) => Answer(200, "{}"));
        var registry = Serve("127.0.0.1", (req, _) => req.Headers["Authorization"] is null
            ? Answer(401, "", ("WWW-Authenticate", "Basic realm=\"r\""))
            : Answer(307, "", ("Location", $"http://{storage.Authority}/blob?sig=1")));
        using var client = Client(registry.Authority, new RegistryLogin("u", "p"));
        var blob = await client.GetBlobAsync("a/b", RegistryClient.Digest("{}"u8), 1024, CancellationToken.None);
        Assert.Equal("{}", Encoding.UTF8.GetString(blob));
        var fetched = Assert.Single(storage.Requests);
        Assert.Null(fetched.Authorization);
        Assert.Contains(registry.Requests, r => r.Authorization?.StartsWith("Basic ") == true);
    }

    [Fact]
    public async Task A_wrong_password_is_one_line_naming_the_host_and_the_status()
    {
        var registry = Serve("127.0.0.1", (_, _) => Answer(401, "", ("WWW-Authenticate", "Basic realm=\"r\"")));
        using var client = Client(registry.Authority, new RegistryLogin("u", "wrong"));
        var e = await Assert.ThrowsAsync<RegistryAuthenticationException>(() => client.FindManifestAsync("a/b", "t", CancellationToken.None));
        Assert.Equal($"authentication failed on the push host {registry.Authority} (401 Unauthorized)", e.Message);
    }

    /// <summary>An OCI image layout in <paramref name="dir"/> holding <paramref name="manifest"/> and <paramref name="blobs"/>.</summary>
    static void WriteLayout(string dir, string manifest, params byte[][] blobs)
    {
        var store = Directory.CreateDirectory(Path.Combine(dir, "blobs", "sha256")).FullName;
        foreach (var b in blobs.Append(Encoding.UTF8.GetBytes(manifest))) File.WriteAllBytes(Path.Combine(store, RegistryClient.Digest(b)[7..]), b);
        File.WriteAllText(Path.Combine(dir, "oci-layout"), """{"imageLayoutVersion":"1.0.0"}""");
        File.WriteAllText(Path.Combine(dir, "index.json"), $$"""{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{{RegistryClient.Digest(Encoding.UTF8.GetBytes(manifest))}}","size":{{Encoding.UTF8.GetByteCount(manifest)}}}]}""");
    }

    [Fact]
    public async Task A_push_skips_blobs_the_registry_has_mounts_from_the_base_and_stores_the_manifest_bytes_as_they_are()
    {
        var dir = Directory.CreateTempSubdirectory("layout").FullName;
        try
        {
            var config = "{\"config\":{}}"u8.ToArray();
            var layer = "layer-bytes"u8.ToArray();
            var have = "base-layer"u8.ToArray();
            var (c, l, h) = (RegistryClient.Digest(config), RegistryClient.Digest(layer), RegistryClient.Digest(have));
            var manifest = $$"""{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"digest":"{{c}}","size":{{config.Length}}},"layers":[{"digest":"{{h}}","size":{{have.Length}}},{"digest":"{{l}}","size":{{layer.Length}}}]}""";
            WriteLayout(dir, manifest, config, layer, have);
            var image = ImageLayout.Read(dir);

            var registry = Serve("127.0.0.1", (req, body) =>
            {
                var path = req.Url!.AbsolutePath;
                if (req.HttpMethod == "HEAD") return path.EndsWith(h) ? Answer(200) : Answer(404);
                if (req.HttpMethod == "POST" && req.Url.Query.Contains(Uri.EscapeDataString(c))) return Answer(201); // mounted from the base
                if (req.HttpMethod == "POST") return Answer(202, "", ("Location", "/v2/act/blobs/uploads/u1?_state=s"));
                if (req.HttpMethod == "PUT" && path.StartsWith("/v2/act/blobs/uploads/u1"))
                    return body == "layer-bytes" && req.Url.Query.Contains("digest=" + Uri.EscapeDataString(l)) ? Answer(201) : Answer(400);
                if (req.HttpMethod == "PUT" && path == "/v2/act/manifests/tag1")
                    return body == manifest && req.ContentType == "application/vnd.docker.distribution.manifest.v2+json"
                        ? Answer(201, "", ("Docker-Content-Digest", RegistryClient.Digest(Encoding.UTF8.GetBytes(body)))) : Answer(400);
                return Answer(500);
            });
            using var client = Client(registry.Authority, null);
            var digest = await client.PushAsync("act", "tag1", image, ["base"], CancellationToken.None);
            Assert.Equal(RegistryClient.Digest(Encoding.UTF8.GetBytes(manifest)), digest);
            Assert.Contains(registry.Requests, r => r.Method == "POST" && r.Url.Contains("from=base"));
            Assert.DoesNotContain(registry.Requests, r => r.Method == "PUT" && r.Body == "base-layer");
            Assert.Single(registry.Requests, r => r.Method == "PUT" && r.Url.Contains("/manifests/tag1"));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_truncated_layout_is_refused_before_anything_is_pushed()
    {
        var dir = Directory.CreateTempSubdirectory("layout").FullName;
        try
        {
            var config = "{}"u8.ToArray();
            var c = RegistryClient.Digest(config);
            WriteLayout(dir, $$"""{"schemaVersion":2,"config":{"digest":"{{c}}","size":99},"layers":[]}""", config);
            var e = Assert.Throws<HookException>(() => ImageLayout.Read(dir));
            Assert.Contains($"blob {c} is 2 bytes, the manifest says 99", e.Message);
            // A blob name that is not a sha256 digest never becomes a path.
            WriteLayout(dir, """{"schemaVersion":2,"config":{"digest":"sha256:../../etc/passwd","size":2},"layers":[]}""");
            Assert.Contains("not a sha256 digest", Assert.Throws<HookException>(() => ImageLayout.Read(dir)).Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void An_oci_layout_as_kaniko_writes_it_keeps_the_manifest_bytes_and_media_type()
    {
        var dir = Directory.CreateTempSubdirectory("oci").FullName;
        try
        {
            var blobs = Directory.CreateDirectory(Path.Combine(dir, "blobs", "sha256")).FullName;
            string Put(byte[] b) { var d = RegistryClient.Digest(b); File.WriteAllBytes(Path.Combine(blobs, d[7..]), b); return d; }
            var c = Put("{}"u8.ToArray());
            var manifest = Encoding.UTF8.GetBytes($$"""{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"digest":"{{c}}","size":2},"layers":[]}""");
            var m = Put(manifest);
            File.WriteAllText(Path.Combine(dir, "oci-layout"), """{"imageLayoutVersion":"1.0.0"}""");
            File.WriteAllText(Path.Combine(dir, "index.json"), $$"""{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{{m}}","size":{{manifest.Length}}}]}""");
            var image = ImageLayout.Read(dir);
            Assert.Equal(m, image.Manifest.Digest);
            Assert.Equal(manifest, image.Manifest.Bytes);
            Assert.Equal("application/vnd.docker.distribution.manifest.v2+json", image.Manifest.MediaType);
            Assert.Equal([c], image.Blobs.Select(b => b.Digest));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("FROM node:20-alpine AS deps\nFROM deps\nFROM --platform=$BUILDPLATFORM reg.example:5000/team/base@sha256:abc AS x\nFROM $BASE\nFROM scratch",
        "docker.io library/node|reg.example:5000 team/base")]
    [InlineData("# FROM commented:1\nFROM \\\n  localhost/img:1\nfrom ghcr.io/o/r", "localhost img|ghcr.io o/r")]
    public void Base_images_are_the_from_lines_that_name_an_image(string dockerfile, string expected)
    {
        var found = BaseImages.Of(dockerfile.Replace("\\n", "\n"));
        Assert.Equal(expected, string.Join('|', found.Select(b => $"{b.Authority} {b.Repository}")));
    }

    [Fact]
    public void Builder_logins_merge_into_one_docker_config()
    {
        var merged = DockerConfig.Merge([
            """{"auths":{"a.example":{"auth":"YTpi"}}}"""u8.ToArray(),
            """{"auths":{"b.example":{"username":"u","password":"p"}},"credHelpers":{"x":"y"}}"""u8.ToArray(),
        ]);
        Assert.Equal(new RegistryLogin("a", "b"), DockerConfig.LoginFor(merged, "a.example"));
        Assert.Equal(new RegistryLogin("u", "p"), DockerConfig.LoginFor(merged, "b.example"));
        Assert.Equal(["a.example", "b.example"], DockerConfig.Authorities(merged));
    }

    /// <summary>A root, an intermediate it signed, and a 127.0.0.1 server certificate the intermediate signed.</summary>
    static (X509Certificate2 Root, X509Certificate2 Intermediate, X509Certificate2 Server) Chain()
    {
        static CertificateRequest Request(string cn, RSA key, bool ca)
        {
            var r = new CertificateRequest($"CN={cn}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
            r.CertificateExtensions.Add(new X509BasicConstraintsExtension(ca, false, 0, true));
            if (ca) r.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
            return r;
        }
        var now = DateTimeOffset.UtcNow.AddMinutes(-5);
        using var rootKey = RSA.Create(2048);
        using var midKey = RSA.Create(2048);
        var serverKey = RSA.Create(2048);
        var root = Request("test-root", rootKey, true).CreateSelfSigned(now, now.AddDays(1));
        var mid = Request("test-intermediate", midKey, true).Create(root, now, now.AddDays(1), [1]).CopyWithPrivateKey(midKey);
        var leafRequest = Request("registry", serverKey, false);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        leafRequest.CertificateExtensions.Add(san.Build());
        leafRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var leaf = leafRequest.Create(mid, now, now.AddDays(1), [2]).CopyWithPrivateKey(serverKey);
        return (root, mid, X509CertificateLoader.LoadPkcs12(leaf.Export(X509ContentType.Pkcs12), null));
    }

    /// <summary>A TLS server on loopback that presents only its own certificate and answers every request 404.</summary>
    static int ServeTls(X509Certificate2 certificate, CancellationToken stop)
    {
        var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        stop.Register(listener.Stop);
        _ = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                System.Net.Sockets.TcpClient client;
                try { client = await listener.AcceptTcpClientAsync(stop); } catch (Exception) { return; }
                _ = Task.Run(async () =>
                {
                    using var connection = client;
                    try
                    {
                        using var tls = new System.Net.Security.SslStream(client.GetStream());
                        await tls.AuthenticateAsServerAsync(certificate);
                        var buffer = new byte[8192];
                        _ = await tls.ReadAsync(buffer); // the request; its content does not matter
                        await tls.WriteAsync("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray());
                    }
                    catch (Exception) { }
                });
            }
        });
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    static X509Certificate2Collection Pem(params X509Certificate2[] certs) =>
        RegistryClient.ParseCa(Encoding.UTF8.GetBytes(string.Concat(certs.Select(c => c.ExportCertificatePem() + "\n"))));

    [Fact]
    public async Task A_ca_crt_with_the_intermediate_and_the_root_verifies_a_server_that_sends_only_its_own_certificate()
    {
        var (root, mid, server) = Chain();
        using var stop = new CancellationTokenSource();
        var port = ServeTls(server, stop.Token);
        using (var client = new RegistryClient($"127.0.0.1:{port}", null, Pem(mid, root), false, TimeSpan.FromSeconds(5)))
            Assert.Null(await client.FindManifestAsync("a/b", "t", CancellationToken.None));
        // Without the intermediate the chain cannot be built; without our root nothing vouches for it.
        using (var client = new RegistryClient($"127.0.0.1:{port}", null, Pem(root), false, TimeSpan.FromSeconds(5)))
            await Assert.ThrowsAsync<HttpRequestException>(() => client.FindManifestAsync("a/b", "t", CancellationToken.None));
        using (var client = new RegistryClient($"127.0.0.1:{port}", null, Pem(Chain().Root), false, TimeSpan.FromSeconds(5)))
            await Assert.ThrowsAsync<HttpRequestException>(() => client.FindManifestAsync("a/b", "t", CancellationToken.None));
        stop.Cancel();
    }
}
