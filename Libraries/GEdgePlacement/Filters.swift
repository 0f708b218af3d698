import GEdgeCore

/// Why a node cannot take a workload, counted in "0/12 nodes are available" messages.
public enum FilterFailure: String, Sendable, Hashable, CaseIterable {
    case notReady = "node(s) not ready"
    case unschedulable = "node(s) cordoned"
    case taint = "node(s) had untolerated taints"
    case selector = "node(s) didn't match the node selector"
    case affinity = "node(s) didn't match the required node affinity"
    case accelerator = "node(s) lacked the accelerator"
    case network = "node(s) lacked the data network"
    case cpu = "Insufficient cpu"
    case memory = "Insufficient memory"
    case gpu = "Insufficient nvidia.com/gpu"
    case extended = "Insufficient extended resources"
}

/// The node filters every policy applies before scoring: readiness, taints, node selector,
/// required node affinity, accelerator labels and resource fit (for `copies` replicas).
public enum NodeFilter {
    /// Cheap checks first (readiness, arithmetic on resources), then labels and taints.
    public static func check(_ node: NodeState, _ req: WorkloadRequirements, copies: Int) -> FilterFailure? {
        withUnsafePointer(to: node) { check(at: $0, req, copies: copies) }
    }

    /// The same through a pointer into the node array: fields are read in place, the node
    /// (with its dictionaries) is never copied. This is the hot loop of every policy.
    @inline(__always)
    static func check(at p: UnsafePointer<NodeState>, _ req: WorkloadRequirements, copies: Int) -> FilterFailure? {
        if !p.pointee.ready { return .notReady }
        if p.pointee.unschedulable { return .unschedulable }
        let n = Int64(copies)
        if req.perReplica.cpuMilli * n > p.pointee.allocatable.cpuMilli - p.pointee.requested.cpuMilli { return .cpu }
        if req.perReplica.memory * n > p.pointee.allocatable.memory - p.pointee.requested.memory { return .memory }
        if req.perReplica.gpu * n > p.pointee.allocatable.gpu - p.pointee.requested.gpu { return .gpu }
        if !req.perReplica.extended.isEmpty {
            for (k, v) in req.perReplica.extended where v * n > p.pointee.allocatable.extended[k, default: 0] - p.pointee.requested.extended[k, default: 0] { return .extended }
        }
        if !p.pointee.taints.isEmpty {
            for t in p.pointee.taints where t.effect != .preferNoSchedule {
                if !req.tolerations.contains(where: { $0.tolerates(t) }) { return .taint }
            }
        }
        // Before the selector and affinity: the manifests' affinity for a data network says
        // the same, less precisely.
        if !req.networkLabels.isEmpty {
            for key in req.networkLabels where p.pointee.labels[key] != "true" { return .network }
        }
        if !req.nodeSelector.isEmpty {
            for (k, v) in req.nodeSelector where p.pointee.labels[k] != v { return .selector }
        }
        if !req.affinityTerms.isEmpty {
            if !req.affinityTerms.contains(where: { term in term.allSatisfy { $0.matches(p.pointee.labels) } }) { return .affinity }
        }
        if let acc = req.accelerator, !acc.matches(p.pointee.labels) { return .accelerator }
        return nil
    }

    /// The extended resource a node lacks, for the message ("Insufficient intel.com/sriov_netdevice").
    static func insufficientExtended(_ node: NodeState, _ req: WorkloadRequirements, copies: Int) -> String? {
        let n = Int64(copies)
        return req.perReplica.extended.sorted { $0.key < $1.key }.first { k, v in
            v * n > node.allocatable.extended[k, default: 0] - node.requested.extended[k, default: 0]
        }?.key
    }

    /// The feasible node with the highest score (ties to the lower name), by index. Reads the
    /// nodes in place: copying each node (and its dictionaries) costs more than the checks.
    @inline(__always)
    public static func best(
        _ nodes: [NodeState], _ req: WorkloadRequirements, copies: Int, score: (UnsafePointer<NodeState>) -> Double
    ) -> (index: Int, score: Double)? {
        nodes.withUnsafeBufferPointer { buf in
            var best: (Int, Double)?
            guard let base = buf.baseAddress else { return nil }
            for i in 0..<buf.count {
                let p = base + i
                guard check(at: p, req, copies: copies) == nil else { continue }
                let s = score(p)
                if let (bi, bs) = best {
                    if s > bs || (s == bs && p.pointee.name < base[bi].name) { best = (i, s) }
                } else {
                    best = (i, s)
                }
            }
            return best
        }
    }

    /// The first feasible node in `order` (indices into `nodes`).
    @inline(__always)
    public static func first(_ nodes: [NodeState], _ req: WorkloadRequirements, copies: Int, in order: [Int]) -> Int? {
        nodes.withUnsafeBufferPointer { buf in
            guard let base = buf.baseAddress else { return nil }
            for i in order where i < buf.count && check(at: base + i, req, copies: copies) == nil { return i }
            return nil
        }
    }

    /// Whether the node passes every filter except resources (used to count capacity).
    public static func eligible(_ node: NodeState, _ req: WorkloadRequirements) -> Bool {
        check(node, WorkloadRequirements(
            perReplica: .zero, nodeSelector: req.nodeSelector, affinityTerms: req.affinityTerms,
            tolerations: req.tolerations, accelerator: req.accelerator, networkLabels: req.networkLabels), copies: 1) == nil
    }

    /// kube-scheduler's summary: "0/6 nodes are available: 2 Insufficient cpu, 4 node(s) not ready."
    public static func explain(_ clusters: [ClusterState], _ req: WorkloadRequirements, copies: Int) -> String {
        var counts: [FilterFailure: Int] = [:]
        var extended: [String: Int] = [:]
        var total = 0
        for c in clusters {
            for n in c.nodes {
                total += 1
                guard let f = check(n, req, copies: copies) else { continue }
                counts[f, default: 0] += 1
                if f == .extended, let name = insufficientExtended(n, req, copies: copies) { extended[name, default: 0] += 1 }
            }
        }
        // Each extended resource by its name, as kube-scheduler says it.
        let parts = FilterFailure.allCases.flatMap { f -> [String] in
            guard let n = counts[f] else { return [] }
            if f == .extended, !extended.isEmpty { return extended.sorted { $0.key < $1.key }.map { "\($0.value) Insufficient \($0.key)" } }
            return ["\(n) \(f.rawValue)"]
        }
        let available = total - counts.values.reduce(0, +)
        return "\(available)/\(total) nodes are available" + (parts.isEmpty ? "" : ": " + parts.joined(separator: ", "))
    }
}
