using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestCaseOrderer("Shipyard.E2E.RestartsLast", "Shipyard.E2E")]

namespace Shipyard.E2E;

/// <summary>
/// Tests that restart the test cluster's kube-apiserver run after every other test, so what a restart leaves
/// settling in the kubelet (watch caches re-syncing) can never touch another test. Others keep xunit's order.
/// </summary>
public sealed class RestartsLast : ITestCaseOrderer
{
    public const string Trait = "ApiServerRestart";

    public IEnumerable<TTestCase> OrderTestCases<TTestCase>(IEnumerable<TTestCase> testCases) where TTestCase : ITestCase =>
        testCases.OrderBy(t => t.Traits.ContainsKey(Trait) ? 1 : 0).ThenBy(t => t.UniqueID, StringComparer.Ordinal);
}
