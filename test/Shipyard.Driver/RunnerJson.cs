using System.Text.Json.Nodes;

namespace Shipyard.Driver;

/// <summary>The runner's JSON for each command, field for field (protocol.md §2), nulls included.</summary>
public static class RunnerJson
{
    public static JsonObject Container(string? image, string? dockerfile = null, string? entryPoint = null, string[]? entryPointArgs = null,
        string? workingDirectory = null, JsonObject? registry = null, Dictionary<string, string>? env = null, string[]? ports = null,
        JsonArray? systemMounts = null, JsonArray? userMounts = null) => new()
    {
        ["image"] = image,
        ["dockerfile"] = dockerfile,
        ["entryPointArgs"] = new JsonArray((entryPointArgs ?? []).Select(a => (JsonNode?)a).ToArray()),
        ["entryPoint"] = entryPoint,
        ["workingDirectory"] = workingDirectory,
        ["createOptions"] = null,
        ["registry"] = registry,
        ["environmentVariables"] = Env(env),
        ["portMappings"] = new JsonArray((ports ?? []).Select(a => (JsonNode?)a).ToArray()),
        ["systemMountVolumes"] = systemMounts ?? [],
        ["userMountVolumes"] = userMounts ?? [],
    };

    /// <summary>The job container as runner 2.336 sends it: no entryPoint, no args, the docker-mode system mounts (docker.sock included).</summary>
    public static JsonObject JobContainer(RunnerJob job, string image, JsonObject? registry = null, string[]? ports = null, JsonArray? userMounts = null,
        Dictionary<string, string>? env = null) =>
        Container(image, entryPoint: null, entryPointArgs: [], workingDirectory: $"/__w/{job.Repo}/{job.Repo}",
            registry: registry, env: env ?? new() { ["HOME"] = "/github/home", ["JOB_VAR"] = "job-value" }, ports: ports,
            systemMounts: new JsonArray(
                Mount("/var/run/docker.sock", "/var/run/docker.sock"),
                Mount(job.Work, "/__w"),
                Mount(Path.Combine(job.Root, "externals"), "/__e", readOnly: true),
                Mount(Path.Combine(job.Work, "_temp"), "/__w/_temp"),
                Mount(Path.Combine(job.Work, "_actions"), "/__w/_actions"),
                Mount(Path.Combine(job.Work, "_tool"), "/__w/_tool"),
                Mount(Path.Combine(job.Work, "_temp", "_github_home"), "/github/home"),
                Mount(Path.Combine(job.Work, "_temp", "_github_workflow"), "/github/workflow")),
            userMounts: userMounts);

    public static JsonObject PrepareJob(JsonObject container, params JsonObject[] services) => new()
    {
        ["container"] = container,
        ["services"] = new JsonArray(services.Select(s => (JsonNode?)s).ToArray()),
    };

    public static JsonObject ScriptStep(RunnerJob job, string scriptHostPath, Dictionary<string, string>? env = null, string[]? prependPath = null) => new()
    {
        ["entryPointArgs"] = new JsonArray("-e", "/__w/" + Path.GetRelativePath(job.Work, scriptHostPath)),
        ["entryPoint"] = "sh",
        ["environmentVariables"] = Env(env),
        ["prependPath"] = new JsonArray((prependPath ?? []).Select(a => (JsonNode?)a).ToArray()),
        ["workingDirectory"] = $"/__w/{job.Repo}/{job.Repo}",
    };

    /// <summary>A `shell: bash` step as the runner sends it.</summary>
    public static JsonObject BashStep(RunnerJob job, string scriptHostPath, Dictionary<string, string>? env = null)
    {
        var step = ScriptStep(job, scriptHostPath, env);
        step["entryPoint"] = "bash";
        step["entryPointArgs"] = new JsonArray("--noprofile", "--norc", "-e", "-o", "pipefail", "/__w/" + Path.GetRelativePath(job.Work, scriptHostPath));
        return step;
    }

    /// <summary>
    /// A JavaScript action as runner 2.336 sends it: `/__e/node20/bin/node` with the script path unquoted
    /// as the only argument, inputs as `INPUT_&lt;NAME&gt;` with hyphens kept.
    /// </summary>
    public static JsonObject JavaScriptStep(RunnerJob job, string actionDirInWorkspace, string main, Dictionary<string, string>? inputs = null, Dictionary<string, string>? env = null)
    {
        var all = new Dictionary<string, string>();
        foreach (var (k, v) in inputs ?? []) all["INPUT_" + k.Replace(' ', '_').ToUpperInvariant()] = v;
        foreach (var (k, v) in env ?? []) all[k] = v;
        return new JsonObject
        {
            ["entryPointArgs"] = new JsonArray($"/__w/{job.Repo}/{job.Repo}/./{actionDirInWorkspace}/{main}"),
            ["entryPoint"] = "/__e/node20/bin/node",
            ["environmentVariables"] = Env(all),
            ["prependPath"] = new JsonArray(),
            ["workingDirectory"] = $"/__w/{job.Repo}/{job.Repo}",
        };
    }

    /// <summary>Writes the user's script where the runner writes it (`_work/_temp/&lt;guid&gt;.sh`).</summary>
    public static string WriteScript(RunnerJob job, string body)
    {
        var path = Path.Combine(job.Work, "_temp", $"{Guid.NewGuid()}.sh");
        File.WriteAllText(path, body);
        return path;
    }

    /// <summary>Action args as the runner sends them: each quoted, then split on spaces.</summary>
    public static string[] ActionArgs(params string[] args) =>
        args.SelectMany(a => ("\"" + a + "\"").Split(' ')).ToArray();

    public static JsonObject ContainerStep(RunnerJob job, string? image, string? dockerfile, Dictionary<string, string> env, string[]? args = null, string? entryPoint = null)
    {
        var c = Container(image, dockerfile, entryPoint, args, "/github/workspace", env: env);
        c["systemMountVolumes"] = new JsonArray(
            Mount(job.Workspace, "/github/workspace"),
            Mount(Path.Combine(job.Work, "_temp", "_runner_file_commands"), "/github/file_commands"),
            Mount(Path.Combine(job.Work, "_temp", "_github_home"), "/github/home"),
            Mount(Path.Combine(job.Work, "_temp", "_github_workflow"), "/github/workflow"));
        return c;
    }

    static JsonObject Mount(string source, string target, bool readOnly = false) => new()
    {
        ["userProvidedValue"] = null, ["sourceVolumePath"] = source, ["targetVolumePath"] = target, ["readOnly"] = readOnly,
    };

    static JsonObject Env(Dictionary<string, string>? env)
    {
        var o = new JsonObject();
        foreach (var (k, v) in env ?? []) o[k] = v;
        return o;
    }

    public static JsonObject Registry(string user, string password, string server) => new()
    {
        ["username"] = user, ["password"] = password, ["serverUrl"] = server,
    };
}
