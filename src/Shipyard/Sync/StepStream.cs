using System.Text;

namespace Shipyard.Sync;

/// <summary>
/// The framed stream a no-volume step's follower writes (<c>RunScriptStep.FollowScript</c>): `G` once the runner's
/// changes are unpacked in the pod (when the same exec took them in), `O n` / `E n` and n
/// bytes of the step's stdout / stderr, `S status` once the step's status is written, then `P` and the copy back
/// of what the step changed, kept in a file until it is checked whole. Counts what it passed on, so a follow that
/// broke resumes where it stopped; anything unframed fails the step instead of being taken as output.
/// </summary>
public sealed class StepStream(Stream stdout, Stream stderr, string copyBackFile, Action? pushed = null) : WriteOnlyStream
{
    enum Part { Header, Out, Err, CopyBack }

    readonly List<byte> header = [];
    Part part;
    long left;
    FileStream? copyBack;

    public long Out { get; private set; }
    public long Err { get; private set; }
    public int? Status { get; private set; }
    public bool SawCopyBack { get; private set; }
    /// <summary>The pod said the runner's changes are unpacked; stays true across restarts.</summary>
    public bool Pushed { get; private set; }

    /// <summary>A new follow starts with a header; what was passed on stays counted.</summary>
    public void Restart()
    {
        header.Clear();
        part = Part.Header;
        left = 0;
        copyBack?.Dispose();
        copyBack = null;
        SawCopyBack = false;
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken ct = default)
    {
        while (buffer.Length > 0)
        {
            switch (part)
            {
                case Part.Header:
                    var nl = buffer.Span.IndexOf((byte)'\n');
                    var take = nl < 0 ? buffer.Length : nl;
                    header.AddRange(buffer.Span[..take].ToArray());
                    if (header.Count > 64) throw Unframed();
                    buffer = buffer[Math.Min(buffer.Length, take + 1)..];
                    if (nl >= 0) Begin(Encoding.ASCII.GetString(header.ToArray()));
                    break;
                case Part.Out or Part.Err:
                    var n = (int)Math.Min(left, buffer.Length);
                    var sink = part == Part.Out ? stdout : stderr;
                    await sink.WriteAsync(buffer[..n], ct);
                    await sink.FlushAsync(ct);
                    if (part == Part.Out) Out += n; else Err += n;
                    left -= n;
                    buffer = buffer[n..];
                    if (left == 0) part = Part.Header;
                    break;
                default:
                    await copyBack!.WriteAsync(buffer, ct);
                    buffer = ReadOnlyMemory<byte>.Empty;
                    break;
            }
        }
    }

    void Begin(string line)
    {
        header.Clear();
        var f = line.Split(' ');
        switch (f[0])
        {
            case "O" or "E" when f.Length == 2 && long.TryParse(f[1], out var n) && n > 0:
                part = f[0] == "O" ? Part.Out : Part.Err;
                left = n;
                break;
            case "G" when f.Length == 1 && !Pushed && Status is null:
                Pushed = true;
                pushed?.Invoke();
                break;
            case "S" when f.Length == 2 && int.TryParse(f[1], out var status):
                Status = status;
                break;
            case "P" when f.Length == 1 && Status is not null:
                SawCopyBack = true;
                part = Part.CopyBack;
                copyBack = new FileStream(copyBackFile, FileMode.Create, FileAccess.Write, FileShare.None, 64 * 1024);
                break;
            default:
                throw Unframed();
        }
    }

    /// <summary>The copy back is complete: close it so it can be checked.</summary>
    public void EndCopyBack()
    {
        copyBack?.Dispose();
        copyBack = null;
    }

    static InvalidDataException Unframed() =>
        new("The step's output stream from the pod is not framed as Shipyard writes it; the step's outcome is unknown, so it fails.");

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override async Task FlushAsync(CancellationToken ct)
    {
        if (copyBack is not null) await copyBack.FlushAsync(ct);
    }
    public override void Flush() => copyBack?.Flush();

    protected override void Dispose(bool disposing)
    {
        if (disposing) copyBack?.Dispose();
        base.Dispose(disposing);
    }
}
