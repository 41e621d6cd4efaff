using Shipyard.Runner;

namespace Shipyard.Tests;

/// <summary>The runner's node builds reach `/__e` one build at a time, when a step names it, whole and current.</summary>
public sealed class ExternalsTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("shipyard-externals-").FullName;
    string Source => Path.Combine(root, "externals");
    string Target => Path.Combine(root, "_work", "externals");

    public ExternalsTests()
    {
        foreach (var build in new[] { "node20", "node24" })
        {
            var bin = Path.Combine(Source, build, "bin");
            Directory.CreateDirectory(bin);
            File.WriteAllText(Path.Combine(bin, "node"), $"#!/bin/sh\necho {build}\n");
            File.SetUnixFileMode(Path.Combine(bin, "node"), (UnixFileMode)0b111_101_101);
            Directory.CreateDirectory(Path.Combine(Source, build, "lib", "node_modules", "npm", "bin"));
            File.WriteAllText(Path.Combine(Source, build, "lib", "node_modules", "npm", "bin", "npm-cli.js"), "// npm\n");
            File.CreateSymbolicLink(Path.Combine(bin, "npm"), "../lib/node_modules/npm/bin/npm-cli.js");
        }
    }

    public void Dispose() => Directory.Delete(root, true);

    Externals New() => new(Source, Target);

    [Fact]
    public void Steps_name_the_builds_they_use()
    {
        var e = New();
        Assert.Equal(["node20"], e.Referenced(["/__e/node20/bin/node", "/__w/demo/demo/./action/index.js"]));
        Assert.Equal(["node24", "node20"], e.Referenced([null, "set -e\n/__e/node24/bin/node x.js && /__e/node20/bin/npm ci\n/__e/node24/bin/node y"]));
        // Names that are not builds of these externals, or escape them, are not copied.
        Assert.Empty(e.Referenced(["/__e/node16/bin/node", "/__e/../etc/passwd", "/__e/./x", "bash", "/__w/_temp/x.sh"]));
    }

    [Fact]
    public void A_named_build_is_copied_whole_with_modes_and_links_and_nothing_else()
    {
        var e = New();
        e.CreateMountPoint();
        Assert.True(Directory.Exists(Target));
        Assert.Empty(Directory.EnumerateFileSystemEntries(Target));

        Assert.True(e.EnsureCopied("node20"));
        var node = Path.Combine(Target, "node20", "bin", "node");
        Assert.Equal("#!/bin/sh\necho node20\n", File.ReadAllText(node));
        Assert.Equal((UnixFileMode)0b111_101_101, File.GetUnixFileMode(node));
        Assert.Equal("../lib/node_modules/npm/bin/npm-cli.js", new FileInfo(Path.Combine(Target, "node20", "bin", "npm")).LinkTarget);
        Assert.Equal("// npm\n", File.ReadAllText(Path.Combine(Target, "node20", "bin", "npm")));
        // Only the named build, and no staging directory left behind.
        Assert.Equal(["node20"], Directory.EnumerateFileSystemEntries(Target).Select(Path.GetFileName));
    }

    [Fact]
    public void A_current_copy_is_kept_and_a_changed_build_replaces_it()
    {
        var e = New();
        Assert.True(e.EnsureCopied("node20"));
        Assert.False(e.EnsureCopied("node20"));

        var node = Path.Combine(Source, "node20", "bin", "node");
        File.WriteAllText(node, "#!/bin/sh\necho node20 patched\n");
        File.SetLastWriteTimeUtc(node, DateTime.UtcNow.AddMinutes(1));
        File.Delete(Path.Combine(Source, "node20", "lib", "node_modules", "npm", "bin", "npm-cli.js"));
        Assert.True(e.EnsureCopied("node20"));
        Assert.Equal("#!/bin/sh\necho node20 patched\n", File.ReadAllText(Path.Combine(Target, "node20", "bin", "node")));
        Assert.False(File.Exists(Path.Combine(Target, "node20", "lib", "node_modules", "npm", "bin", "npm-cli.js")));
        Assert.Equal(["node20"], Directory.EnumerateFileSystemEntries(Target).Select(Path.GetFileName));
    }

    [Fact]
    public void All_lists_every_build_for_the_copy_at_job_start()
    {
        Assert.Equal(["node20", "node24"], New().All());
        Assert.Empty(new Externals(Path.Combine(root, "missing"), Target).All());
    }
}
