using System.Text.Json.Nodes;
using Shipyard.Driver;
using static Shipyard.Driver.RunnerJson;

namespace Shipyard.E2E;

/// <summary>
/// Dockerfiles built through Shipyard with each builder available here, compared with `docker build` of the same
/// context on the test cluster's Docker engine: every file (type, mode, owner, size, content, link target) and the
/// image config. The only differences allowed are the ones the README's "Dockerfile compatibility" names.
/// </summary>
[Collection(ClusterCollection.Name)]
public sealed class DockerfileParityTests(TestCluster cluster)
{
    const string Prefix = "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_";

    /// <summary>Labels that are not docker's: Shipyard's content hash, and buildah's own (the Kaniko double is buildah).</summary>
    static readonly string[] AllowedLabels = ["dev.shipyard.content-hash", "io.buildah.version"];

    /// <summary>
    /// The differences the README's "Dockerfile compatibility" documents for buildah, which both builders here are
    /// (Debian's buildah 1.28, and the Kaniko double built on it): the empty `/run` it leaves in images whose base
    /// has none, and a shell-form CMD/ENTRYPOINT stored under `/bin/sh -c` instead of the `SHELL` set before it.
    /// </summary>
    static readonly System.Text.RegularExpressions.Regex[] Documented =
    [
        new(@"^[^:]+: /run is extra \(Directory 755 0:0 0 - \)$"),
        new(@"^healthcheck-onbuild-shell: config Cmd is \[""/bin/sh"",""-c"",""echo shell-form""\], docker has \[""/bin/sh"",""-e"",""-c"",""echo shell-form""\]$"),
    ];

    /// <summary>Config fields that make up what an image does when run (times, ids and history are not compared).</summary>
    static readonly string[] ConfigFields = ["User", "ExposedPorts", "Env", "Cmd", "Healthcheck", "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal", "Shell", "Volumes"];

    record Case(string Name, string Dockerfile, params (string Path, string Content, int Mode)[] Files);

    Case[] Cases()
    {
        var from = $"{cluster.AnonHost}/busybox:test";
        var debian = $"{cluster.AnonHost}/debian:test";
        return
        [
            new("multistage", $"""
                ARG BASE={from}
                FROM $BASE AS build
                ARG GREETING=hi
                RUN mkdir -p /out/bin && echo "$GREETING" > /out/greeting && ln -s ../greeting /out/bin/link
                FROM {from}
                COPY --from=build /out /opt/app
                ENTRYPOINT ["cat", "/opt/app/greeting"]
                """),
            new("chown-modes-links", $"""
                FROM {from}
                COPY --chown=1000:1000 tool.sh /usr/local/bin/tool
                COPY data/ /data/
                ADD archive.txt /srv/
                RUN ln -s /usr/local/bin/tool /bin/tool-link && chmod 4755 /usr/local/bin/tool
                """, ("tool.sh", "#!/bin/sh\necho tool\n", 0b111_101_101), ("data/a.txt", "a", 0b110_100_100), ("data/sub/b.txt", "b", 0b110_000_000), ("archive.txt", "not an archive", 0b110_100_100)),
            new("whiteouts", $"""
                FROM {debian}
                RUN rm -rf /usr/share/doc /etc/motd && mkdir -p /tmp/gone/deep && touch /tmp/gone/deep/f
                RUN rm -rf /tmp/gone && mkdir /var/opaque && touch /var/opaque/x
                RUN rm -rf /var/opaque && mkdir /var/opaque && touch /var/opaque/y
                """),
            new("config", $"""
                FROM {from}
                ENV A=1 B="two words"
                WORKDIR /work/dir
                EXPOSE 8080/tcp 53/udp
                LABEL org.example.team=ci
                STOPSIGNAL SIGINT
                ENTRYPOINT ["sh", "-c"]
                CMD ["echo $A"]
                """),
            new("healthcheck-onbuild-shell", $"""
                FROM {from}
                HEALTHCHECK --interval=5s --timeout=2s CMD true
                ONBUILD RUN echo child
                SHELL ["/bin/sh", "-e", "-c"]
                RUN echo "shell-form under the new shell" > /shell.txt
                CMD echo shell-form
                """),
            // The listing without its times (docker's build and ours may fall in different minutes), made from a file
            // so that no pipe's redirection races ls.
            new("user-then-run", $$"""
                FROM {{from}}
                USER nobody
                RUN id -u > /tmp/uid && touch /tmp/by-nobody && ls -ln /tmp > /tmp/ls && awk '{ print $1, $3, $4, $5, $NF }' /tmp/ls > /tmp/listing && rm /tmp/ls
                USER root
                """),
            new("dockerignore-node-modules", $"""
                FROM {from}
                COPY . /action
                """, ("node_modules/left-pad/index.js", "x", 0b110_100_100), ("src/node_modules/y/index.js", "y", 0b110_100_100), ("src/index.js", "z", 0b110_100_100),
                (".dockerignore", "**/node_modules\n", 0b110_100_100)),
            new("var-run", $"""
                FROM {debian}
                RUN mkdir -p /var/run/app && echo pid > /var/run/app/app.pid
                """),
        ];
    }

