using System.Globalization;
using System.Text.Json.Nodes;
using k8s;
using k8s.Models;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Shipyard.Pods;

/// <summary>
/// `ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE` (ADR 0134): a pod template whose labels, annotations,
/// pod-level fields and volumes are merged into the pods Shipyard creates. Container `$job` merges
/// into the job container (and a container step's container), `$&lt;service&gt;` into that service;
/// other containers become sidecars of the job pod and are never reported as services.
/// </summary>
public sealed class HookTemplate
{
    readonly JsonObject root;

    HookTemplate(JsonObject root) => this.root = root;

    public static HookTemplate Parse(string yaml, string source)
    {
        JsonNode? node;
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(yaml));
            node = stream.Documents.Count == 0 ? null : ToJson(stream.Documents[0].RootNode);
        }
        catch (YamlException e)
        {
            throw new HookException($"The hook template {source} is not valid YAML (line {e.Start.Line}): {e.Message}");
        }
        if (node is not JsonObject obj) throw new HookException($"The hook template {source} must be a pod template (a YAML mapping with metadata/spec).");
        V1PodTemplateSpec typed;
        try
        {
            // Typed check up front: a template that Kubernetes would reject fails before anything is created.
            typed = KubernetesJson.Deserialize<V1PodTemplateSpec>(obj.ToJsonString());
        }
        catch (Exception e)
        {
            throw new HookException($"The hook template {source} is not a valid pod template: {e.Message}");
        }
        if (Unsafe(typed) is { } what)
            throw new HookException($"The hook template {source} sets {what}; Shipyard creates no privileged pod and none with host access.");
        return new HookTemplate(obj);
    }

    /// <summary>What would make a created pod privileged or give it the host: privileged, hostPath, hostNetwork/PID/IPC, hostPort.</summary>
    static string? Unsafe(V1PodTemplateSpec t)
    {
        var spec = t.Spec;
        if (spec is null) return null;
        if (spec.HostNetwork == true) return "hostNetwork: true";
        if (spec.HostPID == true) return "hostPID: true";
        if (spec.HostIPC == true) return "hostIPC: true";
        if (spec.Volumes?.FirstOrDefault(v => v.HostPath is not null) is { } hp) return $"a hostPath volume ('{hp.Name}')";
        foreach (var c in (spec.Containers ?? []).Concat(spec.InitContainers ?? []))
        {
            if (c.SecurityContext?.Privileged == true) return $"privileged: true on container '{c.Name}'";
            if (c.Ports?.Any(p => p.HostPort is > 0) == true) return $"a hostPort on container '{c.Name}'";
        }
        return null;
    }

    public static HookTemplate? Load(string? path)
    {
        if (path is null) return null;
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) { throw new HookException($"Cannot read the hook template {path} (ACTIONS_RUNNER_CONTAINER_HOOK_TEMPLATE): {e.Message}"); }
        return Parse(text, path);
    }

    /// <summary>Images the template itself names (its sidecars and init containers).</summary>
    public IEnumerable<(string Name, string Image)> ContainerImages()
    {
        foreach (var key in new[] { "containers", "initContainers" })
            foreach (var c in (root["spec"]?[key] as JsonArray ?? []).OfType<JsonObject>())
                if (c["image"]?.GetValue<string>() is { Length: > 0 } image)
                    yield return (c["name"]?.GetValue<string>() ?? "?", image);
    }

    /// <summary>Job pod: everything, `$job` into `job`, `$name` into services, the rest as sidecars.</summary>
    public V1Pod ApplyToJobPod(V1Pod pod, IReadOnlyCollection<string> serviceNames) =>
        Apply(pod, podFields: AllPodFields, containers: (name, ours) =>
        {
            if (name == "$job") return Names.JobContainer;
            if (name.StartsWith('$') && serviceNames.Contains(name[1..])) return name[1..];
            if (name == "$builder") return null; // builder pods only
            if (name.StartsWith('$')) throw new HookException($"The hook template names container '{name}', but the job has no such service (services: {string.Join(", ", serviceNames)}).");
            return null;
        }, sidecars: true);

    /// <summary>Container step: pod-level fields and `$job` into the step container; no sidecars (the pod must complete).</summary>
    public V1Pod ApplyToStepPod(V1Pod pod) =>
        Apply(pod, podFields: AllPodFields, containers: (name, _) => name == "$job" ? Names.StepContainer : null, sidecars: false);

    /// <summary>
    /// Builder pod: labels, annotations, scheduling, and the `resources` of a `$builder` container (over the
    /// BUILDER_* settings); the builder's own security settings, mounts and env stay.
    /// </summary>
    public V1Pod ApplyToBuilderPod(V1Pod pod)
    {
        var applied = Apply(pod, podFields: k => k is "nodeSelector" or "tolerations" or "affinity" or "priorityClassName" or "runtimeClassName" or "schedulerName",
            containers: (_, _) => null, sidecars: false);
        var builder = (root["spec"]?["containers"] as JsonArray ?? []).OfType<JsonObject>().FirstOrDefault(c => c["name"]?.GetValue<string>() == "$builder");
        if (builder?["resources"] is JsonObject resources)
            applied.Spec.Containers[0].Resources = KubernetesJson.Deserialize<V1ResourceRequirements>(resources.ToJsonString());
        return applied;
    }

    static bool AllPodFields(string key) => true;

    V1Pod Apply(V1Pod pod, Func<string, bool> podFields, Func<string, JsonObject, string?> containers, bool sidecars)
    {
        var target = JsonNode.Parse(KubernetesJson.Serialize(pod))!.AsObject();
        var meta = target["metadata"]!.AsObject();
        foreach (var key in new[] { "labels", "annotations" })
        {
            if (root["metadata"]?[key] is not JsonObject add) continue;
            var ours = meta[key] as JsonObject ?? new JsonObject();
            foreach (var (k, v) in add)
                if (!ours.ContainsKey(k)) ours[k] = v?.DeepClone(); // ours (runner-pod) win
            meta[key] = ours;
        }
        if (root["spec"] is JsonObject tspec)
        {
            var spec = target["spec"]!.AsObject();
            foreach (var (k, v) in tspec)
            {
                if (k is "containers" or "volumes" or "initContainers" || !podFields(k)) continue;
                if (k == "imagePullSecrets") { Append(spec, k, v); continue; }
                spec[k] = v?.DeepClone();
            }
            if (podFields("volumes")) Append(spec, "volumes", tspec["volumes"]);
            if (sidecars && tspec["initContainers"] is JsonArray inits) Append(spec, "initContainers", inits);
            var ourContainers = spec["containers"]!.AsArray();
            foreach (var c in (tspec["containers"] as JsonArray ?? []).OfType<JsonObject>())
            {
                var name = c["name"]?.GetValue<string>() ?? throw new HookException("Every container in the hook template needs a name.");
                var into = containers(name, c);
                if (into is not null)
                {
                    var ours = ourContainers.OfType<JsonObject>().First(o => o["name"]!.GetValue<string>() == into);
                    MergeContainer(ours, c);
                }
                else if (sidecars && !name.StartsWith('$'))
                {
                    ourContainers.Add(c.DeepClone());
                }
            }
        }
        return KubernetesJson.Deserialize<V1Pod>(target.ToJsonString());
    }

    /// <summary>env, volumeMounts, ports, envFrom are appended; other fields override; name and image never change.</summary>
    static void MergeContainer(JsonObject ours, JsonObject template)
    {
        foreach (var (k, v) in template)
        {
            if (k is "name" or "image") continue;
            if (k is "env" or "volumeMounts" or "ports" or "envFrom") { Append(ours, k, v); continue; }
            ours[k] = v?.DeepClone();
        }
    }

    static void Append(JsonObject obj, string key, JsonNode? items)
    {
        if (items is not JsonArray add || add.Count == 0) return;
        var list = obj[key] as JsonArray ?? new JsonArray();
        foreach (var i in add) list.Add(i?.DeepClone());
        obj[key] = list;
    }

    static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode m => new JsonObject(m.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value ?? "", ToJson(kv.Value)))),
        YamlSequenceNode s => new JsonArray(s.Children.Select(ToJson).ToArray()),
        YamlScalarNode sc => Scalar(sc),
        _ => null,
    };

    // YAML 1.2 core schema for plain scalars; quoted scalars stay strings.
    static JsonNode? Scalar(YamlScalarNode s)
    {
        var v = s.Value ?? "";
        if (s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded) return JsonValue.Create(v);
        if (v is "" or "~" or "null" or "Null" or "NULL") return null;
        if (v is "true" or "True" or "TRUE") return JsonValue.Create(true);
        if (v is "false" or "False" or "FALSE") return JsonValue.Create(false);
        if (long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return JsonValue.Create(l);
        if (double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && v.Any(char.IsDigit)) return JsonValue.Create(d);
        return JsonValue.Create(v);
    }
}
