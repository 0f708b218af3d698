import Foundation
import GEdgeAgent
import GEdgeCore
import GEdgeKafka
import GEdgePlacement
import GEdgePostgres
import GEdgeScheduler
import Testing

@Suite("Scheduler flow", .enabled(if: TestEnv.integration), .timeLimit(.minutes(3)))
struct SchedulerFlowTests {
    @Test func requestIsPlacedAppliedAndRecordedStepByStep() async throws {
        let h = try await SchedulerHarness()
        let edge1 = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 2, latency: ["cloud": 5]), podStartDelay: .milliseconds(20))
        let edge2 = SimulatedCluster(name: "edge2", nodes: simNodes("e2", count: 2, latency: ["cloud": 1]), podStartDelay: .milliseconds(20))
        try h.startAgent("edge1", driver: edge1)
        try h.startAgent("edge2", driver: edge2)
        try await h.bind("p1", ["edge1", "edge2"])
        let ctx = try h.startScheduler(instance: "s1")
        try await eventually("both clusters in view") { ctx.view.fresh().count == 2 }

        let results = try h.consumer(group: TestEnv.unique("results"), topic: Topics.scheduleResults)
        try await h.submit(request("r1", .lowLatency, ["source_cluster": .string("cloud")]))
        let done = try await h.waitFor("r1", .completed)
        #expect(try await h.states("r1") == [.received, .enqueued, .dispatched, .scheduling, .applying, .completed])
        // edge2's nodes measure 1 ms to the source cluster, edge1's 5 ms.
        #expect(done.placement == .array([.object(["cluster": .string("edge2"), "node": .string("e2-1"), "replicas": .number(1)])]))
        #expect(done.failCount == 0)
        #expect(await edge2.podCount == 1)
        #expect(await edge1.podCount == 0)
        let events = try await h.store.lifecycle(id: "r1")
        #expect(events.allSatisfy { $0.reason != nil })
        #expect(zip(events, events.dropFirst()).allSatisfy { $0.at <= $1.at })

        // The end is announced on the results topic (hcode 100, lcode 2).
        var announced: Envelope?
        for await m in results where m.keyString == "r1" {
            announced = try h.codec.decode(m.value)
            break
        }
        #expect(announced?.hcode == .scheduleRequest)
        #expect(announced?.lcode == .reply)
        #expect(announced?.msg["state"] == .string("completed"))
        results.stopPolling()
        try await results.close()
        await h.shutdown()
    }

    @Test func failedApplyMovesToTheNextCandidate() async throws {
        let h = try await SchedulerHarness()
        // edge1 ranks first (equal scores, then by name) but its agent refuses every apply.
        let edge1 = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 2, cpu: 32000), podStartDelay: .milliseconds(10), failApplies: "node disk pressure")
        let edge2 = SimulatedCluster(name: "edge2", nodes: simNodes("e2", count: 2), podStartDelay: .milliseconds(10))
        try h.startAgent("edge1", driver: edge1)
        try h.startAgent("edge2", driver: edge2)
        try await h.bind("p1", ["edge1", "edge2"])
        let ctx = try h.startScheduler(instance: "s1")
        try await eventually("both clusters in view") { ctx.view.fresh().count == 2 }

        try await h.submit(request("r2", .mostRequested))
        let done = try await h.waitFor("r2", .completed)
        #expect(try await h.states("r2") == [.received, .enqueued, .dispatched, .scheduling, .applying, .applying, .completed])
        #expect(done.failCount >= 1)  // once, or more while edge1 was still fresh when a lease ran out
        guard case .array(let parts) = done.placement else { Issue.record("no placement"); return }
        #expect(parts.map { $0["cluster"] } == [.string("edge2")])
        let rows = try await h.pool.query("SELECT cluster, state, reason FROM schedule_placements WHERE request_id = 'r2' ORDER BY attempt")
        #expect(try rows.map { try $0.decode("cluster", as: String.self) + ":" + $0.decode("state", as: String.self) } == ["edge1:failed", "edge2:applied"])
        #expect(try rows[0].decode("reason", as: String.self) == "node disk pressure")
        let history = try await h.store.lifecycle(id: "r2")
        #expect(history[5].reason?.contains("next candidate after edge1: node disk pressure") == true)
        await h.shutdown()
    }

    /// A cluster that refuses every apply and no other candidate: each refusal comes back
    /// through the agent's reply (never the lease running out), the request waits its
    /// backoff and is tried again, and fails once it has failed more than the maximum.
    @Test func failedApplyWithNoOtherCandidateIsRetriedThenFails() async throws {
        let h = try await SchedulerHarness()
        let edge1 = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 1), podStartDelay: .zero, failApplies: "image pull back-off")
        try h.startAgent("edge1", driver: edge1)
        try await h.bind("p1", ["edge1"])
        var queue = QueuePolicy()
        queue.maxFailures = 2
        queue.retryBackoff = .milliseconds(100)
        queue.leaseTimeout = .seconds(120)  // so that only replies can end the attempts
        // Fresh for 15 s, not the harness's 3: on a loaded machine edge1's reports (every
        // 300 ms) have been seen to pause past 3 s, and an attempt then found no fresh
        // cluster instead of edge1's refusal.
        let ctx = try h.startScheduler(instance: "s1", queue: queue, staleAfter: .seconds(15))
        try await eventually("cluster in view") { ctx.view.fresh().count == 1 }
        try await h.submit(request("refused", .mostRequested))
        let failed = try await h.waitFor("refused", .failed, timeout: .seconds(60))
        #expect(failed.failCount == 3)
        #expect(failed.reason?.contains("image pull back-off") == true, "\(failed.reason ?? "")")
        let reasons = try await h.store.lifecycle(id: "refused").compactMap(\.reason)
        #expect(reasons.filter { $0.contains("image pull back-off") && $0.contains("(failure") }.count == 2, "\(reasons)")
        #expect(!reasons.contains { $0.contains("lease expired") }, "\(reasons)")
        await h.shutdown()
    }

    @Test func rejectionsNameTheirReason() async throws {
        let h = try await SchedulerHarness()
        try h.startAgent("edge1", driver: SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 1), podStartDelay: .zero))
        try await h.bind("p1", ["edge1"])
        let ctx = try h.startScheduler(instance: "s1")
        try await eventually("cluster in view") { ctx.view.fresh().count == 1 }
        try await h.submit(request("foreign", .selectedCluster, ["select_clusters": .array([.string("edge9")])]))
        try await h.submit(request("unbound", .mostRequested, project: "nobody"))
        var noSource = request("nosource", .lowLatency)
        noSource.workload = .string("kind: [broken")
        try await h.submit(noSource)
        #expect(try await h.waitFor("foreign", .rejected).reason == "cluster 'edge9' does not belong to the project")
        #expect(try await h.waitFor("unbound", .rejected).reason == "project 'nobody' has no clusters bound")
        #expect(try await h.waitFor("nosource", .rejected).reason?.hasPrefix("malformed_json at msg.workload: not valid YAML") == true)
        await h.shutdown()
    }

    @Test func agentGoneTimesOutAndPlacementsMoveOn() async throws {
        let h = try await SchedulerHarness()
        let edge1 = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 2, cpu: 32000), podStartDelay: .zero)
        let edge2 = SimulatedCluster(name: "edge2", nodes: simNodes("e2", count: 2), podStartDelay: .zero)
        let agent1 = try h.startAgent("edge1", driver: edge1)
        try h.startAgent("edge2", driver: edge2)
        try await h.bind("p1", ["edge1", "edge2"])
        var q = QueuePolicy()
        q.leaseTimeout = .seconds(2)
        // Stale after 12 s: long enough that edge1 is still in view when r3 is placed, even
        // on a loaded machine (two cores running the whole suite at once, where a decision
        // 6 s after edge1's last report has been seen). Its lease (2 s) may run out several
        // times before edge1 leaves: `maxFailures` leaves room for all of them.
        q.maxFailures = 20
        let ctx = try h.startScheduler(instance: "s1", queue: q, staleAfter: .seconds(12))
        try await eventually("both clusters in view") { ctx.view.fresh().count == 2 }

        // edge1's agent goes away (fully stopped first); its last report is still fresh, so it gets the request.
        await h.stop(agent1)
        try #require(ctx.view.fresh().count == 2)
        try await h.submit(request("r3", .mostRequested))
        let done = try await h.waitFor("r3", .completed, timeout: .seconds(45))
        guard case .array(let parts) = done.placement else { Issue.record("no placement"); return }
        #expect(parts.first?["cluster"] == .string("edge2"))
        #expect(done.failCount >= 1)  // once, or twice if edge1 was still fresh when the lease ran out
        let history = try await h.store.lifecycle(id: "r3")
        #expect(history.contains { $0.state == .enqueued && $0.reason == "lease expired in applying (failure 1)" })
        #expect(await edge1.podCount == 0)

        // After the status timeout edge1 is out of the view: new requests go straight to edge2.
        try await eventually("edge1 out of the view", timeout: .seconds(20)) { ctx.view.fresh().map(\.name) == ["edge2"] }
        try await h.submit(request("r4", .mostRequested))
        let next = try await h.waitFor("r4", .completed)
        #expect(next.failCount == 0)
        #expect(try await h.states("r4") == [.received, .enqueued, .dispatched, .scheduling, .applying, .completed])
        await h.shutdown()
    }

    /// `scheduler.queue.max.inflight`: with applies unanswered (the agent is gone, its report
    /// still fresh) only that many requests leave the queue; the rest wait enqueued.
    @Test func theInFlightCapHoldsTheRestInTheQueue() async throws {
        let h = try await SchedulerHarness()
        let edge = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 2, cpu: 32000), podStartDelay: .zero)
        let agent = try h.startAgent("edge1", driver: edge)
        try await h.bind("p1", ["edge1"])
        var q = QueuePolicy()
        q.maxInFlight = 2
        let ctx = try h.startScheduler(instance: "s1", queue: q, staleAfter: .seconds(30))
        try await eventually("the cluster in view") { ctx.view.fresh().count == 1 }
        await h.stop(agent)
        for i in 0..<5 { try await h.submit(request("cap-\(i)", .mostRequested)) }
        func count(_ states: String) async throws -> Int {
            try await h.pool.query("SELECT count(*) AS n FROM schedule_requests WHERE id LIKE 'cap-%' AND state IN (\(states))")[0].decode("n", as: Int.self)
        }
        try await eventually("two applying", timeout: .seconds(20)) { try await count("'applying'") == 2 }
        // Well past the in-flight refresh and many dispatch polls: still two out, three queued.
        try await Task.sleep(for: .seconds(2.5))
        #expect(try await count("'dispatched', 'scheduling', 'applying'") == 2)
        #expect(try await count("'enqueued'") == 3)
        await h.shutdown()
    }

    @Test func twoReplicasShareTheWorkAndPlaceEachRequestOnce() async throws {
        let h = try await SchedulerHarness()
        let edge = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 10, cpu: 64000, mem: 256 << 30), podStartDelay: .milliseconds(5))
        try h.startAgent("edge1", driver: edge)
        try await h.bind("p1", ["edge1"])
        let a = try h.startScheduler(instance: "a")
        let b = try h.startScheduler(instance: "b")
        try await eventually("views") { a.view.fresh().count == 1 && b.view.fresh().count == 1 }
        let n = 150
        for i in 0..<n {
            let r = request("race-\(i)", .mostRequested, fast: i % 3 == 0, cpu: "100m")
            try await h.submit(r)
            // Every tenth request is published twice, as a producer retry would.
            if i % 10 == 0 { try await h.submit(r) }
        }
        try await eventually("all completed", timeout: .seconds(60)) {
            try await h.pool.query("SELECT count(*) AS n FROM schedule_requests WHERE state = 'completed'")[0].decode("n", as: Int.self) == n
        }
        let perRequest = try await h.pool.query(
            """
            SELECT r.id,
                   (SELECT count(*) FROM schedule_request_events e WHERE e.request_id = r.id AND e.state = 'completed') AS completed,
                   (SELECT count(*) FROM schedule_request_events e WHERE e.request_id = r.id AND e.state = 'received') AS received,
                   (SELECT count(*) FROM schedule_placements p WHERE p.request_id = r.id AND p.state = 'applied') AS applied
            FROM schedule_requests r
            """)
        #expect(perRequest.count == n)
        #expect(try perRequest.allSatisfy { try $0.decode("completed", as: Int.self) == 1 && $0.decode("received", as: Int.self) == 1 && $0.decode("applied", as: Int.self) == 1 })
        #expect(await edge.podCount == n)
        let owners = try await h.pool.query("SELECT DISTINCT substring(reason from ' to (.*)$') AS owner FROM schedule_request_events WHERE state = 'dispatched'")
        #expect(Set(try owners.map { try $0.decode("owner", as: String.self) }) == ["a", "b"])
        await h.shutdown()
    }

    @Test func agentAnswersTheRequestCodes() async throws {
        let h = try await SchedulerHarness()
        let nodes = [SimulatedNode(name: "n1", allocatable: Resources(cpuMilli: 4000, memory: 8 << 30), latencyMs: ["cloud": 4, "edge2": 9]),
                     SimulatedNode(name: "n2", allocatable: Resources(cpuMilli: 4000, memory: 8 << 30), latencyMs: ["cloud": 6, "edge2": 7])]
        let sim = SimulatedCluster(name: "edge1", nodes: nodes, podStartDelay: .zero)
        try h.startAgent("edge1", driver: sim)
        let replyTopic = TestEnv.unique("replies")
        try h.cluster.createTopic(replyTopic, partitions: 1)
        let replies = try h.consumer(group: TestEnv.unique("r"), topic: replyTopic)
        func ask(_ hcode: HCode, _ key: String, _ msg: [String: JSONValue], target: Endpoint = .cluster("edge1")) async throws {
            var m = msg
            m["reply_to"] = .string(replyTopic)
            let env = Envelope(source: .cluster("tester"), target: target, hcode: hcode, lcode: .request, msg: .object(m))
            _ = try await h.producer.send(KafkaRecord(topic: Topics.agentCommands(cluster: "edge1"), key: key, value: h.codec.encode(env)))
        }
        let cmd = ApplyCommand(requestID: "app-1", attempt: 1, namespace: "p1", workload: workload("web"), node: "n2", replicas: 1, deadline: Date().addingTimeInterval(30), replyTo: replyTopic)
        _ = try await h.producer.send(KafkaRecord(topic: Topics.agentCommands(cluster: "edge1"), key: "app-1", value: h.codec.encode(
            Envelope(source: .cluster("scheduler"), target: .node(cluster: "edge1", node: "n2"), hcode: .applySelectedCluster, lcode: .request, msg: cmd.msg))))
        var got: [String: Envelope] = [:]
        for await m in replies {
            got[m.keyString ?? ""] = try h.codec.decode(m.value)
            if got.count == 1 { break }
        }
        #expect(got["app-1"]?.msg["ok"] == .bool(true))
        #expect(got["app-1"]?.msg["pods"] == .object(["web-0": .string("n2")]))
        try await ask(.clusterLatency, "lat", [:])
        try await ask(.clusterResources, "res", [:])
        try await ask(.nodeOfPod, "pod", ["pod": .string("web-0")], target: .pod(cluster: "edge1", pod: "web-0"))
        try await ask(.projectNamespace, "ns", ["project_name": .string("Project_One")])
        try await ask(.nodeAccelerators, "odd", [:])
        for await m in replies {
            got[m.keyString ?? ""] = try h.codec.decode(m.value)
            if got.count == 6 { break }
        }
        #expect(got["lat"]?.lcode == .reply)
        #expect(got["lat"]?.msg["latency_ms"] == .object(["cloud": .number(6), "edge2": .number(9)]))
        #expect(got["lat"]?.msg["nodes"]?["n1"] == .object(["cloud": .number(4), "edge2": .number(9)]))
        let res = try ClusterState.decode(got["res"]!.msg)
        #expect(res.nodes.first { $0.name == "n2" }?.requested.cpuMilli == 500)
        #expect(got["pod"]?.msg["node"] == .string("n2"))
        #expect(got["ns"]?.msg["namespace"] == .string("project-one"))
        #expect(await sim.hasNamespace("project-one"))
        #expect(got["odd"]?.hcode == .error)
        #expect(got["odd"]?.msg["reason"]?.stringValue?.contains("does not handle hcode 610") == true)
        replies.stopPolling()
        try await replies.close()
        await h.shutdown()
    }
    /// Scale commands for one workload are applied in the order they were sent, even when the
    /// first is slow to apply and the second arrives meanwhile (the agent handles commands of
    /// different workloads at the same time, and used to do so for one workload too).
    @Test func scaleCommandsForOneWorkloadApplyInOrder() async throws {
        let h = try await SchedulerHarness()
        let sim = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 1), podStartDelay: .zero)
        try h.cluster.createTopic(Topics.agentCommands(cluster: "edge1"), partitions: 4)
        try h.startAgent("edge1", driver: SlowScaleDriver(sim, slowTo: 1))
        let replyTopic = TestEnv.unique("replies")
        try h.cluster.createTopic(replyTopic, partitions: 1)
        let replies = try h.consumer(group: TestEnv.unique("r"), topic: replyTopic)
        func scale(_ workload: String, to n: Int) async throws {
            let cmd = ScaleCommand(requestID: "s-\(workload)-\(n)", namespace: "fn", name: workload, replicas: n, replyTo: replyTopic)
            let env = Envelope(source: .cluster("tester"), target: .cluster("edge1"), hcode: .scaleWorkload, lcode: .request, msg: cmd.msg)
            // Keyed by the workload, as the FaaS trigger and the autoscaler send them: one
            // partition, read in order, often in one batch.
            _ = try await h.producer.send(KafkaRecord(topic: Topics.agentCommands(cluster: "edge1"), key: "fn/\(workload)", value: h.codec.encode(env)))
        }
        try await scale("f1", to: 1)  // slow to apply
        try await scale("f1", to: 4)
        try await scale("f2", to: 1)  // another workload: slow too, but not held up by f1
        var seen = 0
        for await _ in replies {
            seen += 1
            if seen == 3 { break }
        }
        #expect(await sim.replicas(namespace: "fn", name: "f1") == 4, "the newer count stands")
        #expect(await sim.replicas(namespace: "fn", name: "f2") == 1)
        replies.stopPolling()
        try await replies.close()
        await h.shutdown()
    }
}

