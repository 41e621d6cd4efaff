using k8s;
using k8s.Models;

namespace Shipyard.Cluster;

public sealed partial class ClusterGateway
{
    /// <summary>What this identity may do in the namespace, in one call (every authenticated user may ask).</summary>
    public async Task<V1SubjectRulesReviewStatus> ReviewOwnRulesAsync(CancellationToken ct) =>
        (await Call("review this service account's permissions", token => client.AuthorizationV1.CreateSelfSubjectRulesReviewAsync(new V1SelfSubjectRulesReview
        {
            ApiVersion = "authorization.k8s.io/v1", Kind = "SelfSubjectRulesReview",
            Spec = new V1SelfSubjectRulesReviewSpec { NamespaceProperty = Namespace },
        }, cancellationToken: token), ct)).Status;
}
