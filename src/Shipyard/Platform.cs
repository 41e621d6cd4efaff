// The hook runs in Linux runner pods only (linux-x64 NativeAOT): Unix file modes and signals are used freely.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
