import Foundation
import GEdgeCore
import GEdgePlacement
import Testing

@testable import GEdgeAutoscaler
@testable import GEdgeScaling

/// The autoscaler's pure parts: where replicas go (home, then neighbours over the edge, and
/// back in the other order), vertical recommendations, policies and their defaults.
@Suite struct AutoscalerPlanTests {
    func home(_ n: Int) -> WorkloadPlacement { WorkloadPlacement(requestID: "r", cluster: "home", home: true, replicas: n, state: .running) }
    func over(_ id: String, _ cluster: String, _ n: Int) -> WorkloadPlacement { WorkloadPlacement(requestID: id, cluster: cluster, home: false, replicas: n, state: .running) }
    func placing(_ id: String) -> WorkloadPlacement { WorkloadPlacement(requestID: id, cluster: nil, home: false, replicas: 1, state: .placing) }

    static let cases: [(Int, [(String, Int)], [String: Int], [String: Int], Bool, Int)] = [
        // (target, placements, room by cluster, expected replicas, needs overflow, waiting)
        (4, [("home", 2)], ["home": 5], ["r": 4], false, 0),
        // The home has room for 2 of 5 more: 3 wait, a neighbour is asked for.
        (7, [("home", 2)], ["home": 2], ["r": 4], true, 3),
        // With a neighbour running: it takes what fits there.
        (8, [("home", 4), ("n", 1)], ["home": 0, "n": 10], ["r": 4, "x1": 4], false, 0),
        // Scale-in: the neighbour gives back first ...
        (6, [("home", 4), ("n", 4)], [:], ["r": 4, "x1": 2], false, 0),
        // ... down to nothing, then the home.
        (2, [("home", 4), ("n", 4)], [:], ["r": 2, "x1": 0], false, 0),
    ]

    @Test func distributeTable() {
        for (target, current, room, expected, overflow, waiting) in Self.cases {
            distribute(target: target, current: current, room: room, expected: expected, overflow: overflow, waiting: waiting)
        }
    }

    func distribute(target: Int, current: [(String, Int)], room: [String: Int], expected: [String: Int], overflow: Bool, waiting: Int) {
        let pls = current.map { $0.0 == "home" ? home($0.1) : over("x1", $0.0, $0.1) }
        let plan = ReplicaPlanner.plan(target: target, placements: pls, overflow: true) { room[$0] ?? 0 }
        #expect(plan.replicas == expected)
        #expect(plan.needsOverflow == overflow)
        #expect(plan.waiting == waiting)
    }

    @Test func newestNeighbourGivesBackFirst() {
        let plan = ReplicaPlanner.plan(target: 5, placements: [home(4), over("x1", "a", 2), over("x2", "b", 2)], overflow: true) { _ in 0 }
        #expect(plan.replicas == ["r": 4, "x1": 1, "x2": 0])
    }

    @Test func oneNeighbourAtATime() {
        // A placement is under way: no second one is asked for.
        let plan = ReplicaPlanner.plan(target: 9, placements: [home(4), placing("x1")], overflow: true) { _ in 0 }
        #expect(!plan.needsOverflow)
        #expect(plan.waiting == 4)
    }

    @Test func withoutOverflowTheHomeTakesAll() {
        let plan = ReplicaPlanner.plan(target: 9, placements: [home(4)], overflow: false) { _ in 0 }
        #expect(plan.replicas == ["r": 9])
        #expect(!plan.needsOverflow)
    }

    @Test func roomCountsCopiesPerFittingNode() {
        let nodes = [
            NodeState(name: "a", ready: true, allocatable: Resources(cpuMilli: 2000, memory: 8 << 30), requested: Resources(cpuMilli: 500, memory: 0)),
            NodeState(name: "b", ready: true, allocatable: Resources(cpuMilli: 1000, memory: 8 << 30)),
            NodeState(name: "c", ready: false, allocatable: Resources(cpuMilli: 4000, memory: 8 << 30)),
        ]
        let req = WorkloadRequirements(perReplica: Resources(cpuMilli: 500, memory: 128 << 20))
        // a: 1500m free -> 3; b: 2; c not ready.
        #expect(ReplicaPlanner.room(ClusterState(name: "x", nodes: nodes), req) == 5)
    }