/// A simulated cluster whose scale commands to `slowTo` replicas take a while to apply.
struct SlowScaleDriver: ClusterDriver {
    let sim: SimulatedCluster
    let slowTo: Int
    init(_ sim: SimulatedCluster, slowTo: Int) {
        self.sim = sim
        self.slowTo = slowTo
    }
    func state() async throws -> [NodeState] { try await sim.state() }
    func apply(_ command: ApplyCommand) async throws -> ApplyResult { try await sim.apply(command) }
    func remove(requestID: String, attempt: Int?) async throws -> Int { try await sim.remove(requestID: requestID, attempt: attempt) }
    func namespace(_ name: String, delete: Bool) async throws { try await sim.namespace(name, delete: delete) }
    func nodeOf(pod: String, namespace: String?) async throws -> String? { try await sim.nodeOf(pod: pod, namespace: namespace) }
    func scale(_ command: ScaleCommand) async throws -> Int {
        if command.replicas == slowTo { try await Task.sleep(for: .milliseconds(500)) }
        return try await sim.scale(command)
    }
    func resize(_ command: ResizeCommand) async throws -> Int { try await sim.resize(command) }
    func logs(namespace: String, pod: String, tail: Int) async throws -> [String]? { try await sim.logs(namespace: namespace, pod: pod, tail: tail) }
    func inventory(_ query: InventoryQuery) async throws -> InventoryPage { await sim.inventory(query) }
    func usage() async throws -> [WorkloadUsage] { try await sim.usage() }
}

