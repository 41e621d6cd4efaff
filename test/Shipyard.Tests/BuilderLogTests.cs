using System.Text;
using Shipyard.Images;

namespace Shipyard.Tests;

/// <summary>The failing instruction and error read from the builders' real log formats.</summary>
public class BuilderLogTests
{
    static TailLines Feed(string log)
    {
        var tail = new TailLines(Stream.Null, 40);
        // Arbitrary chunk boundaries, as a log stream delivers them.
        var bytes = Encoding.UTF8.GetBytes(log);
        for (var i = 0; i < bytes.Length; i += 7) tail.Write(bytes, i, Math.Min(7, bytes.Length - i));
        return tail;
    }

    [Theory]
    [InlineData("\u001b[36mINFO\u001b[0m[0000] Retrieving image manifest busybox:test \n\u001b[36mINFO\u001b[0m[0001] COPY nonce.txt /nonce.txt \n\u001b[36mINFO\u001b[0m[0001] RUN exit 3                                  \n\u001b[36mINFO\u001b[0m[0001] Running: [/bin/sh -c exit 3]               \n\u001b[31merror\u001b[0m building image: error building stage: failed to execute command: waiting for process to exit: exit status 3\n")]
    [InlineData("INFO[0000] Retrieving image manifest busybox:test\nINFO[0001] COPY nonce.txt /nonce.txt\nINFO[0001] RUN exit 3\nINFO[0001] Running: [/bin/sh -c exit 3]\nerror building image: error building stage: failed to execute command: waiting for process to exit: exit status 3\n")]
    public void Kaniko_with_and_without_colour(string log)
    {
        var tail = Feed(log);
        Assert.Equal("RUN exit 3", tail.LastInstruction);
        Assert.Equal("error building image: error building stage: failed to execute command: waiting for process to exit: exit status 3", tail.LastError());
    }

    [Fact]
    public void Buildah()
    {
        var tail = Feed("STEP 1/3: FROM busybox:test\nSTEP 2/3: COPY nonce.txt /nonce.txt\nSTEP 3/3: RUN exit 3\nError: building at STEP \"RUN exit 3\": while running runtime: exit status 3\n");
        Assert.Equal("RUN exit 3", tail.LastInstruction);
        Assert.StartsWith("Error: building at STEP", tail.LastError());
    }
}
