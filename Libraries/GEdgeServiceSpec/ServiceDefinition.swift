import Foundation
import GEdgeCore
import GEdgePlacement

/// A GS-Engine edge-service definition: only what must be said, the rest filled by the
/// documented defaults (docs/services.md).
///
/// The seed's schema: `name`, `namespace`, `containers`, `ports`, `type` (required);
/// `monitorPorts`, `scheduleHint` (optional). Extensions, all optional: `replicas`,
/// `resources`, `autoscaling`, `pinnedCPUs`, `gpus`, `accelerator`, `labels`, `env`, `runtime`,
/// `networks`, `allowFrom`.
public struct ServiceDefinition: Sendable, Hashable {
    public enum ServiceType: String, Sendable, Hashable, CaseIterable {
        case loadBalancer = "LoadBalancer", nodePort = "NodePort", clusterIP = "ClusterIP"
    }

    public struct Container: Sendable, Hashable {
        public var name: String
        public var image: String
        public var command: [String]?
        public var args: [String]?
        public var env: [String: String]
        public var resources: ResourceSpec?
    }

    /// CPU and memory as Kubernetes quantities.
    public struct ResourceSpec: Sendable, Hashable {
        public var requestsCPU: String
        public var requestsMemory: String
        public var limitsCPU: String?
        public var limitsMemory: String
    }

    public struct ScheduleHint: Sendable, Hashable {
        /// The workload's kind as the seed wrote it (`func`, `service`, `batch`).
        public var type: String?
        public var preferred: PreferredLocation?
        public var nodeSelector: [String: String]
        /// The placement policy; GMostRequestedPriority unless named.
        public var policy: SchedulingPolicy?
        /// Where latency is measured from (low-latency policy).
        public var sourceCluster: String?
        /// GSelectedCluster's ordered list.
        public var selectClusters: JSONValue?
    }

    public struct Autoscaling: Sendable, Hashable {
        public var minReplicas: Int
        public var maxReplicas: Int
        public var targetCPUUtilization: Int?
        public var targetMemoryUtilization: Int?
    }

    public struct Accelerator: Sendable, Hashable {
        public var kind: String
        public var count: Int
        public var model: String?
    }

    public var name: String
    public var namespace: String
    public var containers: [Container]
    public var ports: [Int]
    public var type: ServiceType
    public var monitorPorts: [Int]
    public var scheduleHint: ScheduleHint?
    public var replicas: Int
    public var autoscaling: Autoscaling?
    /// Whole CPUs per container, requests equal to limits: Guaranteed QoS, pinned by the
    /// kubelet's static CPU manager policy.
    public var pinnedCPUs: Int?
    /// NVIDIA GPUs per pod (`nvidia.com/gpu`).
    public var gpus: Int
    public var accelerator: Accelerator?
    public var labels: [String: String]
    /// Runtime components mounted from a shared volume (GS-AIflow).
    public var runtime: RuntimeEnvironment? = nil
    /// Second networks (Multus, SR-IOV): GS-Engine's dual path.
    public var networks: [NetworkAttachment] = []
    /// Who may reach the service (a NetworkPolicy); nil: anyone, as before.
    public var allowFrom: AllowFrom? = nil

    // MARK: defaults

    public enum Defaults {
        public static let replicas = 1
        public static let requestsCPU = "100m"
        public static let requestsMemory = "128Mi"
        public static let limitsCPU = "500m"
        public static let limitsMemory = "256Mi"
        public static let pinnedMemory = "256Mi"
        public static let targetCPUUtilization = 80
        public static let monitorPath = "/metrics"
        public static let monitorInterval = "30s"
    }

    static let topFields: Set<String> = [
        "name", "namespace", "containers", "ports", "type", "monitorPorts", "scheduleHint",
        "replicas", "resources", "autoscaling", "pinnedCPUs", "gpus", "accelerator", "labels", "env", "runtime",
        "networks", "allowFrom",
    ]

    // MARK: decoding