@Suite("Request queue", .enabled(if: TestEnv.integration), .timeLimit(.minutes(2)))
struct RequestQueueTests {
    func harness() async throws -> (SchedulerHarness, RequestQueue) {
        let h = try await SchedulerHarness()
        var p = QueuePolicy()
        p.leaseTimeout = .milliseconds(300)
        p.retryBackoff = .zero
        return (h, RequestQueue(pool: h.pool, policy: p))
    }

    func record(_ q: RequestQueue, _ rs: [ScheduleRequest]) async throws {
        _ = try await q.recordReceived(rs.map { ($0, Endpoint.cluster("gateway"), nil) })
    }

    @Test func concurrentClaimsNeverShareARequest() async throws {
        let (h, q) = try await harness()
        try await record(q, (0..<300).map { request("c-\($0)", .mostRequested) })
        async let a = drain(q, owner: "a")
        async let b = drain(q, owner: "b")
        let (x, y) = try await (a, b)
        #expect(x.count + y.count == 300)
        // What matters: no request claimed twice. (Which claimer gets how many depends on the
        // machine: on a loaded one the first may drain the queue before the second starts.)
        #expect(Set(x).isDisjoint(with: Set(y)))
        await h.shutdown()
    }

    func drain(_ q: RequestQueue, owner: String) async throws -> [String] {
        var got: [String] = []
        while true {
            let c = try await q.claim(owner: owner, limit: 7)
            if c.isEmpty { return got }
            got += c.map(\.id)
        }
    }

