import Foundation
import GEdgeCore
import GEdgePlacement
import Testing

/// Decisions that look at clusters best first (nearest first, or by a bound on their best
/// node's score) and skip clusters by their capacity summary place exactly as the full walk
/// over every node, for every policy, over random fleets and requests: fleets given in no
/// particular order, with ties (identical nodes, latencies in whole milliseconds) that only
/// names break, and coordinates for the pairs no node measured.
@Suite("Pruning by cluster capacity")
struct PruningPropertyTests {
    func fleet(_ g: inout SplitMix) -> [ClusterState] {
        // One fleet in eight is larger: a project's list that holds much of it is applied
        // late, and enough clusters outside it come off the heap to have it filtered whole.
        let count = Int.random(in: 0...7, using: &g) == 0 ? Int.random(in: 40...90, using: &g) : Int.random(in: 1...30, using: &g)
        let names = (0..<count).map { "c\($0)" }
        // A third of the fleets are of identical nodes: every score ties, names decide.
        let uniform = Int.random(in: 0...2, using: &g) == 0
        let wholeMilliseconds = Bool.random(using: &g)
        let clusters = names.enumerated().map { ci, name in
            let nodes = (0..<Int.random(in: 1...12, using: &g)).map { ni -> NodeState in
                if uniform {
                    return NodeState(name: "\(name)-n\(ni)", allocatable: Resources(cpuMilli: 8000, memory: 16 << 30, gpu: 2),
                                     requested: Resources(cpuMilli: 2000, memory: 4 << 30), labels: ["zone": "a"])
                }
                let cpu = Int64([2000, 4000, 8000, 16000].randomElement(using: &g)!)
                let mem = Int64([4, 8, 16, 32].randomElement(using: &g)!) << 30
                let gpu = Int64(Int.random(in: 0...3, using: &g) == 0 ? Int.random(in: 1...4, using: &g) : 0)
                var extended: [String: Int64] = [:]
                if Int.random(in: 0...4, using: &g) == 0 { extended["intel.com/sriov_netdevice"] = Int64(Int.random(in: 1...4, using: &g)) }
                let alloc = Resources(cpuMilli: cpu, memory: mem, gpu: gpu, extended: extended)
                let used = Resources(cpuMilli: Int64.random(in: 0...cpu, using: &g), memory: Int64.random(in: 0...mem, using: &g),
                                     gpu: gpu > 0 ? Int64.random(in: 0...gpu, using: &g) : 0,
                                     extended: extended.mapValues { Int64.random(in: 0...$0, using: &g) })
                var labels: [String: String] = ["zone": ["a", "b", "c"].randomElement(using: &g)!]
                if Bool.random(using: &g) { labels["network.gedge.io/data"] = "true" }
                if Int.random(in: 0...3, using: &g) == 0 { labels["disk"] = "ssd" }
                let taints = Int.random(in: 0...5, using: &g) == 0 ? [Taint(key: "dedicated", value: "ml", effect: .noSchedule)] : []
                var latency: [String: Double] = [:]
                for other in names where other != name && Int.random(in: 0...2, using: &g) > 0 {
                    latency[other] = wholeMilliseconds ? Double(Int.random(in: 1...5, using: &g)) : Double.random(in: 1...200, using: &g)
                }
                return NodeState(name: "\(name)-n\(ni)", ready: Int.random(in: 0...9, using: &g) > 0, unschedulable: Int.random(in: 0...19, using: &g) == 0,
                                 allocatable: alloc, requested: used, labels: labels, taints: taints, latencyMs: latency)
            }
            var state = ClusterState(name: name, kind: ci % 4 == 0 ? .cloud : .edge, nodes: nodes)
            if Bool.random(using: &g) {
                var vector = [Double](repeating: 0, count: VivaldiConfig().dimensions)
                vector[0] = wholeMilliseconds ? Double(Int.random(in: 0...3, using: &g)) / 1000 : Double.random(in: 0...0.1, using: &g)
                state.coordinate = VivaldiCoordinate(vector: vector, height: 0.001, error: 0.5, adjustment: 0)
            }
            return state
        }
        return clusters.shuffled(using: &g)
    }

