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
    /// Sets a workload's CPU and memory requests and limits; returns the pods affected.
    func resize(_ command: ResizeCommand) async throws -> Int
    /// A pod's last `tail` log lines (nil when there is no such pod).
    func logs(namespace: String, pod: String, tail: Int) async throws -> [String]?
    /// A page of the cluster's objects of one kind, summarized (`InventoryItem`).
    func inventory(_ query: InventoryQuery) async throws -> InventoryPage
    /// Pod usage and requests of the workloads the suite placed (for the autoscaler).
    func usage() async throws -> [WorkloadUsage]
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
        /// -1 while pending (no node had room when it was added by a scale-out).
        var node: Int
        var resources: Resources
        var namespace: String
        var workload: String
        var readyAt: ContinuousClock.Instant
        /// When it was created (wall clock), for the inventory.
        var created = Date()
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

    /// What other tenants request of each node (by index), beside the pods placed here: a
    /// fleet simulation moves it to make nodes change between reports.
    var background: [Int: Resources] = [:]

    /// Sets what other tenants request of node `index`; the node's requested resources move
    /// by the difference. Out of range: nothing.
    public func setBackground(node index: Int, _ r: Resources) {
        guard states.indices.contains(index) else { return }
        let before = background[index] ?? .zero
        states[index].requested = states[index].requested - before + r
        background[index] = r
    }

    /// Replicas of workloads scaled through `scale` (functions), by `namespace/name`.
    var scaled: [String: Int] = [:]
    /// Called on every change of a scaled workload's replicas (the demo runs real local
    /// processes as the replicas).
    let scaleHandler: (@Sendable (_ namespace: String, _ name: String, _ from: Int, _ to: Int) async -> Void)?


    public func replicas(namespace: String, name: String) -> Int { scaled["\(namespace)/\(name)"] ?? 0 }

    public func scale(_ command: ScaleCommand) async throws -> Int {
        let key = "\(command.namespace)/\(command.name)"
        if let share = command.trafficShare { shares[key] = share }
        if let id = requestOf(namespace: command.namespace, workload: command.name) { return scaleApplied(id, to: command.replicas) }
        let before = scaled[key] ?? 0
        scaled[key] = command.replicas
        if before != command.replicas, let h = scaleHandler { await h(command.namespace, command.name, before, command.replicas) }
        return before
    }


    // MARK: workloads placed by requests: scaling, resizing, usage

    /// Offered CPU demand (millicores, all clusters together) and per-pod memory by workload.
    var loads: [String: SimulatedLoad] = [:]
    /// This cluster's part of each workload's traffic (1 unless an autoscaler said otherwise).
    var shares: [String: Double] = [:]
    /// What each request's workload needs of a node (selectors, tolerations), for scale-outs.
    var requirements: [String: WorkloadRequirements] = [:]

    public func setLoad(_ load: SimulatedLoad) { loads["\(load.namespace)/\(load.name)"] = load }

    func requestOf(namespace: String, workload: String) -> String? {
        pods.first { _, list in list.first.map { $0.namespace == namespace && $0.workload == workload } ?? false }?.key
    }

    /// Adds pods (on the fitting node with the most free CPU, pending where none fits) or
    /// removes them (pending first, then not yet ready, then the newest).
    func scaleApplied(_ id: String, to replicas: Int) -> Int {
        var list = pods[id] ?? []
        let before = list.count
        guard let template = list.first else { return 0 }
        if replicas > before {
            var next = (list.compactMap { Int($0.name.split(separator: "-").last ?? "") }.max() ?? -1) + 1
            var req = requirements[id] ?? WorkloadRequirements(name: template.workload)
            req.perReplica = template.resources
            req.replicas = 1
            for _ in before..<replicas {
                let j = NodeFilter.best(states, req, copies: 1) { p in Double(p.pointee.allocatable.cpuMilli - p.pointee.requested.cpuMilli) }?.index ?? -1
                if j >= 0 { states[j].requested = states[j].requested + template.resources }
                list.append(Pod(name: "\(template.workload)-\(next)", node: j, resources: template.resources, namespace: template.namespace,
                                workload: template.workload, readyAt: .now + podStartDelay))
                next += 1
            }
        } else if replicas < before {
            let now = ContinuousClock.now
            let order = list.indices.sorted { a, b in
                func rank(_ p: Pod) -> Int { p.node < 0 ? 0 : (p.readyAt > now ? 1 : 2) }
                let (ra, rb) = (rank(list[a]), rank(list[b]))
                return ra != rb ? ra < rb : a > b
            }
            let drop = Set(order.prefix(before - replicas))
            for i in drop where list[i].node >= 0 { states[list[i].node].requested = states[list[i].node].requested - list[i].resources }
            list = list.indices.filter { !drop.contains($0) }.map { list[$0] }
        }
        pods[id] = list
        placePending()
        return before
    }

    /// Pending pods go to nodes as room appears.
    func placePending() {
        for (id, list) in pods where list.contains(where: { $0.node < 0 }) {
            var l = list
            for i in l.indices where l[i].node < 0 {
                var req = requirements[id] ?? WorkloadRequirements(name: l[i].workload)
                req.perReplica = l[i].resources
                req.replicas = 1
                guard let j = NodeFilter.best(states, req, copies: 1, score: { p in Double(p.pointee.allocatable.cpuMilli - p.pointee.requested.cpuMilli) })?.index else { continue }
                states[j].requested = states[j].requested + l[i].resources
                l[i].node = j
                l[i].readyAt = .now + podStartDelay
            }
            pods[id] = l
        }
    }

    /// New requests for a workload's pods; each node's requested resources follow.
    public func resize(_ command: ResizeCommand) throws -> Int {
        guard let id = requestOf(namespace: command.namespace, workload: command.name), var list = pods[id] else {
            throw SimulationError(reason: "no workload \(command.namespace)/\(command.name) in cluster \(name)")
        }
        for i in list.indices {
            var r = list[i].resources
            if let c = command.cpuRequestMilli { r.cpuMilli = c }
            if let m = command.memoryRequest { r.memory = m }
            if list[i].node >= 0 { states[list[i].node].requested = states[list[i].node].requested - list[i].resources + r }
            list[i].resources = r
        }
        pods[id] = list
        return list.count
    }

    /// Usage of every workload placed here: the cluster's share of the offered CPU spread
    /// evenly over the ready pods, and the offered memory per pod; pending and starting pods
    /// have no metrics yet.
    public func usage() -> [WorkloadUsage] {
        let now = ContinuousClock.now
        return pods.compactMap { id, list -> WorkloadUsage? in
            guard let first = list.first else { return nil }
            // Without offered memory, each pod uses half of what the workload first asked for.
            let baseMemory = Double(requirements[id]?.perReplica.memory ?? first.resources.memory) / 2
            let key = "\(first.namespace)/\(first.workload)"
            let load = loads[key]
            let ready = list.filter { $0.node >= 0 && $0.readyAt <= now }.count
            let perPod = ready > 0 ? (load?.cpuMilli ?? 0) * (shares[key] ?? 1) / Double(ready) : 0
            let pods = list.map { p -> PodUsage in
                let isReady = p.node >= 0 && p.readyAt <= now
                return PodUsage(
                    name: p.name, node: p.node >= 0 ? states[p.node].name : nil, ready: isReady,
                    cpuMilli: isReady ? perPod : nil, memory: isReady ? (load?.memory ?? baseMemory) : nil,
                    cpuRequestMilli: Double(p.resources.cpuMilli), memoryRequest: Double(p.resources.memory))
            }
            return WorkloadUsage(namespace: first.namespace, name: first.workload, replicas: list.count, pods: pods)
        }.sorted { $0.key < $1.key }
    }

    /// What a simulated pod "printed": its scheduling and start, as a kubelet and a process
    /// would have logged them, then the load it saw.
    public func logs(namespace: String, pod: String, tail: Int) -> [String]? {
        for (id, list) in pods {
            guard let p = list.first(where: { $0.name == pod && $0.namespace == namespace }) else { continue }
            let ready = p.node >= 0 && p.readyAt <= ContinuousClock.now
            var lines = [
                "pod \(namespace)/\(pod) of request \(id) (workload \(p.workload))",
                p.node >= 0 ? "scheduled on node \(states[p.node].name) of cluster \(name)" : "pending: no node of cluster \(name) has room",
                "requests: cpu \(p.resources.cpuMilli)m, memory \(p.resources.memory / 1_048_576)Mi",
            ]
            if ready {
                lines.append("container started; listening")
                if let load = loads["\(namespace)/\(p.workload)"] { lines.append("serving its share of \(Int(load.cpuMilli))m CPU of offered load") }
            }
            return Array(lines.suffix(max(1, tail)))
        }
        return nil
    }

    public func state() -> [NodeState] { states }

    /// The simulated cluster's objects, as the Kubernetes driver summarizes a real one's: its
    /// pods, one Deployment per placed workload, the StorageClass `standard` (no volumes),
    /// and the events of pods' scheduling and start.
    public func inventory(_ q: InventoryQuery) -> InventoryPage {
        let now = ContinuousClock.now
        let iso = ISO8601DateFormatter()
        var items: [JSONValue] = []
        func inScope(_ ns: String) -> Bool { q.namespace == nil || q.namespace == ns }
        switch q.kind {
        case .pods:
            for list in pods.values {
                for p in list where inScope(p.namespace) {
                    let ready = p.node >= 0 && p.readyAt <= now
                    items.append(InventoryItem.pod(
                        namespace: p.namespace, name: p.name, node: p.node >= 0 ? states[p.node].name : nil, podIP: nil, hostIP: nil,
                        phase: ready ? "Running" : "Pending", readyContainers: ready ? 1 : 0, containers: 1, restarts: 0,
                        startedAt: iso.string(from: p.created), waitingReason: p.node < 0 ? "Unschedulable" : (ready ? nil : "ContainerCreating"),
                        owner: "Deployment/\(p.workload)"))
                }
            }
        case .deployments:
            for list in pods.values {
                guard let first = list.first, inScope(first.namespace) else { continue }
                let ready = list.filter { $0.node >= 0 && $0.readyAt <= now }.count
                let available = ready == list.count
                items.append(InventoryItem.deployment(
                    namespace: first.namespace, name: first.workload, replicas: list.count, ready: ready, available: ready, updated: list.count,
                    conditions: [InventoryItem.condition(type: "Available", status: available ? "True" : "False",
                                                         reason: available ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable", message: nil)],
                    images: [], createdAt: list.map(\.created).min().map { iso.string(from: $0) }))
            }
        case .persistentvolumes, .persistentvolumeclaims:
            break
        case .storageclasses:
            items.append(InventoryItem.storageClass(name: "standard", provisioner: "gedge.io/simulated", reclaimPolicy: "Delete",
                                                    bindingMode: "Immediate", expansion: false, isDefault: true))
        case .events:
            for list in pods.values {
                for p in list where inScope(p.namespace) {
                    if let k = q.objectKind, let n = q.objectName, !(k == "Pod" && n == p.name) && !(k == "Deployment" && n == p.workload) { continue }
                    let at = iso.string(from: p.created)
                    if p.node >= 0 {
                        items.append(InventoryItem.event(
                            namespace: p.namespace, name: "\(p.name).scheduled", type: "Normal", reason: "Scheduled",
                            message: "Successfully assigned \(p.namespace)/\(p.name) to \(states[p.node].name)", count: 1, firstAt: at, lastAt: at,
                            objectKind: "Pod", objectName: p.name))
                        if p.readyAt <= now {
                            items.append(InventoryItem.event(
                                namespace: p.namespace, name: "\(p.name).started", type: "Normal", reason: "Started", message: "Started container \(p.workload)",
                                count: 1, firstAt: at, lastAt: at, objectKind: "Pod", objectName: p.name))
                        }
                    } else {
                        items.append(InventoryItem.event(
                            namespace: p.namespace, name: "\(p.name).failedscheduling", type: "Warning", reason: "FailedScheduling",
                            message: "0/\(states.count) nodes are available: Insufficient resources", count: 1, firstAt: at, lastAt: at,
                            objectKind: "Pod", objectName: p.name))
                    }
                }
            }
        }
        if let name = q.name { items = items.filter { $0["name"]?.stringValue == name } }
        return InventoryItem.page(items, limit: q.limit, after: q.continueToken)
    }

    public var podCount: Int { pods.values.reduce(0) { $0 + $1.count } }

    func release(_ requestID: String) -> Int {
        guard let list = pods.removeValue(forKey: requestID) else { return 0 }
        for p in list where p.node >= 0 { states[p.node].requested = states[p.node].requested - p.resources }
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
            placed.append(Pod(name: "\(req.name)-\(i)", node: j, resources: req.perReplica, namespace: command.namespace, workload: req.name,
                              readyAt: .now + podStartDelay))
        }
        pods[command.requestID] = placed
        requirements[command.requestID] = req
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
                for p in list where p.namespace == name && p.node >= 0 { states[p.node].requested = states[p.node].requested - p.resources }
                pods[id] = list.filter { $0.namespace != name }
            }
        } else {
            namespaces.insert(name)
        }
    }

    public func nodeOf(pod: String, namespace: String?) -> String? {
        for list in pods.values {
            if let p = list.first(where: { $0.name == pod && (namespace == nil || $0.namespace == namespace) }), p.node >= 0 { return states[p.node].name }
        }
        return nil
    }

    public func hasNamespace(_ name: String) -> Bool { namespaces.contains(name) }
}

public struct SimulationError: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
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
