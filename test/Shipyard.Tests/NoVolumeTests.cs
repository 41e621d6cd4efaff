using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;
using k8s.Models;
using Shipyard.Pods;
using Shipyard.Protocol;
using Shipyard.Settings;
using Shipyard.Sync;
using static Shipyard.Tests.Fixtures;

namespace Shipyard.Tests;

/// <summary>No-volume mode's pure parts: the manifest diff, the archive both ways, the frame check, the pod shapes, the mode choice.</summary>
public sealed class NoVolumeTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("shipyard-sync-").FullName;

    public void Dispose() => Directory.Delete(root, true);

    string Write(string rel, string text)
    {
        var path = Path.Combine(root, rel);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void Only_what_changed_since_the_last_sync_is_sent_and_removals_are_listed_once()
    {
        Write("repo/a.txt", "a");
        Write("repo/old/x.txt", "x");
        Write("repo/old/y.txt", "y");
        Write("_temp/_runner_hook_responses/r.json", "{}");
        Write(".shipyard-sync/job-pod-manifest", "");
        Write(".shipyard-job-pod", "r-workflow\n");
        var first = WorkManifest.Scan(root);
        Assert.DoesNotContain(first.Entries, e => e.Path.StartsWith("_temp/_runner_hook_responses/") || e.Path.StartsWith(".shipyard-"));
        Assert.Contains(first.Entries, e => e.Path == "_temp" && e.Type == 'd');

        Assert.True(first.Since(first).IsEmpty);
        File.SetLastWriteTimeUtc(Write("repo/a.txt", "a2"), DateTime.UtcNow.AddMinutes(1));
        Write("repo/new.txt", "n");
        Directory.Delete(Path.Combine(root, "repo", "old"), true);
        var changes = WorkManifest.Scan(root).Since(first);
        Assert.Equal(["repo", "repo/a.txt", "repo/new.txt"], changes.Changed.Select(e => e.Path));
        Assert.Equal(["repo/old"], changes.Deleted); // what it held goes with it
    }

    [Fact]
    public void A_path_that_changed_type_is_removed_then_written_and_links_are_not_followed()
    {
        Write("w/thing", "file");
        Directory.CreateDirectory(Path.Combine(root, "outside"));
        Write("outside/secret", "s");
        File.CreateSymbolicLink(Path.Combine(root, "w", "link"), "../outside");
        var before = WorkManifest.Scan(root, ["w"]);
        Assert.Contains(before.Entries, e => e.Path == "w/link" && e.Type == 'l');
        Assert.DoesNotContain(before.Entries, e => e.Path.StartsWith("w/link/") || e.Path.StartsWith("outside"));

        File.Delete(Path.Combine(root, "w", "thing"));
        Write("w/thing/inner", "now a directory");
        var changes = WorkManifest.Scan(root, ["w"]).Since(before);
        Assert.Equal(["w/thing"], changes.Deleted);
        Assert.Contains(changes.Changed, e => e.Path == "w/thing" && e.Type == 'd');
        Assert.Contains(changes.Changed, e => e.Path == "w/thing/inner");
    }

    [Fact]
    public void The_manifest_survives_a_save_with_any_path_and_an_unreadable_one_means_send_everything()
    {
        Write("dir with\ttab and\nnewline/f", "x");
        var m = WorkManifest.Scan(root);
        var file = Path.Combine(root, ".shipyard-sync", "m");
        m.Save(file);
        Assert.True(WorkManifest.Scan(root).Since(WorkManifest.Load(file)).IsEmpty);
        File.WriteAllText(file, "garbage");
        Assert.Empty(WorkManifest.Load(file).Entries);
    }

    [Fact]
    public void The_archive_into_a_pod_starts_with_the_removal_list_and_keeps_modes()
    {
        var script = Write("_temp/s.sh", "echo hi");
        File.SetUnixFileMode(script, (UnixFileMode)0b111_101_101);
        var changes = new WorkChanges(WorkManifest.Scan(root).Entries.OrderBy(e => e.Path, StringComparer.Ordinal).ToList(), ["gone/one", "-dash"]);
        var tar = new MemoryStream();
        WorkArchive.Write(tar, root, changes);
        tar.Position = 0;
        using var reader = new TarReader(tar);
        var first = reader.GetNextEntry()!;
        Assert.Equal(".shipyard-sync/deleted", first.Name);
        Assert.Equal("gone/one\0-dash\0", new StreamReader(first.DataStream!).ReadToEnd());
        var entries = new List<TarEntry>();
        while (reader.GetNextEntry(copyData: true) is { } e) entries.Add(e);
        Assert.Equal((UnixFileMode)0b111_101_101, entries.Single(e => e.Name == "_temp/s.sh").Mode);
    }

    static MemoryStream Archive(params (string Name, TarEntryType Type, string Data, string? Link)[] entries)
    {
        var s = new MemoryStream();
        using (var w = new TarWriter(s, TarEntryFormat.Pax, leaveOpen: true))
            foreach (var (name, type, data, link) in entries)
            {
                var entry = new PaxTarEntry(type, name)
                {
                    Mode = (UnixFileMode)0b110_100_100, ModificationTime = new DateTimeOffset(2024, 1, 2, 3, 4, 5, TimeSpan.Zero),
                };
                if (link is not null) entry.LinkName = link;
                if (type == TarEntryType.RegularFile) entry.DataStream = new MemoryStream(Encoding.UTF8.GetBytes(data));
                w.WriteEntry(entry);
            }
        s.Position = 0;
        return s;
    }

    [Fact]
    public void What_a_pod_sends_back_never_lands_outside_the_work_directory()
    {
        var outside = Directory.CreateTempSubdirectory("shipyard-outside-").FullName;
        try
        {
            var work = Path.Combine(root, "work");
            Directory.CreateDirectory(work);
            var written = WorkArchive.Extract(Archive(
                ("../escape.txt", TarEntryType.RegularFile, "no", null),
                ("/abs.txt", TarEntryType.RegularFile, "no", null),
                ("ws/link", TarEntryType.SymbolicLink, "", outside),
                ("ws/link/planted.txt", TarEntryType.RegularFile, "through the link?", null),
                (".shipyard-sync/mark", TarEntryType.RegularFile, "private", null),
                ("./ws/ok.txt", TarEntryType.RegularFile, "ok", null)), work);
            Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
            Assert.False(File.Exists(Path.Combine(root, "escape.txt")));
            Assert.Equal("through the link?", File.ReadAllText(Path.Combine(work, "ws", "link", "planted.txt"))); // the link was replaced by a directory
            Assert.Null(new DirectoryInfo(Path.Combine(work, "ws", "link")).LinkTarget);
            Assert.False(Directory.Exists(Path.Combine(work, ".shipyard-sync")));
            Assert.Equal("ok", File.ReadAllText(Path.Combine(work, "ws", "ok.txt")));
            Assert.Equal(new DateTime(2024, 1, 2, 3, 4, 5, DateTimeKind.Utc), File.GetLastWriteTimeUtc(Path.Combine(work, "ws", "ok.txt")));
            Assert.Equal(["ws/link", "ws/link/planted.txt", "ws/ok.txt"], written); // the link, then the directory that replaced it
        }
        finally { Directory.Delete(outside, true); }
    }

    [Fact]
    public void The_manifest_after_a_copy_back_is_what_a_fresh_scan_sees()
    {
        Write("ws/keep.txt", "k");
        Write("ws/old/a.txt", "a");
        Write("ws/changed.txt", "before");
        var before = WorkManifest.Scan(root);
        var removed = WorkArchive.Remove(root, ["ws/old"]);
        var written = WorkArchive.Extract(Archive(("ws/changed.txt", TarEntryType.RegularFile, "after, longer", null),
            ("ws/new", TarEntryType.Directory, "", null), ("ws/new/b.txt", TarEntryType.RegularFile, "b", null)), root);
        var after = before.After(root, removed, written);
        Assert.True(WorkManifest.Scan(root).Since(after).IsEmpty);
        Assert.True(after.Since(WorkManifest.Scan(root)).IsEmpty);
    }

    static MemoryStream Frame(string list, byte[] archive, string? listSha = null, string? archiveSha = null, int cut = 0)
    {
        var l = Encoding.UTF8.GetBytes(list);
        var header = $"shipyard-sync {l.Length} {listSha ?? Convert.ToHexStringLower(SHA256.HashData(l))} {archive.Length} {archiveSha ?? Convert.ToHexStringLower(SHA256.HashData(archive))}\n";
        var all = Encoding.ASCII.GetBytes(header).Concat(l).Concat(archive).ToArray();
        return new MemoryStream(all[..^cut]);
    }

    [Fact]
    public void A_copy_back_is_checked_whole_before_anything_is_applied()
    {
        var archive = Archive(("a.txt", TarEntryType.RegularFile, "a", null)).ToArray();
        var ok = WorkSync.ReadFrame(Frame("./a.txt\0./locked/\0./b\0", archive), "p");
        Assert.Equal(["a.txt", "locked", "b"], ok.Paths);
        Assert.Equal(["locked"], ok.Unreadable);

        Assert.Contains("incomplete: ", Assert.Throws<HookException>(() => WorkSync.ReadFrame(Frame("./a.txt\0", archive, cut: 100), "p")).Message);
        Assert.Contains("checksum", Assert.Throws<HookException>(() => WorkSync.ReadFrame(Frame("./a.txt\0", archive, archiveSha: new string('0', 64)), "p")).Message);
        Assert.Contains("checksum", Assert.Throws<HookException>(() => WorkSync.ReadFrame(Frame("./a.txt\0", archive, listSha: new string('0', 64)), "p")).Message);
        Assert.Contains("no valid header", Assert.Throws<HookException>(() => WorkSync.ReadFrame(new MemoryStream("tar: error\n"u8.ToArray()), "p")).Message);
        Assert.Contains("no valid header", Assert.Throws<HookException>(() => WorkSync.ReadFrame(new MemoryStream(), "p")).Message);
    }

    static readonly PodLocalWork Local = new("ghcr.io/actions/actions-runner:2.330.0", "/home/runner/externals");

    [Fact]
    public void The_no_volume_job_pod_has_pod_local_volumes_externals_from_the_runner_image_and_no_node()
    {
        var placement = Placement with { NoWorkVolume = true };
        var options = new JobPodOptions("arc-runner-abc-workflow", placement, Work with { PodLocal = true }, "/home/runner/_work/repo/repo", null, Local);
        var (pod, _, _) = JobPod.Build(Container(), [Container("redis:7")], options);
        Assert.Null(pod.Spec.NodeName);
        Assert.Null(pod.Spec.Affinity);
        Assert.Equal([("work", true), ("externals", true)], pod.Spec.Volumes.Select(v => (v.Name, v.EmptyDir is not null)));
        Assert.Equal(["shipyard-externals", "shipyard-fill"], pod.Spec.InitContainers.Select(c => c.Name));
        Assert.All(pod.Spec.InitContainers, c => Assert.Equal(Local.RunnerImage, c.Image));
        Assert.Contains("/home/runner/externals", pod.Spec.InitContainers[0].Command);
        Assert.Equal(["job", "redis", "shipyard-sync"], pod.Spec.Containers.Select(c => c.Name));
        var job = pod.Spec.Containers[0];
        Assert.Equal(
            [("/__w", null, "work"), ("/__e", null, "externals"), ("/github/home", "_temp/_github_home", "work"), ("/github/workflow", "_temp/_github_workflow", "work")],
            job.VolumeMounts.Select(m => (m.MountPath, (string?)m.SubPath, m.Name)));
        Assert.True(job.VolumeMounts[1].ReadOnlyProperty);
        Assert.Equal(["tail"], job.Command); // no OS probe: the marker could not reach the runner
        Assert.All(pod.Spec.Containers.Concat(pod.Spec.InitContainers), c => Assert.Null(c.SecurityContext));
    }

    [Fact]
    public void A_no_volume_step_pod_waits_for_its_files_and_keeps_a_container_to_give_them_back()
    {
        var step = Container("alpine:3", env: new() { ["A"] = "1" });
        var pod = StepPod.Build(step, new StepPodOptions("arc-runner-abc-step-1", "alpine:3", Placement with { NoWorkVolume = true }, Work with { PodLocal = true }, "repo/repo", "env", []));
        Local.AddTo(pod.Spec);
        Assert.Equal("shipyard-fill", Assert.Single(pod.Spec.InitContainers).Name);
        Assert.Contains(".shipyard-sync/ready", string.Join(' ', pod.Spec.InitContainers[0].Command));
        Assert.Equal(["step", "shipyard-sync"], pod.Spec.Containers.Select(c => c.Name));
        Assert.NotNull(Assert.Single(pod.Spec.Volumes).EmptyDir);
        Assert.Null(pod.Spec.NodeName);
    }

    [Theory]
    [InlineData(null, true, false)]
    [InlineData(null, false, true)]
    [InlineData("volume", false, false)]
    [InlineData("novolume", true, true)]
    [InlineData("kubernetes-novolume", true, true)]
    public void The_mode_follows_the_setting_else_whether_the_runner_pod_mounts_the_work_claim(string? setting, bool mountsClaim, bool noVolume)
    {
        var env = new Dictionary<string, string> { ["ACTIONS_RUNNER_POD_NAME"] = "arc-runner-abc", ["ACTIONS_RUNNER_IMAGE"] = "runner:1" };
        if (setting is not null) env["ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_MODE"] = setting;
        var settings = HookSettings.FromEnvironment(n => env.GetValueOrDefault(n));
        var runnerPod = RunnerPod.From(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = "arc-runner-abc", Uid = "u" },
            Spec = new V1PodSpec
            {
                Containers = [new V1Container { Name = "runner", Image = "runner:1" }],
                // ARC's kube-mode work volume is an ephemeral one: its claim is `<pod>-<volume>`.
                Volumes = mountsClaim ? [new V1Volume { Name = "work", Ephemeral = new V1EphemeralVolumeSource() }] : [],
            },
        });
        var ctx = new HookContext(settings, null!, new Shipyard.Output.Workflow(TextWriter.Null, TextWriter.Null), Stream.Null, Stream.Null, default).ForRunner(runnerPod);
        Assert.Equal(noVolume, ctx.Local is not null);
        Assert.Equal(noVolume, ctx.Work.PodLocal);
    }

    [Fact]
    public void The_runner_image_comes_from_the_setting_else_the_runner_container_and_a_bad_mode_is_named()
    {
        var pod = RunnerPod.From(new V1Pod
        {
            Metadata = new V1ObjectMeta { Name = "r", Uid = "u" },
            Spec = new V1PodSpec { Containers = [new V1Container { Name = "sidecar", Image = "side:1" }, new V1Container { Name = "runner", Image = "runner:2" }] },
        });
        Assert.Equal("runner:2", pod.Image);
        Assert.False(pod.MountsClaim("r-work"));
        var e = Assert.Throws<HookException>(() => HookSettings.FromEnvironment(n => n switch
        {
            "ACTIONS_RUNNER_POD_NAME" => "r",
            "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_MODE" => "nfs",
            "ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_RUNNER_IMAGE_EXTERNALS" => "relative/path",
            _ => null,
        }));
        Assert.Contains("ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_MODE must be auto, volume or novolume, not 'nfs'", e.Message);
        Assert.Contains("ACTIONS_RUNNER_CONTAINER_HOOKS_K8S_RUNNER_IMAGE_EXTERNALS must be an absolute path", e.Message);
    }

    [Fact]
    public void Later_calls_follow_the_mode_prepare_job_put_in_the_state()
    {
        var settings = HookSettings.FromEnvironment(n => n == "ACTIONS_RUNNER_POD_NAME" ? "r" : null);
        var ctx = new HookContext(settings, null!, new Shipyard.Output.Workflow(TextWriter.Null, TextWriter.Null), Stream.Null, Stream.Null, default);
        Assert.Null(ctx.ForState(new HookState("r-workflow")).Local);
        Assert.Equal("runner:3", ctx.ForState(new HookState("r-workflow", "novolume", "runner:3")).Local?.RunnerImage);
        Assert.Equal("{\"jobPod\":\"r-workflow\"}", System.Text.Json.JsonSerializer.Serialize(new HookState("r-workflow"), ProtocolJson.Default.HookState));
    }
}

