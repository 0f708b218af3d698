import Foundation
import GEdgeCore
import GEdgePlacement

/// What applying did.
public struct ApplyResult: Sendable {
    public var ok: Bool
    public var reason: String
    public var pods: [String: String]
    public init(ok: Bool, reason: String, pods: [String: String] = [:]) {
        self.ok = ok
        self.reason = reason
        self.pods = pods
    }
}

/// A cluster an agent drives: Kubernetes, or a simulation.
public protocol ClusterDriver: Sendable {
    /// Nodes with allocatable and requested resources, readiness, labels and taints.
    /// Latencies are filled in by the agent.
    func state() async throws -> [NodeState]
    /// Applies a workload for a request and waits until its pods run (or fails with the reason).
    func apply(_ command: ApplyCommand) async throws -> ApplyResult
    /// Removes what an attempt of a request applied (everything for the request when
    /// `attempt` is nil). A newer attempt's objects are left alone. Returns how many went.
    func remove(requestID: String, attempt: Int?) async throws -> Int
    func namespace(_ name: String, delete: Bool) async throws
    func nodeOf(pod: String, namespace: String?) async throws -> String?
    /// Sets a workload's replicas through its scale subresource; returns the count before.
    func scale(_ command: ScaleCommand) async throws -> Int
}

/// One node of a simulated cluster, as the topology file describes it.
public struct SimulatedNode: Sendable, Hashable {
    public var name: String
    public var allocatable: Resources
    public var labels: [String: String]
    public var taints: [Taint]
    public var ready: Bool
    public var latencyMs: [String: Double]
    public init(name: String, allocatable: Resources, labels: [String: String] = [:], taints: [Taint] = [], ready: Bool = true, latencyMs: [String: Double] = [:]) {
        self.name = name
        self.allocatable = allocatable
        self.labels = labels
        self.taints = taints
        self.ready = ready
        self.latencyMs = latencyMs
    }
}

