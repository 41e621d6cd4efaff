namespace Shipyard.Pods;

/// <summary>
/// What an environment variable name may be, in each place a step's env goes. The runner sends any
/// key (`INPUT_FETCH-DEPTH` for `actions/checkout`); only `=` and NUL cannot be an env name anywhere.
/// </summary>
public static class EnvNames
{
    /// <summary>Refuses only what no process environment can hold.</summary>
    public static void RequirePassable(string name)
    {
        if (name.Length == 0) throw new HookException("An environment variable with an empty name cannot be passed to a step.");
        if (name.Contains('=') || name.Contains('\0'))
            throw new HookException($"Environment variable name '{name.Replace("\0", "\\0")}' contains '=' or NUL, which no process environment can hold.");
    }

    /// <summary>What a step's wrapper script can pass on: a passable name and a value without NUL.</summary>
    public static void RequireForScript(string name, string? value)
    {
        RequirePassable(name);
        if (value is not null && value.Contains('\0')) throw new HookException($"The value of environment variable '{name}' contains NUL, which no process environment can hold.");
    }

    /// <summary>A POSIX shell identifier, which `export` accepts; anything else is passed by env(1).</summary>
    public static bool IsShellName(string name) =>
        name.Length > 0 && (char.IsAsciiLetter(name[0]) || name[0] == '_') && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    /// <summary>What a Kubernetes 1.20+ container env name may be: `[-._a-zA-Z][-._a-zA-Z0-9]*`.</summary>
    public static bool IsKubernetesName(string name) =>
        name.Length > 0 && (char.IsAsciiLetter(name[0]) || name[0] is '_' or '-' or '.') && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.');

    /// <summary>For pod env: passable and representable in a pod spec, or one line saying why not.</summary>
    public static void RequireKubernetesName(string name, string where)
    {
        RequirePassable(name);
        if (!IsKubernetesName(name))
            throw new HookException($"Environment variable name '{name}' of the {where} cannot be given to a Kubernetes container (names must match [-._a-zA-Z][-._a-zA-Z0-9]*).");
    }
}
