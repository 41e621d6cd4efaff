using System.Text;

namespace Shipyard.Images;

/// <summary>
/// Repository names for built actions, from where the runner put the Dockerfile: `owner-repo[-path]`
/// for `_actions/owner/repo/ref/[path/]`, `local-repo[-path]` for `uses: ./path`. Collisions are
/// harmless: tags are content hashes, so one name holding two actions never mixes them up.
/// </summary>
public static class ImageNaming
{
    public static string ForDockerfile(string dockerfileSubPath)
    {
        var dir = Path.GetDirectoryName(dockerfileSubPath.Replace('\\', '/'))?.Replace('\\', '/') ?? "";
        var parts = dir.Split('/', StringSplitOptions.RemoveEmptyEntries).Where(p => p != ".").ToList();
        IEnumerable<string> words;
        if (parts.Count >= 3 && parts[0] == "_actions")
            words = parts.Skip(1).Take(2).Concat(parts.Skip(4)); // owner, repo, [path] — the ref is not part of the name
        else if (parts.Count >= 2 && !parts[0].StartsWith('_'))
            words = new[] { "local", parts[0] }.Concat(parts.Skip(2)); // <repo>/<repo>/<path>
        else
            words = new[] { "action" }.Concat(parts);
        var name = Sanitize(string.Join('-', words));
        return name.Length == 0 ? "action" : name;
    }

    /// <summary>Lowercase [a-z0-9] runs joined by single '-', at most 128 characters.</summary>
    public static string Sanitize(string s)
    {
        var sb = new StringBuilder();
        foreach (var c in s.ToLowerInvariant())
        {
            if (c is (>= 'a' and <= 'z') or (>= '0' and <= '9')) sb.Append(c);
            else if (sb.Length > 0 && sb[^1] != '-') sb.Append('-');
        }
        var r = sb.ToString().Trim('-');
        return r.Length > 128 ? r[..128].TrimEnd('-') : r;
    }
}
