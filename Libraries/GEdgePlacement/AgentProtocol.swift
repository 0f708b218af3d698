import Foundation
import GEdgeCore

/// An apply command from the scheduler to a cluster's agent (hcode 210, 310 or 400, lcode 1,
/// by the policy that chose the placement), keyed by request ID.
///
/// `msg`: `{"request_id","attempt","action":"apply"|"delete","namespace","workload","node",
/// "replicas","deadline_ms","reply_to"}`. The agent refuses to start after `deadline_ms` (the
/// scheduler's lease) and removes what it applied if it finishes after it, so that a request
/// whose lease expired never ends up placed twice.
public struct ApplyCommand: Sendable, Hashable {
    public enum Action: String, Sendable { case apply, delete }
    public var requestID: String
    public var attempt: Int
    public var action: Action
    public var namespace: String
    public var workload: JSONValue
    public var node: String?
    public var replicas: Int
    public var deadline: Date?
    public var replyTo: String

    public init(
        requestID: String, attempt: Int, action: Action = .apply, namespace: String, workload: JSONValue, node: String?, replicas: Int,
        deadline: Date?, replyTo: String = Topics.schedulerReplies
    ) {
        self.requestID = requestID
        self.attempt = attempt
        self.action = action
        self.namespace = namespace
        self.workload = workload
        self.node = node
        self.replicas = replicas
        self.deadline = deadline
        self.replyTo = replyTo
    }

    public var msg: JSONValue {
        var f: [String: JSONValue] = [
            "request_id": .string(requestID), "attempt": .number(Double(attempt)), "action": .string(action.rawValue),
            "namespace": .string(namespace), "workload": workload, "replicas": .number(Double(replicas)), "reply_to": .string(replyTo),
        ]
        if let node { f["node"] = .string(node) }
        if let deadline { f["deadline_ms"] = .number((deadline.timeIntervalSince1970 * 1000).rounded()) }
        return .object(f)
    }

    public static func decode(_ msg: JSONValue) throws(MessageDecodingError) -> ApplyCommand {
        let r = try FieldReader(msg, path: "msg")
        try r.rejectUnknown(allowed: ["request_id", "attempt", "action", "namespace", "workload", "node", "replicas", "deadline_ms", "reply_to"])
        let actionName = try r.optionalString("action") ?? "apply"
        guard let action = Action(rawValue: actionName) else {
            throw MessageDecodingError(.invalidValue, field: "msg.action", reason: "'\(actionName)' is not apply or delete")
        }
        // A delete may leave the namespace out: the agent finds the objects by request ID.
        let ns = action == .delete ? (try r.optionalString("namespace") ?? "") : try r.string("namespace")
        guard KubeNames.isDNSLabel(ns) || (action == .delete && ns.isEmpty) else {
            throw MessageDecodingError(.invalidValue, field: "msg.namespace", reason: "'\(ns)' is not a valid namespace name")
        }
        return ApplyCommand(
            requestID: try r.string("request_id"), attempt: try r.optionalInt("attempt") ?? 1, action: action, namespace: ns,
            workload: action == .delete ? (r.fields["workload"] ?? .null) : try r.required("workload"), node: try r.optionalString("node"), replicas: try r.optionalInt("replicas") ?? 1,
            deadline: try r.optionalNumber("deadline_ms").map { Date(timeIntervalSince1970: $0 / 1000) },
            replyTo: try r.optionalString("reply_to") ?? Topics.schedulerReplies)
    }
}

/// An agent's answer to an apply command (same hcode, lcode 2).
public struct ApplyOutcome: Sendable, Hashable {
    public var requestID: String
    public var attempt: Int
    public var cluster: String
    public var action: ApplyCommand.Action
    public var ok: Bool
    public var reason: String
    /// Where the pods run, when known: pod name to node.
    public var pods: [String: String]

    public init(requestID: String, attempt: Int, cluster: String, action: ApplyCommand.Action = .apply, ok: Bool, reason: String, pods: [String: String] = [:]) {
        self.requestID = requestID
        self.attempt = attempt
        self.cluster = cluster
        self.action = action
        self.ok = ok
        self.reason = reason
        self.pods = pods
    }

