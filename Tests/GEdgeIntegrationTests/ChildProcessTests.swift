import Foundation
import GEdgeCore
import Testing

/// The benchmarks' service processes (GEdgeCore.ChildProcess; the tests' own ChildProcess
/// is their line reader of a child), with the dev broker as the child.
@Suite("Child processes", .enabled(if: TestEnv.integration), .timeLimit(.minutes(1)))
struct ChildProcessTests {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("children")).path

    init() throws { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }

    @Test func aChildThatCannotStartIsReportedWithItsLastLogLine() async throws {
        let broker = try GEdgeCore.ChildProcess("gedge-kafka-dev", ["--kafka-dev-port", "70000"], logFile: dir + "/bad.log", directory: TestEnv.binDir)
        do {
            try await broker.waitForFile(dir + "/never")
            Issue.record("waitForFile returned for a child that exited")
        } catch {
            let text = "\(error)"
            #expect(text.contains("exited with 1 before it was ready"), "\(text)")
            #expect(text.contains("kafka.dev.port: 70000 is not a TCP port"), "\(text)")
        }
        #expect(!broker.isRunning)
        #expect(broker.exitCode == 1)
    }

    @Test func aReadyChildStopsOnSIGTERMAndIsReaped() async throws {
        let bootstrap = dir + "/bootstrap"
        let broker = try GEdgeCore.ChildProcess(
            "gedge-kafka-dev", ["--kafka-dev-port", "0", "--kafka-dev-brokers", "1", "--kafka-dev-bootstrap-file", bootstrap],
            logFile: dir + "/ok.log", directory: TestEnv.binDir)
        try await broker.waitForFile(bootstrap)
        #expect(broker.isRunning)
        let started = ContinuousClock.now
        broker.stop()
        #expect(broker.exitCode == 0, "the broker ends cleanly on SIGTERM")
        #expect(ContinuousClock.now - started < .seconds(5), "stopped within the grace period, not killed after it")
        #expect(kill(broker.pid, 0) != 0, "reaped: no process is left under its pid")
    }
}
