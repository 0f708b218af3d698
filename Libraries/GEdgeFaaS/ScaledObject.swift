import Foundation
import GEdgeCore
import GEdgeScaling
import GEdgeServiceSpec

/// A KEDA ScaledObject (`keda.sh/v1alpha1`) with KEDA's defaults, rabbitmq triggers only.
public struct ScaledObject: Sendable, Hashable {
    public struct Target: Sendable, Hashable {
        public var apiVersion = "apps/v1"
        public var kind = "Deployment"
        public var name: String
        public var envSourceContainerName: String?
    }

    /// HPA behavior of one direction (autoscaling/v2 `HPAScalingRules`).
    public typealias Rules = ScalingRules

    /// A parameter's value: given, or read from the faas-trigger's environment when it is
    /// used (`hostFromEnv`, a TriggerAuthentication's `env`), as KEDA reads the target
    /// container's environment.
    public enum Parameter: Sendable, Hashable {
        case literal(String)
        case environment(String)

        public func resolve(_ env: [String: String] = ProcessInfo.processInfo.environment) -> String? {
            switch self {
            case .literal(let s): return s
            case .environment(let name): return env[name]
            }
        }
    }

    public struct Trigger: Sendable, Hashable {
        public enum Mode: String, Sendable { case queueLength = "QueueLength", messageRate = "MessageRate" }
        public enum Operation: String, Sendable { case sum, max, avg }
        public var host: Parameter
        /// `amqp` (queue depth by passive declare) or `http` (the management API); `auto`
        /// resolved from the host's scheme when the host is known.
        public var `protocol`: String
        public var mode: Mode
        public var value: Double
        public var activationValue: Double
        public var queueName: String
        public var vhostName: String?
        public var username: Parameter?
        public var password: Parameter?
        /// `queueName` is a regular expression (management API), combined by `operation`.
        public var useRegex = false
        public var operation: Operation = .sum
        /// Count ready messages only (management API).
        public var excludeUnacknowledged = false
        public var unsafeSsl = false
        public var pageSize = 100
        /// The management API's timeout for this trigger.
        public var timeout: Duration?

        /// The broker URL with the credentials the trigger's authentication gives; nil when an
        /// environment variable it names is not set.
        public func resolvedHost(_ env: [String: String] = ProcessInfo.processInfo.environment) -> String? {
            guard let h = host.resolve(env) else { return nil }
            guard let u = username?.resolve(env), let p = password?.resolve(env), var c = URLComponents(string: h) else { return h }
            c.user = u
            c.password = p
            return c.string ?? h
        }

        public init(host: Parameter, protocol: String, mode: Mode, value: Double, activationValue: Double, queueName: String, vhostName: String? = nil) {
            self.host = host
            self.protocol = `protocol`
            self.mode = mode
            self.value = value
            self.activationValue = activationValue
            self.queueName = queueName
            self.vhostName = vhostName
        }
    }

    public var name: String
    public var namespace: String
    public var target: Target
    public var pollingInterval: Int
    public var cooldownPeriod: Int
    public var minReplicaCount: Int
    public var maxReplicaCount: Int
    public var idleReplicaCount: Int?
    public var fallback: (failureThreshold: Int, replicas: Int)?
    public var scaleUp: Rules
    public var scaleDown: Rules
    public var triggers: [Trigger]
    /// Things in the document that were read leniently, to log.
    public var notes: [String]
    /// When the object is deleted, the workload goes back to the replicas it had before the
    /// trigger first scaled it.
    public var restoreToOriginalReplicaCount = false

    public static func == (a: ScaledObject, b: ScaledObject) -> Bool {
        a.name == b.name && a.namespace == b.namespace && a.target == b.target && a.pollingInterval == b.pollingInterval
            && a.cooldownPeriod == b.cooldownPeriod && a.minReplicaCount == b.minReplicaCount && a.maxReplicaCount == b.maxReplicaCount
            && a.idleReplicaCount == b.idleReplicaCount && a.fallback?.failureThreshold == b.fallback?.failureThreshold
            && a.fallback?.replicas == b.fallback?.replicas && a.scaleUp == b.scaleUp && a.scaleDown == b.scaleDown && a.triggers == b.triggers
            && a.restoreToOriginalReplicaCount == b.restoreToOriginalReplicaCount
    }

