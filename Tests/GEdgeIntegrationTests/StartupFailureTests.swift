import Foundation
import GEdgeCore
import Testing

/// A service that cannot start says why in one line and ends with status 1, promptly: a
/// ScaledObject file it cannot load, a port that is taken. None hangs, none crashes.
@Suite("Startup failures", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(2)))
struct StartupFailureTests {
    /// Starts an executable with its output (standard output and error) in a file, waits for
    /// it to end, and returns its status and every line it wrote.
    func run(_ executable: String, _ arguments: [String], within: Duration = .seconds(15)) async throws -> (status: Int32, lines: [String]) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique(executable) + ".log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try GEdgeCore.ChildProcess(executable, arguments, logFile: log, directory: TestEnv.binDir)
        try await eventually("\(executable) exit", timeout: within) { !child.isRunning }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return (child.exitCode ?? -1, text.split(separator: "\n").map(String.init).filter { !$0.isEmpty })
    }

    @Test func faasTriggerRefusesFilesItCannotLoad() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("so"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let files: [(String, String, String)] = [
            ("syntax.yaml", "a: [\n", "not valid YAML"),
            ("kafka.yaml", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: y}\n  triggers: [{type: kafka, metadata: {}}]\n", "spec.triggers[0].type"),
            ("deep.yaml", "a: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + "\n", "decode.max.depth"),
            ("empty.yaml", "", "no document"),
        ]
        for (name, text, reason) in files + [("missing.yaml", "", "cannot read")] {
            let path = dir.appendingPathComponent(name).path
            if name != "missing.yaml" { try text.write(toFile: path, atomically: true, encoding: .utf8) }
            let started = ContinuousClock.now
            let (status, lines) = try await run("faas-trigger", [
                "--faas-scaledobjects", path, "--http-port", "0", "--log-level", "error",
                "--postgres-url", "postgres://gedge@127.0.0.1:1/none", "--kafka-brokers", "127.0.0.1:1",
            ])
            #expect(status == 1, "\(name): status \(status)")
            #expect(lines.count == 1 && lines[0].hasPrefix("faas-trigger: configuration faas.scaledobjects:") && lines[0].contains(reason), "\(name): \(lines)")
            #expect(ContinuousClock.now - started < .seconds(10))
        }
    }

    @Test func aTakenPortEndsTheGatewayAtOnce() async throws {
        let taken = try PortReservation()
        defer { taken.release() }
        taken.occupy()
        let started = ContinuousClock.now
        let (status, lines) = try await run("gateway", [
            "--http-port", "\(taken.port)", "--log-level", "error", "--postgres-url", TestEnv.postgresURL,
            "--kafka-brokers", "127.0.0.1:1", "--gateway-admin-token", String(repeating: "a", count: 40),
        ])
        #expect(status == 1 && lines.last?.hasPrefix("gateway: ") == true && lines.last?.contains("in use") == true, "\(status): \(lines)")
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}
