import Foundation
import GEdgeCore

/// One pod's usage and requests, as an agent reports it (part of hcode 620). Usage is nil
/// when the pod has no metrics yet (starting, or the metrics API has no sample).
public struct PodUsage: Sendable, Hashable {
    public var name: String
    public var node: String?
    public var ready: Bool
    public var cpuMilli: Double?
    public var memory: Double?
    public var cpuRequestMilli: Double
    public var memoryRequest: Double

    public init(name: String, node: String? = nil, ready: Bool, cpuMilli: Double?, memory: Double?, cpuRequestMilli: Double, memoryRequest: Double) {
        self.name = name
        self.node = node
        self.ready = ready
        self.cpuMilli = cpuMilli
        self.memory = memory
        self.cpuRequestMilli = cpuRequestMilli
        self.memoryRequest = memoryRequest
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "name": .string(name), "ready": .bool(ready),
            "cpu_request_milli": .number(cpuRequestMilli), "memory_request": .number(memoryRequest),
        ]
        if let node { o["node"] = .string(node) }
        if let cpuMilli { o["cpu_milli"] = .number(cpuMilli) }
        if let memory { o["memory"] = .number(memory) }
        return .object(o)
    }

    public static func decode(_ v: JSONValue, path: String) throws(MessageDecodingError) -> PodUsage {
        let r = try FieldReader(v, path: path)
        return PodUsage(
            name: try r.string("name"), node: try r.optionalString("node"), ready: try r.optionalBool("ready") ?? false,
            cpuMilli: try r.optionalNumber("cpu_milli"), memory: try r.optionalNumber("memory"),
            cpuRequestMilli: try r.optionalNumber("cpu_request_milli") ?? 0, memoryRequest: try r.optionalNumber("memory_request") ?? 0)
    }
}

/// One workload's pods in one cluster, with the replicas its controller wants.
public struct WorkloadUsage: Sendable, Hashable {
    public var namespace: String
    public var name: String
    public var replicas: Int
    public var pods: [PodUsage]

    public init(namespace: String, name: String, replicas: Int, pods: [PodUsage]) {
        self.namespace = namespace
        self.name = name
        self.replicas = replicas
        self.pods = pods
    }

    public var key: String { "\(namespace)/\(name)" }

    public var json: JSONValue {
        .object(["namespace": .string(namespace), "name": .string(name), "replicas": .number(Double(replicas)), "pods": .array(pods.map(\.json))])
    }
}

/// A cluster's pod metrics (hcode 620, new in this suite): agent → `gedge.pod-metrics`,
/// keyed by cluster, every `agent.metrics.interval`. Only workloads the suite placed or
/// scaled are reported.
public struct PodMetricsReport: Sendable {
    public var cluster: String
    public var reportedAt: Date
    public var workloads: [WorkloadUsage]
    /// A big cluster's report comes in parts (under Kafka's message size): part `part` of `parts`.
    public var part: Int
    public var parts: Int

    public init(cluster: String, reportedAt: Date = Date(), workloads: [WorkloadUsage], part: Int = 0, parts: Int = 1) {
        self.cluster = cluster
        self.reportedAt = reportedAt
        self.workloads = workloads
        self.part = part
        self.parts = parts
    }

    public var json: JSONValue {
        .object([
            "cluster": .string(cluster), "reported_at": .timestamp(reportedAt), "workloads": .array(workloads.map(\.json)),
            "part": .number(Double(part)), "parts": .number(Double(parts)),
        ])
    }

    /// The report split so that no part holds more than `maxPods` pods (a workload is never split).
    public func split(maxPods: Int) -> [PodMetricsReport] {
        var groups: [[WorkloadUsage]] = [[]]
        var count = 0
        for w in workloads {
            if count > 0, count + w.pods.count > maxPods {
                groups.append([])
                count = 0
            }
            groups[groups.count - 1].append(w)
            count += w.pods.count
        }
        return groups.enumerated().map { PodMetricsReport(cluster: cluster, reportedAt: reportedAt, workloads: $1, part: $0, parts: groups.count) }
    }

    public static func decode(_ msg: JSONValue) throws(MessageDecodingError) -> PodMetricsReport {
        let r = try FieldReader(msg, path: "msg")
        var out: [WorkloadUsage] = []
        for (i, w) in (try r.optionalList("workloads") ?? []).enumerated() {
            let path = "msg.workloads[\(i)]"
            let wr = try FieldReader(w, path: path)
            var pods: [PodUsage] = []
            for (j, p) in (try wr.optionalList("pods") ?? []).enumerated() { pods.append(try PodUsage.decode(p, path: "\(path).pods[\(j)]")) }
            out.append(WorkloadUsage(namespace: try wr.string("namespace"), name: try wr.string("name"), replicas: try wr.optionalInt("replicas") ?? pods.count, pods: pods))
        }
        var at = Date()
        if let s = try r.optionalString("reported_at"), let d = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(s) { at = d }
        let parts = max(1, try r.optionalInt("parts") ?? 1)
        let part = try r.optionalInt("part") ?? 0
        guard (0..<parts).contains(part) else { throw MessageDecodingError(.invalidValue, field: "msg.part", reason: "part \(part) of \(parts)") }
        return PodMetricsReport(cluster: try r.string("cluster"), reportedAt: at, workloads: out, part: part, parts: parts)
    }
}