    public var msg: JSONValue {
        .object([
            "request_id": .string(requestID), "attempt": .number(Double(attempt)), "cluster": .string(cluster),
            "action": .string(action.rawValue), "ok": .bool(ok), "reason": .string(reason),
            "pods": .object(pods.mapValues(JSONValue.string)),
        ])
    }

    public static func decode(_ msg: JSONValue) throws(MessageDecodingError) -> ApplyOutcome {
        let r = try FieldReader(msg, path: "msg")
        let actionName = try r.optionalString("action") ?? "apply"
        guard let action = ApplyCommand.Action(rawValue: actionName) else {
            throw MessageDecodingError(.invalidValue, field: "msg.action", reason: "'\(actionName)' is not apply or delete")
        }
        guard let ok = try r.optionalBool("ok") else {
            throw MessageDecodingError(.missingField, field: "msg.ok", reason: "required field 'ok' is missing")
        }
        return ApplyOutcome(
            requestID: try r.string("request_id"), attempt: try r.optionalInt("attempt") ?? 1, cluster: try r.string("cluster"),
            action: action, ok: ok, reason: try r.optionalString("reason") ?? "", pods: try r.optionalStringMap("pods") ?? [:])
    }
}

/// The hcode of the apply command for a policy, as GS-Scheduler numbered them.
public func applyCode(for policy: SchedulingPolicy) -> HCode {
    switch policy {
    case .lowLatency: .applyLowLatency
    case .mostRequested, .mostAllocated: .applyMostRequested
    case .selectedCluster, .setClusters: .applySelectedCluster
    }
}

public enum KubeNames {
    /// RFC 1123 label: what namespaces and most object names must be.
    public static func isDNSLabel(_ s: String) -> Bool {
        guard (1...63).contains(s.utf8.count), let f = s.utf8.first, let l = s.utf8.last else { return false }
        func alnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
        return alnum(f) && alnum(l) && s.utf8.allSatisfy { alnum($0) || $0 == 45 }
    }

    /// RFC 1123 subdomain: what most object names (pods, volumes, storage classes, events)
    /// must be: dot-separated labels, 253 bytes at most.
    public static func isDNSSubdomain(_ s: String) -> Bool {
        guard (1...253).contains(s.utf8.count) else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNSLabel(String($0)) }
    }

    /// The namespace a request's objects go to: `parameters.namespace` when it is a DNS
    /// label (the gateway sets it from a service definition, after checking the project
    /// owns it), otherwise the project's own.
    public static func namespace(project: String, parameters: JSONValue) -> String {
        if case .string(let ns)? = parameters["namespace"], isDNSLabel(ns) { return ns }
        return namespace(forProject: project)
    }

    /// The one namespace the manifests name (`metadata.namespace`, in a List's items too),
    /// or nil when none names one or they name several.
    public static func manifestNamespace(_ workload: JSONValue) -> String? {
        var found: Set<String> = []
        func visit(_ m: JSONValue, depth: Int) {
            if case .array(let list) = m { for x in list { visit(x, depth: depth) }; return }
            if m["kind"]?.stringValue == "List", depth < 2, let items = m["items"] { visit(items, depth: depth + 1) }
            if let ns = m["metadata"]?["namespace"]?.stringValue { found.insert(ns) }
        }
        visit(workload, depth: 0)
        return found.count == 1 ? found.first : nil
    }

    /// `parameters` with `namespace` taken from the manifests when the request names none, as
    /// `kubectl apply -f` does without `-n`: an object that names its namespace goes there.
    /// Whether the project owns it is admission's to check.
    public static func parameters(_ parameters: JSONValue, namespaceFrom workload: JSONValue) -> JSONValue {
        guard parameters["namespace"] == nil || parameters["namespace"] == .null, let ns = manifestNamespace(workload) else { return parameters }
        var p: [String: JSONValue] = [:]
        if case .object(let o) = parameters { p = o } else if parameters != .null { return parameters }
        p["namespace"] = .string(ns)
        return .object(p)
    }

    /// A project name made into a namespace name: lower case, `[a-z0-9-]`, 63 at most.
    public static func namespace(forProject p: String) -> String {
        var out = ""
        for c in p.lowercased().unicodeScalars {
            let ok = (c >= "a" && c <= "z") || (c >= "0" && c <= "9")
            let ch: Character = ok ? Character(c) : "-"
            if ch == "-", out.last == "-" || out.isEmpty { continue }
            out.append(ch)
        }
        while out.last == "-" { out.removeLast() }
        return String(out.prefix(63)).trimmingCharacters(in: CharacterSet(charactersIn: "-")).isEmpty ? "default" : String(out.prefix(63))
    }
}

