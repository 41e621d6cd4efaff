using System.Runtime.InteropServices;
using Shipyard;
using Shipyard.Commands;
using Shipyard.Output;

// stdin → HookInput → command → response file → exit code; nothing else.
using var cancel = new CancellationTokenSource();
using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; cancel.Cancel(); });
using var intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; cancel.Cancel(); });
using var stdout = Console.OpenStandardOutput();
using var stderr = Console.OpenStandardError();
if (args is ["doctor", .. var options])
    return await Doctor.RunAsync(Environment.GetEnvironmentVariable, options.Contains("--json"), Console.Out, cancel.Token);
var log = new Workflow(Console.Out, Console.Error);
// Strict UTF-8: input that is not UTF-8 is refused, never silently altered.
using var stdin = new StreamReader(Console.OpenStandardInput(), new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true));
return await Hook.RunAsync(stdin, Environment.GetEnvironmentVariable, log, stdout, stderr, cancel.Token);