    @Test func verticalRecommendation() {
        let samples = (1...10).map { Double($0 * 10) }  // 10 ... 100; p90 = 90
        // 90 + 15 % = 103.5 -> 104, from 200: a 48 % change.
        #expect(VerticalRecommender.recommend(samples: samples, current: 200, min: 50, max: 1000, headroomPercent: 15, minChangePercent: 20) == 104)
        // Within 20 % of the current request: no change (no flapping).
        #expect(VerticalRecommender.recommend(samples: samples, current: 110, min: 50, max: 1000, headroomPercent: 15, minChangePercent: 20) == nil)
        // Bounds hold.
        #expect(VerticalRecommender.recommend(samples: samples, current: 1000, min: 300, max: 1000, headroomPercent: 15, minChangePercent: 20) == 300)
        #expect(VerticalRecommender.recommend(samples: [5000], current: 1000, min: 50, max: 2000, headroomPercent: 15, minChangePercent: 20) == 2000)
        #expect(VerticalRecommender.recommend(samples: [], current: 100, min: 50, max: 2000, headroomPercent: 15, minChangePercent: 20) == nil)
    }

    @Test func externalTargets() {
        // Value: the total against the target scales the current count.
        #expect(Autoscaler.external(current: 2, value: 300, target: .value(100)).replicas == 6)
        #expect(Autoscaler.external(current: 4, value: 105, target: .value(100)).replicas == 4)  // tolerance
        // AverageValue: the total divided among pods.
        #expect(Autoscaler.external(current: 2, value: 95, target: .averageValue(10)).replicas == 10)
    }

    /// A big cluster's pod metrics go in parts under the message limit; the view reads them all.
    @Test func podMetricsReportsSplitAndMerge() throws {
        func w(_ name: String, _ pods: Int) -> WorkloadUsage {
            WorkloadUsage(namespace: "p", name: name, replicas: pods, pods: (0..<pods).map {
                PodUsage(name: "\(name)-\($0)", ready: true, cpuMilli: 10, memory: 1, cpuRequestMilli: 100, memoryRequest: 2)
            })
        }
        let report = PodMetricsReport(cluster: "c", workloads: [w("a", 3), w("b", 3), w("c", 1), w("d", 5)])
        let parts = report.split(maxPods: 4)
        #expect(parts.map { $0.workloads.map(\.name) } == [["a"], ["b", "c"], ["d"]])
        #expect(parts.allSatisfy { $0.parts == 3 })
        let view = PodMetricsView()
        for p in parts { view.update(try PodMetricsReport.decode(p.json)) }
        #expect(view.usage(cluster: "c", key: "p/d", staleAfter: .seconds(60))?.pods.count == 5)
        #expect(view.usage(cluster: "c", key: "p/a", staleAfter: .seconds(60))?.replicas == 3)
        // The cluster shrinks to one part: the old parts are forgotten.
        view.update(PodMetricsReport(cluster: "c", workloads: [w("a", 1)]))
        #expect(view.usage(cluster: "c", key: "p/d", staleAfter: .seconds(60)) == nil)
    }

