using System.Text.Json;
using System.Text;
using k8s.Models;
using Shipyard.Cluster;
using Shipyard.Commands;
using Shipyard.Images;
using Shipyard.Output;
using Shipyard.Pods;
using Shipyard.Protocol;

namespace Shipyard.Tests;

public class ProtocolTests
{
    [Fact]
    public void Runner_input_parses_with_nulls_and_both_prepend_path_shapes()
    {
        var line = """{"command":"run_script_step","responseFile":"/r.json","args":{"entryPointArgs":["-e","/__w/_temp/1.sh"],"entryPoint":"sh","environmentVariables":{"My_Var":"x","NULLED":null},"prependPath":["/a","/b"],"workingDirectory":"/__w/r/r"},"state":{"jobPod":"p-workflow"}}""";
        var input = JsonSerializer.Deserialize(line, ProtocolJson.Default.HookInput)!;
        Assert.Equal("p-workflow", input.State!.JobPod);
        var args = input.Args.Deserialize(ProtocolJson.Default.ScriptStepArgs)!;
        Assert.Equal(["/a", "/b"], args.PrependPathEntries());
        Assert.Contains("My_Var", args.EnvironmentVariables!.Keys);
        var old = JsonSerializer.Deserialize("""{"prependPath":"/a:/b"}""", ProtocolJson.Default.ScriptStepArgs)!;
        Assert.Equal(["/a", "/b"], old.PrependPathEntries());
        var none = JsonSerializer.Deserialize("""{"prependPath":null}""", ProtocolJson.Default.ScriptStepArgs)!;
        Assert.Empty(none.PrependPathEntries());
    }

    [Fact]
    public void Prepare_response_has_camel_case_is_alpine_and_ports_objects()
    {
        var r = new PrepareJobResponse(new HookState("p"), new ResponseContext(new ResponseContainer("p", "p", new() { ["80"] = "8080" }),
            [new ResponseContainer("redis", "p", [])]), false);
        Assert.Equal("""{"state":{"jobPod":"p"},"context":{"container":{"id":"p","network":"p","ports":{"80":"8080"}},"services":[{"id":"redis","network":"p","ports":{}}]},"isAlpine":false}""",
            JsonSerializer.Serialize(r, ProtocolJson.Default.PrepareJobResponse));
    }

    [Fact]
    public void Script_wrapper_quotes_everything_and_refuses_only_equals_and_nul_in_names()
    {
        // This test used to expect any non-identifier name to be refused; the runner sends INPUT_FETCH-DEPTH.
        var args = new ScriptStepArgs(["/__w/r/r/./a/index.js"], "/__e/node20/bin/node",
            new() { ["INPUT_FETCH-DEPTH"] = "0", ["A;rm -rf /"] = "x'y", ["OK"] = "it's" }, JsonSerializer.SerializeToElement(new[] { "/x/bin" }), "/__w/r/r");
        var wrapper = RunScriptStep.Wrapper(args, args.EntryPoint!, "/__w/_temp/s");
        Assert.StartsWith("rm -f -- \"$0\" 2>/dev/null || true\nd='/__w/_temp/s'\nmkdir \"$d/started\" 2>/dev/null || { [ -d \"$d/started\" ] && exit 0; echo \"cannot create $d/started\" >&2; exit 1; }\n", wrapper);
        Assert.Contains("    cd '/__w/r/r'\n", wrapper);
        Assert.Contains("    export OK='it'\\''s'\n", wrapper);
        Assert.Contains("    export PATH='/x/bin'\":$PATH\"\n", wrapper);
        Assert.Contains("""    exec env 'INPUT_FETCH-DEPTH=0' 'A;rm -rf /=x'\''y' '/__e/node20/bin/node' '/__w/r/r/./a/index.js'""" + "\n", wrapper);
        Assert.DoesNotContain("export INPUT_FETCH", wrapper);
        foreach (var bad in new[] { "A=B", "A\0B", "" })
        {
            var e = Assert.Throws<HookException>(() => RunScriptStep.Wrapper(args with { EnvironmentVariables = new() { [bad] = "x" } }, "sh", "/p"));
            Assert.DoesNotContain("\n", e.Message);
        }
    }

    [Fact]
    public void State_carries_the_job_env_through_the_runner_and_leaves_it_out_when_there_is_none()
    {
        Assert.Equal("""{"jobPod":"p"}""", JsonSerializer.Serialize(new HookState("p"), ProtocolJson.Default.HookState));
        var state = new HookState("p", JobEnv: new() { ["B"] = "2", ["A"] = "a$$b" });
        var json = JsonSerializer.Serialize(state, ProtocolJson.Default.HookState);
        Assert.Equal("""{"jobPod":"p","jobEnv":{"B":"2","A":"a$$b"}}""", json);
        var back = JsonSerializer.Deserialize(json, ProtocolJson.Default.HookState)!;
        Assert.Equal(["B", "A"], back.JobEnv!.Keys);
        Assert.Equal("a$$b", back.JobEnv["A"]);
    }