    func requirements(_ g: inout SplitMix) -> WorkloadRequirements {
        var r = WorkloadRequirements(
            perReplica: Resources(cpuMilli: Int64([100, 500, 1000, 2000, 4000, 8000].randomElement(using: &g)!),
                                  memory: Int64([256, 1024, 4096, 16384].randomElement(using: &g)!) << 20,
                                  gpu: Int.random(in: 0...3, using: &g) == 0 ? 1 : 0),
            replicas: Int.random(in: 1...3, using: &g), name: "w")
        if Int.random(in: 0...4, using: &g) == 0 { r.perReplica.extended["intel.com/sriov_netdevice"] = 1 }
        if Int.random(in: 0...3, using: &g) == 0 { r.networkLabels = ["network.gedge.io/data"] }
        if Int.random(in: 0...3, using: &g) == 0 { r.nodeSelector = ["zone": ["a", "b"].randomElement(using: &g)!] }
        if Int.random(in: 0...5, using: &g) == 0 { r.nodeSelector["disk"] = "ssd" }
        if Int.random(in: 0...3, using: &g) == 0 { r.tolerations = [Toleration(key: "dedicated", value: "ml", effect: .noSchedule)] }
        if Int.random(in: 0...4, using: &g) == 0 { r.preferred = [.local, .cloud, .neighbor].randomElement(using: &g)! }
        return r
    }

    @Test func prunedDecisionsEqualTheFullWalk() async {
        let (placed, pruned, mismatch) = await offThePool { run() }
        #expect(mismatch == nil, "\(mismatch ?? "")")
        // The property was exercised: placements made, and clusters skipped on the way.
        #expect(placed > 500 && pruned > 500, "placed \(placed), with clusters pruned \(pruned)")
    }

    /// Placements made, cases with clusters pruned, and the first case where the two differ.
    @Sendable func run() -> (Int, Int, String?) {
        var g = SplitMix(state: 20261204)
        var placed = 0, pruned = 0
        for _ in 0..<3000 {
            let clusters = fleet(&g)
            let req = requirements(&g)
            let policy: SchedulingPolicy = [.lowLatency, .mostRequested, .mostAllocated].randomElement(using: &g)!
            var parameters: [String: JSONValue] = [:]
            if Int.random(in: 0...3, using: &g) == 0 {
                let some = clusters.shuffled(using: &g).prefix(3).map { JSONValue.string($0.name) }
                parameters["select_clusters"] = .array(Array(some))
            }
            let source = clusters.randomElement(using: &g)!
            // A project's list: most of the fleet (applied late), a quarter (applied early), or a
            // quarter among as many names the fleet does not have (late, then filtered whole).
            let allowed: Set<String>? = switch Int.random(in: 0...7, using: &g) {
            case 0: Set(clusters.shuffled(using: &g).prefix(clusters.count / 2 + 1).map(\.name))
            case 1: Set(clusters.shuffled(using: &g).prefix(clusters.count / 4).map(\.name))
            case 2: Set(clusters.shuffled(using: &g).prefix(clusters.count / 4).map(\.name) + (0..<clusters.count).map { "gone-\($0)" })
            default: nil
            }
            let input = PlacementInput(policy: policy, requirements: req, parameters: .object(parameters),
                                       source: PlacementSource(cluster: source.name, node: Bool.random(using: &g) ? source.nodes.first?.name : nil),
                                       allowedClusters: allowed, maxCandidates: Int.random(in: 1...5, using: &g))
            let full = Placer.decide(input, clusters: clusters, pruning: false)
            let fast = Placer.decide(input, clusters: clusters, pruning: true)
            if fast != full { return (placed, pruned, "policy \(policy), \(req): pruned \(fast), full \(full)") }
            if case .placed = full { placed += 1 }
            if clusters.contains(where: { !$0.capacity.mayFit(req) }) { pruned += 1 }
        }
        return (placed, pruned, nil)
    }

    @Test func theSummaryFollowsReservations() {
        var c = ClusterState(name: "c", nodes: [NodeState(name: "n", allocatable: Resources(cpuMilli: 4000, memory: 8 << 30))])
        let req = WorkloadRequirements(perReplica: Resources(cpuMilli: 3000, memory: 1 << 30), name: "w")
        #expect(c.capacity.mayFit(req))
        c.nodes[0].requested = Resources(cpuMilli: 2000, memory: 0)
        #expect(!c.capacity.mayFit(req))
        c.nodes[0].requested = Resources()
        #expect(c.capacity.mayFit(req))
        c.nodes[0].ready = false
        #expect(!c.capacity.mayFit(req))
    }
}
