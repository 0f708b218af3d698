import Foundation
import GEdgeCore
import GEdgePlacement
import GEdgeScaling

/// How one workload scales: replica bounds, metric targets, behavior, vertical scaling and
/// overflow over the edge. Wire form (the gateway's `/v1/autoscaling` and the `spec` column):
///
/// ```json
/// {"namespace": "shop", "name": "web", "request_id": "svc-1", "minReplicas": 1, "maxReplicas": 10,
///  "metrics": [{"type": "cpu", "targetUtilization": 60},
///              {"type": "memory", "targetUtilization": 70},
///              {"type": "prometheus", "query": "sum(rate(http_requests_total[1m]))", "targetAverageValue": 100},
///              {"type": "rabbitmq", "queue": "jobs", "targetAverageValue": 20},
///              {"type": "kafka-lag", "topic": "events", "group": "workers", "targetAverageValue": 1000}],
///  "behavior": {"scaleUp": {"stabilizationWindowSeconds": 180, "policies": [...], "selectPolicy": "Max"},
///               "scaleDown": {"stabilizationWindowSeconds": 300}},
///  "vertical": {"enabled": true, "minCPU": "100m", "maxCPU": "2", "minMemory": "64Mi", "maxMemory": "2Gi"},
///  "overflow": true}
/// ```
public struct AutoscalePolicy: Sendable, Hashable {
    public enum Metric: Sendable, Hashable {
        case cpu(targetUtilization: Double)
        case memory(targetUtilization: Double)
        /// A Prometheus instant query; its value (summed over a vector) against a total
        /// target (`targetValue`) or a per-pod one (`targetAverageValue`).
        case prometheus(query: String, target: ExternalTarget)
        /// A RabbitMQ queue's ready messages.
        case rabbitmq(queue: String, url: String?, target: ExternalTarget)
        /// A Kafka consumer group's lag on a topic.
        case kafkaLag(topic: String, group: String, target: ExternalTarget)

        public var name: String {
            switch self {
            case .cpu: "cpu"
            case .memory: "memory"
            case .prometheus: "prometheus"
            case .rabbitmq(let q, _, _): "rabbitmq:\(q)"
            case .kafkaLag(let t, let g, _): "kafka-lag:\(g)/\(t)"
            }
        }
    }

    public enum ExternalTarget: Sendable, Hashable {
        case value(Double)
        case averageValue(Double)
    }

    public struct Vertical: Sendable, Hashable {
        public var enabled = false
        public var minCPUMilli: Int64 = 50
        public var maxCPUMilli: Int64 = 4000
        public var minMemory: Int64 = 32 << 20
        public var maxMemory: Int64 = 8 << 30
        /// Added to the observed 90th percentile.
        public var headroomPercent: Double = 15
        /// A change smaller than this (of the current request) is not made: no flapping.
        public var minChangePercent: Double = 20
        public init() {}
    }

    public var namespace: String
    public var name: String
    public var requestID: String
    public var projectName: String
    public var minReplicas: Int
    public var maxReplicas: Int
    public var metrics: [Metric]
    public var scaleUp: ScalingRules
    public var scaleDown: ScalingRules
    public var vertical: Vertical
    public var overflow: Bool

    public var key: String { "\(namespace)/\(name)" }

    /// GS-Engine's windows: scale-out after 3 minutes, scale-in after 5; Kubernetes' rates.
    public static let defaultUp = ScalingRules(stabilizationWindowSeconds: 180, policies: ScalingRules.defaultUp.policies, selectPolicy: .max)
    public static let defaultDown = ScalingRules(stabilizationWindowSeconds: 300, policies: ScalingRules.defaultDown.policies, selectPolicy: .max)

    public init(namespace: String, name: String, requestID: String, projectName: String, minReplicas: Int, maxReplicas: Int, metrics: [Metric],
                scaleUp: ScalingRules = defaultUp, scaleDown: ScalingRules = defaultDown, vertical: Vertical = Vertical(), overflow: Bool = true) {
        self.namespace = namespace
        self.name = name
        self.requestID = requestID
        self.projectName = projectName
        self.minReplicas = minReplicas
        self.maxReplicas = maxReplicas
        self.metrics = metrics
        self.scaleUp = scaleUp
        self.scaleDown = scaleDown
        self.vertical = vertical
        self.overflow = overflow
    }

    // MARK: wire form

