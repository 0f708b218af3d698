import Foundation
import GEdgeCore
import Testing

/// A service that cannot start says why in one line and ends with status 1, promptly: a
/// ScaledObject file it cannot load, a port that is taken. None hangs, none crashes. (The
/// bound is generous: a debug binary starting beside the whole test suite on 2 cores.)
@Suite("Startup failures", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(2)))
struct StartupFailureTests {
    /// Starts an executable with its output (standard output and error) in a file, waits for
    /// it to end, and returns its status and every line it wrote.
    func run(_ executable: String, _ arguments: [String], within: Duration = .seconds(45)) async throws -> (status: Int32, lines: [String]) {
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
            ("auth.yaml", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: y}\n  triggers: [{type: rabbitmq, metadata: {queueName: q}, authenticationRef: {name: nowhere}}]\n", "no TriggerAuthentication 'nowhere'"),
            ("keda-field.yaml", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  initialCooldownPeriod: 5\n  scaleTargetRef: {name: y}\n  triggers: [{type: rabbitmq, metadata: {host: 'amqp://h/', queueName: q}}]\n", "spec.initialCooldownPeriod"),
            ("configmap.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "'ConfigMap' is not taken here"),
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
            #expect(ContinuousClock.now - started < .seconds(30), "took \(ContinuousClock.now - started)")
        }
    }

    /// SIGTERM while the faas-trigger waits on a database that accepts connections and never
    /// answers: it ends at once, as it does at every later stage (the service group's shutdown).
    @Test func sigtermEndsTheFaaSTriggerWhileItWaitsForTheDatabase() async throws {
        // A listener that never accepts: connections complete in the kernel's backlog, and
        // libpq waits for a server greeting that never comes.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = listen(fd, 16)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("ft-term") + ".log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try GEdgeCore.ChildProcess("faas-trigger", [
            "--http-port", "0", "--log-level", "error", "--postgres-url", "postgres://gedge@127.0.0.1:\(port)/none", "--kafka-brokers", "127.0.0.1:1",
        ], logFile: log, directory: TestEnv.binDir)
        try await Task.sleep(for: .seconds(2))
        #expect(child.isRunning, "it waits for the database")
        let started = ContinuousClock.now
        kill(child.pid, SIGTERM)
        try await eventually("faas-trigger ended", timeout: .seconds(10)) { !child.isRunning }
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(child.exitCode != 0)
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
        #expect(ContinuousClock.now - started < .seconds(30), "took \(ContinuousClock.now - started)")
    }
}

/// The decoder's peak memory on the densest documents the default limits let it build before
/// refusing them (100,000 tiny objects in under 1 MB), each decoded alone in a process of its
/// own so that nothing else in the test run counts.
@Suite("Decoder memory", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(1)))
struct DecoderMemoryTests {
    @Test(arguments: ["json", "yaml"])
    func densestDocumentsPeakUnder16MiB(format: String) async throws {
        let text = format == "json"
            ? "[" + Array(repeating: #"{"a":0}"#, count: 120_000).joined(separator: ",") + "]"
            : Array(repeating: "- {a: 0}", count: 120_000).joined(separator: "\n")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("dense") + "." + format).path
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let child = try ChildProcess("gedge-testkit", ["decode-peak", "--file", file, "--format", format])
        try await child.waitForExit(timeout: .seconds(30))
        try await eventually("the figure") { child.lines.contains { $0.hasPrefix("PEAK ") } }
        let line = try #require(child.lines.first { $0.hasPrefix("PEAK ") })
        print("decoder memory, \(format), \(text.utf8.count) bytes: \(line)")
        let parts = line.split(separator: " ", maxSplits: 2)
        #expect(parts.count == 3 && parts[2].contains("decode.max.nodes"), "\(line)")
        #expect((Int(parts[1]) ?? .max) < 16 << 10, "\(line)")
    }
}
