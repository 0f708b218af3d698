import Foundation
import GEdgeCore
import GEdgePlacement
import GEdgeServiceSpec

/// A GS-AIflow workflow: an intelligent service as a DAG of microservices, each a GS-Engine
/// service definition, deployed in dependency order.
///
/// ```yaml
/// name: aieye
/// namespace: aieye
/// placement: chain        # chain (default): a step goes near the step it depends on first;
///                         # independent: each step by its own hint
/// retries: 1              # extra attempts per step before it fails
/// steps:
/// - name: redis-server
///   service: {containers: ["redis:7"], ports: [6379], type: ClusterIP}
/// - name: media-server
///   dependsOn: [redis-server]
///   service: {...}
/// ```
public struct WorkflowSpec: Sendable, Hashable {
    public enum Placement: String, Sendable, Hashable { case chain, independent }

    public struct Step: Sendable, Hashable {
        public var name: String
        public var dependsOn: [String]
        public var service: ServiceDefinition
        /// The definition as given (with name and namespace filled), for the record.
        public var definition: JSONValue
    }

    public var name: String
    public var namespace: String
    public var placement: Placement
    public var retries: Int
    /// In a dependency order (every step after the steps it depends on).
    public var steps: [Step]

    public static let maxSteps = 50

    public static func parse(text: String) throws(MessageDecodingError) -> WorkflowSpec {
        try decode(try YAMLText.document(text, path: ""))
    }

    public static func decode(_ value: JSONValue) throws(MessageDecodingError) -> WorkflowSpec {
        if let at = value.pathOfNUL() { throw MessageDecodingError(.invalidValue, field: at, reason: "a NUL character, which cannot be stored") }
        let r = try FieldReader(value, path: "")
        try r.rejectUnknown(allowed: ["name", "namespace", "placement", "retries", "steps"])
        let name = try r.string("name")
        guard KubeNames.isDNSLabel(name) else { throw MessageDecodingError(.invalidValue, field: "name", reason: "'\(name)' is not a DNS label") }
        let namespace = try r.string("namespace")
        guard KubeNames.isDNSLabel(namespace) else { throw MessageDecodingError(.invalidValue, field: "namespace", reason: "'\(namespace)' is not a DNS label") }
        let placementName = try r.optionalString("placement") ?? "chain"
        guard let placement = Placement(rawValue: placementName) else {
            throw MessageDecodingError(.invalidValue, field: "placement", reason: "'\(placementName)' is not chain or independent")
        }
        let retries = try r.optionalInt("retries") ?? 1
        guard (0...10).contains(retries) else { throw MessageDecodingError(.invalidValue, field: "retries", reason: "0 to 10") }
        guard let list = try r.optionalList("steps") else { throw MessageDecodingError(.missingField, field: "steps", reason: "required: the workflow's services") }
        guard (1...maxSteps).contains(list.count) else { throw MessageDecodingError(.invalidValue, field: "steps", reason: "1 to \(maxSteps) steps") }
        var steps: [Step] = []
        var index: [String: Int] = [:]
        for (i, item) in list.enumerated() {
            let path = "steps[\(i)]"
            let s = try FieldReader(item, path: path)
            try s.rejectUnknown(allowed: ["name", "dependsOn", "service"])
            let stepName = try s.string("name")
            guard KubeNames.isDNSLabel(stepName) else { throw MessageDecodingError(.invalidValue, field: s.childPath("name"), reason: "'\(stepName)' is not a DNS label") }
            guard index[stepName] == nil else { throw MessageDecodingError(.invalidValue, field: s.childPath("name"), reason: "'\(stepName)' is used twice") }
            index[stepName] = i
            let deps = try s.optionalStringList("dependsOn") ?? []
            guard let svc = try s.optionalObject("service") else { throw MessageDecodingError(.missingField, field: s.childPath("service"), reason: "required: a service definition") }
            for k in ["name", "namespace"] where svc.fields[k] != nil {
                throw MessageDecodingError(.unknownField, field: "\(svc.path).\(k)", reason: "set by the workflow (the step's name, the workflow's namespace)")
            }
            var fields = svc.fields
            fields["name"] = .string(stepName)
            fields["namespace"] = .string(namespace)
            let definition = JSONValue.object(fields)
            let service: ServiceDefinition
            do { service = try ServiceDefinition.decode(definition) } catch {
                throw MessageDecodingError(error.code, field: "\(svc.path).\(error.field)".trimmingCharacters(in: CharacterSet(charactersIn: ".")), reason: error.reason)
            }
            steps.append(Step(name: stepName, dependsOn: deps, service: service, definition: definition))
        }
        for (i, s) in steps.enumerated() {
            for (j, d) in s.dependsOn.enumerated() {
                guard index[d] != nil else { throw MessageDecodingError(.invalidValue, field: "steps[\(i)].dependsOn[\(j)]", reason: "no step '\(d)'") }
                guard d != s.name else { throw MessageDecodingError(.invalidValue, field: "steps[\(i)].dependsOn[\(j)]", reason: "a step cannot depend on itself") }
            }
        }
        // Kahn's algorithm: a dependency order, or the cycle named.
        var indegree = steps.map { $0.dependsOn.count }
        var ready = steps.indices.filter { indegree[$0] == 0 }
        var order: [Int] = []
        while !ready.isEmpty {
            let i = ready.removeFirst()
            order.append(i)
            for (j, s) in steps.enumerated() where s.dependsOn.contains(steps[i].name) {
                indegree[j] -= 1
                if indegree[j] == 0 { ready.append(j) }
            }
        }
        guard order.count == steps.count else {
            let stuck = steps.indices.filter { !order.contains($0) }.map { steps[$0].name }
            throw MessageDecodingError(.invalidValue, field: "steps", reason: "the dependencies form a cycle among \(stuck.joined(separator: ", "))")
        }
        return WorkflowSpec(name: name, namespace: namespace, placement: placement, retries: retries, steps: order.map { steps[$0] })
    }