    /// Placed as they arrive: stored straight in applying (the whole history, the part
    /// applying) when nothing waits in the queue; a redelivery is neither stored nor placed
    /// again; when something waits, a placed arrival is enqueued behind it all the same.
    @Test func arrivalsArePlacedAtOnceOnlyWhenNothingWaits() async throws {
        let (h, q) = try await harness()
        let decision = IngestDecision(parts: [PlacementPart(cluster: "edge1", node: "n1", replicas: 1)], candidates: [],
                                      reason: "GMostRequestedPriority chose it among 1 candidate(s)")
        let a = request("arr-1", .mostRequested)
        let first = try await q.recordReceived([(a, .cluster("gateway"), nil)], decided: ["arr-1": decision], owner: "w")
        #expect(first.new == ["arr-1"] && first.applying == ["arr-1"])
        #expect(try await h.store.request(id: "arr-1")?.state == .applying)
        #expect(try await h.states("arr-1") == [.received, .enqueued, .dispatched, .scheduling, .applying])
        let parts = try await h.pool.query("SELECT attempt, cluster, node, state FROM schedule_placements WHERE request_id = 'arr-1'")
        #expect(parts.count == 1)
        #expect(try parts.first?.decode("state", as: String.self) == "applying")
        #expect(try parts.first?.decode("node", as: String.self) == "n1")

        let again = try await q.recordReceived([(a, .cluster("gateway"), nil)], decided: ["arr-1": decision], owner: "w")
        #expect(again.new.isEmpty && again.applying.isEmpty)

        try await record(q, [request("waiting", .mostRequested)])
        let behind = try await q.recordReceived([(request("arr-2", .mostRequested), .cluster("gateway"), nil)], decided: ["arr-2": decision], owner: "w")
        #expect(behind.new == ["arr-2"] && behind.applying.isEmpty)
        #expect(try await h.store.request(id: "arr-2")?.state == .enqueued)
        #expect(try await q.claim(owner: "w", limit: 5).map(\.id) == ["waiting", "arr-2"])

        // The one placed on arrival completes like any other.
        let (done, strays) = try await q.recordApplied([ApplyOutcome(requestID: "arr-1", attempt: 1, cluster: "edge1", ok: true, reason: "1/1 replicas ready")])
        #expect(done.map(\.id) == ["arr-1"] && strays.isEmpty)
        #expect(try await h.states("arr-1").last == .completed)
        await h.shutdown()
    }