/// <summary>The framed follow of a no-volume step: the real script under /bin/sh (GNU tools, as in ARC's runner image), read by <see cref="StepStream"/>.</summary>
public sealed class StepStreamTests : IDisposable
{
    readonly string dir = Directory.CreateTempSubdirectory("shipyard-follow-").FullName;

    public void Dispose() => Directory.Delete(dir, true);

    static async Task FeedAsync(StepStream s, byte[] bytes, int chunk)
    {
        for (var i = 0; i < bytes.Length; i += chunk)
            await s.WriteAsync(bytes.AsMemory(i, Math.Min(chunk, bytes.Length - i)));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(65536)]
    public async Task Output_status_and_copy_back_are_told_apart_in_any_chunking(int chunk)
    {
        var stdout = new MemoryStream();
        var stderr = new MemoryStream();
        var copy = Path.Combine(dir, "copy");
        using var s = new StepStream(stdout, stderr, copy);
        var framed = Encoding.UTF8.GetBytes("O 6\nS 1\nO\n" + "E 3\nerr" + "O 2\nok" + "S 3\nP\n" + "shipyard-sync rest\nS 9\n");
        await FeedAsync(s, framed, chunk);
        s.EndCopyBack();
        Assert.Equal("S 1\nO\nok", Encoding.UTF8.GetString(stdout.ToArray()));
        Assert.Equal("err", Encoding.UTF8.GetString(stderr.ToArray()));
        Assert.Equal(3, s.Status);
        Assert.True(s.SawCopyBack);
        Assert.Equal("shipyard-sync rest\nS 9\n", File.ReadAllText(copy)); // after P nothing is taken as a frame
        Assert.Equal((8, 3), (s.Out, s.Err));
    }