    public func hash(into h: inout Hasher) {
        h.combine(namespace)
        h.combine(name)
    }

    public var key: String { "\(namespace)/\(name)" }

    /// Every ScaledObject in a YAML or JSON text (several documents allowed), with the
    /// Secrets, TriggerAuthentications and ClusterTriggerAuthentications beside them.
    /// `defaultQueue` stands in for a trigger without `queueName` (KEDA requires one; the
    /// FaaS seed's object has none).
    public static func parseAll(_ text: String, defaultQueue: String? = nil) throws(MessageDecodingError) -> [ScaledObject] {
        try parseSet(try YAMLText.documents(text, path: "").filter { $0 != .null }, defaultQueue: defaultQueue).map(\.object)
    }

    /// The ScaledObjects of a set of documents, each with its definition: the object alone, or
    /// the object and the authentication documents of the set (what is stored, and read again).
    public static func parseSet(_ docs: [JSONValue], defaultQueue: String? = nil) throws(MessageDecodingError) -> [(object: ScaledObject, definition: JSONValue)] {
        let auth = try KEDAAuthentication(docs)
        var out: [(ScaledObject, JSONValue)] = []
        for (i, d) in docs.enumerated() where d["kind"]?.stringValue == "ScaledObject" {
            let object = try decode(d, path: docs.count > 1 ? "[\(i)]" : "", defaultQueue: defaultQueue, auth: auth)
            out.append((object, auth.documents.isEmpty ? d : .array([d] + auth.documents)))
        }
        guard !out.isEmpty else {
            throw MessageDecodingError(.missingField, field: "", reason: "no ScaledObject among the documents")
        }
        return out
    }

    /// A stored definition: one ScaledObject, or a list of it and its authentication documents.
    public static func decodeDefinition(_ definition: JSONValue, defaultQueue: String? = nil) throws(MessageDecodingError) -> ScaledObject {
        if case .array(let docs) = definition { return try parseSet(docs, defaultQueue: defaultQueue)[0].object }
        return try decode(definition, defaultQueue: defaultQueue)
    }

    static let specFields: Set<String> = [
        "scaleTargetRef", "pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount", "idleReplicaCount", "fallback", "advanced", "triggers",
    ]
    /// KEDA's fields the suite does not act on: refused by name, never ignored.
    static let unsupported: [String: String] = [
        "initialCooldownPeriod": "KEDA's spec.initialCooldownPeriod",
        "scalingModifiers": "KEDA's advanced.scalingModifiers (composite metrics)",
        "usernameFromEnv": "KEDA's usernameFromEnv (use a TriggerAuthentication's env)",
        "passwordFromEnv": "KEDA's passwordFromEnv (use a TriggerAuthentication's env)",
        "metricName": "KEDA's deprecated metricName",
        "includeUnacked": "KEDA 1.x's includeUnacked (use protocol http; excludeUnacknowledged is its inverse)",
        "apiHost": "KEDA 1.x's apiHost (use host with protocol http)",
    ]

    static func refuseUnknown(_ r: FieldReader, allowed: Set<String>) throws(MessageDecodingError) {
        for key in r.fields.keys.sorted() where !allowed.contains(key) {
            if let what = unsupported[key] {
                throw MessageDecodingError(.unknownField, field: r.childPath(key), reason: "\(what) is not supported here")
            }
            throw MessageDecodingError(.unknownField, field: r.childPath(key), reason: "'\(key)' is not a field of a KEDA rabbitmq ScaledObject")
        }
    }

    public static func decode(_ value: JSONValue, path: String = "", defaultQueue: String? = nil) throws(MessageDecodingError) -> ScaledObject {
        try decode(value, path: path, defaultQueue: defaultQueue, auth: KEDAAuthentication())
    }

