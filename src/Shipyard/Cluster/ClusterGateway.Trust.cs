using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using k8s;

namespace Shipyard.Cluster;

public sealed partial class ClusterGateway
{
    /// <summary>
    /// On Linux, .NET builds every TLS peer's chain against the system trust store before the client's own CA
    /// check runs, and loading that store (a few hundred PEM files through OpenSSL) cost ~110 ms of CPU and
    /// ~130 ms of wall time per hook call — most of a script step. A call that talks to nothing but the API
    /// server (every command except Dockerfile builds and `doctor`) points OpenSSL's default trust at the
    /// API server's CA alone before its first handshake: the server is checked against exactly the CA the
    /// kubeconfig or service account names, as the client does anyway, and nothing else is trusted.
    /// </summary>
    static void TrustOnlyApiServerCa(KubernetesClientConfiguration config, Action<string> debug)
    {
        if (config.SkipTlsVerify || config.SslCaCerts is not { Count: > 0 } ca) return;
        try
        {
            var pem = new StringBuilder();
            foreach (var cert in ca) pem.Append(cert.ExportCertificatePem()).Append('\n');
            var bytes = Encoding.ASCII.GetBytes(pem.ToString());
            var file = Path.Combine(Path.GetTempPath(), $"shipyard-api-ca-{Convert.ToHexStringLower(SHA256.HashData(bytes))[..16]}.pem");
            if (!File.Exists(file))
            {
                var staging = $"{file}.{Environment.ProcessId}";
                File.WriteAllBytes(staging, bytes);
                File.Move(staging, file, overwrite: true);
            }
            // No directory of further roots. .NET reads these through both the process and the managed environment.
            const string noDirectory = "/nonexistent/shipyard-no-system-roots";
            if (Native.SetEnv("SSL_CERT_FILE", file) != 0 || Native.SetEnv("SSL_CERT_DIR", noDirectory) != 0) return;
            Environment.SetEnvironmentVariable("SSL_CERT_FILE", file);
            Environment.SetEnvironmentVariable("SSL_CERT_DIR", noDirectory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or DllNotFoundException or EntryPointNotFoundException)
        {
            debug($"Could not limit TLS trust to the API server's CA ({e.Message}); the system trust store is loaded.");
        }
    }

    static class Native
    {
        [DllImport("libc.so.6", EntryPoint = "setenv")]
        static extern int SetEnv(byte[] name, byte[] value, int overwrite);

        public static int SetEnv(string name, string value) =>
            SetEnv(Encoding.UTF8.GetBytes(name + "\0"), Encoding.UTF8.GetBytes(value + "\0"), 1);
    }
}