/// Scale a workload on a cluster (hcode 700, new in this suite): the faas-trigger's and the
/// autoscaler's way to act. Wire form `{"request_id","namespace","kind","name","replicas",
/// "busy_pod_ips","traffic_share","reply_to"}`; `busy_pod_ips` names pods still working,
/// removed last on scale-in (pod deletion cost); `traffic_share` (0 to 1) is the part of the
/// workload's traffic this cluster takes when it runs in several (over the edge): a
/// Kubernetes agent writes it to the annotation `gedge.io/traffic-share` for the traffic
/// layer, a simulated one splits its offered load by it.
public struct ScaleCommand: Sendable, Hashable {
    public var requestID: String
    public var namespace: String
    public var kind: String
    public var name: String
    public var replicas: Int
    public var busyPodIPs: [String]
    public var trafficShare: Double?
    public var replyTo: String

    public init(requestID: String, namespace: String, kind: String = "Deployment", name: String, replicas: Int, busyPodIPs: [String] = [], trafficShare: Double? = nil, replyTo: String) {
        self.trafficShare = trafficShare
        self.requestID = requestID
        self.namespace = namespace
        self.kind = kind
        self.name = name
        self.replicas = replicas
        self.busyPodIPs = busyPodIPs
        self.replyTo = replyTo
    }

    public var msg: JSONValue {
        var o: [String: JSONValue] = [
            "request_id": .string(requestID), "namespace": .string(namespace), "kind": .string(kind), "name": .string(name),
            "replicas": .number(Double(replicas)), "busy_pod_ips": .array(busyPodIPs.map(JSONValue.string)), "reply_to": .string(replyTo),
        ]
        if let trafficShare { o["traffic_share"] = .number(trafficShare) }
        return .object(o)
    }

    public static func decode(_ msg: JSONValue) throws(MessageDecodingError) -> ScaleCommand {
        let r = try FieldReader(msg, path: "msg")
        try r.rejectUnknown(allowed: ["request_id", "namespace", "kind", "name", "replicas", "busy_pod_ips", "traffic_share", "reply_to"])
        let ns = try r.string("namespace")
        guard KubeNames.isDNSLabel(ns) else { throw MessageDecodingError(.invalidValue, field: "msg.namespace", reason: "'\(ns)' is not a namespace name") }
        let kind = try r.optionalString("kind") ?? "Deployment"
        guard ["Deployment", "StatefulSet", "ReplicaSet"].contains(kind) else {
            throw MessageDecodingError(.invalidValue, field: "msg.kind", reason: "'\(kind)' has no scale subresource here; Deployment, StatefulSet or ReplicaSet")
        }
        guard let replicas = try r.optionalInt("replicas"), (0...10_000).contains(replicas) else {
            throw MessageDecodingError(.invalidValue, field: "msg.replicas", reason: "0 to 10000 replicas")
        }
        let share = try r.optionalNumber("traffic_share")
        if let share, !(0...1).contains(share) {
            throw MessageDecodingError(.invalidValue, field: "msg.traffic_share", reason: "a fraction from 0 to 1")
        }
        return ScaleCommand(
            requestID: try r.string("request_id"), namespace: ns, kind: kind, name: try r.string("name"), replicas: replicas,
            busyPodIPs: try r.optionalStringList("busy_pod_ips") ?? [], trafficShare: share, replyTo: try r.string("reply_to"))
    }
}
