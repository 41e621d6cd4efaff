using Shipyard.Driver;

// shipyard-driver demo | bench [--iterations N] [--concurrency K] [--out DIR] [--small-externals] [--baseline NAME=PATH]... | bench --mode novolume [--iterations N]
var mode = args.FirstOrDefault();
int Option(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length && int.TryParse(args[i + 1], out var v) ? v : fallback;
}
string StringOption(string name, string fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
}
return mode switch
{
    "demo" => await Demo.RunAsync(),
    "bench" when StringOption("--mode", "volume") == "novolume" => await BenchNoVolume.RunAsync(Option("--iterations", 5), StringOption("--out", "bench/results")),
    "bench" when Baselines().FirstOrDefault(b => !File.Exists(b.Item2)) is ({ } name, { } path) =>
        Fail($"--baseline {name}={path}: no such file (it names a hook binary, e.g. <checkout>/artifacts/shipyard)"),
    "bench" => await Bench.RunAsync(Option("--iterations", 5), Option("--concurrency", 10), StringOption("--out", "bench/results"),
        args.Contains("--small-externals"), Baselines()),
    _ => Usage(),
};

// --baseline NAME=PATH (repeatable): another hook build measured in the same run
List<(string, string)> Baselines() =>
    args.Select((a, i) => (a, i)).Where(x => x.a == "--baseline" && x.i + 1 < args.Length)
        .Select(x => args[x.i + 1].Split('=', 2)).Select(p => p.Length == 2 ? (p[0], Path.GetFullPath(p[1])) : (Path.GetFileName(p[0]), Path.GetFullPath(p[0]))).ToList();

static int Fail(string message)
{
    Console.Error.WriteLine(message);
    return 2;
}

static int Usage() =>
    Fail("usage: shipyard-driver demo | bench [--iterations N] [--concurrency K] [--out DIR] [--small-externals] [--baseline NAME=PATH]... | bench --mode novolume [--iterations N]");
