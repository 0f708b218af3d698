import Foundation

/// HPA behavior of one direction (autoscaling/v2 `HPAScalingRules`).
public struct ScalingRules: Sendable, Hashable {
    public enum PolicyType: String, Sendable { case pods = "Pods", percent = "Percent" }
    public struct Policy: Sendable, Hashable {
        public var type: PolicyType
        public var value: Int
        public var periodSeconds: Int

        public init(type: PolicyType, value: Int, periodSeconds: Int) {
            self.type = type
            self.value = value
            self.periodSeconds = periodSeconds
        }
    }
    public enum Select: String, Sendable { case max = "Max", min = "Min", disabled = "Disabled" }
    public var stabilizationWindowSeconds: Int
    public var policies: [Policy]
    public var selectPolicy: Select

    public init(stabilizationWindowSeconds: Int, policies: [Policy], selectPolicy: Select = .max) {
        self.stabilizationWindowSeconds = stabilizationWindowSeconds
        self.policies = policies
        self.selectPolicy = selectPolicy
    }

    /// Kubernetes' defaults: up at once (0 s window), by 100 % or 4 pods per 15 s,
    /// whichever is more; down after 300 s, by 100 % per 15 s.
    public static let defaultUp = ScalingRules(stabilizationWindowSeconds: 0, policies: [
        Policy(type: .percent, value: 100, periodSeconds: 15), Policy(type: .pods, value: 4, periodSeconds: 15),
    ], selectPolicy: .max)
    public static let defaultDown = ScalingRules(stabilizationWindowSeconds: 300, policies: [
        Policy(type: .percent, value: 100, periodSeconds: 15),
    ], selectPolicy: .max)
}

/// The HPA's behavior over time, for one scaled workload: stabilization windows over past
/// recommendations and rate policies over past changes (Kubernetes' semantics).
public struct ScalingBehavior: Sendable {
    public var scaleUp: ScalingRules
    public var scaleDown: ScalingRules
    var recommendations: [(at: Date, replicas: Int)] = []
    var changes: [(at: Date, delta: Int)] = []

    public init(scaleUp: ScalingRules = .defaultUp, scaleDown: ScalingRules = .defaultDown) {
        self.scaleUp = scaleUp
        self.scaleDown = scaleDown
    }

    /// The replicas to set now, given the current count and this cycle's recommendation.
    public mutating func next(now: Date, current: Int, recommendation: Int) -> Int {
        let stabilized = stabilize(now: now, current: current, recommendation: recommendation)
        let limited = limit(now: now, current: current, target: stabilized)
        record(now, from: current, to: limited)
        return limited
    }

    /// Notes a change made outside `next` (activation, scale to zero).
    public mutating func record(_ now: Date, from: Int, to: Int) {
        if to != from { changes.append((now, to - from)) }
        let horizon = now.addingTimeInterval(-1800)
        changes.removeAll { $0.at < horizon }
    }

    public mutating func forgetRecommendations() { recommendations.removeAll() }

    /// Scale up to the lowest recommendation of the up window, down to the highest of the
    /// down window, else stay.
    mutating func stabilize(now: Date, current: Int, recommendation: Int) -> Int {
        recommendations.append((now, recommendation))
        let upStart = now.addingTimeInterval(-Double(scaleUp.stabilizationWindowSeconds))
        let downStart = now.addingTimeInterval(-Double(scaleDown.stabilizationWindowSeconds))
        var up = recommendation, down = recommendation
        for r in recommendations {
            if r.at > upStart || r.at == now { up = min(up, r.replicas) }
            if r.at > downStart || r.at == now { down = max(down, r.replicas) }
        }
        let oldest = min(upStart, downStart)
        recommendations.removeAll { $0.at <= oldest && $0.at != now }
        if current < up { return up }
        if current > down { return down }
        return current
    }

    /// The rate policies: how far one period may move the replicas.
    func limit(now: Date, current: Int, target: Int) -> Int {
        if target == current { return current }
        let rules = target > current ? scaleUp : scaleDown
        if rules.selectPolicy == .disabled { return current }
        var limits: [Int] = []
        for p in rules.policies {
            let start = now.addingTimeInterval(-Double(p.periodSeconds))
            let added = changes.filter { $0.at > start && $0.delta > 0 }.reduce(0) { $0 + $1.delta }
            let removed = changes.filter { $0.at > start && $0.delta < 0 }.reduce(0) { $0 - $1.delta }
            if target > current {
                let periodStart = current - added
                limits.append(p.type == .pods ? periodStart + p.value : Int((Double(periodStart) * (1 + Double(p.value) / 100)).rounded(.up)))
            } else {
                let periodStart = current + removed
                limits.append(p.type == .pods ? periodStart - p.value : Int((Double(periodStart) * (1 - Double(p.value) / 100)).rounded(.down)))
            }
        }
        guard !limits.isEmpty else { return target }
        if target > current {
            let bound = rules.selectPolicy == .max ? limits.max()! : limits.min()!
            return max(current, min(target, bound))
        }
        let bound = rules.selectPolicy == .max ? limits.min()! : limits.max()!
        return min(current, max(target, bound))
    }
}