    @Test func sliceTakesTwoRetriedThenFastThenBase() async throws {
        let (h, q) = try await harness()
        try await record(q, [request("base-1", .mostRequested), request("fast-1", .mostRequested, fast: true), request("base-2", .mostRequested),
                             request("fast-2", .mostRequested, fast: true)] + (1...3).map { request("retry-\($0)", .mostRequested) })
        try await h.pool.execute("UPDATE schedule_requests SET fail_count = 3 WHERE id LIKE 'retry-%'")
        let first = try await q.claim(owner: "w", limit: 5)
        #expect(first.map(\.id) == ["retry-1", "retry-2", "fast-1", "fast-2", "base-1"])
        #expect(first.map(\.queueClass) == ["retry", "retry", "fast", "fast", "base"])
        let rest = try await q.claim(owner: "w", limit: 5)
        #expect(rest.map(\.id) == ["retry-3", "base-2"])
        await h.shutdown()
    }

    @Test func failuresGoToTheRetryQueueThenEndAsFailed() async throws {
        let (h, q) = try await harness()
        try await record(q, [request("f", .mostRequested)])
        var finished: [FinishedRequest] = []
        for i in 1...6 {
            let c = try await q.claim(owner: "w", limit: 1)
            #expect(c.map(\.queueClass) == [i <= 3 ? "base" : "retry"])
            let (_, f) = try await q.record(owner: "w", [(c[0], .unschedulable("no room"))])
            finished += f
        }
        #expect(finished.map(\.state) == [.failed])
        #expect(finished.first?.failCount == 6)
        let stored = try await h.store.request(id: "f")
        #expect(stored?.state == .failed)
        #expect(try await q.claim(owner: "w", limit: 1).isEmpty)
        await h.shutdown()
    }

