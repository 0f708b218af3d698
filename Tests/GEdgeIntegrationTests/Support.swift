import Foundation
import GEdgeCore
import Logging
import Testing

/// Integration tests need the local stack (`make test` starts it and sets GEDGE_INTEGRATION=1).
enum TestEnv {
    static let integration = ProcessInfo.processInfo.environment["GEDGE_INTEGRATION"] == "1"
    static let postgresURL = ProcessInfo.processInfo.environment["GEDGE_TEST_POSTGRES_URL"] ?? "postgres://gedge@127.0.0.1:5432/gedge_test"
    static let amqpURL = ProcessInfo.processInfo.environment["GEDGE_TEST_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/"
    static let binDir: URL = {
        if let dir = ProcessInfo.processInfo.environment["GEDGE_BIN_DIR"] { return URL(fileURLWithPath: dir) }
        return (Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])).deletingLastPathComponent()
    }()
    static let logger: Logger = {
        var l = Logger(label: "gedge-tests")
        l.logLevel = ProcessInfo.processInfo.environment["GEDGE_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return l
    }()

    /// A name no other test uses: topics, groups, queues, tables.
    static func unique(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// Waits until `condition` holds, polling; fails the test at the deadline.
func eventually(
    _ what: String, timeout: Duration = .seconds(20), sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("timed out after \(timeout) waiting for \(what)", sourceLocation: sourceLocation)
    throw CancellationError()
}

/// A child process of the tests, its output collected line by line.
final class ChildProcess: @unchecked Sendable {
    private let process = Process()
    private let lock = NSLock()
    private var _lines: [String] = []
    private var partial = ""

    init(_ executable: String, _ arguments: [String]) throws {
        process.executableURL = TestEnv.binDir.appendingPathComponent(executable)
        process.arguments = arguments
        // A child that crashes ends at once: Swift's backtracer would keep it (and the test
        // run's output pipes) alive.
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.standardError
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.lock()
            self.partial += String(decoding: data, as: UTF8.self)
            while let nl = self.partial.firstIndex(of: "\n") {
                self._lines.append(String(self.partial[..<nl]))
                self.partial = String(self.partial[self.partial.index(after: nl)...])
            }
            self.lock.unlock()
        }
        try process.run()
    }

    var lines: [String] {
        lock.lock()
        defer { lock.unlock() }
        return _lines
    }

    func lines(prefix: String) -> [String] { lines.filter { $0.hasPrefix(prefix) } }

    func kill(_ signal: Int32 = SIGKILL) {
        Foundation.kill(process.processIdentifier, signal)
    }

    func waitForExit(timeout: Duration = .seconds(20)) async throws {
        try await eventually("process exit", timeout: timeout) { !process.isRunning }
    }

    /// The exit status, once the process has ended.
    var exitStatus: Int32 { process.terminationStatus }

    deinit {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }
}

/// Runs a command to its end and returns its exit status. posix_spawn and waitpid rather
/// than Foundation's Process, whose waitUntilExit can hang when the command leaves a
/// daemon behind (pg_ctl start).
/// Runs a command to its end on a thread of its own: a blocking wait on one of the two
/// cooperative threads would stall every server the tests run in this process.
func runCommand(_ arguments: [String]) async -> Int32 {
    await withCheckedContinuation { (cont: CheckedContinuation<Int32, Never>) in
        let thread = Thread { cont.resume(returning: runCommandBlocking(arguments)) }
        thread.start()
    }
}

func runCommandBlocking(_ arguments: [String]) -> Int32 {
    var pid: pid_t = 0
    let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    guard posix_spawnp(&pid, arguments[0], nil, nil, argv, environ) == 0 else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status >> 8) & 0xff
}