    [Theory]
    [InlineData("hello\n")]
    [InlineData("P\n")]
    [InlineData("O -1\n")]
    [InlineData("S x\n")]
    public async Task Anything_unframed_is_refused(string text)
    {
        using var s = new StepStream(Stream.Null, Stream.Null, Path.Combine(dir, "copy"));
        await Assert.ThrowsAsync<InvalidDataException>(() => s.WriteAsync(Encoding.ASCII.GetBytes(text)).AsTask());
    }

    [Fact]
    public async Task The_follow_script_resumes_at_the_offsets_and_ends_with_the_status_and_a_verified_copy_back()
    {
        var work = Path.Combine(dir, "work");
        var step = Path.Combine(work, "_temp", "shipyard-step-1");
        Directory.CreateDirectory(step);
        Directory.CreateDirectory(Path.Combine(work, ".shipyard-sync"));
        File.WriteAllText(Path.Combine(work, ".shipyard-sync", "mark"), "");
        File.SetLastWriteTimeUtc(Path.Combine(work, ".shipyard-sync", "mark"), DateTime.UtcNow.AddMinutes(-5));
        File.WriteAllText(Path.Combine(work, "made.txt"), "made by the step");
        File.WriteAllText(Path.Combine(step, "out"), "already shown|new out");
        File.WriteAllText(Path.Combine(step, "err"), "e1|e2");
        File.WriteAllText(Path.Combine(step, "status"), "4\n");
        var psi = new System.Diagnostics.ProcessStartInfo("/bin/sh", ["-c", Shipyard.Commands.RunScriptStep.FollowScript, "sh", step, "14", "3", work])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var bytes = new MemoryStream();
        await p.StandardOutput.BaseStream.CopyToAsync(bytes);
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, await p.StandardError.ReadToEndAsync());

