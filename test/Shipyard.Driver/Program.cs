using Shipyard.Driver;

// shipyard-driver demo | bench [--iterations N] [--concurrency K] [--out DIR]
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
    "bench" => await Bench.RunAsync(Option("--iterations", 5), Option("--concurrency", 8), StringOption("--out", "bench/results")),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: shipyard-driver demo | bench [--iterations N] [--concurrency K] [--out DIR]");
    return 2;
}