    static func decode(_ value: JSONValue, path: String, defaultQueue: String?, auth: KEDAAuthentication) throws(MessageDecodingError) -> ScaledObject {
        func p(_ s: String) -> String { path.isEmpty ? s : "\(path).\(s)" }
        let r = try FieldReader(value, path: path)
        try refuseUnknown(r, allowed: ["apiVersion", "kind", "metadata", "spec", "status"])
        let apiVersion = try r.string("apiVersion")
        let kind = try r.string("kind")
        guard apiVersion == "keda.sh/v1alpha1", kind == "ScaledObject" else {
            throw MessageDecodingError(.invalidValue, field: p("kind"), reason: "expected keda.sh/v1alpha1 ScaledObject, got \(apiVersion) \(kind)")
        }
        guard let meta = try r.optionalObject("metadata") else {
            throw MessageDecodingError(.missingField, field: p("metadata"), reason: "required: name and namespace")
        }
        try KEDAAuthentication.checkMetadata(meta)
        let name = try meta.string("name")
        let namespace = try meta.optionalString("namespace") ?? "default"
        guard let spec = try r.optionalObject("spec") else { throw MessageDecodingError(.missingField, field: p("spec"), reason: "required") }
        try refuseUnknown(spec, allowed: specFields)
        var notes: [String] = []

        guard let ref = try spec.optionalObject("scaleTargetRef") else {
            throw MessageDecodingError(.missingField, field: spec.childPath("scaleTargetRef"), reason: "required: the workload to scale")
        }
        try refuseUnknown(ref, allowed: ["apiVersion", "kind", "name", "envSourceContainerName"])
        let target = Target(
            apiVersion: try ref.optionalString("apiVersion") ?? "apps/v1", kind: try ref.optionalString("kind") ?? "Deployment",
            name: try ref.string("name"), envSourceContainerName: try ref.optionalString("envSourceContainerName"))
        guard ["Deployment", "StatefulSet"].contains(target.kind) else {
            throw MessageDecodingError(.invalidValue, field: ref.childPath("kind"), reason: "'\(target.kind)' is not Deployment or StatefulSet")
        }

        func nonNegative(_ key: String, _ def: Int) throws(MessageDecodingError) -> Int {
            let v = try spec.optionalInt(key) ?? def
            guard v >= 0 else { throw MessageDecodingError(.invalidValue, field: spec.childPath(key), reason: "must not be negative") }
            return v
        }
        let polling = try nonNegative("pollingInterval", 30)
        let cooldown = try nonNegative("cooldownPeriod", 300)
        let minR = try nonNegative("minReplicaCount", 0)
        let maxR = try nonNegative("maxReplicaCount", 100)
        guard maxR >= minR, maxR >= 1 else {
            throw MessageDecodingError(.invalidValue, field: spec.childPath("maxReplicaCount"), reason: "must be at least 1 and at least minReplicaCount (\(minR))")
        }
        let idle = try spec.optionalInt("idleReplicaCount")
        if let idle, idle < 0 || idle >= minR {
            throw MessageDecodingError(.invalidValue, field: spec.childPath("idleReplicaCount"), reason: "must be at least 0 and less than minReplicaCount (\(minR))")
        }
        var fallback: (Int, Int)?
        if let f = try spec.optionalObject("fallback") {
            try refuseUnknown(f, allowed: ["failureThreshold", "replicas"])
            fallback = (try f.optionalInt("failureThreshold") ?? 3, try f.optionalInt("replicas") ?? minR)
        }

        var up = Rules.defaultUp, down = Rules.defaultDown
        var restore = false
        if let adv = try spec.optionalObject("advanced") {
            try refuseUnknown(adv, allowed: ["horizontalPodAutoscalerConfig", "restoreToOriginalReplicaCount"])
            restore = try adv.optionalBool("restoreToOriginalReplicaCount") ?? false
            if let hpa = try adv.optionalObject("horizontalPodAutoscalerConfig") {
                try refuseUnknown(hpa, allowed: ["name", "behavior", "scaleDown", "policies"])
                let behavior = try hpa.optionalObject("behavior")
                if let b = behavior {
                    try refuseUnknown(b, allowed: ["scaleUp", "scaleDown"])
                    if let u = try b.optionalObject("scaleUp") { up = try Rules.decode(u, base: Rules.defaultUp) }
                    if let d = try b.optionalObject("scaleDown") { down = try Rules.decode(d, base: Rules.defaultDown) }
                }
                // The FaaS seed's object indents scaleDown and policies one level too far out,
                // beside `behavior`: read them as the behavior they were meant to be.
                if let d = try hpa.optionalObject("scaleDown") {
                    down = try Rules.decode(d, base: down)
                    notes.append("\(hpa.childPath("scaleDown")) read as behavior.scaleDown")
                }
                if let policies = try hpa.optionalList("policies") {
                    down.policies = try Rules.decodePolicies(policies, path: hpa.childPath("policies"))
                    notes.append("\(hpa.childPath("policies")) read as behavior.scaleDown.policies")
                }
            }
        }

        guard let trigList = try spec.optionalList("triggers"), !trigList.isEmpty else {
            throw MessageDecodingError(.missingField, field: spec.childPath("triggers"), reason: "at least one rabbitmq trigger")
        }
        var triggers: [Trigger] = []
        for (i, t) in trigList.enumerated() {
            let tr = try FieldReader(t, path: "\(spec.childPath("triggers"))[\(i)]")
            try refuseUnknown(tr, allowed: ["type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"])
            let type = try tr.string("type")
            guard type == "rabbitmq" else {
                throw MessageDecodingError(.invalidValue, field: tr.childPath("type"), reason: "only rabbitmq triggers are handled here, got '\(type)'")
            }
            if let mt = try tr.optionalString("metricType"), mt != "AverageValue" {
                throw MessageDecodingError(.invalidValue, field: tr.childPath("metricType"), reason: "metricType '\(mt)' is not supported here; AverageValue (KEDA's default) is")
            }
            _ = try tr.optionalBool("useCachedMetrics")
            guard let m = try tr.optionalObject("metadata") else { throw MessageDecodingError(.missingField, field: tr.childPath("metadata"), reason: "required") }
            var params: [String: (Parameter, String)] = [:]
            if let a = try tr.optionalObject("authenticationRef") {
                try refuseUnknown(a, allowed: ["name", "kind"])
                let kind = try a.optionalString("kind") ?? "TriggerAuthentication"
                params = try auth.parameters(kind: kind, name: try a.string("name"), namespace: namespace, field: a.childPath("name"))
            }
            triggers.append(try decodeTrigger(m, params: params, defaultQueue: defaultQueue, notes: &notes))
        }
        return ScaledObject(
            name: name, namespace: namespace, target: target, pollingInterval: polling, cooldownPeriod: cooldown,
            minReplicaCount: minR, maxReplicaCount: maxR, idleReplicaCount: idle, fallback: fallback.map { (failureThreshold: $0.0, replicas: $0.1) },
            scaleUp: up, scaleDown: down, triggers: triggers, notes: notes, restoreToOriginalReplicaCount: restore)
    }

