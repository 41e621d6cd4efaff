using System.Diagnostics;
using System.Text.Json;
using Shipyard.Commands;
using Shipyard.Protocol;

namespace Shipyard.Tests;

/// <summary>The script-step wrapper run by a real POSIX shell (the host's /bin/sh), as the job container runs it.</summary>
public sealed class ScriptWrapperTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("shipyard-wrapper-").FullName;

    public void Dispose() => Directory.Delete(root, true);

    (StepDirectory Step, string Wrapper) Prepare(ScriptStepArgs args)
    {
        var step = StepDirectory.Create(root);
        File.WriteAllText(step.Wrapper, RunScriptStep.Wrapper(args, args.EntryPoint!, step.Host));
        return (step, step.Wrapper);
    }

    static int Sh(string wrapper)
    {
        using var p = Process.Start(new ProcessStartInfo("/bin/sh", ["-e", wrapper]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        // A hang guard, not a speed bound: a start that waits for its step would wait here for ever.
        if (!p.WaitForExit(TimeSpan.FromSeconds(60))) { p.Kill(true); throw new TimeoutException("the wrapper did not return"); }
        return p.ExitCode;
    }

    static int WaitForStatus(StepDirectory step)
    {
        for (var i = 0; i < 500; i++)
        {
            if (step.Status is { } s) return s;
            Thread.Sleep(10);
        }
        throw new TimeoutException("no status");
    }

    [Fact]
    public void Starts_detached_writes_output_and_status_and_a_second_start_is_a_no_op()
    {
        var marker = Path.Combine(root, "runs");
        var gate = Path.Combine(root, "gate");
        // The step waits for the gate, which only this test opens: a start that returned did not wait for the step.
        var args = new ScriptStepArgs(["-c", $"echo run >> {marker}; while [ ! -e {gate} ]; do sleep 0.01; done; echo to-out; echo to-err >&2; exit 3"], "sh", new() { ["A"] = "1" }, default, "/");
        var (step, wrapper) = Prepare(args);
        Assert.Equal(0, Sh(wrapper));
        Assert.True(step.Started);
        Assert.Null(step.Status);
        Assert.False(File.Exists(wrapper)); // it unlinked itself: it holds tokens
        File.WriteAllText(wrapper, RunScriptStep.Wrapper(args, "sh", step.Host));
        Assert.Equal(0, Sh(wrapper)); // a retried start
        File.WriteAllText(gate, "");
        Assert.Equal(3, WaitForStatus(step));
        Assert.Equal("to-out\n", File.ReadAllText(step.Out));
        Assert.Equal("to-err\n", File.ReadAllText(step.Err));
        Assert.Equal("run\n", File.ReadAllText(marker)); // ran once
        Assert.True(int.Parse(File.ReadAllText(Path.Combine(step.Host, "pid"))) > 1);
        File.Delete(marker);
        step.Delete();
    }

    [Fact]
    public void The_job_containers_env_reaches_the_step_byte_for_byte_and_the_steps_own_env_wins()
    {
        var jobEnv = new Dictionary<string, string> { ["FROM_JOB"] = "a$$b $(HOME) 'c'", ["SHARED"] = "job", ["job.dotted"] = "j", ["CI"] = "true" };
        var stepEnv = new Dictionary<string, string?> { ["SHARED"] = "step", ["job.dotted"] = "s" };
        string Run(string entryPoint, params string[] entryArgs)
        {
            var step = StepDirectory.Create(root);
            File.WriteAllText(step.Wrapper, RunScriptStep.Wrapper(new ScriptStepArgs([.. entryArgs], entryPoint, stepEnv, default, "/"), entryPoint, step.Host, jobEnv));
            Assert.Equal(0, Sh(step.Wrapper));
            Assert.Equal(0, WaitForStatus(step));
            var output = File.ReadAllText(step.Out);
            step.Delete();
            return output;
        }
        Assert.Equal("a$$b $(HOME) 'c'|step|true", Run("sh", "-c", "printf '%s|%s|%s' \"$FROM_JOB\" \"$SHARED\" \"$CI\""));
        // A name no shell can export goes by env(1); dash would not pass it on, so ask printenv directly.
        Assert.Equal("s\n", Run("printenv", "job.dotted"));
    }

    [Fact]
    public void A_start_that_cannot_make_its_started_directory_does_not_exit_0()
    {
        // The hook takes exit 0 as started without asking again; a wrapper that could not start must say so.
        var wrapper = Path.Combine(root, "run.sh");
        File.WriteAllText(wrapper, RunScriptStep.Wrapper(new ScriptStepArgs([], "true", [], default, "/"), "true", "/no/such/step-dir"));
        Assert.Equal(1, Sh(wrapper));
    }

    [Fact]
    public void Names_a_shell_cannot_export_reach_the_command_through_env()
    {
        var args = new ScriptStepArgs([], "env", new() { ["INPUT_FETCH-DEPTH"] = "0", ["DOLLARS"] = "a$$b $(HOME) c", ["Q"] = "it's" },
            JsonSerializer.SerializeToElement(new[] { "/opt/x/bin" }), "/tmp");
        var (step, wrapper) = Prepare(args);
        Assert.Equal(0, Sh(wrapper));
        Assert.Equal(0, WaitForStatus(step));
        var env = File.ReadAllLines(step.Out);
        Assert.Contains("INPUT_FETCH-DEPTH=0", env);
        Assert.Contains("DOLLARS=a$$b $(HOME) c", env);
        Assert.Contains("Q=it's", env);
        Assert.Contains(env, l => l.StartsWith("PATH=/opt/x/bin:"));
        Assert.Contains("PWD=/tmp", env);
        step.Delete();
    }

    [Fact]
    public void A_directory_that_does_not_exist_fails_the_step_with_its_message()
    {
        var (step, wrapper) = Prepare(new ScriptStepArgs([], "true", [], default, "/no/such/dir"));
        Assert.Equal(0, Sh(wrapper));
        Assert.NotEqual(0, WaitForStatus(step));
        Assert.Contains("/no/such/dir", File.ReadAllText(step.Err));
        step.Delete();
    }
}
