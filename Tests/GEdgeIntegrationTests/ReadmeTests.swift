import Foundation
import GEdgeCore
import GEdgePostgres
import Testing

/// README.md's "Using the gateway" steps, read out of README.md and run as written (bash,
/// one after another, `set -e`), on a suite of their own: its own Kafka (gedge-kafka-dev on a
/// free port), its own PostgreSQL schema, its own ports and run directory, given through the
/// environment the steps read; the shared stack is kept up (GEDGE_STACK_KEEP) and the
/// programs already built are used (GEDGE_BIN_DIR).
@Suite("README", .enabled(if: TestEnv.integration), .timeLimit(.minutes(5)))
struct ReadmeTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardizedFileURL

    /// The first `sh` block under `## Using the gateway`.
    static func usingTheGateway() throws -> [String] {
        let text = try String(contentsOf: root.appendingPathComponent("README.md"), encoding: .utf8)
        guard let section = text.range(of: "## Using the gateway") else { throw CocoaError(.fileReadCorruptFile) }
        let rest = text[section.upperBound...]
        guard let open = rest.range(of: "```sh\n"), let close = rest[open.upperBound...].range(of: "```") else { throw CocoaError(.fileReadCorruptFile) }
        return rest[open.upperBound..<close.lowerBound].split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    @Test func usingTheGatewayRunsAsWritten() async throws {
        let steps = try Self.usingTheGateway()
        #expect(steps.first == "make run" && steps.last == "make down", "\(steps)")

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("readme"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        // Its own broker.
        // Ports given back for the suite's own programs to bind: below the ephemeral range.
        let kafkaPort = try PortReservation(belowEphemeral: true)
        let port = kafkaPort.port
        kafkaPort.release()
        let bootstrapFile = dir.appendingPathComponent("bootstrap").path
        let broker = try GEdgeCore.ChildProcess("gedge-kafka-dev", [
            "--kafka-dev-port", "\(port)", "--kafka-dev-brokers", "1", "--kafka-dev-bootstrap-file", bootstrapFile, "--log-level", "warning",
        ], logFile: dir.appendingPathComponent("kafka.log").path, directory: TestEnv.binDir)
        defer { broker.stop() }
        try await broker.waitForFile(bootstrapFile)
        // Its own schema.
        let schema = TestEnv.unique("readme").replacingOccurrences(of: "-", with: "_")
        let admin = PostgresPool(configuration: PostgresConfiguration(url: TestEnv.postgresURL, poolSize: 1), logger: TestEnv.logger)
        try await admin.execute("CREATE SCHEMA \(schema)")
        admin.shutdown()
        let gateway = try PortReservation(belowEphemeral: true), scheduler = try PortReservation(belowEphemeral: true)
        let (gatewayPort, schedulerPort) = (gateway.port, scheduler.port)
        gateway.release()
        scheduler.release()

        let env: [String: String] = [
            "GEDGE_KAFKA_BROKERS": "127.0.0.1:\(port)",
            "GEDGE_POSTGRES_URL": TestEnv.postgresURL + "?options=-csearch_path%3D\(schema)",
            "GEDGE_RUN_DIR": dir.appendingPathComponent("run").path,
            "GEDGE_RUN_GATEWAY_PORT": "\(gatewayPort)", "GEDGE_RUN_SCHEDULER_PORT": "\(schedulerPort)",
            "GEDGE_SERVER": "http://127.0.0.1:\(gatewayPort)",
            "GEDGE_STACK_KEEP": "1", "GEDGE_BIN_DIR": TestEnv.binDir.path,
        ]
        var script = "set -euo pipefail\ncd '\(Self.root.path)'\n"
        for (k, v) in env.sorted(by: { $0.key < $1.key }) { script += "export \(k)='\(v)'\n" }
        // Each step echoed before it runs, so a failure names it.
        for step in steps { script += "echo \"+ \(step.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "$", with: "\\$").replacingOccurrences(of: "`", with: "\\`"))\"\n\(step)\n" }
        let log = dir.appendingPathComponent("steps.log").path
        let (pid, _) = try Subprocess.spawn("/bin/bash", ["-c", script], captureOutput: false, outputFile: log)
        var status: Int32 = 0
        try await eventually("README's steps end", timeout: .seconds(240)) { waitpid(pid, &status, WNOHANG) == pid }
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        // Whatever happened, the suite it started is stopped.
        _ = await runCommand(["/bin/bash", "-c", "GEDGE_RUN_DIR='\(env["GEDGE_RUN_DIR"]!)' '\(Self.root.path)/scripts/run.sh' stop"])
        #expect(Subprocess.exitCode(status) == 0, "README's steps failed:\n\(output.suffix(3000))")
        // The service, the request and the workflow all ended completed.
        #expect(output.components(separatedBy: "completed").count >= 4, "\(output.suffix(3000))")
        #expect(output.contains("stopped: agent-cloud agent-edge1 agent-edge2 scheduler gateway"), "\(output.suffix(500))")
    }
}