    static let triggerFields: Set<String> = [
        "host", "hostFromEnv", "protocol", "mode", "value", "activationValue", "queueName", "vhostName", "queueLength",
        "useRegex", "operation", "excludeUnacknowledged", "unsafeSsl", "pageSize", "timeout",
    ]

    /// One rabbitmq trigger's metadata, validated as KEDA's scaler validates it
    /// (pkg/scalers/rabbitmq_scaler.go). `params` are the authentication's parameters
    /// (`host`, `username`, `password`, `vhostName`, `protocol`), each with where it came from.
    static func decodeTrigger(_ m: FieldReader, params: [String: (Parameter, String)], defaultQueue: String?, notes: inout [String]) throws(MessageDecodingError) -> Trigger {
        try refuseUnknown(m, allowed: triggerFields)
        // Metadata values are strings in KEDA; YAML numbers and booleans are read as the same.
        func text(_ key: String) throws(MessageDecodingError) -> String? {
            switch m.fields[key] {
            case nil, .null?: return nil
            case .string(let s)?: return s
            case .number(let d)?: return d.rounded() == d ? String(Int64(d)) : String(d)
            case .bool(let b)?: return b ? "true" : "false"
            case let v?: throw MessageDecodingError(.wrongType, field: m.childPath(key), reason: "expected a string, got \(v.kindName)")
            }
        }
        func number(_ key: String) throws(MessageDecodingError) -> Double? {
            guard let t = try text(key) else { return nil }
            guard let d = Double(t), d.isFinite else { throw MessageDecodingError(.invalidValue, field: m.childPath(key), reason: "'\(t)' is not a number") }
            return d
        }
        func flag(_ key: String) throws(MessageDecodingError) -> Bool {
            guard let t = try text(key) else { return false }
            switch t.lowercased() {
            case "true": return true
            case "false": return false
            default: throw MessageDecodingError(.invalidValue, field: m.childPath(key), reason: "'\(t)' is not true or false")
            }
        }
        // host: trigger metadata, then the authentication, then hostFromEnv (KEDA's order).
        var host: Parameter?
        var hostField = m.childPath("host")
        if let h = try text("host") { host = .literal(h) } else if let (v, from) = params["host"] { host = v; hostField = from } else if let e = try text("hostFromEnv") {
            host = .environment(e)
            hostField = m.childPath("hostFromEnv")
        }
        guard let host else {
            throw MessageDecodingError(.missingField, field: m.childPath("host"), reason: "required: host, hostFromEnv or a TriggerAuthentication's host")
        }
        var proto = try text("protocol") ?? params["protocol"].flatMap { $0.0.resolve() } ?? "auto"
        guard ["amqp", "http", "auto"].contains(proto) else {
            throw MessageDecodingError(.invalidValue, field: m.childPath("protocol"), reason: "the protocol has to be either amqp, http, or auto but is '\(proto)'")
        }
        if case .literal(let h) = host {
            let scheme = h.prefix(while: { $0 != ":" }).lowercased()
            let known = ["amqp", "amqps", "http", "https"]
            guard known.contains(scheme), h.contains("://") else {
                throw MessageDecodingError(.invalidValue, field: hostField, reason: "unknown host URL scheme '\(scheme)': amqp(s):// or http(s)://")
            }
            let schemeProto = scheme.hasPrefix("amqp") ? "amqp" : "http"
            if proto == "auto" { proto = schemeProto }
            if proto != schemeProto {
                throw MessageDecodingError(.invalidValue, field: hostField, reason: "protocol \(proto) takes a\(proto == "http" ? " management API http(s)" : "n amqp(s)")://` URL, got '\(scheme)://'")
            }
        }
        // KEDA reads 0 as not given.
        let legacy = try number("queueLength").flatMap { $0 == 0 ? nil : $0 }
        let modeName = try text("mode")
        let given = try number("value").flatMap { $0 == 0 ? nil : $0 }
        let mode: Trigger.Mode
        let value: Double
        switch (legacy, modeName, given) {
        case (nil, nil, nil):
            (mode, value) = (.queueLength, 20)
        case (let q?, nil, nil):
            (mode, value) = (.queueLength, q)
        case (.some, _, _):
            throw MessageDecodingError(.invalidValue, field: m.childPath("queueLength"), reason: "queueLength is deprecated; use mode and value")
        case (nil, nil, .some):
            throw MessageDecodingError(.missingField, field: m.childPath("mode"), reason: "mode must be specified")
        case (nil, .some, nil):
            throw MessageDecodingError(.missingField, field: m.childPath("value"), reason: "value must be specified")
        case (nil, let name?, let v?):
            guard let known = Trigger.Mode(rawValue: name) else {
                let kedaOnly = ["DeliverGetRate", "PublishedToDeliveredRatio", "ExpectedQueueConsumptionTime"]
                throw MessageDecodingError(.invalidValue, field: m.childPath("mode"),
                                           reason: kedaOnly.contains(name) ? "KEDA's mode \(name) is not supported here; QueueLength or MessageRate" : "'\(name)' is not QueueLength or MessageRate")
            }
            (mode, value) = (known, v)
        }
        guard value > 0 else { throw MessageDecodingError(.invalidValue, field: m.childPath(legacy != nil ? "queueLength" : "value"), reason: "must be above 0") }
        let activation = try number("activationValue") ?? 0
        guard activation >= 0 else { throw MessageDecodingError(.invalidValue, field: m.childPath("activationValue"), reason: "must not be negative") }
        var queue = try text("queueName")
        if queue == nil, let d = defaultQueue {
            queue = d
            notes.append("\(m.childPath("queueName")) missing: using '\(d)' (faas.queue.default)")
        }
        guard let queue, !queue.isEmpty else {
            throw MessageDecodingError(.missingField, field: m.childPath("queueName"), reason: "required: the queue to watch (or set faas.queue.default)")
        }
        var t = Trigger(host: host, protocol: proto, mode: mode, value: value, activationValue: activation, queueName: queue,
                        vhostName: try text("vhostName") ?? params["vhostName"].flatMap { $0.0.resolve() })
        t.username = params["username"]?.0
        t.password = params["password"]?.0
        if (t.username == nil) != (t.password == nil) {
            throw MessageDecodingError(.missingField, field: params["username"]?.1 ?? params["password"]?.1 ?? m.childPath("host"), reason: "username and password must be given together")
        }
        t.useRegex = try flag("useRegex")
        t.excludeUnacknowledged = try flag("excludeUnacknowledged")
        t.unsafeSsl = try flag("unsafeSsl")
        if let op = try text("operation") {
            guard let o = Trigger.Operation(rawValue: op) else {
                throw MessageDecodingError(.invalidValue, field: m.childPath("operation"), reason: "operation mode \(op) must be one of sum, avg, max")
            }
            t.operation = o
        }
        if let ps = try number("pageSize") {
            guard ps >= 1, ps.rounded() == ps, ps <= 10_000 else { throw MessageDecodingError(.invalidValue, field: m.childPath("pageSize"), reason: "pageSize should be 1 or greater (at most 10000)") }
            t.pageSize = Int(ps)
        }
        if let raw = try text("timeout") {
            // Milliseconds, as KEDA's docs write it ("1000"), or a duration ("5s").
            let ms: Double?
            if let n = Double(raw) { ms = n } else if let d = ConfigReader.parseDuration(raw) { ms = Double(d.nanoseconds) / 1e6 } else { ms = nil }
            guard let ms, ms > 0, ms <= 600_000 else {
                throw MessageDecodingError(.invalidValue, field: m.childPath("timeout"), reason: "'\(raw)' is not a timeout in milliseconds (1-600000)")
            }
            t.timeout = .milliseconds(Int64(ms))
        }
        // What KEDA accepts only with the management API.
        let httpOnly: [(Bool, String, String)] = [
            (mode == .messageRate, "mode", "protocol \(proto) not supported; must be HTTP to use trigger mode MessageRate"),
            (t.useRegex, "useRegex", "configure useRegex=true only with HTTP protocol"),
            (t.excludeUnacknowledged, "excludeUnacknowledged", "configure excludeUnacknowledged=true only with HTTP protocol"),
            (t.timeout != nil, "timeout", "AMQP protocol doesn't support custom timeouts"),
        ]
        for (on, key, why) in httpOnly where on && proto == "amqp" {
            throw MessageDecodingError(.invalidValue, field: m.childPath(key), reason: why)
        }
        return t
    }
}
