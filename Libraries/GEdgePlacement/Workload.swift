import Foundation
import GEdgeCore

/// GS-Engine's `scheduleHint.preferred`: where the workload would rather run.
public enum PreferredLocation: String, Sendable, Hashable {
    /// The requester's own cluster.
    case local
    /// A cloud cluster.
    case cloud
    /// Another edge cluster, near the requester.
    case neighbor
}

/// One `matchExpressions` entry of a required node-affinity term.
public struct NodeSelectorRequirement: Sendable, Hashable {
    public enum Operator: String, Sendable { case `in` = "In", notIn = "NotIn", exists = "Exists", doesNotExist = "DoesNotExist", gt = "Gt", lt = "Lt" }
    public var key: String
    public var op: Operator
    public var values: [String]

    public init(key: String, op: Operator, values: [String] = []) {
        self.key = key
        self.op = op
        self.values = values
    }

    public func matches(_ labels: [String: String]) -> Bool {
        let v = labels[key]
        switch op {
        case .in: return v.map(values.contains) ?? false
        case .notIn: return v.map { !values.contains($0) } ?? true
        case .exists: return v != nil
        case .doesNotExist: return v == nil
        case .gt, .lt:
            guard let v, let n = Int64(v), let bound = values.first.flatMap({ Int64($0) }) else { return false }
            return op == .gt ? n > bound : n < bound
        }
    }
}

/// An accelerator the workload needs, matched against the accelerator monitor's labels
/// (`accelerator.gedge.io/<kind>.count`, `.model`, `.memory`).
public struct AcceleratorRequirement: Sendable, Hashable {
    /// `nvidia-gpu`, `amd-gpu`, `intel-gpu`, `jetson`, `coral-usb`, `coral-pcie`.
    public let kind: String
    public let count: Int
    /// Matched case-insensitively as a substring of the model label (`A100`, `Orin`).
    public let model: String?
    public let minMemoryMiB: Int?
    // Label keys and the model as a label value, worked out once rather than per node.
    let countKey: String
    let modelKey: String
    let memoryKey: String
    let modelNeedle: [UInt8]?

    public init(kind: String, count: Int = 1, model: String? = nil, minMemoryMiB: Int? = nil) {
        self.kind = kind
        self.count = count
        self.model = model
        self.minMemoryMiB = minMemoryMiB
        let base = Self.labelPrefix + kind
        countKey = base + ".count"
        modelKey = base + ".model"
        memoryKey = base + ".memory"
        modelNeedle = model.map { Array(String($0.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }).utf8) }
    }

    public static let labelPrefix = "accelerator.gedge.io/"

    /// Whether `needle` (lowercase) occurs in `text`, ASCII letters compared without case.
    /// Label values are ASCII (letters, digits, `-`, `_`, `.`); this runs once per node
    /// with an accelerator in every decision, so it allocates nothing.
    static func contains(_ text: String, lowercased needle: [UInt8]) -> Bool {
        guard !needle.isEmpty else { return true }
        var text = text
        return text.withUTF8 { hay in
            guard hay.count >= needle.count else { return false }
            for start in 0...(hay.count - needle.count) {
                var i = 0
                while i < needle.count {
                    var b = hay[start + i]
                    if b >= 65 && b <= 90 { b += 32 }
                    if b != needle[i] { break }
                    i += 1
                }
                if i == needle.count { return true }
            }
            return false
        }
    }

    public func matches(_ labels: [String: String]) -> Bool {
        guard let c = labels[countKey].flatMap(Int.init), c >= count else { return false }
        if let modelNeedle {
            guard let m = labels[modelKey], Self.contains(m, lowercased: modelNeedle) else { return false }
        }
        if let minMemoryMiB {
            guard let mem = labels[memoryKey].flatMap(Int.init), mem >= minMemoryMiB else { return false }
        }
        return true
    }
}

