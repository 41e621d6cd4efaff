using System.Text;
using System.Text.RegularExpressions;

namespace Shipyard.Images;

/// <summary>
/// `.dockerignore` with Docker's rules: patterns are relative to the context root, `*` and `?` stay
/// within one path segment, `**` spans any number of segments, `!` re-includes, the last matching
/// line wins, and a pattern that matches a directory excludes everything under it.
/// </summary>
public sealed class DockerIgnore
{
    readonly List<(Regex Pattern, bool Exclude)> rules = [];

    public DockerIgnore(IEnumerable<string> lines)
    {
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#')) continue;
            var exclude = true;
            if (line.StartsWith('!')) { exclude = false; line = line[1..].Trim(); }
            line = Clean(line);
            if (line.Length == 0) continue;
            rules.Add((new Regex(ToRegex(line), RegexOptions.CultureInvariant), exclude));
        }
    }

    public static DockerIgnore Load(string contextDir)
    {
        var path = Path.Combine(contextDir, ".dockerignore");
        return new DockerIgnore(File.Exists(path) ? File.ReadAllLines(path) : []);
    }

    /// <summary>Is this context-relative path (with '/' separators) left out of the build context?</summary>
    public bool Excludes(string relativePath)
    {
        var path = relativePath.Trim('/');
        var parents = Parents(path).ToList();
        var excluded = false;
        foreach (var (pattern, exclude) in rules)
        {
            if (pattern.IsMatch(path) || parents.Any(pattern.IsMatch)) excluded = exclude;
        }
        return excluded;
    }

    static IEnumerable<string> Parents(string path)
    {
        for (var i = path.IndexOf('/'); i >= 0; i = path.IndexOf('/', i + 1)) yield return path[..i];
    }

    // Like Go's filepath.Clean for a relative pattern: no leading '/', no '.' segments, '..' folded.
    static string Clean(string p)
    {
        var parts = new List<string>();
        foreach (var seg in p.Replace('\\', '/').Split('/'))
        {
            if (seg.Length == 0 || seg == ".") continue;
            if (seg == ".." && parts.Count > 0) { parts.RemoveAt(parts.Count - 1); continue; }
            if (seg == "..") continue;
            parts.Add(seg);
        }
        return string.Join('/', parts);
    }

    static string ToRegex(string pattern)
    {
        var sb = new StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '*')
            {
                if (i + 1 < pattern.Length && pattern[i + 1] == '*')
                {
                    i++;
                    if (i + 1 < pattern.Length && pattern[i + 1] == '/') { i++; sb.Append("(.*/)?"); }
                    else sb.Append(".*");
                }
                else sb.Append("[^/]*");
            }
            else if (c == '?') sb.Append("[^/]");
            else if (c == '\\' && i + 1 < pattern.Length) sb.Append(Regex.Escape(pattern[++i].ToString()));
            else if (c == '[')
            {
                var end = pattern.IndexOf(']', i + 1);
                if (end < 0) { sb.Append("\\["); continue; }
                var cls = pattern[(i + 1)..end];
                if (cls.StartsWith('^') || cls.StartsWith('!')) cls = "^" + cls[1..];
                sb.Append('[').Append(cls.Replace("\\", "\\\\")).Append(']');
                i = end;
            }
            else sb.Append(Regex.Escape(c.ToString()));
        }
        return sb.Append('$').ToString();
    }
}