    [Theory]
    [InlineData("kaniko")]
    [InlineData("buildah")]
    public async Task Images_match_docker_build_file_by_file_and_config_by_config(string builder)
    {
        await using var job = await RunnerJob.StartAsync(cluster);
        job.Env[Prefix + "REGISTRY_HOST_PUSH"] = cluster.PushHost + "/parity";
        job.Env[Prefix + "REGISTRY_HOST_PULL"] = cluster.PullHost + "/parity";
        job.Env[Prefix + "REGISTRY_SECRET_NAME"] = await cluster.CreateRegistrySecretAsync($"{job.RunnerPod}-registry-login");
        job.Env[Prefix + "BUILDER"] = builder;
        job.Env[Prefix + "BUILDER_IMAGE"] = builder == "buildah" ? cluster.BuildahImage : cluster.KanikoImage;
        Assert.Equal(0, (await job.RunAsync("prepare_job", PrepareJob(JobContainer(job, cluster.Busybox)))).ExitCode);

        var nonce = Guid.NewGuid().ToString("N")[..12];
        var docker = new DockerCli(Path.Combine(cluster.Scratch, $"docker-{builder}-{nonce}"));
        await docker.RunAsync($"login -u {cluster.Env["SHIPYARD_TEST_REGISTRY_USER"]} --password-stdin {cluster.PullHost}", cluster.Env["SHIPYARD_TEST_REGISTRY_PASSWORD"]);
        var differences = new List<string>();
        foreach (var c in Cases())
        {
            var dir = Path.Combine(job.Work, "_actions", "parity", c.Name, "v1");
            Directory.CreateDirectory(dir);
            // A nonce in the context: built fresh by every run, never reused from an earlier one.
            File.WriteAllText(Path.Combine(dir, "Dockerfile"), c.Dockerfile + $"\nLABEL parity.nonce={nonce}\n");
            foreach (var (path, content, mode) in c.Files)
            {
                var full = Path.Combine(dir, path);
                Directory.CreateDirectory(Path.GetDirectoryName(full)!);
                File.WriteAllText(full, content);
                File.SetUnixFileMode(full, (UnixFileMode)mode);
            }
            var run = await job.RunAsync("run_container_step", ContainerStep(job, null, Path.Combine(dir, "Dockerfile"), new(), entryPoint: "/bin/true"));
            if (run.ExitCode != 0) { differences.Add($"{c.Name}: Shipyard's build failed: {run.ErrorLines.FirstOrDefault()}"); continue; }
            var digest = System.Text.RegularExpressions.Regex.Match(run.Stdout, @"Pushed [^ ]+ \((sha256:[0-9a-f]{64})").Groups[1].Value;
            var ours = $"{cluster.PullHost}/parity/parity-{c.Name}@{digest}";
            await docker.RunAsync($"pull -q {ours}");
            var theirs = $"shipyard-parity/{c.Name}:{builder}-{nonce}";
            await docker.RunAsync($"build -q -t {theirs} {dir}");
            try
            {
                differences.AddRange(Compare(c.Name, await docker.FilesAsync(theirs), await docker.FilesAsync(ours)));
                differences.AddRange(CompareConfig(c.Name, await ConfigAsync(docker, theirs), await ConfigAsync(docker, ours)));
            }
            // Shipyard's image stays: the kubelet's exited step container on this engine still refers to it.
            finally { await docker.RunAsync($"rmi {theirs}"); }
        }
        var documented = differences.Where(d => Documented.Any(r => r.IsMatch(d))).ToList();
        Console.WriteLine($"{builder}: {documented.Count} documented differences from docker build:\n  " + string.Join("\n  ", documented));
        differences = differences.Except(documented).ToList();
        Assert.True(differences.Count == 0, $"{builder} differs from docker build in {differences.Count} ways:\n" + string.Join('\n', differences.Take(60)));
    }

    static async Task<JsonObject> ConfigAsync(DockerCli docker, string image) =>
        JsonNode.Parse(await docker.RunAsync($"image inspect --format \"{{{{json .Config}}}}\" {image}"))!.AsObject();

    static IEnumerable<string> Compare(string name, IDictionary<string, string> docker, IDictionary<string, string> ours)
    {
        foreach (var (path, entry) in docker)
        {
            if (!ours.TryGetValue(path, out var mine)) yield return $"{name}: /{path} missing ({entry})";
            else if (mine != entry) yield return $"{name}: /{path} is `{mine}`, docker has `{entry}`";
        }
        foreach (var (path, entry) in ours)
            if (!docker.ContainsKey(path)) yield return $"{name}: /{path} is extra ({entry})";
    }

    static IEnumerable<string> CompareConfig(string name, JsonObject docker, JsonObject ours)
    {
        foreach (var o in new[] { docker, ours })
            if (o["Labels"] is JsonObject labels)
                foreach (var l in AllowedLabels) labels.Remove(l);
        foreach (var field in ConfigFields)
        {
            var (d, m) = (Normal(docker[field]), Normal(ours[field]));
            if (d != m) yield return $"{name}: config {field} is {m}, docker has {d}";
        }
    }

    /// <summary>null, {} and [] are the same absence.</summary>
    static string Normal(JsonNode? n) => n switch
    {
        null => "null",
        JsonObject o when o.Count == 0 => "null",
        JsonArray a when a.Count == 0 => "null",
        JsonValue v when v.ToString() == "" => "null",
        _ => n.ToJsonString(),
    };
}
