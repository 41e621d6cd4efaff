namespace Shipyard;

/// <summary>
/// Directory trees copied the way an image layer or the runner's tarball holds them: links as links,
/// directories and files with their mode bits. Shared by the externals copy and the staged build context.
/// </summary>
public static class FileTree
{
    /// <summary>Every entry below a root, hidden ones too; an unreadable one fails instead of being left out.</summary>
    public static readonly EnumerationOptions Everything = new() { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false };

    // The enumeration already knows which entries are links; only those need a readlink.
    public static bool IsLink(FileSystemInfo e) => e.Attributes.HasFlag(FileAttributes.ReparsePoint) && e.LinkTarget is not null;

    /// <summary>Copies one entry to <paramref name="to"/>, creating its parents (a re-included file's may be missing).</summary>
    public static void CopyEntry(FileSystemInfo entry, string to)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(to)!);
        if (IsLink(entry)) File.CreateSymbolicLink(to, entry.LinkTarget!);
        else if (entry is DirectoryInfo) { Directory.CreateDirectory(to); File.SetUnixFileMode(to, entry.UnixFileMode); }
        else File.Copy(entry.FullName, to);
    }
}
