import Foundation
import GEdgeCore

/// What an agent lists for the gateway (hcode 550): a cluster's objects of one kind, a page at
/// a time, or one object by name. Every item is a summary of fixed fields (`Inventory*`
/// below), never the object itself: no Secrets, no environment, no annotations.
public enum InventoryKind: String, CaseIterable, Sendable {
    case pods, deployments, persistentvolumes, persistentvolumeclaims, storageclasses, events

    public var namespaced: Bool { self != .persistentvolumes && self != .storageclasses }

    /// kubectl's names: plural, singular and short (`po`, `deploy`, `pv`, `pvc`, `sc`, `ev`).
    public static func named(_ s: String) -> InventoryKind? {
        switch s.lowercased() {
        case "pods", "pod", "po": .pods
        case "deployments", "deployment", "deploy": .deployments
        case "persistentvolumes", "persistentvolume", "pv": .persistentvolumes
        case "persistentvolumeclaims", "persistentvolumeclaim", "pvc": .persistentvolumeclaims
        case "storageclasses", "storageclass", "sc": .storageclasses
        case "events", "event", "ev": .events
        default: nil
        }
    }

    /// The Kubernetes kind and API version of the objects.
    public var kubernetes: (apiVersion: String, kind: String) {
        switch self {
        case .pods: ("v1", "Pod")
        case .deployments: ("apps/v1", "Deployment")
        case .persistentvolumes: ("v1", "PersistentVolume")
        case .persistentvolumeclaims: ("v1", "PersistentVolumeClaim")
        case .storageclasses: ("storage.k8s.io/v1", "StorageClass")
        case .events: ("v1", "Event")
        }
    }
}

/// A request for a page of objects: `msg` `{request_id, kind, namespace?, name?, object_kind?,
/// object_name?, limit, continue?, reply_to}`. `name` asks for one object; for events,
/// `object_kind` and `object_name` ask for one object's events.
public struct InventoryQuery: Sendable, Hashable {
    public static let maxLimit = 500
    public var kind: InventoryKind
    public var namespace: String?
    public var name: String?
    public var objectKind: String?
    public var objectName: String?
    public var limit: Int
    public var continueToken: String?

    public init(kind: InventoryKind, namespace: String? = nil, name: String? = nil, objectKind: String? = nil, objectName: String? = nil,
                limit: Int = 100, continueToken: String? = nil) {
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.objectKind = objectKind
        self.objectName = objectName
        self.limit = limit
        self.continueToken = continueToken
    }

    public var msg: [String: JSONValue] {
        var m: [String: JSONValue] = ["kind": .string(kind.rawValue), "limit": .number(Double(limit))]
        if let namespace { m["namespace"] = .string(namespace) }
        if let name { m["name"] = .string(name) }
        if let objectKind { m["object_kind"] = .string(objectKind) }
        if let objectName { m["object_name"] = .string(objectName) }
        if let continueToken { m["continue"] = .string(continueToken) }
        return m
    }

