using k8s.Models;

namespace Shipyard.Cluster;

/// <summary>One thing the hook does with the API: a verb on a core-group resource.</summary>
public sealed record Permission(string Resource, string Verb, string Why)
{
    public override string ToString() => $"{Resource}: {Verb}";
}

/// <summary>
/// Which of the hook's permissions a SelfSubjectRulesReview grants. Pure: the review is fetched once by
/// the gateway, so a job whose Role lacks a verb fails before anything is created, not at its first step.
/// </summary>
public static class Permissions
{
    /// <summary>What every job can need (optional ones — pods watch, claims get — have fallbacks and are not listed).</summary>
    public static readonly IReadOnlyList<Permission> Required =
    [
        new("pods", "get", "read the runner and job pods"),
        new("pods", "list", "wait for pods and clean up"),
        new("pods", "create", "create the job, step and builder pods"),
        new("pods", "delete", "remove step pods and clean up"),
        new("pods/exec", "get", "run script steps (WebSocket exec)"),
        new("pods/exec", "create", "run script steps"),
        new("pods/log", "get", "stream container steps and builds"),
        new("secrets", "get", "read the registry Secret"),
        new("secrets", "list", "clean up"),
        new("secrets", "create", "hold env and pull credentials"),
        new("secrets", "delete", "remove env and pull credentials"),
    ];

    public static IReadOnlyList<Permission> Missing(V1SubjectRulesReviewStatus status, IEnumerable<Permission> wanted) =>
        wanted.Where(p => !(status.ResourceRules ?? []).Any(r => Allows(r, p))).ToList();

    static bool Allows(V1ResourceRule rule, Permission p)
    {
        // A rule limited to named objects does not cover objects the hook creates with new names.
        if (rule.ResourceNames is { Count: > 0 }) return false;
        var groups = rule.ApiGroups ?? [];
        if (!groups.Contains("") && !groups.Contains("*")) return false;
        var verbs = rule.Verbs ?? [];
        if (!verbs.Contains(p.Verb) && !verbs.Contains("*")) return false;
        var resources = rule.Resources ?? [];
        var slash = p.Resource.IndexOf('/');
        return resources.Contains(p.Resource) || resources.Contains("*") ||
               (slash > 0 && resources.Contains(p.Resource[..slash] + "/*")) ||
               (slash > 0 && resources.Contains("*/" + p.Resource[(slash + 1)..]));
    }
}
