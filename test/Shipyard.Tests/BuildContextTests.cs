using Shipyard.Images;

namespace Shipyard.Tests;

public sealed class BuildContextTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("shipyard-ctx-").FullName;

    public void Dispose() => Directory.Delete(root, true);

    string Dir(string name, params (string Path, string Content)[] files)
    {
        var d = Path.Combine(root, name);
        foreach (var (p, c) in files)
        {
            var full = Path.Combine(d, p);
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllText(full, c);
        }
        return d;
    }

    static readonly (string, string)[] Action =
    [
        ("Dockerfile", "FROM busybox\nCOPY . /a\n"), ("entrypoint.sh", "#!/bin/sh\necho hi\n"), ("lib/util.sh", "x=1\n"),
        (".dockerignore", "docs/\n*.md\n!KEEP.md\n"), ("docs/guide.txt", "ignored"), ("README.md", "ignored"), ("KEEP.md", "kept"),
    ];

    static string Hash(string dir, string builder = "kaniko img:1", string platform = "linux/amd64") => BuildContext.Hash(dir, "Dockerfile", builder, platform);

    [Fact]
    public void Same_content_written_in_another_order_hashes_the_same()
    {
        var a = Dir("a", Action);
        var b = Dir("b", Action.Reverse().ToArray());
        Assert.Equal(Hash(a), Hash(b));
        Assert.Matches("^[0-9a-f]{40}$", Hash(a));
    }

    [Fact]
    public void Changing_an_included_file_changes_the_hash()
    {
        var a = Dir("a", Action);
        var before = Hash(a);
        File.WriteAllText(Path.Combine(a, "lib/util.sh"), "x=2\n");
        Assert.NotEqual(before, Hash(a));
    }

    [Fact]
    public void Changing_a_dockerignored_file_keeps_the_hash_and_an_exception_does_not()
    {
        var a = Dir("a", Action);
        var before = Hash(a);
        File.WriteAllText(Path.Combine(a, "docs/guide.txt"), "changed");
        File.WriteAllText(Path.Combine(a, "README.md"), "changed");
        File.WriteAllText(Path.Combine(a, "docs/new.txt"), "new");
        Assert.Equal(before, Hash(a));
        File.WriteAllText(Path.Combine(a, "KEEP.md"), "changed");
        Assert.NotEqual(before, Hash(a));
    }

    [Fact]
    public void File_mode_is_part_of_the_hash()
    {
        var a = Dir("a", Action);
        var before = Hash(a);
        File.SetUnixFileMode(Path.Combine(a, "entrypoint.sh"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Assert.NotEqual(before, Hash(a));
    }

    [Fact]
    public void Builder_identity_and_dockerfile_are_part_of_the_hash()
    {
        var a = Dir("a", Action);
        Assert.NotEqual(Hash(a, "kaniko img:1"), Hash(a, "buildah img:1"));
        var before = Hash(a);
        File.WriteAllText(Path.Combine(a, "Dockerfile"), "FROM busybox:2\n");
        Assert.NotEqual(before, Hash(a));
    }

    [Fact]
    public void A_dockerignored_dockerfile_still_counts()
    {
        var a = Dir("a", ("Dockerfile", "FROM a\n"), (".dockerignore", "Dockerfile\n"));
        var before = Hash(a);
        File.WriteAllText(Path.Combine(a, "Dockerfile"), "FROM b\n");
        Assert.NotEqual(before, Hash(a));
    }

    [Theory]
    [InlineData("*.md", "README.md", true)]
    [InlineData("*.md", "docs/README.md", false)]
    [InlineData("**/*.md", "docs/deep/README.md", true)]
    [InlineData("**/*.md", "README.md", true)]
    [InlineData("docs", "docs/a/b.txt", true)]
    [InlineData("/docs/", "docs/a.txt", true)]
    [InlineData("./build", "build/out", true)]
    [InlineData("te?t", "test", true)]
    [InlineData("te?t", "te/t", false)]
    [InlineData("[a-c].txt", "b.txt", true)]
    [InlineData("[a-c].txt", "d.txt", false)]
    [InlineData("node_modules", "src/node_modules", false)]
    public void Dockerignore_patterns_match_like_docker(string pattern, string path, bool excluded) =>
        Assert.Equal(excluded, new DockerIgnore([pattern]).Excludes(path));

    [Fact]
    public void Dockerignore_last_match_wins_and_comments_are_skipped()
    {
        var ignore = new DockerIgnore(["# comment", "*.log", "!important.log", "", "important.log.*"]);
        Assert.True(ignore.Excludes("debug.log"));
        Assert.False(ignore.Excludes("important.log"));
        Assert.True(ignore.Excludes("important.log.1"));
        Assert.False(ignore.Excludes("# comment"));
    }

    [Theory]
    [InlineData("_actions/acme/hello-action/v1/Dockerfile", "acme-hello-action")]
    [InlineData("_actions/Acme/Hello_Action/main/sub/dir/Dockerfile", "acme-hello-action-sub-dir")]
    [InlineData("demo/demo/./.github/actions/build/Dockerfile", "local-demo-github-actions-build")]
    [InlineData("demo/demo/Dockerfile", "local-demo")]
    [InlineData("_temp/x/Dockerfile", "action-temp-x")]
    public void Image_names_come_from_the_action(string dockerfile, string expected) =>
        Assert.Equal(expected, ImageNaming.ForDockerfile(dockerfile));

    [Fact]
    public void The_staged_context_holds_what_docker_sends_and_the_dockerfile_beside_it()
    {
        var dir = Dir("staged", [.. Action, ("node_modules/x.js", "x"), ("src/node_modules/y.js", "y"), ("src/run.sh", "#!/bin/sh\n")]);
        File.AppendAllText(Path.Combine(dir, ".dockerignore"), "**/node_modules\nDockerfile\n");
        File.SetUnixFileMode(Path.Combine(dir, "src", "run.sh"), (UnixFileMode)0b111_101_101);
        File.CreateSymbolicLink(Path.Combine(dir, "link.sh"), "entrypoint.sh");
        var context = Path.Combine(root, "out", "context");
        var dockerfileDir = Path.Combine(root, "out", "dockerfile");
        BuildContext.Stage(dir, "Dockerfile", context, dockerfileDir);

        var staged = Directory.EnumerateFileSystemEntries(context, "*", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(context, p)).Order(StringComparer.Ordinal).ToList();
        Assert.Equal([".dockerignore", "KEEP.md", "entrypoint.sh", "lib", "lib/util.sh", "link.sh", "src", "src/run.sh"], staged);
        Assert.Equal((UnixFileMode)0b111_101_101, File.GetUnixFileMode(Path.Combine(context, "src", "run.sh")));
        Assert.Equal("entrypoint.sh", new FileInfo(Path.Combine(context, "link.sh")).LinkTarget);
        // Ignored for COPY, still there to build from.
        Assert.Equal("FROM busybox\nCOPY . /a\n", File.ReadAllText(Path.Combine(dockerfileDir, "Dockerfile")));
    }
}
