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

    public struct Trigger: Sendable, Hashable {
        public enum Mode: String, Sendable { case queueLength = "QueueLength", messageRate = "MessageRate" }
        public var host: String
        /// `amqp` (queue depth by passive declare), `http` (the management API), `auto`.
        public var `protocol`: String
        public var mode: Mode
        public var value: Double
        public var activationValue: Double
        public var queueName: String
        public var vhostName: String?
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

    public static func == (a: ScaledObject, b: ScaledObject) -> Bool {
        a.name == b.name && a.namespace == b.namespace && a.target == b.target && a.pollingInterval == b.pollingInterval
            && a.cooldownPeriod == b.cooldownPeriod && a.minReplicaCount == b.minReplicaCount && a.maxReplicaCount == b.maxReplicaCount
            && a.idleReplicaCount == b.idleReplicaCount && a.fallback?.failureThreshold == b.fallback?.failureThreshold
            && a.fallback?.replicas == b.fallback?.replicas && a.scaleUp == b.scaleUp && a.scaleDown == b.scaleDown && a.triggers == b.triggers
    }

    public func hash(into h: inout Hasher) {
        h.combine(namespace)
        h.combine(name)
    }

    public var key: String { "\(namespace)/\(name)" }

    /// Every ScaledObject in a YAML or JSON text (several documents allowed).
    /// `defaultQueue` stands in for a trigger without `queueName` (KEDA requires one; the
    /// FaaS seed's object has none).
    public static func parseAll(_ text: String, defaultQueue: String? = nil) throws(MessageDecodingError) -> [ScaledObject] {
        let docs = try YAMLText.documents(text, path: "")
        var out: [ScaledObject] = []
        for (i, d) in docs.enumerated() where d != .null {
            out.append(try decode(d, path: docs.count > 1 ? "[\(i)]" : "", defaultQueue: defaultQueue))
        }
        return out
    }

    public static func decode(_ value: JSONValue, path: String = "", defaultQueue: String? = nil) throws(MessageDecodingError) -> ScaledObject {
        func p(_ s: String) -> String { path.isEmpty ? s : "\(path).\(s)" }
        let r = try FieldReader(value, path: path)
        let apiVersion = try r.string("apiVersion")
        let kind = try r.string("kind")
        guard apiVersion == "keda.sh/v1alpha1", kind == "ScaledObject" else {
            throw MessageDecodingError(.invalidValue, field: p("kind"), reason: "expected keda.sh/v1alpha1 ScaledObject, got \(apiVersion) \(kind)")
        }
        guard let meta = try r.optionalObject("metadata") else {
            throw MessageDecodingError(.missingField, field: p("metadata"), reason: "required: name and namespace")
        }
        let name = try meta.string("name")
        let namespace = try meta.optionalString("namespace") ?? "default"
        guard let spec = try r.optionalObject("spec") else { throw MessageDecodingError(.missingField, field: p("spec"), reason: "required") }
        var notes: [String] = []

        guard let ref = try spec.optionalObject("scaleTargetRef") else {
            throw MessageDecodingError(.missingField, field: spec.childPath("scaleTargetRef"), reason: "required: the workload to scale")
        }
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
            fallback = (try f.optionalInt("failureThreshold") ?? 3, try f.optionalInt("replicas") ?? minR)
        }

        var up = Rules.defaultUp, down = Rules.defaultDown
        if let adv = try spec.optionalObject("advanced"), let hpa = try adv.optionalObject("horizontalPodAutoscalerConfig") {
            let behavior = try hpa.optionalObject("behavior")
            if let b = behavior {
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

        guard let trigList = try spec.optionalList("triggers"), !trigList.isEmpty else {
            throw MessageDecodingError(.missingField, field: spec.childPath("triggers"), reason: "at least one rabbitmq trigger")
        }
        var triggers: [Trigger] = []
        for (i, t) in trigList.enumerated() {
            let tr = try FieldReader(t, path: "\(spec.childPath("triggers"))[\(i)]")
            let type = try tr.string("type")
            guard type == "rabbitmq" else {
                throw MessageDecodingError(.invalidValue, field: tr.childPath("type"), reason: "only rabbitmq triggers are handled here, got '\(type)'")
            }
            guard let m = try tr.optionalObject("metadata") else { throw MessageDecodingError(.missingField, field: tr.childPath("metadata"), reason: "required") }
            let modeName = try m.optionalString("mode") ?? "QueueLength"
            guard let mode = Trigger.Mode(rawValue: modeName) else {
                throw MessageDecodingError(.invalidValue, field: m.childPath("mode"), reason: "'\(modeName)' is not QueueLength or MessageRate")
            }
            let given = try m.optionalNumber("value")
            let legacy = try m.optionalNumber("queueLength")
            let valueText = given ?? legacy ?? 20
            guard valueText > 0 else { throw MessageDecodingError(.invalidValue, field: m.childPath("value"), reason: "must be above 0") }
            let activation = try m.optionalNumber("activationValue") ?? 0
            guard let host = try m.optionalString("host") else {
                throw MessageDecodingError(.missingField, field: m.childPath("host"), reason: "required: amqp:// or http:// URL of the broker")
            }
            let proto = try m.optionalString("protocol") ?? "auto"
            guard ["amqp", "http", "auto"].contains(proto) else {
                throw MessageDecodingError(.invalidValue, field: m.childPath("protocol"), reason: "'\(proto)' is not amqp, http or auto")
            }
            // As KEDA reads it: protocol http means host is the management API's URL.
            let hostScheme = host.prefix(while: { $0 != ":" }).lowercased()
            if proto == "http" && !["http", "https"].contains(hostScheme) {
                throw MessageDecodingError(.invalidValue, field: m.childPath("host"), reason: "protocol http takes the management API's http(s):// URL, got '\(hostScheme)://'")
            }
            if proto == "amqp" && !["amqp", "amqps"].contains(hostScheme) {
                throw MessageDecodingError(.invalidValue, field: m.childPath("host"), reason: "protocol amqp takes an amqp(s):// URL, got '\(hostScheme)://'")
            }
            var queue = try m.optionalString("queueName")
            if queue == nil, let d = defaultQueue {
                queue = d
                notes.append("\(m.childPath("queueName")) missing: using '\(d)' (faas.queue.default)")
            }
            guard let queue, !queue.isEmpty else {
                throw MessageDecodingError(.missingField, field: m.childPath("queueName"), reason: "required: the queue to watch (or set faas.queue.default)")
            }
            triggers.append(Trigger(host: host, protocol: proto, mode: mode, value: valueText, activationValue: activation,
                                    queueName: queue, vhostName: try m.optionalString("vhostName")))
        }
        return ScaledObject(
            name: name, namespace: namespace, target: target, pollingInterval: polling, cooldownPeriod: cooldown,
            minReplicaCount: minR, maxReplicaCount: maxR, idleReplicaCount: idle, fallback: fallback.map { (failureThreshold: $0.0, replicas: $0.1) },
            scaleUp: up, scaleDown: down, triggers: triggers, notes: notes)
    }
}