    @Test func expiredLeaseRequeuesAndALateSuccessIsUndone() async throws {
        let (h, q) = try await harness()
        try await record(q, [request("l", .mostRequested)])
        let c1 = try await q.claim(owner: "w1", limit: 1)
        let part1 = PlacementPart(cluster: "c1", node: "n1", replicas: 1)
        let (send, _) = try await q.record(owner: "w1", [(c1[0], .apply(parts: [part1], candidates: [], reason: "test"))])
        #expect(send == ["l"])
        try await Task.sleep(for: .milliseconds(400))
        let reaped = try await q.reapExpired()
        #expect(reaped.requeued == 1)
        // The agent answers late: the success no longer counts and must be removed.
        let late = try await q.recordApplied([ApplyOutcome(requestID: "l", attempt: 1, cluster: "c1", ok: true, reason: "ok")])
        #expect(late.completed.isEmpty)
        #expect(late.strays == [StrayPart(requestID: "l", attempt: 1, cluster: "c1")])
        // A worker whose lease expired cannot record a decision any more.
        let (stale, _) = try await q.record(owner: "w1", [(c1[0], .apply(parts: [part1], candidates: [], reason: "again"))])
        #expect(stale.isEmpty)

        let c2 = try await q.claim(owner: "w2", limit: 1)
        #expect(c2.first?.attempt == 2)
        _ = try await q.record(owner: "w2", [(c2[0], .apply(parts: [PlacementPart(cluster: "c2", node: "n9", replicas: 1)], candidates: [], reason: "test"))])
        let ok = try await q.recordApplied([ApplyOutcome(requestID: "l", attempt: 2, cluster: "c2", ok: true, reason: "ok")])
        #expect(ok.completed.map(\.id) == ["l"])
        // A duplicate reply changes nothing.
        let dup = try await q.recordApplied([ApplyOutcome(requestID: "l", attempt: 2, cluster: "c2", ok: true, reason: "ok")])
        #expect(dup.completed.isEmpty && dup.strays.isEmpty)
        #expect(try await h.states("l") == [.received, .enqueued, .dispatched, .scheduling, .applying, .enqueued, .dispatched, .scheduling, .applying, .completed])
        await h.shutdown()
    }

    @Test func cancelEndsARequestAndReturnsWhatToRemove() async throws {
        let (h, q) = try await harness()
        try await record(q, [request("x", .setClusters)])
        let c = try await q.claim(owner: "w", limit: 1)
        _ = try await q.record(owner: "w", [(c[0], .apply(parts: [PlacementPart(cluster: "a", node: nil, replicas: 1), PlacementPart(cluster: "b", node: nil, replicas: 1)], candidates: [], reason: "t"))])
        _ = try await q.recordApplied([ApplyOutcome(requestID: "x", attempt: 1, cluster: "a", ok: true, reason: "ok")])
        #expect(try await h.store.request(id: "x")?.state == .applying)
        let canceled = try await q.cancel(id: "x", reason: "user asked")
        #expect(canceled?.0.state == .canceled)
        #expect(Set(canceled?.1.map(\.cluster) ?? []) == ["a", "b"])
        #expect(try await q.cancel(id: "x", reason: "again") == nil)
        await h.shutdown()
    }
}
