import Foundation
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
@testable import GEdgeAgent
import GEdgePlacement
import Testing

/// Three agents (the real program) that are each other's peers: each probes at most its
/// `agent.latency.probes` a period, keeps a coordinate, serves it at `/coordinate`, and
/// reports it with its cluster's status (hcode 600).
@Suite("Network coordinates between agents", .enabled(if: TestEnv.integration), .timeLimit(.minutes(3)))
struct CoordinatesTests {
    @Test func agentsKeepAndReportCoordinates() async throws {
        let h = try await SchedulerHarness(partitions: 1)
        // Its services, consumers and fleet stop when the test ends, passed or not.
        defer { Task { await h.shutdown() } }
        let topology = repositoryRoot.appendingPathComponent("config/topology-seed.json").path
        let names = ["cloud", "edge1", "edge2"]
        let ports = try names.map { _ in try PortReservation() }
        defer { ports.forEach { $0.release() } }
        var children: [ChildProcess] = []
        for (i, name) in names.enumerated() {
            let peers = names.indices.filter { $0 != i }.map { "\(names[$0])=127.0.0.1:\(ports[$0].port)" }.joined(separator: ",")
            children.append(try ChildProcess("agent", [
                "--http-host", "127.0.0.1", "--http-port", "\(ports[i].port)", "--log-level", "error", "--shutdown-grace", "3s",
                "--kafka-brokers", h.cluster.bootstrapServers, "--agent-cluster", name, "--agent-driver", "simulated", "--agent-topology", topology,
                "--agent-peers", peers, "--agent-latency-interval", "200ms", "--agent-latency-probes", "1", "--agent-status-interval", "500ms",
            ]))
        }
        defer { children.forEach { $0.kill(SIGTERM) } }
        let http = HTTPClient(logger: TestEnv.logger)
        // Each serves a coordinate whose error fell from errorMax: it has been probed against its peers.
        for (i, name) in names.enumerated() {
            try await eventually("\(name)'s coordinate settles", timeout: .seconds(60), detail: { children[i].lines.suffix(3).joined(separator: " | ") }) {
                guard let r = try? await http.execute(HTTPRequest(url: "http://127.0.0.1:\(ports[i].port)/coordinate")), r.status == 200,
                      let c = try? VivaldiCoordinate.decode(try JSONValue.parse(r.body)) else { return false }
                return c.isValid(dimensions: 8) && c.error < VivaldiConfig().errorMax
            }
        }
        // And its reports carry it.
        let consumer = try h.consumer(group: TestEnv.unique("coords"), topic: Topics.clusterStatus)
        var seen: Set<String> = []
        let deadline = ContinuousClock.now + .seconds(30)
        // The loop ends at the deadline even when nothing arrives.
        let stopper = Task {
            try? await Task.sleep(for: .seconds(30))
            consumer.stopPolling()
        }
        defer { stopper.cancel() }
        for await m in consumer {
            if let env = try? EnvelopeCodec().decode(m.value), let report = try? ClusterReport.decode(env.msg) {
                switch report {
                case .snapshot(let state, _): if state.coordinate != nil { seen.insert(state.name) }
                case .delta(let d): if d.coordinate != nil { seen.insert(d.cluster) }
                }
            }
            if seen.count == 3 || ContinuousClock.now > deadline { break }
        }
        try await consumer.close()
        #expect(seen == Set(names), "\(seen)")
        await http.shutdown()
    }

