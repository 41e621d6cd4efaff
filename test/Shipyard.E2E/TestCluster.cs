using Shipyard.Driver;

namespace Shipyard.E2E;

/// <summary>The local cluster as an xunit fixture: one namespace per test run.</summary>
public sealed class TestCluster : LocalCluster, IAsyncLifetime
{
    public Task InitializeAsync() => CreateNamespaceAsync();
    public Task DisposeAsync() => DeleteNamespaceAsync();
}

[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<TestCluster>
{
    public const string Name = "cluster";
}
