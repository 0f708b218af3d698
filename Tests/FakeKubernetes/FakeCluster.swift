import Foundation
import GEdgeCore

/// The state of a fake Kubernetes API server, kept as strict as the real one where the
/// suite depends on it: resource versions and watch history, generations, server-side
/// apply with field managers (409 Conflict without force), a Deployment controller whose
/// rollouts take time and can stall (ProgressDeadlineExceeded), pods that fail as real
/// ones do (ImagePullBackOff, CrashLoopBackOff, Unschedulable), and RBAC from ClusterRoles.
///
/// Images decide how pods behave: one containing `missing` cannot be pulled, one
/// containing `crash` starts and keeps crashing; every other image runs. A pod whose CPU
/// request no ready node can hold stays Pending, unschedulable.
final class FakeCluster: @unchecked Sendable {
    struct Resource: Hashable {
        let group: String
        let version: String
        let name: String
        let kind: String
        let namespaced: Bool
        let verbs: [String]
        var groupVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
        var subresources: [String] = []
    }

    static let resources: [Resource] = [
        Resource(group: "", version: "v1", name: "nodes", kind: "Node", namespaced: false, verbs: ["get", "list", "watch", "patch"]),
        Resource(group: "", version: "v1", name: "namespaces", kind: "Namespace", namespaced: false, verbs: ["get", "list", "watch", "create", "patch", "delete"]),
        Resource(group: "", version: "v1", name: "pods", kind: "Pod", namespaced: true, verbs: ["get", "list", "watch", "create", "patch", "delete"], subresources: ["log"]),
        Resource(group: "", version: "v1", name: "services", kind: "Service", namespaced: true, verbs: ["get", "list", "watch", "create", "patch", "delete"]),
        Resource(group: "", version: "v1", name: "configmaps", kind: "ConfigMap", namespaced: true, verbs: ["get", "list", "watch", "create", "patch", "delete"]),
        Resource(group: "", version: "v1", name: "endpoints", kind: "Endpoints", namespaced: true, verbs: ["get", "list", "watch"]),
        Resource(group: "", version: "v1", name: "persistentvolumes", kind: "PersistentVolume", namespaced: false, verbs: ["get", "list", "watch", "create", "patch", "delete"]),
        Resource(group: "", version: "v1", name: "persistentvolumeclaims", kind: "PersistentVolumeClaim", namespaced: true, verbs: ["get", "list", "watch", "create", "patch", "delete"]),
        Resource(group: "", version: "v1", name: "events", kind: "Event", namespaced: true, verbs: ["get", "list", "watch", "create", "patch", "delete"]),
        Resource(group: "storage.k8s.io", version: "v1", name: "storageclasses", kind: "StorageClass", namespaced: false, verbs: ["get", "list", "watch", "create", "patch", "delete"]),
        Resource(group: "apps", version: "v1", name: "deployments", kind: "Deployment", namespaced: true, verbs: ["get", "list", "watch", "create", "patch", "delete"], subresources: ["scale"]),
        Resource(group: "apps", version: "v1", name: "statefulsets", kind: "StatefulSet", namespaced: true, verbs: ["get", "list", "watch", "create", "patch", "delete"], subresources: ["scale"]),
        Resource(group: "apps", version: "v1", name: "replicasets", kind: "ReplicaSet", namespaced: true, verbs: ["get", "list", "watch"]),
        Resource(group: "batch", version: "v1", name: "jobs", kind: "Job", namespaced: true, verbs: ["get", "list", "watch", "create", "patch", "delete"]),
        Resource(group: "metrics.k8s.io", version: "v1beta1", name: "pods", kind: "PodMetrics", namespaced: true, verbs: ["get", "list"]),
        Resource(group: "networking.k8s.io", version: "v1", name: "networkpolicies", kind: "NetworkPolicy", namespaced: true, verbs: ["get", "list", "watch", "create", "patch", "delete"]),
        Resource(group: "k8s.cni.cncf.io", version: "v1", name: "network-attachment-definitions", kind: "NetworkAttachmentDefinition", namespaced: true,
                 verbs: ["get", "list", "watch", "create", "patch", "delete"]),
    ]

    struct Key: Hashable { let resource: String; let namespace: String; let name: String }
    struct Event { let rv: Int; let resource: String; let type: String; let object: JSONValue }

    let lock = NSLock()
    var rv = 100
    var objects: [Key: JSONValue] = [:]
    /// Field ownership: object → "manager/operation" → leaf paths.
    var managers: [Key: [String: Set<[String]>]] = [:]
    /// When each pod was created (the kubelet starts it `podStartDelay` later).
    var podCreated: [Key: Date] = [:]
    var events: [Event] = []
    /// Watches from a version below this are answered 410 (the history was compacted).
    var compactedBelow = 0
    var watchers: [UUID: (JSONValue) -> Void] = [:]
    /// Every call, as "verb resource" with the user, for tests.
    var calls: [String] = []
    var podSerial = 0
    var serveMetrics = true
    /// Per template hash: when its pods started to exist (for the progress deadline).
    var progressSince: [Key: Date] = [:]
    var podStartDelay: TimeInterval = 0.15

