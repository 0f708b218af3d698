import Foundation
import GEdgeAgent
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePostgres
import GEdgeScheduler
import Testing

@Suite("Scheduler faults", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(4)))
struct SchedulerFaultTests {
    /// Every request ended completed exactly once: one completed event, one applied placement.
    func expectEachCompletedOnce(_ h: SchedulerHarness, count: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let rows = try await h.pool.query(
            """
            SELECT r.id, r.state,
                   (SELECT count(*) FROM schedule_request_events e WHERE e.request_id = r.id AND e.state = 'completed') AS completed,
                   (SELECT count(*) FROM schedule_placements p WHERE p.request_id = r.id AND p.state = 'applied') AS applied
            FROM schedule_requests r
            """)
        #expect(rows.count == count, sourceLocation: sourceLocation)
        let bad = try rows.filter { try $0.decode("completed", as: Int.self) != 1 || $0.decode("applied", as: Int.self) != 1 }
        #expect(bad.isEmpty, "\(bad.count) request(s) not completed exactly once", sourceLocation: sourceLocation)
    }

    func schedulerProcess(_ h: SchedulerHarness, instance: String, port: Int) throws -> ChildProcess {
        try ChildProcess("scheduler", [
            "--kafka-brokers", h.cluster.bootstrapServers, "--postgres-url", h.schemaURL, "--http-host", "127.0.0.1", "--http-port", "\(port)",
            "--scheduler-instance", instance, "--scheduler-lease-timeout", "3s", "--kafka-rdkafka-session-timeout-ms", "6000",
            "--log-level", "error", "--scheduler-producers", "trusted",
        ])
    }

    @Test func killedReplicaLosesNothingAndPlacesNothingTwice() async throws {
        let h = try await SchedulerHarness(partitions: 8)
        let edge = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 20, cpu: 64000, mem: 256 << 30), podStartDelay: .milliseconds(5))
        try h.startAgent("edge1", driver: edge)
        try await h.bind("p1", ["edge1"])
        let held = (try PortReservation(), try PortReservation())
        defer { held.0.release(); held.1.release() }
        let ports = (held.0.port, held.1.port)
        let s1 = try schedulerProcess(h, instance: "doomed", port: ports.0)
        let s2 = try schedulerProcess(h, instance: "survivor", port: ports.1)
        let http = HTTPClient(logger: TestEnv.logger)
        for port in [ports.0, ports.1] {
            try await eventually("replica ready", timeout: .seconds(30)) {
                (try? await http.execute(HTTPRequest(url: "http://127.0.0.1:\(port)/readyz")))?.status == 200
            }
        }
        // Let both join the group before the stream starts.
        try await Task.sleep(for: .seconds(4))
        let n = 300
        for i in 0..<n {
            try await h.submit(request("k-\(i)", .mostRequested, cpu: "50m"))
            if i == n / 3 { s1.kill(SIGKILL) }
            try await Task.sleep(for: .milliseconds(5))
        }
        try await eventually("all completed", timeout: .seconds(90)) {
            try await h.pool.query("SELECT count(*) AS n FROM schedule_requests WHERE state = 'completed'")[0].decode("n", as: Int.self) == n
        }
        try await expectEachCompletedOnce(h, count: n)
        #expect(await edge.podCount == n)
        s2.kill(SIGTERM)
        try await s2.waitForExit()
        await http.shutdown()
        withExtendedLifetime(s1) {}
        await h.shutdown()
    }

    @Test func postgresRestartLosesNothing() async throws {
        // Held for the whole test, so the restarted server finds its port free.
        let reservation = try PortReservation()
        defer { reservation.release() }
        let port = reservation.port
        let dir = "/tmp/" + TestEnv.unique("gedge-pg")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures/scratch_postgres.sh").standardized.path
        // On a thread of their own: pg_ctl takes seconds, and the tests' cooperative threads are two.
        func pg(_ action: String) async {
            #expect(await runCommand(["/bin/bash", script, dir, "\(port)", action]) == 0, "scratch PostgreSQL \(action)")
        }
        await pg("start")
        defer { _ = runCommandBlocking(["/bin/bash", script, dir, "\(port)", "stop"]); try? FileManager.default.removeItem(atPath: dir) }
        let h = try await SchedulerHarness(postgresURL: "postgres://gedge@127.0.0.1:\(port)/postgres")
        let edge = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 4, cpu: 64000, mem: 256 << 30), podStartDelay: .milliseconds(5))
        try h.startAgent("edge1", driver: edge)
        try await h.bind("p1", ["edge1"])
        let ctx = try h.startScheduler(instance: "s1")
        try await eventually("cluster in view") { ctx.view.fresh().count == 1 }
        let n = 60
        for i in 0..<n {
            if i == 20 { await pg("stop") }
            if i == 40 { await pg("start") }
            try await h.submit(request("pg-\(i)", .mostRequested, cpu: "50m"))
            try await Task.sleep(for: .milliseconds(100))
        }
        try await eventually("all completed", timeout: .seconds(60)) {
            (try? await h.pool.query("SELECT count(*) AS n FROM schedule_requests WHERE state = 'completed'"))?.first.flatMap { try? $0.decode("n", as: Int.self) } == n
        }
        try await expectEachCompletedOnce(h, count: n)
        #expect(await edge.podCount == n)
        await h.shutdown()
    }
}
