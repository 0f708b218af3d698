import Foundation
import GEdgeAgent
import GEdgeCore
import GEdgePlacement
import GEdgeScheduler
import Testing

/// Agents report deltas between snapshots; a view that starts mid-stream (or misses a
/// report) asks for a snapshot and is whole again at once, not at the next periodic one.
@Suite("Delta status reports end to end", .enabled(if: TestEnv.integration), .timeLimit(.minutes(2)))
struct DeltaStatusTests {
    @Test func aViewStartedMidStreamAsksForASnapshotThenFollowsDeltas() async throws {
        let h = try await SchedulerHarness()
        // Its services, consumers and fleet stop when the test ends, passed or not.
        defer { Task { await h.shutdown() } }
        let sim = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 4), podStartDelay: .zero)
        // Periodic snapshots far apart: only a request brings one soon.
        try h.startAgent("edge1", driver: sim, statusInterval: .milliseconds(200), snapshotEvery: 10_000)
        try await Task.sleep(for: .seconds(2))

        // Reading from the newest report on: the first is a delta without a base.
        let view = ClusterView(staleAfter: .seconds(5))
        let started = ContinuousClock.now
        _ = h.run([ClusterStatusListener(consumer: try h.consumer(group: TestEnv.unique("late-view"), topic: Topics.clusterStatus, earliest: false),
                                         view: view, snapshots: h.producer, source: "test", logger: h.logger)])
        // Without the ask, the next snapshot is 10,000 report intervals away (2,000 s): a
        // bound of seconds shows the ask, with room for a loaded machine.
        try await eventually("the view whole after asking", timeout: .seconds(20)) { view.fresh().first?.nodes.count == 4 }
        let took = ContinuousClock.now - started
        #expect(took < .seconds(15), "took \(took)")

        // A placement changes one node: the delta carries it, and the view follows.
        let r = try await sim.apply(ApplyCommand(requestID: "d-1", attempt: 1, namespace: "p1", workload: workload("web", cpu: "1500m"), node: "e1-2",
                                                 replicas: 1, deadline: nil))
        #expect(r.ok)
        try await eventually("the delta applied", timeout: .seconds(10)) {
            view.fresh().first?.nodes.first { $0.name == "e1-2" }?.requested.cpuMilli == 1500
        }
        let held = try #require(view.fresh().first)
        #expect(held.nodes.map(\.name).sorted() == ["e1-1", "e1-2", "e1-3", "e1-4"])
        #expect(held.nodes.filter { $0.name != "e1-2" }.allSatisfy { $0.requested.cpuMilli == 0 })
    }

    /// A view starts at the end of the topic; the clusters it knows it needs (those bound to
    /// a project) are asked for snapshots as soon as it reads, so it is whole within a round
    /// trip, not at each cluster's next report (a minute away here).
    @Test func aViewAsksTheClustersItKnowsAtItsStart() async throws {
        let h = try await SchedulerHarness()
        defer { Task { await h.shutdown() } }
        let sim = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 3), podStartDelay: .zero)
        try h.startAgent("edge1", driver: sim, statusInterval: .seconds(60))
        // The agent's first report (a snapshot) goes by before the view starts.
        try await Task.sleep(for: .seconds(2))
        let view = ClusterView(staleAfter: .seconds(90))
        let started = ContinuousClock.now
        _ = h.run([ClusterStatusListener(consumer: try h.consumer(group: TestEnv.unique("known-view"), topic: Topics.clusterStatus, earliest: false),
                                         view: view, snapshots: h.producer, source: "test", known: { ["edge1", "not a cluster name"] }, logger: h.logger)])
        try await eventually("the view whole after asking", timeout: .seconds(30)) { view.fresh().first?.nodes.count == 3 }
        let took = ContinuousClock.now - started
        #expect(took < .seconds(20), "took \(took), the agent's next report is 60 s after its first")
        #expect(view.all().map(\.0.name) == ["edge1"])
    }
}