    public var json: JSONValue {
        func target(_ t: ExternalTarget) -> (String, JSONValue) {
            switch t {
            case .value(let v): ("targetValue", .number(v))
            case .averageValue(let v): ("targetAverageValue", .number(v))
            }
        }
        let metrics: [JSONValue] = metrics.map { m in
            switch m {
            case .cpu(let u): return .object(["type": "cpu", "targetUtilization": .number(u)])
            case .memory(let u): return .object(["type": "memory", "targetUtilization": .number(u)])
            case .prometheus(let q, let t):
                let (k, v) = target(t)
                return .object(["type": "prometheus", "query": .string(q), k: v])
            case .rabbitmq(let q, let url, let t):
                let (k, v) = target(t)
                var o: [String: JSONValue] = ["type": "rabbitmq", "queue": .string(q), k: v]
                if let url { o["url"] = .string(url) }
                return .object(o)
            case .kafkaLag(let topic, let group, let t):
                let (k, v) = target(t)
                return .object(["type": "kafka-lag", "topic": .string(topic), "group": .string(group), k: v])
            }
        }
        return .object([
            "namespace": .string(namespace), "name": .string(name), "request_id": .string(requestID), "project": .string(projectName),
            "minReplicas": .number(Double(minReplicas)), "maxReplicas": .number(Double(maxReplicas)), "metrics": .array(metrics),
            "behavior": .object(["scaleUp": scaleUp.json, "scaleDown": scaleDown.json]),
            "vertical": .object([
                "enabled": .bool(vertical.enabled), "minCPU": .string("\(vertical.minCPUMilli)m"), "maxCPU": .string("\(vertical.maxCPUMilli)m"),
                "minMemory": .string("\(vertical.minMemory)"), "maxMemory": .string("\(vertical.maxMemory)"),
                "headroomPercent": .number(vertical.headroomPercent), "minChangePercent": .number(vertical.minChangePercent),
            ]),
            "overflow": .bool(overflow),
        ])
    }

    /// Decodes and checks a policy. `project` is the caller's (the gateway checks it owns the
    /// request); a `project` field in the body is ignored in favour of it.
    public static func decode(_ v: JSONValue, project: String?) throws(MessageDecodingError) -> AutoscalePolicy {
        if let at = v.pathOfNUL("") { throw MessageDecodingError(.invalidValue, field: at, reason: "a NUL character, which cannot be stored") }
        let r = try FieldReader(v, path: "")
        try r.rejectUnknown(allowed: ["namespace", "name", "request_id", "project", "minReplicas", "maxReplicas", "metrics", "behavior", "vertical", "overflow"])
        let ns = try r.string("namespace")
        guard KubeNames.isDNSLabel(ns) else { throw MessageDecodingError(.invalidValue, field: "namespace", reason: "'\(ns)' is not a namespace name") }
        let name = try r.string("name")
        guard KubeNames.isDNSLabel(name) else { throw MessageDecodingError(.invalidValue, field: "name", reason: "'\(name)' is not a workload name (RFC 1123 label)") }
        let requestID = try r.string("request_id")
        guard RequestID.isValid(requestID) else { throw MessageDecodingError(.invalidValue, field: "request_id", reason: "not a request ID") }
        let minR = try r.optionalInt("minReplicas") ?? 1
        guard let maxR = try r.optionalInt("maxReplicas") else { throw MessageDecodingError(.missingField, field: "maxReplicas", reason: "required") }
        guard minR >= 1 else { throw MessageDecodingError(.invalidValue, field: "minReplicas", reason: "must be at least 1") }
        guard maxR >= minR, maxR <= 1000 else { throw MessageDecodingError(.invalidValue, field: "maxReplicas", reason: "must be at least minReplicas (\(minR)) and at most 1000") }
        var metrics: [Metric] = []
        for (i, m) in (try r.optionalList("metrics") ?? []).enumerated() { metrics.append(try metric(m, path: "metrics[\(i)]")) }
        var vertical = Vertical()
        if let vr = try r.optionalObject("vertical") { vertical = try verticalSpec(vr) }
        if metrics.isEmpty && !vertical.enabled {
            metrics = [.cpu(targetUtilization: 80)]
        }
        var up = defaultUp, down = defaultDown
        if let b = try r.optionalObject("behavior") {
            try b.rejectUnknown(allowed: ["scaleUp", "scaleDown"])
            func rules(_ key: String, _ base: ScalingRules) throws(MessageDecodingError) -> ScalingRules {
                guard let r = try b.optionalObject(key) else { return base }
                try r.rejectUnknown(allowed: ["stabilizationWindowSeconds", "policies", "selectPolicy"])
                return try ScalingRules.decode(r, base: base)
            }
            up = try rules("scaleUp", defaultUp)
            down = try rules("scaleDown", defaultDown)
        }
        let bodyProject = try r.optionalString("project") ?? ""
        return AutoscalePolicy(
            namespace: ns, name: name, requestID: requestID, projectName: project ?? bodyProject,
            minReplicas: minR, maxReplicas: maxR, metrics: metrics, scaleUp: up, scaleDown: down, vertical: vertical,
            overflow: try r.optionalBool("overflow") ?? true)
    }

