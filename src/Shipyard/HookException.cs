namespace Shipyard;

/// <summary>A failure the user can act on: its message becomes the one `::error::` line.</summary>
public class HookException(string message, int exitCode = 1, string? details = null) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
    /// <summary>Extra context for stderr (never credentials).</summary>
    public string? Details { get; } = details;
}