/// The data networks a workload's pods attach to (Multus's pod annotation), each needing
/// nodes labelled `network.gedge.io/<name>=true`.
public enum NetworkRequirement {
    public static let annotation = "k8s.v1.cni.cncf.io/networks"
    public static let nodeLabelPrefix = "network.gedge.io/"

    /// The attachment names of the annotation, in either of Multus's forms: a JSON list of
    /// selection elements (`[{"name": "data", "namespace": "ns", "interface": "net1"}]`) or
    /// a comma-separated list (`ns/data@net1,other`).
    public static let maxNetworks = 16

    public static func names(_ annotation: String, path: String) throws(MessageDecodingError) -> [String] {
        let names = try parse(annotation, path: path)
        guard names.count <= maxNetworks else {
            throw MessageDecodingError(.invalidValue, field: path, reason: "at most \(maxNetworks) networks, got \(names.count)")
        }
        return names
    }

    static func parse(_ annotation: String, path: String) throws(MessageDecodingError) -> [String] {
        let text = annotation.trimmingCharacters(in: .whitespaces)
        if text.hasPrefix("[") {
            let items: JSONValue
            do { items = try JSONValue.parse(Array(text.utf8)) } catch {
                throw MessageDecodingError(.invalidValue, field: path, reason: "not a JSON list of network selection elements")
            }
            var out: [String] = []
            for (i, item) in (items.arrayValue ?? []).enumerated() {
                guard let n = item["name"]?.stringValue, !n.isEmpty else {
                    throw MessageDecodingError(.missingField, field: "\(path)[\(i)].name", reason: "a network selection element names its attachment")
                }
                out.append(n)
            }
            return out
        }
        return text.split(separator: ",").map { element in
            var e = element.trimmingCharacters(in: .whitespaces)
            if let at = e.firstIndex(of: "@") { e = String(e[..<at]) }
            if let slash = e.lastIndex(of: "/") { e = String(e[e.index(after: slash)...]) }
            return e
        }.filter { !$0.isEmpty }
    }
}

/// What placing a workload asks of a node, read from its manifests and the request's parameters.
public struct WorkloadRequirements: Sendable, Hashable {
    /// Effective requests of one replica (Kubernetes rules: the larger of the containers' sum
    /// and the largest init container; limits stand in for missing requests).
    public var perReplica: Resources
    public var replicas: Int
    public var nodeSelector: [String: String]
    /// Required node affinity: any one term must match, every expression of it.
    public var affinityTerms: [[NodeSelectorRequirement]]
    public var tolerations: [Toleration]
    public var accelerator: AcceleratorRequirement?
    /// Node labels the data networks need (`network.gedge.io/<name>`), from Multus's annotation.
    public var networkLabels: [String] = []
    public var preferred: PreferredLocation?
    /// Name and namespace of the workload, for messages.
    public var name: String
    public var namespace: String?

    public init(
        perReplica: Resources = .zero, replicas: Int = 1, nodeSelector: [String: String] = [:],
        affinityTerms: [[NodeSelectorRequirement]] = [], tolerations: [Toleration] = [],
        accelerator: AcceleratorRequirement? = nil, networkLabels: [String] = [], preferred: PreferredLocation? = nil, name: String = "workload",
        namespace: String? = nil
    ) {
        self.networkLabels = networkLabels
        self.perReplica = perReplica
        self.replicas = replicas
        self.nodeSelector = nodeSelector
        self.affinityTerms = affinityTerms
        self.tolerations = tolerations
        self.accelerator = accelerator
        self.preferred = preferred
        self.name = name
        self.namespace = namespace
    }

    public var total: Resources { perReplica * replicas }
    public var needsGPU: Bool { perReplica.gpu > 0 || accelerator?.kind == "nvidia-gpu" }
    /// Whether it asks what a cluster's `CapacityHeadline` does not answer for: extended
    /// resources, data-network labels, a node selector (`ClusterCapacity.mayFit` checks them).
    public var asksBeyondResources: Bool { perReplica.extended.contains { $0.value > 0 } || !networkLabels.isEmpty || !nodeSelector.isEmpty }

    static let podOwners: Set<String> = ["Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job", "Pod"]