    [Theory]
    [InlineData("""{"metadata":{},"status":"Success"}""", 0)]
    [InlineData("""{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -e x], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}""", 3)]
    public void Exec_status_frames_give_the_exit_code(string status, int expected) => Assert.Equal(expected, ClusterGateway.ExitCodeFrom(status));

    [Fact]
    public void Exec_failure_without_exit_code_is_an_error_not_a_success()
    {
        var e = Assert.Throws<HookException>(() => ClusterGateway.ExitCodeFrom("""{"metadata":{},"status":"Failure","message":"container not found (\"job\")","reason":"InternalError"}"""));
        Assert.Contains("container not found", e.Message);
    }

    [Fact]
    public void Image_pull_failures_and_unschedulable_pods_fail_at_once()
    {
        var pulling = new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = "p" },
            Spec = new V1PodSpec { Containers = [new V1Container { Name = "job" }] },
            Status = new V1PodStatus
            {
                Phase = "Pending",
                ContainerStatuses = [new V1ContainerStatus { Name = "job", Image = "nope:1", State = new V1ContainerState { Waiting = new V1ContainerStateWaiting { Reason = "ImagePullBackOff", Message = "Back-off pulling image" } } }],
            },
        };
        Assert.Contains("ImagePullBackOff", Assert.Throws<HookException>(() => PodProgress.AllRunning(pulling)).Message);
        var creating = pulling with { Status = pulling.Status with { ContainerStatuses = [new V1ContainerStatus { Name = "job", State = new V1ContainerState { Waiting = new V1ContainerStateWaiting { Reason = "ContainerCreating" } } }] } };
        Assert.False(PodProgress.AllRunning(creating));
        var unschedulable = pulling with { Status = new V1PodStatus { Phase = "Pending", Conditions = [new V1PodCondition { Type = "PodScheduled", Status = "False", Reason = "Unschedulable", Message = "0/3 nodes are available" }] } };
        Assert.Contains("0/3 nodes", Assert.Throws<HookException>(() => PodProgress.AllRunning(unschedulable)).Message);
    }

    [Fact]
    public void Registry_credentials_are_found_for_the_push_host_in_any_key_form()
    {
        var json = Encoding.UTF8.GetBytes("""{"auths":{"https://ghcr.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},"other:5000":{"username":"o","password":"p"}}}""");
        Assert.Equal(new RegistryLogin("user", "pa:ss"), DockerConfig.LoginFor(json, "ghcr.io"));
        Assert.Equal(new RegistryLogin("o", "p"), DockerConfig.LoginFor(json, "other:5000"));
        Assert.Null(DockerConfig.LoginFor(json, "docker.io"));
        Assert.Equal("ghcr.io", DockerConfig.Authority("ghcr.io/acme/actions"));
    }

    [Fact]
    public void Bearer_challenges_parse()
    {
        var p = RegistryClient.ParseChallenge("""realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push" """);
        Assert.Equal("https://auth.example/token", p["realm"]);
        Assert.Equal("registry.example", p["service"]);
        Assert.Equal("repository:a/b:pull,push", p["scope"]);
    }

    [Fact]
    public void Pull_secret_for_a_job_registry_is_a_dockerconfigjson_secret_owned_by_the_runner()
    {
        var s = RegistryPullSecret.Build("p-registry", new RegistryCredentials("u", "p", null), "ghcr.io/acme/img:1", Fixtures.Placement);
        Assert.Equal("kubernetes.io/dockerconfigjson", s.Type);
        Assert.Equal(new RegistryLogin("u", "p"), DockerConfig.LoginFor(s.Data[".dockerconfigjson"], "ghcr.io"));
        Assert.Equal("arc-runner-abc", s.Metadata.Labels["runner-pod"]);
        Assert.Equal("https://index.docker.io/v1/", RegistryPullSecret.RegistryOf("node:20"));
        Assert.Equal("localhost:5000", RegistryPullSecret.RegistryOf("localhost:5000/x"));
    }

    [Fact]
    public void Masks_each_line_and_commands_escape_their_data()
    {
        var sw = new StringWriter();
        var log = new Workflow(sw, TextWriter.Null);
        log.AddMask("line1\nline2");
        log.Error("50% done\nsecond");
        Assert.Equal("::add-mask::line1\n::add-mask::line2\n::error::50%25 done%0Asecond\n", sw.ToString().Replace("\r", ""));
    }
}