    @Test func overflowWorkloadHasOneReplica() {
        let w = j(#"[{"kind": "Deployment", "spec": {"replicas": 5}}, {"kind": "Service", "spec": {}}]"#)
        let out = Autoscaler.withReplicas(w, 1)
        #expect(out.arrayValue?[0]["spec"]?["replicas"] == .number(1))
        #expect(out.arrayValue?[1]["spec"]?["replicas"] == nil)
    }
}

func j(_ text: String) -> JSONValue { try! JSONValue.parse(Array(text.utf8)) }

@Suite struct AutoscalePolicyTests {
    /// The base policy with `extra` fields (JSON text of an object's members) added.
    func with(_ extra: String) -> JSONValue {
        j(#"{"namespace": "shop", "name": "web", "request_id": "svc-1", "maxReplicas": 10"# + (extra.isEmpty ? "" : ", " + extra) + "}")
    }

    @Test func gsEngineDefaults() throws {
        let p = try AutoscalePolicy.decode(with(""), project: "p1")
        #expect(p.minReplicas == 1)
        #expect(p.metrics == [.cpu(targetUtilization: 80)])
        #expect(p.scaleUp.stabilizationWindowSeconds == 180)
        #expect(p.scaleDown.stabilizationWindowSeconds == 300)
        #expect(p.overflow)
        #expect(p.projectName == "p1")
        // Round trip through the stored form.
        #expect(try AutoscalePolicy.decode(p.json, project: "p1") == p)
    }

    @Test func everyMetricKind() throws {
        let p = try AutoscalePolicy.decode(with(#"""
            "metrics": [{"type": "cpu", "targetUtilization": 60}, {"type": "memory", "targetUtilization": 70},
              {"type": "prometheus", "query": "sum(rate(x[1m]))", "targetAverageValue": 100},
              {"type": "rabbitmq", "queue": "jobs", "targetValue": 50},
              {"type": "kafka-lag", "topic": "t", "group": "g", "targetAverageValue": 1000}]
            """#), project: nil)
        #expect(p.metrics.count == 5)
        #expect(p.metrics[3] == AutoscalePolicy.Metric.rabbitmq(queue: "jobs", url: nil, target: AutoscalePolicy.ExternalTarget.value(50)))
        #expect(try AutoscalePolicy.decode(p.json, project: nil) == p)
    }

    @Test(arguments: [
        (#""maxReplicas": 0"#, "maxReplicas"),
        (#""minReplicas": 0"#, "minReplicas"),
        (#""name": "Not_A_Label""#, "name"),
        (#""metrics": [{"type": "cpu", "targetUtilization": 150}]"#, "metrics[0].targetUtilization"),
        (#""metrics": [{"type": "gpu"}]"#, "metrics[0].type"),
        (#""metrics": [{"type": "rabbitmq", "queue": "q"}]"#, "metrics[0].targetAverageValue"),
        (#""behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}"#, "behavior.scaleUp.policies[0].value"),
        (#""vertical": {"minCPU": "2", "maxCPU": "1"}"#, "vertical.maxCPU"),
        (#""extra": true"#, "extra"),
    ])
    func rejected(extra: String, field: String) {
        do {
            _ = try AutoscalePolicy.decode(with(extra), project: nil)
            Issue.record("accepted \(extra)")
        } catch {
            #expect(error.field == field)
        }
    }

    /// GS-Engine's windows through a policy's behavior, with an injected clock.
    @Test func policyWindowsHoldWithAnInjectedClock() throws {
        let p = try AutoscalePolicy.decode(with(""), project: nil)
        var b = ScalingBehavior(scaleUp: p.scaleUp, scaleDown: p.scaleDown)
        let t0 = Date(timeIntervalSince1970: 1_000)
        #expect(b.next(now: t0, current: 2, recommendation: 2) == 2)
        #expect(b.next(now: t0 + 170, current: 2, recommendation: 5) == 2)   // 3-minute scale-out window
        #expect(b.next(now: t0 + 181, current: 2, recommendation: 5) == 5)
        #expect(b.next(now: t0 + 300, current: 5, recommendation: 1) == 5)   // 5-minute scale-in window
        #expect(b.next(now: t0 + 482, current: 5, recommendation: 1) == 1)
    }

    /// Rate policies: at most 2 pods per 60 s up, 50 % per 60 s down.
    @Test func ratePoliciesLimitEachPeriod() throws {
        let p = try AutoscalePolicy.decode(with(#"""
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}]},
                         "scaleDown": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}]}}
            """#), project: nil)
        var b = ScalingBehavior(scaleUp: p.scaleUp, scaleDown: p.scaleDown)
        let t0 = Date(timeIntervalSince1970: 0)
        #expect(b.next(now: t0, current: 2, recommendation: 10) == 4)
        #expect(b.next(now: t0 + 30, current: 4, recommendation: 10) == 4)   // the period's 2 are spent
        #expect(b.next(now: t0 + 61, current: 4, recommendation: 10) == 6)
        #expect(b.next(now: t0 + 200, current: 8, recommendation: 1) == 4)   // half per period
        #expect(b.next(now: t0 + 230, current: 4, recommendation: 1) == 4)
        #expect(b.next(now: t0 + 261, current: 4, recommendation: 1) == 2)
    }
}
