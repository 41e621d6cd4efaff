namespace Shipyard.Images;

/// <summary>A `FROM` image of a Dockerfile: the registry it comes from and its repository there.</summary>
public sealed record BaseImage(string Authority, string Repository);

/// <summary>
/// The images a Dockerfile's `FROM` lines name, for the registry CA and for cross-repository mounts. Stage
/// names, `scratch` and references built from `ARG`s (`FROM $BASE`) are not images Shipyard can know.
/// </summary>
public static class BaseImages
{
    public static IReadOnlyList<BaseImage> Of(string dockerfileText)
    {
        var stages = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "scratch" };
        var result = new List<BaseImage>();
        foreach (var line in Instructions(dockerfileText))
        {
            var words = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            if (words.Length < 2 || !words[0].Equals("FROM", StringComparison.OrdinalIgnoreCase)) continue;
            var rest = words.Skip(1).SkipWhile(w => w.StartsWith("--", StringComparison.Ordinal)).ToList();
            if (rest.Count == 0) continue;
            var image = rest[0];
            var earlierStage = stages.Contains(image);
            if (rest.Count >= 3 && rest[1].Equals("AS", StringComparison.OrdinalIgnoreCase)) stages.Add(rest[2]);
            if (image.Contains('$') || earlierStage) continue;
            result.Add(Parse(image));
        }
        return result.Distinct().ToList();
    }

    /// <summary>docker's rule: the first part names a registry when it has a `.` or `:` or is `localhost`.</summary>
    public static BaseImage Parse(string reference)
    {
        var name = reference.Split('@')[0];
        var lastSlash = name.LastIndexOf('/');
        var colon = name.LastIndexOf(':');
        if (colon > lastSlash) name = name[..colon];
        var slash = name.IndexOf('/');
        if (slash > 0 && (name[..slash].Contains('.') || name[..slash].Contains(':') || name[..slash] == "localhost"))
            return new BaseImage(name[..slash], name[(slash + 1)..]);
        return new BaseImage("docker.io", slash < 0 ? "library/" + name : name);
    }

    /// <summary>Instruction lines: comments dropped, `\` continuations joined.</summary>
    static IEnumerable<string> Instructions(string text)
    {
        var current = "";
        foreach (var raw in text.ReplaceLineEndings("\n").Split('\n'))
        {
            var line = raw.Trim();
            if (line.StartsWith('#')) continue;
            if (line.EndsWith('\\')) { current += line[..^1] + " "; continue; }
            yield return current + line;
            current = "";
        }
        if (current.Length > 0) yield return current;
    }
}
