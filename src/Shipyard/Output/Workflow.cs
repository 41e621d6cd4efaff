namespace Shipyard.Output;

/// <summary>Runner workflow commands (the runner parses them from the hook's stdout).</summary>
public sealed class Workflow(TextWriter stdout, TextWriter stderr)
{
    public TextWriter Out => stdout;
    public TextWriter Err => stderr;

    public void Group(string title) => stdout.WriteLine($"::group::{Escape(title)}");
    public void EndGroup() => stdout.WriteLine("::endgroup::");
    public void Error(string message) => stdout.WriteLine($"::error::{Escape(message)}");
    public void Warning(string message) => stdout.WriteLine($"::warning::{Escape(message)}");
    public void Debug(string message) => stdout.WriteLine($"::debug::{Escape(message)}");
    public void Info(string message) => stdout.WriteLine(message);

    /// <summary>Asks the runner to mask a secret everywhere in the log; each line separately.</summary>
    public void AddMask(string? secret)
    {
        if (string.IsNullOrEmpty(secret)) return;
        foreach (var line in secret.Split('\n'))
            if (line.Trim().Length > 0) stdout.WriteLine($"::add-mask::{line.TrimEnd('\r')}");
    }

    // The runner's escaping for command data: one line, % first.
    public static string Escape(string s) => s.Replace("%", "%25").Replace("\r", "%0D").Replace("\n", "%0A");
}