    static func metric(_ v: JSONValue, path: String) throws(MessageDecodingError) -> Metric {
        let r = try FieldReader(v, path: path)
        let type = try r.string("type")
        func utilization() throws(MessageDecodingError) -> Double {
            try r.rejectUnknown(allowed: ["type", "targetUtilization"])
            guard let u = try r.optionalNumber("targetUtilization"), u > 0, u <= 100 else {
                throw MessageDecodingError(.invalidValue, field: r.childPath("targetUtilization"), reason: "a percentage above 0, at most 100")
            }
            return u
        }
        func target() throws(MessageDecodingError) -> ExternalTarget {
            let value = try r.optionalNumber("targetValue"), average = try r.optionalNumber("targetAverageValue")
            switch (value, average) {
            case (let v?, nil) where v > 0: return .value(v)
            case (nil, let a?) where a > 0: return .averageValue(a)
            default:
                throw MessageDecodingError(.invalidValue, field: r.childPath("targetAverageValue"), reason: "one of targetValue or targetAverageValue, above 0")
            }
        }
        switch type {
        case "cpu": return .cpu(targetUtilization: try utilization())
        case "memory": return .memory(targetUtilization: try utilization())
        case "prometheus":
            try r.rejectUnknown(allowed: ["type", "query", "targetValue", "targetAverageValue"])
            return .prometheus(query: try r.string("query"), target: try target())
        case "rabbitmq":
            try r.rejectUnknown(allowed: ["type", "queue", "url", "targetValue", "targetAverageValue"])
            return .rabbitmq(queue: try r.string("queue"), url: try r.optionalString("url"), target: try target())
        case "kafka-lag":
            try r.rejectUnknown(allowed: ["type", "topic", "group", "targetValue", "targetAverageValue"])
            return .kafkaLag(topic: try r.string("topic"), group: try r.string("group"), target: try target())
        default:
            throw MessageDecodingError(.invalidValue, field: r.childPath("type"), reason: "'\(type)' is not cpu, memory, prometheus, rabbitmq or kafka-lag")
        }
    }

    static func verticalSpec(_ r: FieldReader) throws(MessageDecodingError) -> Vertical {
        try r.rejectUnknown(allowed: ["enabled", "minCPU", "maxCPU", "minMemory", "maxMemory", "headroomPercent", "minChangePercent"])
        var v = Vertical()
        v.enabled = try r.optionalBool("enabled") ?? true
        func quantity(_ key: String, milli: Bool) throws(MessageDecodingError) -> Int64? {
            guard let raw = r.fields[key] else { return nil }
            let text: String
            switch raw {
            case .string(let s): text = s
            case .number(let d): text = String(d)
            default: throw MessageDecodingError(.wrongType, field: r.childPath(key), reason: "expected a quantity")
            }
            guard let q = milli ? Quantity.milli(text) : Quantity.value(text), q > 0 else {
                throw MessageDecodingError(.invalidValue, field: r.childPath(key), reason: "'\(text)' is not a quantity")
            }
            return q
        }
        v.minCPUMilli = try quantity("minCPU", milli: true) ?? v.minCPUMilli
        v.maxCPUMilli = try quantity("maxCPU", milli: true) ?? v.maxCPUMilli
        v.minMemory = try quantity("minMemory", milli: false) ?? v.minMemory
        v.maxMemory = try quantity("maxMemory", milli: false) ?? v.maxMemory
        guard v.maxCPUMilli >= v.minCPUMilli else { throw MessageDecodingError(.invalidValue, field: r.childPath("maxCPU"), reason: "below minCPU") }
        guard v.maxMemory >= v.minMemory else { throw MessageDecodingError(.invalidValue, field: r.childPath("maxMemory"), reason: "below minMemory") }
        if let h = try r.optionalNumber("headroomPercent") {
            guard (0...200).contains(h) else { throw MessageDecodingError(.invalidValue, field: r.childPath("headroomPercent"), reason: "0 to 200") }
            v.headroomPercent = h
        }
        if let c = try r.optionalNumber("minChangePercent") {
            guard (1...100).contains(c) else { throw MessageDecodingError(.invalidValue, field: r.childPath("minChangePercent"), reason: "1 to 100") }
            v.minChangePercent = c
        }
        return v
    }
}
