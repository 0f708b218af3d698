import FakeKubernetes
import Foundation
import GEdgeCore
import GEdgeHTTPClient
import GEdgeServiceKit
import Testing

/// Every service's `/metrics` as Prometheus's own linter reads it (`promtool check
/// metrics`: HELP on every family, counters ending in `_total`, units in names), with the
/// process metrics every Prometheus client exports. Each service runs as its own process,
/// on the tests' broker, database schema and queues.
@Suite("Metrics conventions", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(3)))
struct MetricsConventionsTests {
    static let services = ["scheduler", "gateway", "agent", "autoscaler", "faas-trigger", "notifier", "accelerator-monitor"]

    @Test(arguments: services)
    func promtoolFindsNothingToSay(service: String) async throws {
        let h = try await SchedulerHarness(partitions: 1)
        let k = try await KubeFixture(token: FakeKubernetesServer.monitorToken)
        let ops = try PortReservation()
        defer { ops.release() }
        let topology = repositoryRoot.appendingPathComponent("config/topology-seed.json").path
        let common = ["--http-host", "127.0.0.1", "--http-port", "\(ops.port)", "--log-level", "error", "--shutdown-grace", "3s",
                      "--kafka-brokers", h.cluster.bootstrapServers, "--postgres-url", h.schemaURL, "--amqp-url", TestEnv.amqpURL]
        let extra: [String: [String]] = [
            "scheduler": ["--scheduler-producers", "trusted"],
            "gateway": ["--gateway-admin-token", String(repeating: "m", count: 40)],
            "agent": ["--agent-cluster", "edge1", "--agent-driver", "simulated", "--agent-topology", topology],
            "notifier": ["--notifier-queues", TestEnv.unique("metrics-q")],
            "faas-trigger": ["--faas-cluster", TestEnv.unique("fc")],
            "accelerator-monitor": ["--host-root", "/nonexistent", "--node-name", "n1", "--cluster-name", "c1", "--kafka-enabled", "false",
                                    "--kubernetes-url", k.server.url, "--kubernetes-token-file", k.tokenFile, "--scan-interval", "1s"],
        ]
        var arguments = common + (extra[service] ?? [])
        if service == "accelerator-monitor" {
            // Neither a database nor a broker nor RabbitMQ: its keys are refused, as they should be.
            arguments = ["--http-host", "127.0.0.1", "--http-port", "\(ops.port)", "--log-level", "error"] + (extra[service] ?? [])
        }
        let child = try ChildProcess(service, arguments)
        defer { child.kill(SIGTERM) }
        let http = HTTPClient(logger: TestEnv.logger)
        try await eventually("\(service) serves /metrics", timeout: .seconds(60), detail: { child.lines.suffix(5).joined(separator: " | ") }) {
            (try? await http.execute(HTTPRequest(url: "http://127.0.0.1:\(ops.port)/metrics")))?.status == 200
        }
        // Some traffic, so that the HTTP families exist too.
        _ = try? await http.execute(HTTPRequest(url: "http://127.0.0.1:\(ops.port)/healthz"))
        _ = try? await http.execute(HTTPRequest(url: "http://127.0.0.1:\(ops.port)/nothing-here"))
        try await Task.sleep(for: .seconds(2))
        let text = try await http.execute(HTTPRequest(url: "http://127.0.0.1:\(ops.port)/metrics")).bodyString
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("metrics"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("metrics.txt").path, output = dir.appendingPathComponent("promtool.txt").path
        try text.write(toFile: input, atomically: true, encoding: .utf8)
        let status = await runCommand(["/bin/sh", "-c", "promtool check metrics < '\(input)' > '\(output)' 2>&1"])
        let said = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        #expect(status == 0 && said.isEmpty, "\(service): promtool exited \(status): \(said)")
        for family in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"] {
            #expect(text.contains("# TYPE \(family) "), "\(service) has no \(family)")
        }
        #expect(!text.contains("hb_"), "\(service) exports Hummingbird's own names")
        await http.shutdown()
        await h.shutdown()
        await k.close()
    }

    /// One JSON line per gateway request: method, route template (not the path), status,
    /// duration, the token's project and the request ID, the client's when it sent one.
    @Test func theGatewayLogsEveryRequestOnce() async throws {
        let h = try await SchedulerHarness(partitions: 1)
        let port = try PortReservation()
        defer { port.release() }
        let admin = String(repeating: "a", count: 40)
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("access") + ".log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try GEdgeCore.ChildProcess("gateway", [
            "--http-host", "127.0.0.1", "--http-port", "\(port.port)", "--kafka-brokers", h.cluster.bootstrapServers, "--postgres-url", h.schemaURL,
            "--gateway-admin-token", admin, "--log-level", "info",
        ], logFile: log, directory: TestEnv.binDir)
        defer { kill(child.pid, SIGTERM) }
        func logLines() -> [String] { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init) }
        let http = HTTPClient(logger: TestEnv.logger)
        let base = "http://127.0.0.1:\(port.port)"
        try await eventually("gateway ready", timeout: .seconds(60)) { (try? await http.execute(HTTPRequest(url: base + "/readyz")))?.status == 200 }
        let listed = try await http.execute(HTTPRequest(url: base + "/v1/requests?limit=1", headers: [("X-Request-ID", "trace-42")], bearerToken: admin))
        #expect(listed.status == 200 && listed.header("X-Request-ID") == "trace-42")
        let refused = try await http.execute(HTTPRequest(url: base + "/v1/requests/req-secret-name"))
        #expect(refused.status == 401 && refused.header("X-Request-ID")?.count == 36)
        var lines: [JSONValue] = []
        try await eventually("two access lines") {
            lines = logLines().compactMap { try? JSONValue.parse(Array($0.utf8)) }.filter { $0["msg"] == "request" && $0["http.route"]?.stringValue?.hasPrefix("/v1/requests") == true }
            return lines.count >= 2
        }
        #expect(lines.count == 2)
        #expect(lines[0]["http.method"] == "GET" && lines[0]["http.route"] == "/v1/requests" && lines[0]["http.status"] == "200")
        #expect(lines[0]["project"] == "(admin)" && lines[0]["request.id"] == "trace-42" && lines[0]["duration_ms"]?.stringValue.flatMap(Double.init) != nil)
        // The template, never the request's own path; no project without a token.
        #expect(lines[1]["http.route"] == "/v1/requests/{id}" && lines[1]["http.status"] == "401" && lines[1]["project"] == nil)
        #expect(!logLines().joined().contains("req-secret-name"))
        await http.shutdown()
        await h.shutdown()
    }

    /// Every metric the code names has its HELP text (a family without one would go out
    /// without, and promtool would say so only once it has been used).
    @Test func everyMetricInTheCodeHasHelpText() throws {
        var names: Set<String> = []
        let pattern = try NSRegularExpression(pattern: #"(?:label|metric): "(gedge_[a-z_]+)""#)
        for dir in ["Libraries", "Services"] {
            let base = repositoryRoot.appendingPathComponent(dir)
            for case let file as String in FileManager.default.enumerator(atPath: base.path) ?? NSEnumerator() where file.hasSuffix(".swift") {
                let text = try String(contentsOf: base.appendingPathComponent(file), encoding: .utf8)
                for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    if let r = Range(m.range(at: 1), in: text) { names.insert(String(text[r])) }
                }
            }
        }
        #expect(names.count > 30)
        #expect(names.subtracting(MetricsExposition.help.keys).sorted() == [])
    }
}