    init() {
        for ns in ["default", "kube-system"] {
            put(Key(resource: "namespaces", namespace: "", name: ns), .object([
                "apiVersion": "v1", "kind": "Namespace", "metadata": .object(["name": .string(ns)]),
            ]), type: "ADDED")
        }
    }

    // MARK: store

    func nextRV() -> Int {
        rv += 1
        return rv
    }

    /// Stores an object with a new resourceVersion and records the event (lock held).
    @discardableResult
    func put(_ key: Key, _ object: JSONValue, type: String) -> JSONValue {
        var o = object
        let v = nextRV()
        o = o.setting(["metadata", "resourceVersion"], .string(String(v)))
        if o["metadata"]?["uid"] == nil { o = o.setting(["metadata", "uid"], .string(UUID().uuidString.lowercased())) }
        if o["metadata"]?["creationTimestamp"] == nil { o = o.setting(["metadata", "creationTimestamp"], JSONValue.timestamp(Date())) }
        if key.namespace.isEmpty == false { o = o.setting(["metadata", "namespace"], .string(key.namespace)) }
        objects[key] = o
        record(key.resource, type, o, v)
        return o
    }

    func remove(_ key: Key) {
        guard let o = objects.removeValue(forKey: key) else { return }
        managers[key] = nil
        podCreated[key] = nil
        let v = nextRV()
        record(key.resource, "DELETED", o.setting(["metadata", "resourceVersion"], .string(String(v))), v)
    }

    func record(_ resource: String, _ type: String, _ object: JSONValue, _ v: Int) {
        let e = Event(rv: v, resource: resource, type: type, object: object)
        events.append(e)
        if events.count > 5000 { events.removeFirst(1000) }
        for w in watchers.values { w(.object(["resource": .string(resource), "type": .string(type), "object": object, "rv": .number(Double(v))])) }
    }

    func objects(_ resource: String, namespace: String?) -> [(Key, JSONValue)] {
        objects.filter { $0.key.resource == resource && (namespace == nil || $0.key.namespace == namespace) }
            .sorted { ($0.key.namespace, $0.key.name) < ($1.key.namespace, $1.key.name) }
            .map { ($0.key, $0.value) }
    }

    // MARK: nodes

    func addNode(_ name: String, cpu: String, memory: String, ready: Bool = true, labels: [String: String] = [:], extra: [String: String] = [:]) {
        var alloc: [String: JSONValue] = ["cpu": .string(cpu), "memory": .string(memory), "pods": "110"]
        for (k, v) in extra { alloc[k] = .string(v) }
        var l = labels
        l["kubernetes.io/hostname"] = name
        lock.withLock {
            put(Key(resource: "nodes", namespace: "", name: name), .object([
                "apiVersion": "v1", "kind": "Node",
                "metadata": .object(["name": .string(name), "labels": .object(l.mapValues(JSONValue.string))]),
                "spec": ready ? .object([:]) : .object(["taints": .array([.object(["key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"])])]),
                "status": .object(["allocatable": .object(alloc), "capacity": .object(alloc),
                                   "conditions": .array([.object(["type": "Ready", "status": .string(ready ? "True" : "False")])])]),
            ]), type: "ADDED")
        }
    }

    func addNamespace(_ name: String, labels: [String: String] = [:]) {
        lock.withLock {
            put(Key(resource: "namespaces", namespace: "", name: name), .object([
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": .object(["name": .string(name), "labels": .object(labels.mapValues(JSONValue.string))]),
            ]), type: "ADDED")
        }
    }
}

extension JSONValue {
    /// A copy with the value at `path` set (objects created on the way), or removed for nil.
    func setting(_ path: [String], _ value: JSONValue?) -> JSONValue {
        guard let first = path.first else { return value ?? .null }
        var o = objectValue ?? [:]
        if path.count == 1 {
            o[first] = value
        } else {
            o[first] = (o[first] ?? .object([:])).setting(Array(path.dropFirst()), value)
        }
        return .object(o)
    }

    func at(_ path: [String]) -> JSONValue? {
        var v: JSONValue? = self
        for p in path { v = v?[p] }
        return v
    }

    /// The leaf paths of an object (lists are atomic leaves).
    func leaves(_ prefix: [String] = []) -> [[String]: JSONValue] {
        guard case .object(let o) = self, !o.isEmpty else { return [prefix: self] }
        var out: [[String]: JSONValue] = [:]
        for (k, v) in o { out.merge(v.leaves(prefix + [k])) { a, _ in a } }
        return out
    }

    /// RFC 7386 merge patch.
    func mergePatched(_ patch: JSONValue) -> JSONValue {
        guard case .object(let p) = patch else { return patch }
        var o = objectValue ?? [:]
        for (k, v) in p {
            if v == .null { o[k] = nil } else { o[k] = (o[k] ?? .null).mergePatched(v) }
        }
        return .object(o)
    }

    var stableHash: String {
        var h: UInt64 = 0xcbf29ce484222325
        for b in serialized() { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return String(String(h, radix: 36).suffix(10))
    }
}
