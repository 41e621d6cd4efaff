using System.Net;
using System.Net.Http.Headers;

namespace Shipyard.Images;

public sealed partial class RegistryClient
{
    /// <summary>
    /// Uploads a built image as `repository:tag`: each blob the repository lacks (mounted from
    /// <paramref name="mountFrom"/> when the registry has it there, else uploaded in one PUT), then the manifest's
    /// exact bytes. Returns the manifest digest, checked against what the registry reports.
    /// </summary>
    public async Task<string> PushAsync(string repository, string tag, ImageLayout image, IReadOnlyList<string> mountFrom, CancellationToken ct)
    {
        // One scope for the whole push, so a token registry is asked once.
        var scope = string.Join(' ', mountFrom.Where(r => r != repository).Select(Pull).Prepend(Push(repository)));
        await Parallel.ForEachAsync(image.Blobs.DistinctBy(b => b.Digest), new ParallelOptions { MaxDegreeOfParallelism = 3, CancellationToken = ct },
            async (blob, token) => await PushBlobAsync(repository, blob, mountFrom, scope, token));

        using var put = await SendAsync(() =>
        {
            var req = new HttpRequestMessage(HttpMethod.Put, Url($"/v2/{repository}/manifests/{tag}")) { Content = new ByteArrayContent(image.Manifest.Bytes) };
            req.Content.Headers.ContentType = new MediaTypeHeaderValue(image.Manifest.MediaType);
            return req;
        }, scope, ct, upload: true);
        await EnsureAsync(put, $"storing the manifest of {repository}:{tag}", ct);
        if (put.Headers.TryGetValues("Docker-Content-Digest", out var reported) && reported.FirstOrDefault() is { } digest && digest != image.Manifest.Digest)
            throw new HttpRequestException($"the {shownAs} stored the manifest of {repository}:{tag} as {digest}, not as {image.Manifest.Digest}");
        return image.Manifest.Digest;
    }

    async Task PushBlobAsync(string repository, LayoutBlob blob, IReadOnlyList<string> mountFrom, string scope, CancellationToken ct)
    {
        using (var head = await SendAsync(() => new HttpRequestMessage(HttpMethod.Head, Url($"/v2/{repository}/blobs/{blob.Digest}")), scope, ct, follow: true))
        {
            if (head.IsSuccessStatusCode) return;
            if (head.StatusCode != HttpStatusCode.NotFound) await EnsureAsync(head, $"checking blob {blob.Digest} of {repository}", ct);
        }
        // A cross-repository mount answers 201 when the registry has the blob there; else it opens an upload (202).
        var from = mountFrom.FirstOrDefault(r => r != repository);
        var start = from is null ? $"/v2/{repository}/blobs/uploads/"
            : $"/v2/{repository}/blobs/uploads/?mount={Uri.EscapeDataString(blob.Digest)}&from={Uri.EscapeDataString(from)}";
        Uri location;
        using (var open = await SendAsync(() => Post(start), scope, ct))
        {
            if (open.StatusCode == HttpStatusCode.Created) return;
            if (open.StatusCode != HttpStatusCode.Accepted) await EnsureAsync(open, $"opening an upload in {repository}", ct);
            location = open.Headers.Location is { } l ? Resolve(l) : throw new HttpRequestException($"the {shownAs} opened an upload in {repository} without a Location");
        }
        var target = location + (location.Query.Length > 0 ? "&" : "?") + "digest=" + Uri.EscapeDataString(blob.Digest);
        using var upload = await SendAsync(() =>
        {
            var content = new StreamContent(File.OpenRead(blob.Path), 1 << 20);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            content.Headers.ContentLength = blob.Size;
            return new HttpRequestMessage(HttpMethod.Put, target) { Content = content };
        }, scope, ct, upload: true);
        await EnsureAsync(upload, $"uploading blob {blob.Digest} ({blob.Size} bytes) to {repository}", ct);
    }
}
