import Foundation
import Testing

@testable import GEdgeScaling

/// The HPA's replica calculation, against the examples of the Kubernetes documentation
/// ("Algorithm details") and the rules for pods without metrics or not ready.
@Suite struct HPATests {
    func pods(_ values: [Double?], request: Double = 1000, ready: [Bool]? = nil) -> [PodSample] {
        values.enumerated().map { i, v in PodSample(name: "p\(i)", ready: ready?[i] ?? true, value: v, request: request) }
    }

    @Test(arguments: [
        // The documentation's: 200m against a 100m target doubles; 50m against 100m halves.
        (4, [200.0, 200, 200, 200] as [Double?], MetricTarget.averageValue(100), 8),
        (4, [50.0, 50, 50, 50] as [Double?], MetricTarget.averageValue(100), 2),
        // Within the 0.1 tolerance nothing changes (ratio 1.05 and 0.95).
        (4, [105.0, 105, 105, 105] as [Double?], MetricTarget.averageValue(100), 4),
        (4, [95.0, 95, 95, 95] as [Double?], MetricTarget.averageValue(100), 4),
        // Utilization: 3 pods at 100 % of their requests for a 50 % target: 6.
        (3, [1000.0, 1000, 1000] as [Double?], MetricTarget.utilization(50), 6),
        // 4 pods at 25 % for a 50 % target: 2.
        (4, [250.0, 250, 250, 250] as [Double?], MetricTarget.utilization(50), 2),
        // ceil: 3 pods at 60 % for a 50 % target: ceil(3.6) = 4.
        (3, [600.0, 600, 600] as [Double?], MetricTarget.utilization(50), 4),
    ])
    func desiredIsCeilCurrentTimesRatio(current: Int, values: [Double?], target: MetricTarget, expected: Int) {
        #expect(HPA.replicas(current: current, pods: pods(values), target: target).replicas == expected)
    }

    /// Scale-up with a pod missing metrics: it counts as 0 %, which damps the step.
    @Test func missingMetricsOnScaleUpCountAsZero() {
        let r = HPA.replicas(current: 3, pods: pods([1000, 1000, nil]), target: .utilization(50))
        // Ready ratio 2.0; with the missing pod at 0: (1000 + 1000 + 0) / 3000 = 66.7 % -> 1.33 -> ceil(4.0) = 4.
        #expect(r.replicas == 4)
    }

    /// Scale-down with a pod missing metrics: it counts as 100 %, which may cancel the step.
    @Test func missingMetricsOnScaleDownCountAsFull() {
        // Ready ratio 0.2 (10 % each); with the missing one at 100 %: 40 % -> 0.8 -> ceil(2.4) = 3 = current: kept.
        #expect(HPA.replicas(current: 3, pods: pods([100, 100, nil]), target: .utilization(50)).replicas == 3)
        // With more pods the step survives, smaller: 5 pods, 4 at 10 %, 1 missing: 28 % -> 0.56 -> ceil(2.8) = 3.
        #expect(HPA.replicas(current: 5, pods: pods([100, 100, 100, 100, nil]), target: .utilization(50)).replicas == 3)
    }

    /// Not-ready pods count as 0 % on a scale-up, and are ignored on a scale-down.
    @Test func unreadyPodsDampScaleUpOnly() {
        // 2 ready at 100 %, 2 not ready; target 50 %: ratio 2.0 -> with unready at 0: 1.0 -> within tolerance.
        #expect(HPA.replicas(current: 4, pods: pods([1000, 1000, 500, 500], ready: [true, true, false, false]), target: .utilization(50)).replicas == 4)
        // Scale-down: the not-ready pod is left out: 2 ready at 10 % -> 0.2 x 2 ready = ceil(0.4) = 1.
        #expect(HPA.replicas(current: 3, pods: pods([100, 100, 900], ready: [true, true, false]), target: .utilization(50)).replicas == 1)
    }

    @Test func ignoredPodsAreLeftOut() {
        var ps = pods([1000, 1000])
        ps.append(PodSample(name: "gone", ignored: true, value: 0, request: 1000))
        #expect(HPA.replicas(current: 3, pods: ps, target: .utilization(50)).replicas == 4)
    }

    @Test func noMetricsKeepsReplicas() {
        #expect(HPA.replicas(current: 3, pods: pods([nil, nil, nil]), target: .utilization(50)).replicas == 3)
    }

    @Test func externalAverageValue() {
        #expect(HPA.replicas(current: 2, externalTotal: 95, averageTarget: 10).replicas == 10)
        #expect(HPA.replicas(current: 10, externalTotal: 104, averageTarget: 10).replicas == 10)  // tolerance
        #expect(HPA.replicas(current: 0, externalTotal: 1, averageTarget: 10).replicas == 1)
    }

    @Test func theLargestProposalAcrossMetricsWins() {
        let cpu = HPA.replicas(current: 4, pods: pods([250, 250, 250, 250]), target: .utilization(50))
        let queue = HPA.replicas(current: 4, externalTotal: 70, averageTarget: 10)
        #expect(HPA.combine([cpu, queue], current: 4).replicas == 7)
    }

    /// GS-Engine's windows (scale-out 3 min, scale-in 5 min) with an injected clock.
    @Test func stabilizationWindows() {
        var b = ScalingBehavior(scaleUp: .init(stabilizationWindowSeconds: 180, policies: ScalingRules.defaultUp.policies),
                                scaleDown: .init(stabilizationWindowSeconds: 300, policies: ScalingRules.defaultDown.policies))
        let t0 = Date(timeIntervalSince1970: 0)
        #expect(b.next(now: t0, current: 2, recommendation: 2) == 2)
        #expect(b.next(now: t0 + 60, current: 2, recommendation: 6) == 2)     // the up window still holds a 2
        #expect(b.next(now: t0 + 181, current: 2, recommendation: 6) == 6)    // 2 left the window
        #expect(b.next(now: t0 + 200, current: 6, recommendation: 1) == 6)    // the down window holds a 6
        #expect(b.next(now: t0 + 482, current: 6, recommendation: 1) == 1)
    }
}
