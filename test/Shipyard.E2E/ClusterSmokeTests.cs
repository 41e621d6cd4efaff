using Shipyard.Driver;
using System.Net.WebSockets;
using System.Text;
using k8s;
using k8s.Models;

namespace Shipyard.E2E;

/// <summary>Proves the test cluster is real: exec with stdin, logs, a private TLS registry, an in-pod build.</summary>
[Collection(ClusterCollection.Name)]
public sealed class ClusterSmokeTests(TestCluster cluster)
{
    async Task<V1Pod> RunPodAsync(string name, string image, string[] command, string? pullSecret = null, V1Volume? volume = null, V1VolumeMount? mount = null, string restart = "Never")
    {
        await cluster.Client.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = name },
            Spec = new V1PodSpec
            {
                NodeName = cluster.Env["SHIPYARD_TEST_NODE"],
                RestartPolicy = restart,
                TerminationGracePeriodSeconds = 0,
                ImagePullSecrets = pullSecret is null ? null : [new V1LocalObjectReference { Name = pullSecret }],
                Volumes = volume is null ? null : [volume],
                Containers = [new V1Container { Name = "c", Image = image, Command = command, VolumeMounts = mount is null ? null : [mount] }],
            },
        }, cluster.Namespace);
        return await cluster.WaitForPodAsync(name, p => p.Status?.Phase is "Running" or "Succeeded" or "Failed", TimeSpan.FromSeconds(120));
    }

    [Fact]
    public async Task Exec_with_stdin_and_logs_work()
    {
        var name = "smoke-exec";
        await RunPodAsync(name, cluster.Busybox, ["sh", "-c", "echo log-line-1; sleep 3600"]);
        using var ws = await cluster.Client.WebSocketNamespacedPodExecAsync(name, cluster.Namespace, ["head", "-c", "5"], "c",
            stdin: true, stdout: true, stderr: true, tty: false);
        using var demux = new StreamDemuxer(ws);
        demux.Start();
        var stdin = demux.GetStream(null, ChannelIndex.StdIn);
        var stdout = demux.GetStream(ChannelIndex.StdOut, null);
        await stdin.WriteAsync(Encoding.ASCII.GetBytes("hello"));
        var buffer = new byte[5];
        var read = 0;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (read < 5) read += await stdout.ReadAsync(buffer.AsMemory(read), timeout.Token);
        Assert.Equal("hello", Encoding.ASCII.GetString(buffer));

        using var log = await cluster.Client.ReadNamespacedPodLogAsync(name, cluster.Namespace);
        Assert.Contains("log-line-1", await new StreamReader(log).ReadToEndAsync());
    }

    [Fact]
    public async Task Private_image_is_pulled_from_the_tls_registry_through_an_image_pull_secret()
    {
        var secret = await cluster.CreateRegistrySecretAsync("smoke-pull", withCa: false);
        var pod = await RunPodAsync("smoke-private", $"{cluster.PullHost}/busybox:test", ["sh", "-c", "echo pulled-ok"], secret);
        pod = await cluster.WaitForPodAsync(pod.Metadata.Name, p => p.Status?.Phase is "Succeeded" or "Failed", TimeSpan.FromSeconds(60));
        Assert.Equal("Succeeded", pod.Status.Phase);
        Assert.StartsWith($"{cluster.PullHost}/busybox", pod.Status.ContainerStatuses[0].Image.Replace("docker-pullable://", ""));
    }

    [Fact]
    public async Task Kaniko_double_builds_in_a_pod_pushes_via_push_address_and_a_pod_runs_it_by_digest_via_pull_address()
    {
        var context = Path.Combine(cluster.Scratch, "smoke-context");
        Directory.CreateDirectory(context);
        var nonce = Guid.NewGuid().ToString("N");
        await File.WriteAllTextAsync(Path.Combine(context, "Dockerfile"),
            $"FROM {cluster.PushHost}/busybox:test\nRUN echo {nonce} > /built.txt\nCMD [\"cat\", \"/built.txt\"]\n");
        var secret = await cluster.CreateRegistrySecretAsync("smoke-build");
        var dest = $"{cluster.PushHost}/smoke/built:{nonce[..12]}";
        await cluster.Client.CreateNamespacedPodAsync(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = "smoke-build" },
            Spec = new V1PodSpec
            {
                NodeName = cluster.Env["SHIPYARD_TEST_NODE"], RestartPolicy = "Never",
                Volumes =
                [
                    new V1Volume { Name = "ctx", HostPath = new V1HostPathVolumeSource { Path = context } },
                    new V1Volume { Name = "reg", Secret = new V1SecretVolumeSource { SecretName = secret, Items = [new V1KeyToPath { Key = ".dockerconfigjson", Path = "config.json" }, new V1KeyToPath { Key = "ca.crt", Path = "ca.crt" }] } },
                ],
                Containers =
                [
                    new V1Container
                    {
                        Name = "kaniko", Image = cluster.KanikoImage,
                        Args = ["--context=dir:///workspace", "--dockerfile=Dockerfile", $"--destination={dest}", "--digest-file=/dev/termination-log",
                                $"--registry-certificate={cluster.PushHost}=/kaniko/.docker/ca.crt"],
                        VolumeMounts = [new V1VolumeMount { Name = "ctx", MountPath = "/workspace" }, new V1VolumeMount { Name = "reg", MountPath = "/kaniko/.docker" }],
                    },
                ],
            },
        }, cluster.Namespace);
        var built = await cluster.WaitForPodAsync("smoke-build", p => p.Status?.Phase is "Succeeded" or "Failed", TimeSpan.FromSeconds(180));
        Assert.Equal("Succeeded", built.Status.Phase);
        var digest = built.Status.ContainerStatuses[0].State.Terminated.Message.Trim();
        Assert.StartsWith("sha256:", digest);

        var run = await RunPodAsync("smoke-run", $"{cluster.PullHost}/smoke/built@{digest}", ["cat", "/built.txt"], secret);
        run = await cluster.WaitForPodAsync(run.Metadata.Name, p => p.Status?.Phase is "Succeeded" or "Failed", TimeSpan.FromSeconds(60));
        Assert.Equal("Succeeded", run.Status.Phase);
        using var log = await cluster.Client.ReadNamespacedPodLogAsync("smoke-run", cluster.Namespace);
        Assert.Equal(nonce, (await new StreamReader(log).ReadToEndAsync()).Trim());
    }
}
