import Foundation

/// One pod as the HPA sees it: ready or not, its metric (nil when there is none), its
/// request of the resource (for utilization targets).
public struct PodSample: Sendable, Hashable {
    public var name: String
    public var ready: Bool
    /// Deleting or failed: left out altogether.
    public var ignored: Bool
    public var value: Double?
    public var request: Double?

    public init(name: String, ready: Bool = true, ignored: Bool = false, value: Double?, request: Double? = nil) {
        self.name = name
        self.ready = ready
        self.ignored = ignored
        self.value = value
        self.request = request
    }
}

/// A metric target, as autoscaling/v2 names them.
public enum MetricTarget: Sendable, Hashable {
    /// Percent of the pods' requests (resource metrics).
    case utilization(Double)
    /// Per pod (pods metrics, or an external metric divided among the pods).
    case averageValue(Double)
}

public struct HPAProposal: Sendable, Hashable {
    public var replicas: Int
    /// The usage ratio of the ready pods with metrics (1 means on target).
    public var usageRatio: Double
    public var reason: String

    public init(replicas: Int, usageRatio: Double, reason: String) {
        self.replicas = replicas
        self.usageRatio = usageRatio
        self.reason = reason
    }
}

/// The Kubernetes HPA's replica calculation, exactly: desired = ceil(current × ratio) over
/// the ready pods with metrics, nothing within the tolerance; then, when pods lack metrics
/// or are not ready, the conservative re-check (missing pods count as 100 % of target on a
/// scale-down and 0 % on a scale-up; not-ready pods as 0 % on a scale-up), which may cancel
/// the change but never reverses its direction.
public enum HPA {
    public static let tolerance = 0.1

    public static func replicas(current: Int, pods: [PodSample], target: MetricTarget, tolerance: Double = tolerance) -> HPAProposal {
        var metrics: [String: (value: Double, request: Double)] = [:]
        var readyCount = 0
        var unready: [PodSample] = []
        var missing: [PodSample] = []
        for p in pods where !p.ignored {
            guard let v = p.value else {
                missing.append(p)
                continue
            }
            if !p.ready {
                unready.append(p)
                continue
            }
            metrics[p.name] = (v, p.request ?? 0)
            readyCount += 1
        }
        guard !metrics.isEmpty else {
            return HPAProposal(replicas: current, usageRatio: 1, reason: "no ready pod has metrics; replicas kept")
        }
        let usageRatio = ratio(metrics, target)
        let scaleUpWithUnready = !unready.isEmpty && usageRatio > 1
        if !scaleUpWithUnready && missing.isEmpty {
            if abs(1 - usageRatio) <= tolerance {
                return HPAProposal(replicas: current, usageRatio: usageRatio, reason: "within tolerance")
            }
            return HPAProposal(replicas: Int((usageRatio * Double(readyCount)).rounded(.up)), usageRatio: usageRatio,
                               reason: String(format: "usage ratio %.2f over %d ready pods", usageRatio, readyCount))
        }
        if !missing.isEmpty {
            for p in missing {
                if usageRatio < 1 {
                    // Scale-down: pods without metrics are taken as using 100 % (or the target, if higher).
                    switch target {
                    case .utilization(let t): metrics[p.name] = ((p.request ?? 0) * max(100, t) / 100, p.request ?? 0)
                    case .averageValue(let t): metrics[p.name] = (t, 0)
                    }
                } else if usageRatio > 1 {
                    metrics[p.name] = (0, p.request ?? 0)
                }
            }
        }
        if scaleUpWithUnready {
            for p in unready { metrics[p.name] = (0, p.request ?? 0) }
        }
        let newRatio = ratio(metrics, target)
        if abs(1 - newRatio) <= tolerance || (usageRatio < 1 && newRatio > 1) || (usageRatio > 1 && newRatio < 1) {
            return HPAProposal(replicas: current, usageRatio: usageRatio,
                               reason: String(format: "usage ratio %.2f, %.2f counting pods without metrics or not ready: kept", usageRatio, newRatio))
        }
        let proposed = Int((newRatio * Double(metrics.count)).rounded(.up))
        if (newRatio < 1 && proposed > current) || (newRatio > 1 && proposed < current) {
            return HPAProposal(replicas: current, usageRatio: usageRatio, reason: "the change would reverse direction: kept")
        }
        return HPAProposal(replicas: proposed, usageRatio: usageRatio,
                           reason: String(format: "usage ratio %.2f counting %d pod(s) without metrics or not ready", newRatio, missing.count + unready.count))
    }

    /// An external metric's total against a per-pod average target (KEDA's and the HPA's
    /// external AverageValue): ceil(total / target), nothing within the tolerance.
    public static func replicas(current: Int, externalTotal: Double, averageTarget: Double, tolerance: Double = tolerance) -> HPAProposal {
        guard averageTarget > 0 else { return HPAProposal(replicas: current, usageRatio: 1, reason: "no target") }
        let ratio = current > 0 ? externalTotal / (averageTarget * Double(current)) : (externalTotal > 0 ? .infinity : 0)
        if current > 0, abs(1 - ratio) <= tolerance {
            return HPAProposal(replicas: current, usageRatio: ratio, reason: "within tolerance")
        }
        return HPAProposal(replicas: Int((externalTotal / averageTarget).rounded(.up)), usageRatio: ratio,
                           reason: String(format: "%.1f for a target of %.1f per pod", externalTotal, averageTarget))
    }

    /// With several metrics, the largest proposal wins (as the HPA does).
    public static func combine(_ proposals: [HPAProposal], current: Int) -> HPAProposal {
        proposals.max { $0.replicas < $1.replicas } ?? HPAProposal(replicas: current, usageRatio: 1, reason: "no metrics")
    }

    static func ratio(_ metrics: [String: (value: Double, request: Double)], _ target: MetricTarget) -> Double {
        switch target {
        case .utilization(let t):
            let used = metrics.values.reduce(0) { $0 + $1.value }
            let requested = metrics.values.reduce(0) { $0 + $1.request }
            guard requested > 0, t > 0 else { return 1 }
            return (used / requested * 100) / t
        case .averageValue(let t):
            guard t > 0 else { return 1 }
            return metrics.values.reduce(0) { $0 + $1.value } / Double(metrics.count) / t
        }
    }
}
