import Foundation
import GEdgeCore
import GEdgeHTTPClient
import GEdgeServiceKit
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Testing

/// Keeps a service group running until it is shut down.
struct Trigger: Service {
    func run() async throws {
        try? await gracefulShutdown()
    }
}

@Suite("Service kit", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(1)))
struct ServiceKitTests {
    @Test func opsEndpointsServeHealthReadinessAndMetrics() async throws {
        let registry = PrometheusCollectorRegistry()
        let counter = registry.makeCounter(name: "gedge_test_events_total")
        counter.increment(by: Int64(3))
        let ready = RunFlag(false)
        let reservation = try PortReservation()
        defer { reservation.release() }
        let port = reservation.port
        let ops = ServiceKit.opsServer(
            OpsServerConfiguration(host: "127.0.0.1", port: port), registry: registry,
            readiness: [ReadinessCheck(name: "database") { ready.isSet }], logger: TestEnv.logger)
        let group = ServiceGroup(services: [ops, Trigger()], logger: TestEnv.logger)
        let running = Task { try await group.run() }
        let client = HTTPClient(logger: TestEnv.logger)
        let base = "http://127.0.0.1:\(port)"
        try await eventually("server up") { (try? await client.execute(HTTPRequest(url: base + "/healthz")))?.status == 200 }

        let notReady = try await client.execute(HTTPRequest(url: base + "/readyz"))
        #expect(notReady.status == 503)
        #expect(notReady.bodyString.contains("database"))
        ready.set(true)
        #expect(try await client.execute(HTTPRequest(url: base + "/readyz")).status == 200)
        let metrics = try await client.execute(HTTPRequest(url: base + "/metrics"))
        #expect(metrics.status == 200)
        #expect(metrics.bodyString.contains("gedge_test_events_total 3"))

        await group.triggerGracefulShutdown()
        try await running.value
        await #expect(throws: HTTPClientError.self, "the server is gone after shutdown") {
            try await client.execute(HTTPRequest(url: base + "/healthz", timeout: .seconds(2)))
        }
        await client.shutdown()
    }
}
