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

/// A child process started with posix_spawn. Foundation's `Process.run()` is not used: on
/// Linux it lists /proc/self/fd with an over-read that now and then crashes the caller
/// (swift-corelibs-foundation #5472), which here would take down the whole test run and
/// leave its children holding the run's output open.
final class Spawned: @unchecked Sendable {
    let pid: pid_t
    /// The read end of the child's standard output, or -1 when it was not captured.
    let output: Int32
    private let lock = NSLock()
    private var status: Int32?

    /// `executable` is looked up in PATH when it has no slash. The output pipe is
    /// close-on-exec, so other children started meanwhile do not hold it open.
    init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, captureOutput: Bool) throws {
        var fds: [Int32] = [-1, -1]
        if captureOutput {
            guard pipe(&fds) == 0 else { throw ConfigurationError(key: executable, reason: "pipe: \(String(cString: strerror(errno)))") }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if captureOutput { posix_spawn_file_actions_adddup2(&actions, fds[1], 1) }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer {
            for a in argv { free(a) }
            for e in envp ?? [] { free(e) }
        }
        var pid: pid_t = 0
        let rc = envp.map { posix_spawnp(&pid, executable, &actions, nil, argv, $0) } ?? posix_spawnp(&pid, executable, &actions, nil, argv, environ)
        if captureOutput { close(fds[1]) }
        guard rc == 0 else {
            if captureOutput { close(fds[0]) }
            throw ConfigurationError(key: executable, reason: "posix_spawn: \(String(cString: strerror(rc)))")
        }
        self.pid = pid
        output = fds[0]
    }

    /// The exit code (or the signal that ended it) once the child has ended; nil while it runs.
    var exitStatus: Int32? {
        lock.lock()
        defer { lock.unlock() }
        if status == nil {
            var s: Int32 = 0
            if waitpid(pid, &s, WNOHANG) == pid { status = (s & 0x7f) == 0 ? (s >> 8) & 0xff : s & 0x7f }
        }
        return status
    }

    var isRunning: Bool { exitStatus == nil }

    func kill(_ signal: Int32 = SIGKILL) {
        if isRunning { Foundation.kill(pid, signal) }
    }

    deinit {
        if isRunning {
            Foundation.kill(pid, SIGKILL)
            var s: Int32 = 0
            while waitpid(pid, &s, 0) < 0 && errno == EINTR {}
        }
        if output >= 0 { close(output) }
    }
}

/// A child process of the tests, its output collected line by line.
final class ChildProcess: @unchecked Sendable {
    private let child: Spawned
    private let lock = NSLock()
    private var _lines: [String] = []

    init(_ executable: String, _ arguments: [String]) throws {
        // A child that crashes ends at once: Swift's backtracer would keep it (and the test
        // run's output pipes) alive.
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        child = try Spawned(TestEnv.binDir.appendingPathComponent(executable).path, arguments, environment: env, captureOutput: true)
        let fd = child.output
        // Reads until the child closes its output (it ended); a thread of its own, as a
        // blocking read must not hold one of the two cooperative threads.
        Thread { [weak self] in
            var partial: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                partial += buffer[..<n]
                var done: [String] = []
                while let nl = partial.firstIndex(of: 10) {
                    done.append(String(decoding: partial[..<nl], as: UTF8.self))
                    partial.removeSubrange(...nl)
                }
                guard let self else { return }
                if !done.isEmpty {
                    self.lock.lock()
                    self._lines += done
                    self.lock.unlock()
                }
            }
        }.start()
    }

    var lines: [String] {
        lock.lock()
        defer { lock.unlock() }
        return _lines
    }

    func lines(prefix: String) -> [String] { lines.filter { $0.hasPrefix(prefix) } }

    func kill(_ signal: Int32 = SIGKILL) { child.kill(signal) }

    func waitForExit(timeout: Duration = .seconds(20)) async throws {
        try await eventually("process exit", timeout: timeout) { !child.isRunning }
    }

    /// The exit status, once the process has ended.
    var exitStatus: Int32 { child.exitStatus ?? -1 }
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
