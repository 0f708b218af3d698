import Foundation
import GEdgePlacement

/// Where a new replica count goes: pure, so the tests drive it with tables.
public enum ReplicaPlanner {
    public struct Plan: Sendable, Equatable {
        /// New replicas by placement request ID (only the running placements).
        public var replicas: [String: Int]
        /// An overflow placement should be asked of the scheduler (the target does not fit
        /// in the clusters the workload runs in, and none is being placed).
        public var needsOverflow: Bool
        /// Replicas left unplaced this cycle (waiting for an overflow placement).
        public var waiting: Int
    }

    /// Scale-out fills the home cluster up to its room, then the overflow clusters in the
    /// order they were added (each up to its room), and asks for a new neighbour for the
    /// rest. Scale-in takes replicas back from the newest overflow first, the home last.
    /// `room` gives how many more replicas fit in a cluster; with overflow off, the home
    /// takes everything (its extra pods wait as pending, as with a plain HPA).
    public static func plan(target: Int, placements: [WorkloadPlacement], overflow: Bool, room: (String) -> Int) -> Plan {
        var replicas: [String: Int] = [:]
        for p in placements where p.state == .running { replicas[p.requestID] = p.replicas }
        let placing = placements.filter { $0.state == .placing }
        let current = placements.reduce(0) { $0 + $1.replicas }
        let running = placements.filter { $0.state == .running }
        guard let home = running.first(where: \.home) ?? running.first else {
            return Plan(replicas: replicas, needsOverflow: false, waiting: 0)
        }
        let others = running.filter { $0.requestID != home.requestID }
        if target >= current {
            var extra = target - current
            for p in [home] + others where extra > 0 {
                let add = overflow ? min(extra, max(0, p.cluster.map(room) ?? 0)) : extra
                replicas[p.requestID, default: 0] += add
                extra -= add
            }
            return Plan(replicas: replicas, needsOverflow: extra > 0 && placing.isEmpty, waiting: extra)
        }
        var remove = current - target
        for p in others.reversed() where remove > 0 {
            let take = min(remove, p.replicas)
            replicas[p.requestID] = p.replicas - take
            remove -= take
        }
        if remove > 0 { replicas[home.requestID] = max(1, home.replicas - remove) }
        return Plan(replicas: replicas, needsOverflow: false, waiting: 0)
    }

    /// How many more replicas of `perReplica` fit in a cluster: over its ready nodes that pass
    /// the workload's filters, the copies each node's free resources take.
    public static func room(_ cluster: ClusterState, _ req: WorkloadRequirements, cap: Int = 1000) -> Int {
        var total = 0
        for n in cluster.nodes {
            guard NodeFilter.check(n, req, copies: 1) == nil else { continue }
            var k = 1
            while k < cap, NodeFilter.check(n, req, copies: k + 1) == nil { k += 1 }
            total += k
            if total >= cap { return cap }
        }
        return total
    }
}

/// Vertical scaling: requests from observed usage.
public enum VerticalRecommender {
    /// The 90th percentile of the samples plus headroom, within bounds; nil when the change
    /// from `current` is under `minChangePercent` (no flapping) or there are no samples.
    public static func recommend(samples: [Double], current: Int64, min lower: Int64, max upper: Int64, headroomPercent: Double, minChangePercent: Double) -> Int64? {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        let p90 = sorted[Swift.min(sorted.count - 1, Int((Double(sorted.count) * 0.9).rounded(.up)) - 1)]
        let wanted = Int64((p90 * (1 + headroomPercent / 100)).rounded(.up))
        let bounded = Swift.max(lower, Swift.min(upper, wanted))
        guard current > 0 else { return bounded }
        let change = abs(Double(bounded - current)) / Double(current) * 100
        return change >= minChangePercent ? bounded : nil
    }
}