    /// Reads requirements from the workload (a manifest, a list of them, or a `List`) and the
    /// request parameters (`accelerator`, `preferred`, `replicas`).
    public static func extract(workload: JSONValue, parameters: JSONValue) throws(MessageDecodingError) -> WorkloadRequirements {
        var manifests: [(JSONValue, String)] = []
        switch workload {
        case .array(let items): manifests = items.enumerated().map { ($1, "msg.workload[\($0)]") }
        case .object(let f) where f["kind"] == .string("List") || (f["kind"] == nil && f["items"] != nil):
            if case .array(let items)? = f["items"] { manifests = items.enumerated().map { ($1, "msg.workload.items[\($0)]") } }
        case .object: manifests = [(workload, "msg.workload")]
        case .null:
            throw MessageDecodingError(.missingField, field: "msg.workload", reason: "a schedule request needs a workload (a Deployment, Pod, ... manifest)")
        default:
            throw MessageDecodingError(.wrongType, field: "msg.workload", reason: "expected a manifest or a list of manifests, got \(workload.kindName)")
        }
        var req = WorkloadRequirements()
        var found = false
        for (manifest, path) in manifests {
            let m = try FieldReader(manifest, path: path)
            guard let kind = try m.optionalString("kind"), podOwners.contains(kind) else { continue }
            found = true
            let meta = try m.optionalObject("metadata")
            req.name = try meta?.optionalString("name") ?? req.name
            req.namespace = try meta?.optionalString("namespace")
            let spec = try m.optionalObject("spec")
            let podSpec: FieldReader?
            let podMeta: FieldReader?
            if kind == "Pod" {
                podSpec = spec
                podMeta = meta
            } else {
                req.replicas = kind == "DaemonSet" ? 1 : (try spec?.optionalInt("replicas") ?? 1)
                podSpec = try spec?.optionalObject("template")?.optionalObject("spec")
                podMeta = try spec?.optionalObject("template")?.optionalObject("metadata")
            }
            if let annotations = try podMeta?.optionalObject("annotations"), let networks = try annotations.optionalString(NetworkRequirement.annotation) {
                req.networkLabels = try NetworkRequirement.names(networks, path: annotations.childPath(NetworkRequirement.annotation))
                    .map { NetworkRequirement.nodeLabelPrefix + $0 }
            }
            if let podSpec { try req.read(podSpec: podSpec) }
            break
        }
        guard found else {
            throw MessageDecodingError(.invalidValue, field: "msg.workload", reason: "no Deployment, StatefulSet, ReplicaSet, DaemonSet, Job or Pod in the workload")
        }
        guard req.replicas >= 0 else {
            throw MessageDecodingError(.invalidValue, field: "msg.workload.spec.replicas", reason: "replicas must not be negative")
        }
        try req.read(parameters: parameters)
        return req
    }