    /// Reads a definition from the body of `POST /gse/service/create`: YAML or JSON (JSON is YAML).
    public static func parse(text: String) throws(MessageDecodingError) -> ServiceDefinition {
        try decode(try YAMLText.document(text, path: ""))
    }

    public static func decode(_ value: JSONValue) throws(MessageDecodingError) -> ServiceDefinition {
        if let at = value.pathOfNUL() {
            throw MessageDecodingError(.invalidValue, field: at, reason: "a NUL character, which cannot be stored")
        }
        let r = try FieldReader(value, path: "")
        try r.rejectUnknown(allowed: topFields)
        let name = try r.string("name")
        try checkDNSLabel(name, field: "name")
        let namespace = try r.string("namespace")
        try checkDNSLabel(namespace, field: "namespace")

        let sharedEnv = try r.optionalStringMap("env") ?? [:]
        let sharedResources = try r.optionalObject("resources").map { reader throws(MessageDecodingError) in try resourceSpec(reader) }
        guard let containerList = try r.optionalList("containers") else {
            throw MessageDecodingError(.missingField, field: "containers", reason: "required: a list of container images")
        }
        guard !containerList.isEmpty else {
            throw MessageDecodingError(.invalidValue, field: "containers", reason: "must hold at least one container")
        }
        var containers: [Container] = []
        var names: Set<String> = []
        for (i, item) in containerList.enumerated() {
            var c = try container(item, path: "containers[\(i)]", serviceName: name, index: i, count: containerList.count)
            if names.contains(c.name) {
                if case .object = item {
                    throw MessageDecodingError(.invalidValue, field: "containers[\(i)].name", reason: "'\(c.name)' is used twice")
                }
                c.name = "\(c.name.prefix(60))-\(i)"
            }
            names.insert(c.name)
            c.env = sharedEnv.merging(c.env) { _, own in own }
            if c.resources == nil { c.resources = sharedResources }
            containers.append(c)
        }

        guard let portList = try r.optionalList("ports") else {
            throw MessageDecodingError(.missingField, field: "ports", reason: "required: a list of port numbers")
        }
        let ports = try portNumbers(portList, field: "ports")
        guard !ports.isEmpty else { throw MessageDecodingError(.invalidValue, field: "ports", reason: "must hold at least one port") }
        let typeName = try r.string("type")
        guard let type = ServiceType(rawValue: typeName) else {
            throw MessageDecodingError(.invalidValue, field: "type", reason: "'\(typeName)' is not one of LoadBalancer, NodePort, ClusterIP")
        }
        let monitorPorts = try portNumbers(try r.optionalList("monitorPorts") ?? [], field: "monitorPorts")
        for (i, p) in monitorPorts.enumerated() where !ports.contains(p) {
            throw MessageDecodingError(.invalidValue, field: "monitorPorts[\(i)]", reason: "\(p) is not one of the service's ports")
        }

        let hint = try r.optionalObject("scheduleHint").map { h throws(MessageDecodingError) in try scheduleHint(h) }
        let replicas = try r.optionalInt("replicas") ?? Defaults.replicas
        guard (0...1000).contains(replicas) else {
            throw MessageDecodingError(.invalidValue, field: "replicas", reason: "must be between 0 and 1000")
        }
        let autoscaling = try r.optionalObject("autoscaling").map { a throws(MessageDecodingError) in try autoscalingSpec(a, replicas: replicas) }
        let pinned = try r.optionalInt("pinnedCPUs")
        if let pinned, !(1...256).contains(pinned) {
            throw MessageDecodingError(.invalidValue, field: "pinnedCPUs", reason: "whole CPUs between 1 and 256")
        }
        if pinned != nil, let i = containers.firstIndex(where: { $0.resources?.limitsCPU != nil && $0.resources?.limitsCPU != $0.resources?.requestsCPU }) {
            throw MessageDecodingError(.invalidValue, field: "pinnedCPUs", reason: "containers[\(i)] sets its own CPU limits; pinned CPUs set requests and limits")
        }
        let gpus = try r.optionalInt("gpus") ?? 0
        guard (0...64).contains(gpus) else { throw MessageDecodingError(.invalidValue, field: "gpus", reason: "between 0 and 64") }
        var accelerator: Accelerator?
        if let a = try r.optionalObject("accelerator") {
            try a.rejectUnknown(allowed: ["kind", "count", "model"])
            let kind = try a.string("kind")
            let known = ["nvidia-gpu", "amd-gpu", "intel-gpu", "jetson", "coral-usb", "coral-pcie"]
            guard known.contains(kind) else {
                throw MessageDecodingError(.invalidValue, field: "accelerator.kind", reason: "'\(kind)' is not one of \(known.joined(separator: ", "))")
            }
            let count = try a.optionalInt("count") ?? 1
            guard (1...64).contains(count) else { throw MessageDecodingError(.invalidValue, field: "accelerator.count", reason: "between 1 and 64") }
            accelerator = Accelerator(kind: kind, count: count, model: try a.optionalString("model"))
        }
        let labels = try r.optionalStringMap("labels") ?? [:]
        for (k, v) in labels.sorted(by: { $0.key < $1.key }) {
            try checkLabel(key: k, value: v, field: "labels.\(k)")
        }
        let runtime = try r.optionalObject("runtime").map { rt throws(MessageDecodingError) in try RuntimeEnvironment.decode(rt) }
        let networks = try NetworkAttachment.decode(try r.optionalList("networks") ?? [], path: "networks")
        let allowFrom = try r.optionalObject("allowFrom").map { a throws(MessageDecodingError) in try AllowFrom.decode(a, servicePorts: ports) }
        return ServiceDefinition(
            name: name, namespace: namespace, containers: containers, ports: ports, type: type, monitorPorts: monitorPorts,
            scheduleHint: hint, replicas: replicas, autoscaling: autoscaling, pinnedCPUs: pinned, gpus: gpus,
            accelerator: accelerator, labels: labels, runtime: runtime, networks: networks, allowFrom: allowFrom)
    }