/// A cluster of N nodes with capacity whose pods start after a fixed delay. Deterministic:
/// replicas go to the fitting node with the most free CPU (ties by name); nothing random.
/// Stands in for Kubernetes in the demo, the tests and benchmarks of thousands of nodes.
public actor SimulatedCluster: ClusterDriver {
    struct Pod {
        var name: String
        var node: Int
        var resources: Resources
        var namespace: String
    }

    public let name: String
    /// Nodes as reported, with requested resources kept up to date as pods come and go.
    var states: [NodeState]
    var index: [String: Int] = [:]
    var pods: [String: [Pod]] = [:]
    var attempts: [String: Int] = [:]
    var namespaces: Set<String> = ["default"]
    public let podStartDelay: Duration
    /// Every apply fails with this reason (fault injection for tests and the demo).
    public var failApplies: String?

    public init(
        name: String, nodes: [SimulatedNode], podStartDelay: Duration = .milliseconds(200), failApplies: String? = nil,
        scaleHandler: (@Sendable (_ namespace: String, _ name: String, _ from: Int, _ to: Int) async -> Void)? = nil
    ) {
        self.name = name
        self.scaleHandler = scaleHandler
        self.states = nodes.map { n in
            NodeState(name: n.name, ready: n.ready, allocatable: n.allocatable, labels: n.labels, taints: n.taints, latencyMs: n.latencyMs)
        }
        for (i, n) in nodes.enumerated() { index[n.name] = i }
        self.podStartDelay = podStartDelay
        self.failApplies = failApplies
    }

    public func setFailApplies(_ reason: String?) { failApplies = reason }

    /// Replicas of workloads scaled through `scale` (functions), by `namespace/name`.
    var scaled: [String: Int] = [:]
    /// Called on every change of a scaled workload's replicas (the demo runs real local
    /// processes as the replicas).
    let scaleHandler: (@Sendable (_ namespace: String, _ name: String, _ from: Int, _ to: Int) async -> Void)?


    public func replicas(namespace: String, name: String) -> Int { scaled["\(namespace)/\(name)"] ?? 0 }

    public func scale(_ command: ScaleCommand) async throws -> Int {
        let key = "\(command.namespace)/\(command.name)"
        let before = scaled[key] ?? 0
        scaled[key] = command.replicas
        if before != command.replicas, let h = scaleHandler { await h(command.namespace, command.name, before, command.replicas) }
        return before
    }

    public func state() -> [NodeState] { states }

    public var podCount: Int { pods.values.reduce(0) { $0 + $1.count } }

    func release(_ requestID: String) -> Int {
        guard let list = pods.removeValue(forKey: requestID) else { return 0 }
        for p in list { states[p.node].requested = states[p.node].requested - p.resources }
        attempts[requestID] = nil
        return list.count
    }

    public func apply(_ command: ApplyCommand) async throws -> ApplyResult {
        if let d = command.deadline, d < Date() { return ApplyResult(ok: false, reason: "the deadline passed before the apply started") }
        if let f = failApplies { return ApplyResult(ok: false, reason: f) }
        let req: WorkloadRequirements
        do { req = try WorkloadRequirements.extract(workload: command.workload, parameters: .null) } catch {
            return ApplyResult(ok: false, reason: "\(error)")
        }
        if let newer = attempts[command.requestID], newer > command.attempt {
            return ApplyResult(ok: false, reason: "attempt \(newer) of this request is already applied")
        }
        // Applying again replaces what the request had (server-side apply semantics).
        _ = release(command.requestID)
        namespaces.insert(command.namespace)
        var placed: [Pod] = []
        for i in 0..<command.replicas {
            var chosen: Int?
            if let pin = command.node {
                if let j = index[pin], NodeFilter.check(states[j], req, copies: 1) == nil { chosen = j }
            } else {
                // The fitting node with the most free CPU.
                chosen = NodeFilter.best(states, req, copies: 1) { p in Double(p.pointee.allocatable.cpuMilli - p.pointee.requested.cpuMilli) }?.index
            }
            guard let j = chosen else {
                for p in placed { states[p.node].requested = states[p.node].requested - p.resources }
                let scope = command.node.map { "node \($0)" } ?? "the cluster"
                let why: String
                if let pin = command.node {
                    why = index[pin].map { NodeFilter.check(states[$0], req, copies: 1)?.rawValue ?? "does not fit" } ?? "no such node"
                } else {
                    why = NodeFilter.explain([ClusterState(name: name, nodes: states)], req, copies: 1)
                }
                return ApplyResult(ok: false, reason: "replica \(i + 1) of \(command.replicas) does not fit on \(scope): \(why)")
            }
            states[j].requested = states[j].requested + req.perReplica
            placed.append(Pod(name: "\(req.name)-\(i)", node: j, resources: req.perReplica, namespace: command.namespace))
        }
        pods[command.requestID] = placed
        attempts[command.requestID] = command.attempt
        if podStartDelay > .zero { try? await Task.sleep(for: podStartDelay) }
        if let d = command.deadline, d < Date(), attempts[command.requestID] == command.attempt {
            _ = release(command.requestID)
            return ApplyResult(ok: false, reason: "pods started after the deadline; removed")
        }
        return ApplyResult(ok: true, reason: "\(placed.count) pod(s) running", pods: Dictionary(placed.map { ($0.name, states[$0.node].name) }, uniquingKeysWith: { a, _ in a }))
    }

    public func remove(requestID: String, attempt: Int?) -> Int {
        if let attempt, let current = attempts[requestID], current != attempt { return 0 }
        return release(requestID)
    }

    public func namespace(_ name: String, delete: Bool) {
        if delete {
            namespaces.remove(name)
            for (id, list) in pods where list.contains(where: { $0.namespace == name }) {
                for p in list where p.namespace == name { states[p.node].requested = states[p.node].requested - p.resources }
                pods[id] = list.filter { $0.namespace != name }
            }
        } else {
            namespaces.insert(name)
        }
    }

    public func nodeOf(pod: String, namespace: String?) -> String? {
        for list in pods.values {
            if let p = list.first(where: { $0.name == pod && (namespace == nil || $0.namespace == namespace) }) { return states[p.node].name }
        }
        return nil
    }

    public func hasNamespace(_ name: String) -> Bool { namespaces.contains(name) }
}

