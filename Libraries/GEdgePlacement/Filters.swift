import GEdgeCore

/// Why a node cannot take a workload, counted in "0/12 nodes are available" messages.
public enum FilterFailure: String, Sendable, Hashable, CaseIterable {
    case notReady = "node(s) not ready"
    case unschedulable = "node(s) cordoned"
    case taint = "node(s) had untolerated taints"
    case selector = "node(s) didn't match the node selector"
    case affinity = "node(s) didn't match the required node affinity"
    case accelerator = "node(s) lacked the accelerator"
    case cpu = "Insufficient cpu"
    case memory = "Insufficient memory"
    case gpu = "Insufficient nvidia.com/gpu"
    case extended = "Insufficient extended resources"
}

/// The node filters every policy applies before scoring: readiness, taints, node selector,
/// required node affinity, accelerator labels and resource fit (for `copies` replicas).
public enum NodeFilter {
    @inline(__always)
    public static func check(_ node: NodeState, _ req: WorkloadRequirements, copies: Int) -> FilterFailure? {
        if !node.ready { return .notReady }
        if node.unschedulable { return .unschedulable }
        if !node.taints.isEmpty {
            for t in node.taints where t.effect != .preferNoSchedule {
                if !req.tolerations.contains(where: { $0.tolerates(t) }) { return .taint }
            }
        }
        if !req.nodeSelector.isEmpty {
            for (k, v) in req.nodeSelector where node.labels[k] != v { return .selector }
        }
        if !req.affinityTerms.isEmpty {
            if !req.affinityTerms.contains(where: { term in term.allSatisfy { $0.matches(node.labels) } }) { return .affinity }
        }
        if let acc = req.accelerator, !acc.matches(node.labels) { return .accelerator }
        let n = Int64(copies)
        let need = req.perReplica
        let a = node.allocatable
        let r = node.requested
        if need.cpuMilli * n > a.cpuMilli - r.cpuMilli { return .cpu }
        if need.memory * n > a.memory - r.memory { return .memory }
        if need.gpu * n > a.gpu - r.gpu { return .gpu }
        if !need.extended.isEmpty {
            for (k, v) in need.extended where v * n > a.extended[k, default: 0] - r.extended[k, default: 0] { return .extended }
        }
        return nil
    }

    /// Whether the node passes every filter except resources (used to count capacity).
    public static func eligible(_ node: NodeState, _ req: WorkloadRequirements) -> Bool {
        check(node, WorkloadRequirements(
            perReplica: .zero, nodeSelector: req.nodeSelector, affinityTerms: req.affinityTerms,
            tolerations: req.tolerations, accelerator: req.accelerator), copies: 1) == nil
    }

    /// kube-scheduler's summary: "0/6 nodes are available: 2 Insufficient cpu, 4 node(s) not ready."
    public static func explain(_ clusters: [ClusterState], _ req: WorkloadRequirements, copies: Int) -> String {
        var counts: [FilterFailure: Int] = [:]
        var total = 0
        for c in clusters {
            for n in c.nodes {
                total += 1
                if let f = check(n, req, copies: copies) { counts[f, default: 0] += 1 }
            }
        }
        let parts = FilterFailure.allCases.compactMap { f in counts[f].map { "\($0) \(f.rawValue)" } }
        let available = total - counts.values.reduce(0, +)
        return "\(available)/\(total) nodes are available" + (parts.isEmpty ? "" : ": " + parts.joined(separator: ", "))
    }
}
