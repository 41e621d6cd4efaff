using System.Text.Json;

namespace Shipyard.Images;

/// <summary>One blob of a built image: its digest, size, and the file holding it.</summary>
public sealed record LayoutBlob(string Digest, long Size, string Path);

/// <summary>
/// An image a builder wrote to disk instead of pushing it: an OCI image layout (`oci-layout`, `index.json`,
/// `blobs/sha256/…`), as Kaniko's `--oci-layout-path` and `buildah push oci:` write it, holding one image whose
/// manifest may be docker's or OCI's. The manifest's bytes are kept exactly: its digest is the digest the
/// registry will have.
/// </summary>
public sealed record ImageLayout(RegistryManifest Manifest, LayoutBlob Config, IReadOnlyList<LayoutBlob> Layers)
{
    public IEnumerable<LayoutBlob> Blobs => Layers.Prepend(Config);

    public static ImageLayout Read(string dir)
    {
        string BlobPath(string digest) => Path.Combine(dir, "blobs", "sha256", Hex(digest));
        var index = Path.Combine(dir, "index.json");
        if (!File.Exists(index)) throw Bad(dir, "it has no index.json");
        byte[] manifest;
        string mediaType;
        using (var doc = JsonDocument.Parse(File.ReadAllBytes(index)))
        {
            var manifests = doc.RootElement.TryGetProperty("manifests", out var m) && m.ValueKind == JsonValueKind.Array ? m.EnumerateArray().ToList() : [];
            if (manifests.Count != 1) throw Bad(dir, $"index.json lists {manifests.Count} images, not one");
            var descriptor = manifests[0];
            var digest = descriptor.GetProperty("digest").GetString()!;
            mediaType = descriptor.TryGetProperty("mediaType", out var mt) ? mt.GetString() ?? "" : "";
            manifest = File.Exists(BlobPath(digest)) ? File.ReadAllBytes(BlobPath(digest)) : throw Bad(dir, $"its manifest {digest} is missing");
            if (RegistryClient.Digest(manifest) != digest) throw Bad(dir, $"the manifest does not match its digest {digest}");
        }

        using var parsed = JsonDocument.Parse(manifest);
        var root = parsed.RootElement;
        if (root.TryGetProperty("mediaType", out var own) && own.GetString() is { Length: > 0 } ownType) mediaType = ownType;
        if (mediaType.Length == 0) mediaType = "application/vnd.oci.image.manifest.v1+json";
        if (mediaType.Contains("index", StringComparison.Ordinal) || mediaType.Contains("list", StringComparison.Ordinal))
            throw Bad(dir, $"it holds an image index ({mediaType}), not one image");
        LayoutBlob Blob(JsonElement d)
        {
            var digest = d.GetProperty("digest").GetString()!;
            var size = d.GetProperty("size").GetInt64();
            var path = BlobPath(digest);
            var actual = File.Exists(path) ? new FileInfo(path).Length : -1;
            if (actual != size) throw Bad(dir, actual < 0 ? $"blob {digest} is missing" : $"blob {digest} is {actual} bytes, the manifest says {size}");
            return new LayoutBlob(digest, size, path);
        }
        var config = Blob(root.GetProperty("config"));
        var layers = root.GetProperty("layers").EnumerateArray().Select(Blob).ToList();
        return new ImageLayout(new RegistryManifest(RegistryClient.Digest(manifest), mediaType, manifest), config, layers);
    }

    static string Hex(string digest)
    {
        var hex = digest.StartsWith("sha256:", StringComparison.Ordinal) ? digest[7..] : "";
        // A digest names a file; nothing else may.
        if (hex.Length != 64 || hex.Any(c => !char.IsAsciiHexDigitLower(c))) throw new HookException($"The builder's image names a blob '{digest}' that is not a sha256 digest.");
        return hex;
    }

    static HookException Bad(string dir, string why) => new($"The builder's image in {dir} is unusable: {why}.");
}