/// Set a workload's CPU and memory requests and limits (hcode 710, new in this suite): the
/// autoscaler's vertical scaling. Wire form `{"request_id","namespace","kind","name",
/// "cpu_request_milli","cpu_limit_milli","memory_request","memory_limit","reply_to"}`; an
/// absent value is left as it is. Kubernetes rolls the pods to the new values.
public struct ResizeCommand: Sendable, Hashable {
    public var requestID: String
    public var namespace: String
    public var kind: String
    public var name: String
    public var cpuRequestMilli: Int64?
    public var cpuLimitMilli: Int64?
    public var memoryRequest: Int64?
    public var memoryLimit: Int64?
    public var replyTo: String

    public init(requestID: String, namespace: String, kind: String = "Deployment", name: String, cpuRequestMilli: Int64? = nil, cpuLimitMilli: Int64? = nil,
                memoryRequest: Int64? = nil, memoryLimit: Int64? = nil, replyTo: String) {
        self.requestID = requestID
        self.namespace = namespace
        self.kind = kind
        self.name = name
        self.cpuRequestMilli = cpuRequestMilli
        self.cpuLimitMilli = cpuLimitMilli
        self.memoryRequest = memoryRequest
        self.memoryLimit = memoryLimit
        self.replyTo = replyTo
    }

    public var msg: JSONValue {
        var o: [String: JSONValue] = [
            "request_id": .string(requestID), "namespace": .string(namespace), "kind": .string(kind), "name": .string(name), "reply_to": .string(replyTo),
        ]
        if let v = cpuRequestMilli { o["cpu_request_milli"] = .number(Double(v)) }
        if let v = cpuLimitMilli { o["cpu_limit_milli"] = .number(Double(v)) }
        if let v = memoryRequest { o["memory_request"] = .number(Double(v)) }
        if let v = memoryLimit { o["memory_limit"] = .number(Double(v)) }
        return .object(o)
    }

    public static func decode(_ msg: JSONValue) throws(MessageDecodingError) -> ResizeCommand {
        let r = try FieldReader(msg, path: "msg")
        try r.rejectUnknown(allowed: ["request_id", "namespace", "kind", "name", "cpu_request_milli", "cpu_limit_milli", "memory_request", "memory_limit", "reply_to"])
        let ns = try r.string("namespace")
        guard KubeNames.isDNSLabel(ns) else { throw MessageDecodingError(.invalidValue, field: "msg.namespace", reason: "'\(ns)' is not a namespace name") }
        let kind = try r.optionalString("kind") ?? "Deployment"
        guard ["Deployment", "StatefulSet"].contains(kind) else {
            throw MessageDecodingError(.invalidValue, field: "msg.kind", reason: "'\(kind)' cannot be resized here; Deployment or StatefulSet")
        }
        func amount(_ key: String) throws(MessageDecodingError) -> Int64? {
            guard let v = try r.optionalNumber(key) else { return nil }
            guard v > 0, v < 1e15 else { throw MessageDecodingError(.invalidValue, field: "msg.\(key)", reason: "must be positive") }
            return Int64(v)
        }
        let c = ResizeCommand(
            requestID: try r.string("request_id"), namespace: ns, kind: kind, name: try r.string("name"),
            cpuRequestMilli: try amount("cpu_request_milli"), cpuLimitMilli: try amount("cpu_limit_milli"),
            memoryRequest: try amount("memory_request"), memoryLimit: try amount("memory_limit"), replyTo: try r.string("reply_to"))
        if let a = c.cpuRequestMilli, let b = c.cpuLimitMilli, b < a {
            throw MessageDecodingError(.invalidValue, field: "msg.cpu_limit_milli", reason: "below the request")
        }
        if let a = c.memoryRequest, let b = c.memoryLimit, b < a {
            throw MessageDecodingError(.invalidValue, field: "msg.memory_limit", reason: "below the request")
        }
        return c
    }
}

/// Offered load on a workload of a simulated cluster (hcode 790, new in this suite; only
/// simulated agents act on it): the total CPU the workload's users demand across all
/// clusters, and each pod's memory. A cluster's pods share its part of the CPU (its traffic
/// share, set with each scale command) evenly.
public struct SimulatedLoad: Sendable, Hashable {
    public var namespace: String
    public var name: String
    public var cpuMilli: Double
    public var memory: Double?

    public init(namespace: String, name: String, cpuMilli: Double, memory: Double? = nil) {
        self.namespace = namespace
        self.name = name
        self.cpuMilli = cpuMilli
        self.memory = memory
    }

    public var msg: JSONValue {
        var o: [String: JSONValue] = ["namespace": .string(namespace), "name": .string(name), "cpu_milli": .number(cpuMilli)]
        if let memory { o["memory"] = .number(memory) }
        return .object(o)
    }

    public static func decode(_ msg: JSONValue) throws(MessageDecodingError) -> SimulatedLoad {
        let r = try FieldReader(msg, path: "msg")
        try r.rejectUnknown(allowed: ["namespace", "name", "cpu_milli", "memory"])
        guard let cpu = try r.optionalNumber("cpu_milli"), cpu >= 0 else {
            throw MessageDecodingError(.invalidValue, field: "msg.cpu_milli", reason: "a CPU demand in millicores, 0 or more")
        }
        return SimulatedLoad(namespace: try r.string("namespace"), name: try r.string("name"), cpuMilli: cpu, memory: try r.optionalNumber("memory"))
    }
}
