import Foundation
import GEdgeScaling

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
    var behavior: ScalingBehavior
    var failures = 0
    static let tolerance = 0.1

    public init(object: ScaledObject) {
        self.object = object
        behavior = ScalingBehavior(scaleUp: object.scaleUp, scaleDown: object.scaleDown)
    }

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
            // MessageRate is active on its rate or on waiting messages (KEDA's rule).
            if m > t.activationValue || (t.mode == .messageRate && reading!.messages + reading!.unacknowledged > t.activationValue) { active = true }
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
            behavior.record(now, from: 0, to: floor)
            return ScalingDecision(replicas: floor, reason: "activated: \(fmt(top)) above activationValue", metric: top, active: true)
        }
        if !active {
            let since = lastActive ?? .distantPast
            let toZero = o.idleReplicaCount ?? o.minReplicaCount
            if toZero < floor, now.timeIntervalSince(since) >= Double(o.cooldownPeriod) {
                behavior.record(now, from: current, to: toZero)
                behavior.forgetRecommendations()
                return ScalingDecision(replicas: toZero, reason: "no messages for cooldownPeriod (\(o.cooldownPeriod)s)", metric: top, active: false)
            }
        }
        let clamped = min(max(desired, floor), o.maxReplicaCount)
        let limited = behavior.next(now: now, current: current, recommendation: clamped)
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

    func fmt(_ d: Double) -> String { d.rounded() == d ? String(Int(d)) : String(format: "%.1f", d) }
}
