using System.Runtime.InteropServices;
using Shipyard;
using Shipyard.Commands;
using Shipyard.Output;

// stdin → HookInput → command → response file → exit code; nothing else.
using var cancel = new CancellationTokenSource();
// A hook started with SIGINT ignored (a background job of a non-interactive shell passes that on, and bash
// cannot undo it before `exec`) would never see the runner's cancel: take the default back first.
InheritedSignals.Restore();
var signalled = 0;
void OnSignal(PosixSignalContext c)
{
    c.Cancel = true;
    if (Interlocked.Exchange(ref signalled, 1) == 1) return;
    // The hook stops the step's processes and pods and exits at once. Should anything still hold it, it must
    // not outlive the runner's cancel: the watchdog ends it just under 2 s after the signal.
    _ = Task.Delay(TimeSpan.FromMilliseconds(1900)).ContinueWith(_ =>
    {
        Console.Out.WriteLine("::error::The step was cancelled; it did not finish.");
        Console.Out.Flush();
        Environment.Exit(130);
    }, TaskScheduler.Default);
    // Not on the signal thread: cancellation callbacks and the continuations they run inline belong elsewhere.
    _ = Task.Run(cancel.Cancel);
}
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var stdout = Console.OpenStandardOutput();
using var stderr = Console.OpenStandardError();
if (args is ["doctor", .. var options])
    return await Doctor.RunAsync(Environment.GetEnvironmentVariable, options.Contains("--json"), Console.Out, cancel.Token);
var log = new Workflow(Console.Out, Console.Error);
// Strict UTF-8: input that is not UTF-8 is refused, never silently altered.
using var stdin = new StreamReader(Console.OpenStandardInput(), new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true));
return await Hook.RunAsync(stdin, Environment.GetEnvironmentVariable, log, stdout, stderr, cancel.Token);

static class InheritedSignals
{
    [DllImport("libc.so.6", EntryPoint = "signal")]
    static extern nint Signal(int signal, nint handler);

    public static void Restore()
    {
        if (!OperatingSystem.IsLinux()) return;
        try { Signal(2, 0); Signal(15, 0); } // SIGINT, SIGTERM -> SIG_DFL, before .NET installs its handlers
        catch (DllNotFoundException) { } catch (EntryPointNotFoundException) { }
    }
}