/// The simulated topology file: `{"clusters": [{"name", "kind", "nodes": [...], "node_groups":
/// [{"prefix", "count", "cpu", "memory", "gpu", "labels", "latency_ms"}]}], "pod_start_ms"}`.
/// A node is `{"name", "cpu", "memory", "gpu", "extended", "labels", "taints", "latency_ms"}`.
public struct SimulatedTopology: Sendable {
    public struct Cluster: Sendable {
        public var name: String
        public var kind: ClusterKind
        public var nodes: [SimulatedNode]
    }

    public var clusters: [Cluster]
    public var podStartDelay: Duration

    public static func load(path: String) throws -> SimulatedTopology {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(key: "agent.topology", reason: "cannot read \(path)")
        }
        do { return try decode(try JSONValue.parse(Array(data))) } catch {
            throw ConfigurationError(key: "agent.topology", reason: "\(path): \(error)")
        }
    }

    public static func decode(_ value: JSONValue) throws(MessageDecodingError) -> SimulatedTopology {
        let r = try FieldReader(value, path: "")
        var clusters: [Cluster] = []
        for (i, c) in (try r.optionalList("clusters") ?? []).enumerated() {
            let cr = try FieldReader(c, path: "clusters[\(i)]")
            let kindName = try cr.optionalString("kind") ?? "edge"
            guard let kind = ClusterKind(rawValue: kindName) else {
                throw MessageDecodingError(.invalidValue, field: cr.childPath("kind"), reason: "'\(kindName)' is not edge or cloud")
            }
            var nodes: [SimulatedNode] = []
            for (j, n) in (try cr.optionalList("nodes") ?? []).enumerated() {
                nodes.append(try node(try FieldReader(n, path: "\(cr.childPath("nodes"))[\(j)]"), name: nil))
            }
            for (j, g) in (try cr.optionalList("node_groups") ?? []).enumerated() {
                let gr = try FieldReader(g, path: "\(cr.childPath("node_groups"))[\(j)]")
                let prefix = try gr.string("prefix")
                for k in 1...max(1, try gr.optionalInt("count") ?? 1) { nodes.append(try node(gr, name: "\(prefix)\(k)")) }
            }
            clusters.append(Cluster(name: try cr.string("name"), kind: kind, nodes: nodes))
        }
        return SimulatedTopology(clusters: clusters, podStartDelay: .milliseconds(try r.optionalInt("pod_start_ms") ?? 200))
    }

    static func node(_ r: FieldReader, name: String?) throws(MessageDecodingError) -> SimulatedNode {
        var res: [String: JSONValue] = ["cpu": r.fields["cpu"] ?? .string("4"), "memory": r.fields["memory"] ?? .string("8Gi")]
        if let g = r.fields["gpu"] { res[Resources.gpuResourceName] = g }
        if let e = try r.optionalObject("extended") { for (k, v) in e.fields { res[k] = v } }
        var latency: [String: Double] = [:]
        if let l = try r.optionalObject("latency_ms") { for k in l.fields.keys { latency[k] = try l.optionalNumber(k) } }
        var taints: [Taint] = []
        for (i, t) in (try r.optionalList("taints") ?? []).enumerated() { taints.append(try NodeState.decodeTaint(t, path: "\(r.childPath("taints"))[\(i)]")) }
        let nodeName: String
        if let name { nodeName = name } else { nodeName = try r.string("name") }
        return SimulatedNode(
            name: nodeName, allocatable: try Resources.decode(.object(res), path: r.path),
            labels: try r.optionalStringMap("labels") ?? [:], taints: taints, ready: try r.optionalBool("ready") ?? true, latencyMs: latency)
    }
}