        var stdout = new MemoryStream();
        var stderr = new MemoryStream();
        var copy = Path.Combine(dir, "copy");
        using var s = new StepStream(stdout, stderr, copy);
        await FeedAsync(s, bytes.ToArray(), 100);
        s.EndCopyBack();
        Assert.Equal("new out", Encoding.UTF8.GetString(stdout.ToArray()));
        Assert.Equal("e2", Encoding.UTF8.GetString(stderr.ToArray()));
        Assert.Equal(4, s.Status);
        using var framed = File.OpenRead(copy);
        var frame = WorkSync.ReadFrame(framed, "pod");
        Assert.Contains("made.txt", frame.Paths);
        Assert.DoesNotContain(frame.Paths, q => q.StartsWith("_temp/shipyard-step-"));
        // This test once expected the copy back to remove the step's directory; a follow that resumes after a cut
        // still needs it, so the next push removes it instead.
        Assert.True(Directory.Exists(step));
    }

    static async Task<(int Exit, byte[] Stdout, string Stderr)> ShAsync(string script, IEnumerable<string> args, byte[] stdin, bool cut = false)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("/bin/sh", ["-c", script, "sh", .. args])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = new MemoryStream();
        var reading = p.StandardOutput.BaseStream.CopyToAsync(stdout);
        var stderr = p.StandardError.ReadToEndAsync();
        await p.StandardInput.BaseStream.WriteAsync(stdin);
        await p.StandardInput.BaseStream.FlushAsync();
        // Open, as v4 exec leaves it, unless the transfer is cut.
        if (cut) p.StandardInput.Close();
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await p.WaitForExitAsync(limit.Token);
        await reading;
        if (!cut) p.StandardInput.Close();
        return (p.ExitCode, stdout.ToArray(), await stderr);
    }

    [Fact]
    public async Task One_exec_takes_the_runners_changes_in_says_G_then_follows_and_a_repeated_push_leaves_the_mark()
    {
        var runner = Path.Combine(dir, "runner");
        var pod = Path.Combine(dir, "pod");
        Directory.CreateDirectory(pod);
        var step = Path.Combine("_temp", "shipyard-step-1");
        Directory.CreateDirectory(Path.Combine(runner, step));
        Directory.CreateDirectory(Path.Combine(runner, "src"));
        File.WriteAllText(Path.Combine(runner, "src", "a.txt"), "from the runner");
        // As if the step had already run once its files arrived: the follow finds its output and status.
        File.WriteAllText(Path.Combine(runner, step, "out"), "hi");
        File.WriteAllText(Path.Combine(runner, step, "status"), "0\n");
        using var push = await WorkSync.Push.WriteAsync(runner, WorkManifest.Scan(runner).Since(WorkManifest.Empty), pod, false, true, default);
        string[] follow = [Path.Combine(pod, step), "0", "0", pod];
        var bytes = await File.ReadAllBytesAsync(push.File);

        Directory.CreateDirectory(Path.Combine(pod, "_temp", "shipyard-step-0")); // the step before, left by its copy back
        var (exit, stdout, stderr) = await ShAsync(Shipyard.Commands.RunScriptStep.PushFollowScript, [.. push.Args, .. follow], bytes);
        Assert.False(Directory.Exists(Path.Combine(pod, "_temp", "shipyard-step-0")));
        Assert.True(exit == 0, stderr);
        Assert.StartsWith("G\nO 2\nhi", Encoding.ASCII.GetString(stdout));
        var pushedAt = 0;
        var copy = Path.Combine(dir, "copy");
        using (var s = new StepStream(new MemoryStream(), Stream.Null, copy, () => pushedAt++))
        {
            await FeedAsync(s, stdout, 5);
            s.EndCopyBack();
            Assert.True(s.Pushed);
            Assert.Equal(0, s.Status);
        }
        Assert.Equal(1, pushedAt);
        Assert.Equal("from the runner", File.ReadAllText(Path.Combine(pod, "src", "a.txt")));
        using (var framed = File.OpenRead(copy))
            Assert.Contains("src/a.txt", WorkSync.ReadFrame(framed, "pod").Paths);

        // The same push again (its first answer lost): nothing read, nothing unpacked, the mark where it was.
        var mark = Path.Combine(pod, ".shipyard-sync", "mark");
        var markedAt = File.GetLastWriteTimeUtc(mark);
        File.WriteAllText(Path.Combine(pod, "src", "a.txt"), "changed in the pod");
        // The step's directory is still there (only the next push removes it); its 2 bytes were shown already.
        Assert.True(File.Exists(Path.Combine(pod, step, "status")));
        (exit, stdout, stderr) = await ShAsync(Shipyard.Commands.RunScriptStep.PushFollowScript, [.. push.Args, follow[0], "2", "0", pod], []);
        Assert.True(exit == 0, stderr);
        Assert.StartsWith("G\nS 0\nP\n", Encoding.ASCII.GetString(stdout));
        Assert.Equal("changed in the pod", File.ReadAllText(Path.Combine(pod, "src", "a.txt")));
        Assert.Equal(markedAt, File.GetLastWriteTimeUtc(mark));

        // A push cut short: exit 86, no G, nothing unpacked.
        File.WriteAllText(Path.Combine(runner, "src", "b.txt"), "new");
        using var next = await WorkSync.Push.WriteAsync(runner, WorkManifest.Scan(runner).Since(WorkManifest.Empty), pod, false, true, default);
        var whole = await File.ReadAllBytesAsync(next.File);
        (exit, stdout, _) = await ShAsync(Shipyard.Commands.RunScriptStep.PushFollowScript, [.. next.Args, .. follow], whole[..(whole.Length / 2)], cut: true);
        Assert.Equal(86, exit);
        Assert.Empty(stdout);
        Assert.False(File.Exists(Path.Combine(pod, "src", "b.txt")));
        Assert.Empty(Directory.GetFiles(Path.Combine(pod, ".shipyard-sync"), "in.*")); // nothing half-received stays
    }

    [Fact]
    public async Task A_follow_that_was_taken_over_stops_without_reporting_or_copying_back()
    {
        var work = Path.Combine(dir, "work");
        var step = Path.Combine(work, "_temp", "shipyard-step-2");
        Directory.CreateDirectory(step);
        var psi = new System.Diagnostics.ProcessStartInfo("/bin/sh", ["-c", Shipyard.Commands.RunScriptStep.FollowScript, "sh", step, "0", "0", work])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        // Until its pid is written in full: a write between its open and its echo would be overwritten.
        var follower = Path.Combine(step, "follower");
        for (var i = 0; i < 1000 && !(File.Exists(follower) && File.ReadAllText(follower).EndsWith('\n')); i++) await Task.Delay(20);
        // A newer follow (after a cut) registers itself; then the step finishes.
        File.WriteAllText(follower, "1\n");
        await Task.Delay(300);
        File.WriteAllText(Path.Combine(step, "status"), "0\n");
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await p.WaitForExitAsync(limit.Token);
        Assert.Equal(88, p.ExitCode);
        Assert.DoesNotContain("S ", await stdout);
        Assert.True(Directory.Exists(step)); // left for the follow that owns it
    }

    [Fact]
    public async Task G_is_taken_once_and_only_before_the_status()
    {
        var calls = 0;
        using var s = new StepStream(Stream.Null, Stream.Null, Path.Combine(dir, "copy"), () => calls++);
        await s.WriteAsync("G\nO 1\nx"u8.ToArray());
        Assert.True(s.Pushed);
        s.Restart();
        Assert.True(s.Pushed);
        await Assert.ThrowsAsync<InvalidDataException>(() => s.WriteAsync("G\n"u8.ToArray()).AsTask());
        Assert.Equal(1, calls);
    }
}