    mutating func read(podSpec: FieldReader) throws(MessageDecodingError) {
        func containerRequests(_ list: [JSONValue], path: String) throws(MessageDecodingError) -> [Resources] {
            var out: [Resources] = []
            for (i, c) in list.enumerated() {
                let cr = try FieldReader(c, path: "\(path)[\(i)]")
                let res = try cr.optionalObject("resources")
                var r = Resources()
                if let limits = res?.fields["limits"] { r = try Resources.decode(limits, path: res!.childPath("limits")) }
                if let requests = res?.fields["requests"] {
                    let asked = try Resources.decode(requests, path: res!.childPath("requests"))
                    // Requests win where given; limits stand in for the rest.
                    if requests["cpu"] != nil { r.cpuMilli = asked.cpuMilli }
                    if requests["memory"] != nil { r.memory = asked.memory }
                    if requests[Resources.gpuResourceName] != nil { r.gpu = asked.gpu }
                    r.extended.merge(asked.extended) { _, new in new }
                }
                out.append(r)
            }
            return out
        }
        let containers = try containerRequests(try podSpec.optionalList("containers") ?? [], path: podSpec.childPath("containers"))
        let inits = try containerRequests(try podSpec.optionalList("initContainers") ?? [], path: podSpec.childPath("initContainers"))
        var sum = containers.reduce(Resources.zero, +)
        for i in inits {
            sum.cpuMilli = max(sum.cpuMilli, i.cpuMilli)
            sum.memory = max(sum.memory, i.memory)
            sum.gpu = max(sum.gpu, i.gpu)
            for (k, v) in i.extended { sum.extended[k] = max(sum.extended[k, default: 0], v) }
        }
        perReplica = sum
        nodeSelector = try podSpec.optionalStringMap("nodeSelector") ?? [:]
        for (i, t) in (try podSpec.optionalList("tolerations") ?? []).enumerated() {
            let tr = try FieldReader(t, path: "\(podSpec.childPath("tolerations"))[\(i)]")
            let op = try tr.optionalString("operator") ?? "Equal"
            guard op == "Equal" || op == "Exists" else {
                throw MessageDecodingError(.invalidValue, field: tr.childPath("operator"), reason: "'\(op)' is not Equal or Exists")
            }
            var effect: Taint.Effect?
            if let e = try tr.optionalString("effect"), !e.isEmpty {
                guard let parsed = Taint.Effect(rawValue: e) else {
                    throw MessageDecodingError(.invalidValue, field: tr.childPath("effect"), reason: "'\(e)' is not a taint effect")
                }
                effect = parsed
            }
            let key = try tr.optionalString("key")
            tolerations.append(Toleration(key: key?.isEmpty == true ? nil : key, exists: op == "Exists", value: try tr.optionalString("value"), effect: effect))
        }
        let required = try podSpec.optionalObject("affinity")?.optionalObject("nodeAffinity")?
            .optionalObject("requiredDuringSchedulingIgnoredDuringExecution")
        for (i, term) in (try required?.optionalList("nodeSelectorTerms") ?? []).enumerated() {
            let tr = try FieldReader(term, path: "\(required!.childPath("nodeSelectorTerms"))[\(i)]")
            var exprs: [NodeSelectorRequirement] = []
            for (j, e) in (try tr.optionalList("matchExpressions") ?? []).enumerated() {
                let er = try FieldReader(e, path: "\(tr.childPath("matchExpressions"))[\(j)]")
                let opName = try er.string("operator")
                guard let op = NodeSelectorRequirement.Operator(rawValue: opName) else {
                    throw MessageDecodingError(.invalidValue, field: er.childPath("operator"), reason: "'\(opName)' is not In, NotIn, Exists, DoesNotExist, Gt or Lt")
                }
                exprs.append(NodeSelectorRequirement(key: try er.string("key"), op: op, values: try er.optionalStringList("values") ?? []))
            }
            affinityTerms.append(exprs)
        }
    }

    mutating func read(parameters: JSONValue) throws(MessageDecodingError) {
        guard case .object = parameters else { return }
        let p = try FieldReader(parameters, path: "msg.parameters")
        if let preferredName = try p.optionalString("preferred") {
            guard let pl = PreferredLocation(rawValue: preferredName.lowercased()) else {
                throw MessageDecodingError(.invalidValue, field: p.childPath("preferred"), reason: "'\(preferredName)' is not local, cloud or neighbor")
            }
            preferred = pl
        }
        if let replicas = try p.optionalInt("replicas") {
            guard replicas >= 0 else { throw MessageDecodingError(.invalidValue, field: p.childPath("replicas"), reason: "must not be negative") }
            self.replicas = replicas
        }
        if let a = try p.optionalObject("accelerator") {
            let kind = try a.string("kind")
            let count = try a.optionalInt("count") ?? 1
            guard count >= 1 else { throw MessageDecodingError(.invalidValue, field: a.childPath("count"), reason: "must be at least 1") }
            accelerator = AcceleratorRequirement(
                kind: kind, count: count, model: try a.optionalString("model"), minMemoryMiB: try a.optionalInt("min_memory_mib"))
        }
    }
}
