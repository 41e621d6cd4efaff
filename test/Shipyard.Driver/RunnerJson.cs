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

    public static JsonObject JobContainer(RunnerJob job, string image, JsonObject? registry = null, string[]? ports = null, JsonArray? userMounts = null) =>
        Container(image, entryPoint: "tail", entryPointArgs: ["-f", "/dev/null"], workingDirectory: $"/__w/{job.Repo}/{job.Repo}",
            registry: registry, env: new() { ["HOME"] = "/github/home", ["JOB_VAR"] = "job-value" }, ports: ports,
            systemMounts: new JsonArray(new JsonObject
            {
                ["userProvidedValue"] = null, ["sourceVolumePath"] = job.Work, ["targetVolumePath"] = "/__w", ["readOnly"] = false,
            }),
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

    static JsonObject Mount(string source, string target) => new()
    {
        ["userProvidedValue"] = null, ["sourceVolumePath"] = source, ["targetVolumePath"] = target, ["readOnly"] = false,
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