    static func container(_ item: JSONValue, path: String, serviceName: String, index: Int, count: Int) throws(MessageDecodingError) -> Container {
        switch item {
        case .string(let image):
            try checkImage(image, field: path)
            return Container(name: defaultContainerName(image: image, serviceName: serviceName), image: image, command: nil, args: nil, env: [:], resources: nil)
        case .object:
            let c = try FieldReader(item, path: path)
            try c.rejectUnknown(allowed: ["name", "image", "command", "args", "env", "resources"])
            let image = try c.string("image")
            try checkImage(image, field: c.childPath("image"))
            let name = try c.optionalString("name") ?? defaultContainerName(image: image, serviceName: serviceName)
            try checkDNSLabel(name, field: c.childPath("name"))
            return Container(
                name: name, image: image, command: try c.optionalStringList("command"), args: try c.optionalStringList("args"),
                env: try c.optionalStringMap("env") ?? [:],
                resources: try c.optionalObject("resources").map { reader throws(MessageDecodingError) in try resourceSpec(reader) })
        default:
            throw MessageDecodingError(.wrongType, field: path, reason: "expected an image name or a container object, got \(item.kindName)")
        }
    }

    /// `k8s.gcr.io/echoserver:1.10` → `echoserver`.
    static func defaultContainerName(image: String, serviceName: String) -> String {
        var base = image.split(separator: "/").last.map(String.init) ?? image
        if let at = base.firstIndex(of: "@") { base = String(base[..<at]) }
        if let colon = base.firstIndex(of: ":") { base = String(base[..<colon]) }
        let cleaned = String(base.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }.prefix(63))
            .trimmingCharacters(in: CharacterSet(charactersIn: "-"))
        return (try? checkDNSLabel(cleaned, field: "")) != nil ? cleaned : serviceName
    }

    static func resourceSpec(_ r: FieldReader) throws(MessageDecodingError) -> ResourceSpec {
        try r.rejectUnknown(allowed: ["cpu", "memory", "limits"])
        let cpu = try r.optionalString("cpu") ?? Defaults.requestsCPU
        let memory = try r.optionalString("memory") ?? Defaults.requestsMemory
        guard let cpuMilli = Quantity.milli(cpu), cpuMilli > 0 else {
            throw MessageDecodingError(.invalidValue, field: r.childPath("cpu"), reason: "'\(cpu)' is not a CPU quantity such as 250m or 2")
        }
        guard let mem = Quantity.value(memory), mem > 0 else {
            throw MessageDecodingError(.invalidValue, field: r.childPath("memory"), reason: "'\(memory)' is not a memory quantity such as 256Mi")
        }
        var spec = ResourceSpec(requestsCPU: cpu, requestsMemory: memory, limitsCPU: Defaults.limitsCPU, limitsMemory: Defaults.limitsMemory)
        if let l = try r.optionalObject("limits") {
            try l.rejectUnknown(allowed: ["cpu", "memory"])
            if let c = try l.optionalString("cpu") {
                guard let m = Quantity.milli(c), m >= cpuMilli else {
                    throw MessageDecodingError(.invalidValue, field: l.childPath("cpu"), reason: "'\(c)' is not a CPU quantity at least the request (\(cpu))")
                }
                spec.limitsCPU = c
            }
            if let m = try l.optionalString("memory") {
                guard let v = Quantity.value(m), v >= mem else {
                    throw MessageDecodingError(.invalidValue, field: l.childPath("memory"), reason: "'\(m)' is not a memory quantity at least the request (\(memory))")
                }
                spec.limitsMemory = m
            }
        }
        // Defaults never undercut what was asked for.
        if let lc = spec.limitsCPU, let lm = Quantity.milli(lc), lm < cpuMilli { spec.limitsCPU = cpu }
        if let lm = Quantity.value(spec.limitsMemory), lm < mem { spec.limitsMemory = memory }
        return spec
    }

    static func scheduleHint(_ h: FieldReader) throws(MessageDecodingError) -> ScheduleHint {
        try h.rejectUnknown(allowed: ["type", "preferred", "nodeSelector", "policy", "sourceCluster", "selectClusters"])
        let type = try h.optionalString("type")
        if let type, !["func", "service", "batch"].contains(type) {
            throw MessageDecodingError(.invalidValue, field: h.childPath("type"), reason: "'\(type)' is not one of func, service, batch")
        }
        var preferred: PreferredLocation?
        if let p = try h.optionalString("preferred") {
            guard let loc = PreferredLocation(rawValue: p) else {
                throw MessageDecodingError(.invalidValue, field: h.childPath("preferred"), reason: "'\(p)' is not one of local, cloud, neighbor")
            }
            preferred = loc
        }
        let selector = try h.optionalStringMap("nodeSelector") ?? [:]
        for (k, v) in selector.sorted(by: { $0.key < $1.key }) {
            try checkLabel(key: k, value: v, field: h.childPath("nodeSelector.\(k)"))
        }
        var policy: SchedulingPolicy?
        if let p = try h.optionalString("policy") {
            guard let known = SchedulingPolicy(name: p) else {
                let names = SchedulingPolicy.allCases.map(\.rawValue).joined(separator: ", ")
                throw MessageDecodingError(.invalidValue, field: h.childPath("policy"), reason: "unknown policy '\(p)'; one of \(names)")
            }
            policy = known
        }
        let select = h.fields["selectClusters"]
        if let select, select != .null {
            guard case .array = select else {
                throw MessageDecodingError(.wrongType, field: h.childPath("selectClusters"), reason: "expected a list of clusters, got \(select.kindName)")
            }
        }
        return ScheduleHint(
            type: type, preferred: preferred, nodeSelector: selector, policy: policy,
            sourceCluster: try h.optionalString("sourceCluster"), selectClusters: select == .null ? nil : select)
    }

    static func autoscalingSpec(_ a: FieldReader, replicas: Int) throws(MessageDecodingError) -> Autoscaling {
        try a.rejectUnknown(allowed: ["minReplicas", "maxReplicas", "targetCPUUtilization", "targetMemoryUtilization"])
        let minR = try a.optionalInt("minReplicas") ?? max(1, replicas)
        guard let maxR = try a.optionalInt("maxReplicas") else {
            throw MessageDecodingError(.missingField, field: a.childPath("maxReplicas"), reason: "required when autoscaling is asked for")
        }
        guard minR >= 1 else { throw MessageDecodingError(.invalidValue, field: a.childPath("minReplicas"), reason: "must be at least 1") }
        guard maxR >= minR, maxR <= 1000 else {
            throw MessageDecodingError(.invalidValue, field: a.childPath("maxReplicas"), reason: "must be at least minReplicas (\(minR)) and at most 1000")
        }
        let cpu = try a.optionalInt("targetCPUUtilization")
        let mem = try a.optionalInt("targetMemoryUtilization")
        for (key, v) in [("targetCPUUtilization", cpu), ("targetMemoryUtilization", mem)] {
            if let v, !(1...100).contains(v) {
                throw MessageDecodingError(.invalidValue, field: a.childPath(key), reason: "a percentage between 1 and 100")
            }
        }
        return Autoscaling(
            minReplicas: minR, maxReplicas: maxR,
            targetCPUUtilization: cpu ?? (mem == nil ? Defaults.targetCPUUtilization : nil), targetMemoryUtilization: mem)
    }

    static func portNumbers(_ items: [JSONValue], field: String) throws(MessageDecodingError) -> [Int] {
        var out: [Int] = []
        for (i, item) in items.enumerated() {
            let path = "\(field)[\(i)]"
            guard case .number(let d) = item else {
                throw MessageDecodingError(.wrongType, field: path, reason: "expected a port number, got \(item.kindName)")
            }
            guard d.rounded() == d, d >= 1, d <= 65535 else {
                throw MessageDecodingError(.invalidValue, field: path, reason: "a port is a whole number from 1 to 65535")
            }
            let p = Int(d)
            guard !out.contains(p) else { throw MessageDecodingError(.invalidValue, field: path, reason: "\(p) appears twice") }
            out.append(p)
        }
        return out
    }

    // MARK: Kubernetes names

    /// RFC 1123 label: what Kubernetes takes for names of namespaces, services and containers.
    static func checkDNSLabel(_ s: String, field: String) throws(MessageDecodingError) {
        if !KubeNames.isDNSLabel(s) {
            throw MessageDecodingError(
                .invalidValue, field: field,
                reason: "'\(s)' is not a DNS label: 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit")
        }
    }

    static func checkImage(_ image: String, field: String) throws(MessageDecodingError) {
        guard !image.isEmpty, image.count <= 512, !image.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.value < 0x20 || $0.value == 0x7f }) else {
            throw MessageDecodingError(.invalidValue, field: field, reason: "'\(image)' is not a container image reference")
        }
    }

    /// Label keys (optional DNS-subdomain prefix and a name) and values as Kubernetes takes them.
    static func checkLabel(key: String, value: String, field: String) throws(MessageDecodingError) {
        func isName(_ s: Substring, max: Int, allowEmpty: Bool) -> Bool {
            if s.isEmpty { return allowEmpty }
            guard s.count <= max, let f = s.first, let l = s.last, f.isASCII, l.isASCII, f.isLetter || f.isNumber, l.isLetter || l.isNumber else { return false }
            return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
        }
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        let keyOK: Bool
        switch parts.count {
        case 1: keyOK = isName(parts[0], max: 63, allowEmpty: false)
        case 2:
            let prefix = parts[0]
            keyOK = !prefix.isEmpty && prefix.count <= 253
                && prefix.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") }
                && isName(parts[1], max: 63, allowEmpty: false)
        default: keyOK = false
        }
        guard keyOK else { throw MessageDecodingError(.invalidValue, field: field, reason: "'\(key)' is not a valid label key") }
        guard isName(Substring(value), max: 63, allowEmpty: true) else {
            throw MessageDecodingError(.invalidValue, field: field, reason: "'\(value)' is not a valid label value")
        }
    }
}
