using System.Security.Cryptography;
using System.Text;

namespace Shipyard.Runner;

/// <summary>
/// The job container runs the runner's node from `/__e`, a subPath of the work volume. Copying the
/// externals there takes long (upstream #80/#167), so it is done only when their content changed:
/// a fingerprint of paths, sizes and modification times is kept beside the copy.
/// </summary>
public static class Externals
{
    const string StampFile = ".shipyard-externals";

    /// <summary>Returns true when it copied, false when the copy was already current.</summary>
    public static bool EnsureCopied(string source, string target)
    {
        if (!Directory.Exists(source)) return false; // nothing to copy (e.g. a runner without externals)
        var fingerprint = Fingerprint(source);
        var stamp = Path.Combine(target, StampFile);
        if (File.Exists(stamp) && File.ReadAllText(stamp) == fingerprint) return false;
        // Copy into a fresh directory and swap, so a concurrent or killed copy never leaves half a tree.
        var staging = target + ".tmp-" + Environment.ProcessId;
        if (Directory.Exists(staging)) Directory.Delete(staging, true);
        CopyTree(source, staging);
        File.WriteAllText(Path.Combine(staging, StampFile), fingerprint);
        if (Directory.Exists(target)) Directory.Delete(target, true);
        try { Directory.Move(staging, target); }
        catch (IOException) when (Directory.Exists(target)) { Directory.Delete(staging, true); } // another job won the race
        return true;
    }

    public static string Fingerprint(string root)
    {
        var sb = new StringBuilder();
        foreach (var f in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(f);
            sb.Append(Path.GetRelativePath(root, f)).Append('\0').Append(info.Length).Append('\0')
              .Append(info.LastWriteTimeUtc.Ticks).Append('\n');
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())));
    }

    static void CopyTree(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (var dir in Directory.EnumerateDirectories(source, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(target, Path.GetRelativePath(source, dir)));
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
            File.Copy(file, Path.Combine(target, Path.GetRelativePath(source, file)), overwrite: true); // keeps mode bits
    }
}