    /// Every step that depends, directly or not, on `step`.
    public func successors(of step: String) -> Set<String> {
        var out: Set<String> = []
        var frontier = [step]
        while let s = frontier.popLast() {
            for t in steps where t.dependsOn.contains(s) && !out.contains(t.name) {
                out.insert(t.name)
                frontier.append(t.name)
            }
        }
        return out
    }

    /// The schedule request parameters and policy of a step: with chain placement, a step
    /// that depends on another is placed by GLowLatencyPriority from where its first
    /// dependency runs (its node too), unless its own hint names a policy.
    public func placement(of step: Step, upstream: (cluster: String, node: String?)?) -> (SchedulingPolicy, JSONValue) {
        var params = step.service.scheduleParameters.objectValue ?? [:]
        params["namespace"] = .string(namespace)
        guard placement == .chain, let up = upstream, step.service.scheduleHint?.policy == nil, step.service.scheduleHint?.selectClusters == nil else {
            return (step.service.schedulingPolicy, .object(params))
        }
        params["source_cluster"] = .string(up.cluster)
        if let n = up.node { params["source_node"] = .string(n) }
        return (.lowLatency, .object(params))
    }
}

/// The cost of a chain of stages as placed: what a frame spends on the links between
/// consecutive stages (a request and its answer cross each link), over the processing.
public enum ChainLatency {
    /// Milliseconds between two placements: 0 on the same node, the node's measured latency
    /// to the other cluster otherwise (the cluster's median when the node has none), and
    /// `sameClusterMs` between two nodes of one cluster.
    public static func link(_ a: PlacementPart, _ b: PlacementPart, clusters: [String: ClusterState], sameClusterMs: Double = 0.2) -> Double {
        if a.cluster == b.cluster { return a.node != nil && a.node == b.node ? 0 : sameClusterMs }
        let from = clusters[a.cluster]
        let node = from?.nodes.first { $0.name == a.node }
        return node?.latencyMs[b.cluster] ?? from?.latencySummary[b.cluster] ?? clusters[b.cluster]?.latencySummary[a.cluster] ?? 100
    }

    /// Per frame: the stages' processing plus a round trip over each link of the chain.
    public static func perFrame(_ chain: [PlacementPart], processingMs: [Double], clusters: [String: ClusterState]) -> Double {
        var total = processingMs.reduce(0, +)
        for i in chain.indices.dropFirst() { total += 2 * link(chain[i - 1], chain[i], clusters: clusters) }
        return total
    }
}