    @Test func theScheduleEstimatesPairsNoNodeMeasured() {
        // Two clusters whose nodes measured nothing of each other: before, the candidate ranked
        // last (infinite); with coordinates, by the estimate.
        var near = ClusterState(name: "near", nodes: [NodeState(name: "n1", allocatable: Resources(cpuMilli: 4000, memory: 8 << 30))])
        var far = ClusterState(name: "far", nodes: [NodeState(name: "f1", allocatable: Resources(cpuMilli: 4000, memory: 8 << 30))])
        var source = ClusterState(name: "src", nodes: [NodeState(name: "s1", allocatable: Resources(cpuMilli: 100, memory: 1 << 20))])
        source.coordinate = VivaldiCoordinate(vector: [0, 0, 0, 0, 0, 0, 0, 0], height: 0.001, error: 0.1, adjustment: 0)
        near.coordinate = VivaldiCoordinate(vector: [0.004, 0, 0, 0, 0, 0, 0, 0], height: 0.001, error: 0.1, adjustment: 0)
        far.coordinate = VivaldiCoordinate(vector: [0.08, 0, 0, 0, 0, 0, 0, 0], height: 0.001, error: 0.1, adjustment: 0)
        let input = PlacementInput(policy: .lowLatency, requirements: WorkloadRequirements(perReplica: Resources(cpuMilli: 500, memory: 1 << 20), name: "w"),
                                   source: PlacementSource(cluster: "src"))
        guard case .placed(let plans) = Placer.decide(input, clusters: [far, near, source]) else { Issue.record("not placed"); return }
        #expect(plans.map { $0.parts[0].cluster } == ["near", "far"], "\(plans)")
        // Without coordinates both rank alike (infinite): by name.
        near.coordinate = nil
        guard case .placed(let unordered) = Placer.decide(input, clusters: [far, near, source]) else { Issue.record("not placed"); return }
        #expect(unordered.map { $0.parts[0].cluster } == ["far", "near"], "\(unordered)")
        near.coordinate = VivaldiCoordinate(vector: [0.004, 0, 0, 0, 0, 0, 0, 0], height: 0.001, error: 0.1, adjustment: 0)
        // The wire form holds it, within bounds.
        let back = try? ClusterState.decode(near.json)
        #expect(back?.coordinate == near.coordinate)
        var bad = near.json
        if case .object(var o) = bad { o["coordinate"] = .object(["vec": .array([.number(1e9)]), "height": 0, "error": 1, "adjustment": 0]); bad = .object(o) }
        #expect(throws: MessageDecodingError.self) { try ClusterState.decode(bad) }
    }
}

/// How an agent chooses whom to probe: its nearest measured again in turn, the nearest by
/// coordinates it has not measured lately, the rest at random; and what it tells its peers.
@Suite("Latency probe choice")
struct LatencyProbeChoiceTests {
    @Test func probesItsNearestMeasuredAndExploresTheNearestUnmeasured() {
        let peers = Dictionary(uniqueKeysWithValues: ["a", "b", "c", "d", "far", "old"].map { ($0, "127.0.0.1:1") })
        let prober = LatencyProber(peers: peers, interval: .seconds(2), probes: 2)
        func point(_ x: Double) -> VivaldiCoordinate { VivaldiCoordinate(vector: [x] + Array(repeating: 0, count: 7), height: 0.0001, error: 0.2, adjustment: 0) }
        // Measured: a (5 ms) and b (9 ms); old was measured long ago (not fresh).
        prober.record("old", ms: 1, at: .now - .seconds(2 * LatencyProber.freshPeriods + 10))
        prober.record("a", ms: 5)
        prober.learn("a", coordinate: point(0.005), rtt: 5, near: ["c": point(0.004), "far": point(0.2), "stranger": point(0.001)])
        prober.record("b", ms: 9)
        prober.learn("b", coordinate: point(0.009), rtt: 9, near: [:])
        // Each round: one of the nearest measured (a, then b, in turn) and the nearest by
        // coordinates with no fresh measurement (c; never "stranger", not a peer).
        var again: [String] = [], explored: Set<String> = []
        for _ in 0..<4 {
            let t = prober.chooseTargets()
            #expect(t.count == 2 && Set(t).count == 2, "\(t)")
            #expect(t.contains("c"), "the nearest unmeasured is explored: \(t)")
            again += t.filter { $0 == "a" || $0 == "b" }
            explored.formUnion(t)
        }
        #expect(Set(again) == ["a", "b"], "the nearest measured take turns: \(again)")
        #expect(!explored.contains("stranger"))
        // Its nearest, told to peers: the measured ones first (nearest first), then by coordinates.
        let near = prober.nearest()
        #expect(near.count == 4 && near["a"] != nil && near["b"] != nil && near["c"] != nil && near["stranger"] == nil, "\(near.keys.sorted())")
        // Measured, c takes its turn with a and b, and the next to explore is the next known
        // by coordinates (far: d and old have told no coordinate).
        prober.record("c", ms: 3)
        let after = (0..<3).map { _ in prober.chooseTargets() }
        #expect(after.allSatisfy { $0.contains("far") }, "\(after)")
        #expect(after.joined().contains("c"), "\(after)")
    }
}
