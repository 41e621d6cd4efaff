using System.Text.RegularExpressions;

namespace Shipyard.Pods;

/// <summary>
/// Docker's image reference grammar (distribution/reference): `[host[:port]/]path[:tag][@algo:hex]`,
/// name at most 255 characters. A name docker would refuse is refused before anything is created,
/// instead of leaving the kubelet to retry it.
/// </summary>
public static partial class ImageReference
{
    const int NameMax = 255;
    const int ReferenceMax = NameMax + 1 + 128 + 1 + 7 + 1 + 128;

    public static string Require(string? image, string what)
    {
        if (image is not { Length: > 0 })
            throw new HookException($"The {what} has no image; Dockerfile-based job and service containers are not supported.");
        var shown = image.Length > 80 ? image[..80] + $"… ({image.Length} characters)" : image;
        if (image.Length > ReferenceMax)
            throw new HookException($"The image of the {what} is not a valid image reference: '{shown}' is longer than any image name can be.");
        var m = Reference().Match(image);
        if (!m.Success)
            throw new HookException($"The image of the {what} is not a valid image reference: '{shown}' (expected [registry/]name[:tag][@sha256:digest], lowercase name).");
        if (m.Groups["name"].Length > NameMax)
            throw new HookException($"The image of the {what} is not a valid image reference: its name is longer than {NameMax} characters.");
        return image;
    }

    [GeneratedRegex(@"^(?<name>(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$")]
    private static partial Regex Reference();
}
