import Foundation

/// One reading of a trigger: the queue's messages (ready plus unacknowledged when the
/// management API is used), its publish rate, its consumers.
public struct QueueReading: Sendable, Hashable {
    public var messages: Double
    public var unacknowledged: Double
    public var publishRate: Double
    public var consumers: Int
    /// IPs of consumers holding unacknowledged messages (management API only).
    public var busyConsumerIPs: [String]

    public init(messages: Double, unacknowledged: Double = 0, publishRate: Double = 0, consumers: Int = 0, busyConsumerIPs: [String] = []) {
        self.messages = messages
        self.unacknowledged = unacknowledged
        self.publishRate = publishRate
        self.consumers = consumers
        self.busyConsumerIPs = busyConsumerIPs
    }
}

public struct ScalingDecision: Sendable, Hashable {
    public var replicas: Int
    public var reason: String
    /// The metric that drove it (largest across triggers).
    public var metric: Double
    public var active: Bool
}

/// KEDA's semantics for one ScaledObject, time injected: activation 0 → 1 above
/// `activationValue`; 1 → N as the HPA would (`ceil(metric / value)` within the bounds, 0.1
/// tolerance, stabilization windows, rate policies); N → 0 after `cooldownPeriod` with
/// nothing active; `fallback` replicas after repeated metric failures.
public struct ScalingEngine: Sendable {
    public let object: ScaledObject
    public private(set) var lastActive: Date?
    var recommendations: [(at: Date, replicas: Int)] = []
    var changes: [(at: Date, delta: Int)] = []
    var failures = 0
    static let tolerance = 0.1

    public init(object: ScaledObject) { self.object = object }

    /// The metric of one trigger and whether it is active.
    static func metric(_ t: ScaledObject.Trigger, _ r: QueueReading) -> Double {
        switch t.mode {
        case .queueLength: return r.messages + r.unacknowledged
        case .messageRate: return r.publishRate
        }
    }

    /// Readings per trigger, in the order of `object.triggers`; nil where the read failed.
    public mutating func decide(now: Date, current: Int, readings: [QueueReading?]) -> ScalingDecision {
        let o = object
        if readings.contains(where: { $0 == nil }) || readings.isEmpty {
            failures += 1
            if let f = o.fallback, failures >= f.failureThreshold {
                return ScalingDecision(replicas: f.replicas, reason: "fallback: the metric failed \(failures) times", metric: 0, active: current > 0)
            }
            return ScalingDecision(replicas: current, reason: "metric unavailable (failure \(failures)); replicas kept", metric: 0, active: current > 0)
        }
        failures = 0
        var active = false
        var desired = 0
        var top = 0.0
        for (t, reading) in zip(o.triggers, readings) {
            let m = Self.metric(t, reading!)
            top = max(top, m)
            if m > t.activationValue { active = true }
            if current > 0 {
                // HPA, AverageValue target: usage ratio against the current replicas.
                let ratio = m / (t.value * Double(current))
                desired = max(desired, abs(ratio - 1) <= Self.tolerance ? current : Int((m / t.value).rounded(.up)))
            } else {
                desired = max(desired, Int((m / t.value).rounded(.up)))
            }
        }
        if active { lastActive = now }
        let floor = max(1, o.minReplicaCount)

        if current == 0 {
            guard active else {
                let idle = o.idleReplicaCount ?? o.minReplicaCount
                return ScalingDecision(replicas: idle, reason: idle == 0 ? "idle" : "at minReplicaCount", metric: top, active: false)
            }
            record(now, from: 0, to: floor)
            return ScalingDecision(replicas: floor, reason: "activated: \(fmt(top)) above activationValue", metric: top, active: true)
        }
        if !active {
            let since = lastActive ?? .distantPast
            let toZero = o.idleReplicaCount ?? o.minReplicaCount
            if toZero < floor, now.timeIntervalSince(since) >= Double(o.cooldownPeriod) {
                record(now, from: current, to: toZero)
                recommendations.removeAll()
                return ScalingDecision(replicas: toZero, reason: "no messages for cooldownPeriod (\(o.cooldownPeriod)s)", metric: top, active: false)
            }
        }
        let clamped = min(max(desired, floor), o.maxReplicaCount)
        let stabilized = stabilize(now: now, current: current, recommendation: clamped)
        let limited = limit(now: now, current: current, target: stabilized)
        if limited != current { record(now, from: current, to: limited) }
        let reason: String
        if limited > current {
            reason = "scale out: \(fmt(top)) for a target of \(fmt(o.triggers[0].value)) each"
        } else if limited < current {
            reason = "scale in: \(fmt(top)) for a target of \(fmt(o.triggers[0].value)) each"
        } else {
            reason = desired == current ? "within tolerance" : "held by the stabilization window or rate policy (wanted \(clamped))"
        }
        return ScalingDecision(replicas: limited, reason: reason, metric: top, active: active)
    }

    mutating func record(_ now: Date, from: Int, to: Int) {
        if to != from { changes.append((now, to - from)) }
        let horizon = now.addingTimeInterval(-1800)
        changes.removeAll { $0.at < horizon }
    }

    /// The HPA's stabilization: scale up to the lowest recommendation of the up window,
    /// down to the highest of the down window.
    mutating func stabilize(now: Date, current: Int, recommendation: Int) -> Int {
        recommendations.append((now, recommendation))
        let upStart = now.addingTimeInterval(-Double(object.scaleUp.stabilizationWindowSeconds))
        let downStart = now.addingTimeInterval(-Double(object.scaleDown.stabilizationWindowSeconds))
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

    /// The rate policies, as the HPA applies them.
    func limit(now: Date, current: Int, target: Int) -> Int {
        if target == current { return current }
        let rules = target > current ? object.scaleUp : object.scaleDown
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
        } else {
            let bound = rules.selectPolicy == .max ? limits.min()! : limits.max()!
            return min(current, max(target, bound))
        }
    }

    func fmt(_ d: Double) -> String { d.rounded() == d ? String(Int(d)) : String(format: "%.1f", d) }
}
