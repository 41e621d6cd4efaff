using System.Text;

namespace Shipyard.Pods;

/// <summary>
/// The runner wraps each action arg in quotes and splits on spaces (`["a b","c"]` arrives as
/// `["\"a","b\"","\"c\""]`); re-joining with spaces and shell-splitting recovers the args.
/// </summary>
public static class ShellWords
{
    public static List<string> Recover(IEnumerable<string>? entryPointArgs) =>
        entryPointArgs is null ? [] : Split(string.Join(' ', entryPointArgs));

    public static List<string> Split(string s)
    {
        var words = new List<string>();
        var cur = new StringBuilder();
        bool inWord = false;
        char quote = '\0';
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (quote != '\0')
            {
                if (c == quote) quote = '\0';
                else if (c == '\\' && quote == '"' && i + 1 < s.Length && s[i + 1] is '"' or '\\') cur.Append(s[++i]);
                else cur.Append(c);
            }
            else if (c is '"' or '\'') { quote = c; inWord = true; }
            else if (c == '\\' && i + 1 < s.Length) { cur.Append(s[++i]); inWord = true; }
            else if (char.IsWhiteSpace(c))
            {
                if (inWord) { words.Add(cur.ToString()); cur.Clear(); inWord = false; }
            }
            else { cur.Append(c); inWord = true; }
        }
        if (quote != '\0') throw new HookException($"Container action args have an unterminated {quote} quote: {s}");
        if (inWord) words.Add(cur.ToString());
        return words;
    }

    /// <summary>Single-quotes a word for POSIX sh.</summary>
    public static string Quote(string s) => "'" + s.Replace("'", "'\\''") + "'";
}