    public static func decode(_ msg: JSONValue) throws(MessageDecodingError) -> InventoryQuery {
        let r = try FieldReader(msg, path: "msg")
        try r.rejectUnknown(allowed: ["request_id", "reply_to", "kind", "namespace", "name", "object_kind", "object_name", "limit", "continue"])
        let k = try r.string("kind")
        guard let kind = InventoryKind(rawValue: k) else {
            throw MessageDecodingError(.invalidValue, field: "msg.kind", reason: "'\(k)' is not one of \(InventoryKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let namespace = try r.optionalString("namespace")
        if let namespace, !KubeNames.isDNSLabel(namespace) {
            throw MessageDecodingError(.invalidValue, field: "msg.namespace", reason: "'\(namespace)' is not a namespace name")
        }
        if namespace != nil, !kind.namespaced {
            throw MessageDecodingError(.invalidValue, field: "msg.namespace", reason: "\(kind.rawValue) belong to no namespace")
        }
        let name = try r.optionalString("name")
        if let name, !KubeNames.isDNSSubdomain(name) {
            throw MessageDecodingError(.invalidValue, field: "msg.name", reason: "'\(name)' is not an object name")
        }
        let objectKind = try r.optionalString("object_kind"), objectName = try r.optionalString("object_name")
        if objectKind != nil || objectName != nil {
            guard kind == .events else { throw MessageDecodingError(.invalidValue, field: "msg.object_kind", reason: "only events are listed for an object") }
            guard let objectKind, let objectName, objectKind.count <= 63, objectKind.allSatisfy({ $0.isASCII && $0.isLetter }), KubeNames.isDNSSubdomain(objectName) else {
                throw MessageDecodingError(.invalidValue, field: "msg.object_name", reason: "an object is a kind and a name")
            }
        }
        let limit = try r.optionalInt("limit") ?? 100
        guard (1...maxLimit).contains(limit) else { throw MessageDecodingError(.invalidValue, field: "msg.limit", reason: "limit is 1 to \(maxLimit)") }
        let token = try r.optionalString("continue")
        if let token, token.utf8.count > 4096 { throw MessageDecodingError(.invalidValue, field: "msg.continue", reason: "a continue token is at most 4096 bytes") }
        return InventoryQuery(kind: kind, namespace: namespace, name: name, objectKind: objectKind, objectName: objectName, limit: limit,
                              continueToken: token?.isEmpty == true ? nil : token)
    }
}

/// A page: the items and, when more remain, the token for the next page.
public struct InventoryPage: Sendable {
    public var items: [JSONValue]
    public var continueToken: String?
    public init(items: [JSONValue], continueToken: String? = nil) {
        self.items = items
        self.continueToken = continueToken
    }
}

/// The summaries an agent answers with, one shape per kind whatever the driver.
public enum InventoryItem {
    static func put(_ o: inout [String: JSONValue], _ k: String, _ v: String?) { if let v, !v.isEmpty { o[k] = .string(v) } }

    /// `{namespace, name, node, pod_ip, host_ip, phase, ready: "1/2", restarts, started_at,
    /// waiting_reason, owner}`.
    public static func pod(namespace: String, name: String, node: String?, podIP: String?, hostIP: String?, phase: String,
                           readyContainers: Int, containers: Int, restarts: Int, startedAt: String?, waitingReason: String?, owner: String?) -> JSONValue {
        var o: [String: JSONValue] = [
            "namespace": .string(namespace), "name": .string(name), "phase": .string(phase),
            "ready": .string("\(readyContainers)/\(containers)"), "restarts": .number(Double(restarts)),
        ]
        put(&o, "node", node); put(&o, "pod_ip", podIP); put(&o, "host_ip", hostIP)
        put(&o, "started_at", startedAt); put(&o, "waiting_reason", waitingReason); put(&o, "owner", owner)
        return .object(o)
    }

    /// `{namespace, name, replicas, ready, available, updated, conditions: [{type, status,
    /// reason, message}], images}`.
    public static func deployment(namespace: String, name: String, replicas: Int, ready: Int, available: Int, updated: Int,
                                  conditions: [JSONValue], images: [String], createdAt: String?) -> JSONValue {
        var o: [String: JSONValue] = [
            "namespace": .string(namespace), "name": .string(name), "replicas": .number(Double(replicas)), "ready": .number(Double(ready)),
            "available": .number(Double(available)), "updated": .number(Double(updated)), "conditions": .array(conditions),
            "images": .array(images.map(JSONValue.string)),
        ]
        put(&o, "created_at", createdAt)
        return .object(o)
    }

    public static func condition(type: String, status: String, reason: String?, message: String?) -> JSONValue {
        var o: [String: JSONValue] = ["type": .string(type), "status": .string(status)]
        put(&o, "reason", reason); put(&o, "message", message.map { String($0.prefix(1024)) })
        return .object(o)
    }

    /// `{name, capacity, access_modes, reclaim_policy, status, claim, storage_class}`.
    public static func persistentVolume(name: String, capacity: String?, accessModes: [String], reclaimPolicy: String?, status: String?,
                                        claim: String?, storageClass: String?) -> JSONValue {
        var o: [String: JSONValue] = ["name": .string(name), "access_modes": .array(accessModes.map(JSONValue.string))]
        put(&o, "capacity", capacity); put(&o, "reclaim_policy", reclaimPolicy); put(&o, "status", status)
        put(&o, "claim", claim); put(&o, "storage_class", storageClass)
        return .object(o)
    }

    /// `{namespace, name, status, volume, capacity, access_modes, storage_class}`.
    public static func persistentVolumeClaim(namespace: String, name: String, status: String?, volume: String?, capacity: String?,
                                             accessModes: [String], storageClass: String?) -> JSONValue {
        var o: [String: JSONValue] = ["namespace": .string(namespace), "name": .string(name), "access_modes": .array(accessModes.map(JSONValue.string))]
        put(&o, "status", status); put(&o, "volume", volume); put(&o, "capacity", capacity); put(&o, "storage_class", storageClass)
        return .object(o)
    }

    /// `{name, provisioner, reclaim_policy, volume_binding_mode, allow_volume_expansion, default}`.
    public static func storageClass(name: String, provisioner: String, reclaimPolicy: String?, bindingMode: String?, expansion: Bool,
                                    isDefault: Bool) -> JSONValue {
        var o: [String: JSONValue] = ["name": .string(name), "provisioner": .string(provisioner), "allow_volume_expansion": .bool(expansion),
                                      "default": .bool(isDefault)]
        put(&o, "reclaim_policy", reclaimPolicy); put(&o, "volume_binding_mode", bindingMode)
        return .object(o)
    }

    /// `{namespace, type, reason, message, count, first_at, last_at, object: {kind, name}}`.
    public static func event(namespace: String, name: String, type: String, reason: String, message: String, count: Int, firstAt: String?, lastAt: String?,
                             objectKind: String, objectName: String) -> JSONValue {
        var o: [String: JSONValue] = [
            "namespace": .string(namespace), "name": .string(name), "type": .string(type), "reason": .string(reason),
            "message": .string(String(message.prefix(1024))), "count": .number(Double(count)),
            "object": .object(["kind": .string(objectKind), "name": .string(objectName)]),
        ]
        put(&o, "first_at", firstAt); put(&o, "last_at", lastAt)
        return .object(o)
    }

    /// The sort key of an item (namespace, name) and the page of `items` after `token`.
    public static func page(_ items: [JSONValue], limit: Int, after token: String?) -> InventoryPage {
        func key(_ v: JSONValue) -> String { "\(v["namespace"]?.stringValue ?? "")/\(v["name"]?.stringValue ?? "")" }
        let sorted = items.sorted { key($0) < key($1) }
        let after = token.flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
        let rest = after.map { a in sorted.filter { key($0) > a } } ?? sorted
        let page = Array(rest.prefix(limit))
        let next = rest.count > limit ? page.last.map { Data(key($0).utf8).base64EncodedString() } : nil
        return InventoryPage(items: page, continueToken: next)
    }
}
