import Foundation
import GEdgeCore
import Logging
import Synchronization
import Testing

/// A loopback TCP port held for a test: a socket bound to it with SO_REUSEADDR and never
/// listening. A server that binds with SO_REUSEADDR (Hummingbird, PostgreSQL) can listen on
/// the port while it is held; between a server's stop and its restart a client's connection
/// is refused, and no other socket of the test run (a listener on port 0, or the local end of
/// an outgoing connection) can take the port.
final class PortReservation: Sendable {
    let port: Int
    private let fd: Mutex<Int32>

    /// With `belowEphemeral`, a port under Linux's ephemeral range (20000-32767): one that a
    /// test gives back for a child process to bind is then not taken meanwhile by another
    /// socket's port 0 or outgoing connection (a broker of another test, a client).
    init(belowEphemeral: Bool = false) throws {
        var attempts = 0
        while true {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
            if belowEphemeral { addr.sin_port = UInt16(Int.random(in: 20000..<32768)).bigEndian }
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let ok = withUnsafeMutablePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
            }
            if ok {
                self.port = Int(UInt16(bigEndian: addr.sin_port))
                self.fd = Mutex(fd)
                return
            }
            let e = errno
            close(fd)
            attempts += 1
            guard belowEphemeral, attempts < 200 else { throw POSIXError(POSIXErrorCode(rawValue: e) ?? .EIO) }
        }
    }

    /// Listens on the held port: another server's bind to it now fails (a port taken).
    func occupy() { fd.withLock { fd in _ = listen(fd, 1) } }

    /// Gives the port back (also done when the reservation is freed).
    func release() {
        fd.withLock { fd in
            if fd >= 0 { close(fd) }
            fd = -1
        }
    }

    deinit { release() }
}

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
    detail: () -> String = { "" },
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    let seen = detail()
    Issue.record("timed out after \(timeout) waiting for \(what)\(seen.isEmpty ? "" : " (last seen: \(seen))")", sourceLocation: sourceLocation)
    throw CancellationError()
}

/// A child process of the tests (started with `Subprocess.spawn`, not Foundation's
/// `Process.run`, whose crash would take down the whole test run and leave its children
/// holding the run's output open).
final class Spawned: @unchecked Sendable {
    let pid: pid_t
    /// The read end of the child's standard output, or -1 when it was not captured.
    let output: Int32
    private let lock = NSLock()
    private var status: Int32?

    init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, captureOutput: Bool, errorFile: String? = nil) throws {
        (pid, output) = try Subprocess.spawn(executable, arguments, environment: environment, captureOutput: captureOutput, errorFile: errorFile)
    }

    /// The exit code (128 + the signal that ended it) once the child has ended; nil while it runs.
    var exitStatus: Int32? {
        lock.lock()
        defer { lock.unlock() }
        if status == nil {
            var s: Int32 = 0
            if waitpid(pid, &s, WNOHANG) == pid { status = Subprocess.exitCode(s) }
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

    /// The file the child's standard error goes to, when one was asked for.
    let errorFile: String?

    /// With `errorLog`, the child's standard error goes to a file of its own (a waitForExit
    /// that times out shows its last lines) rather than to the test run's.
    init(_ executable: String, _ arguments: [String], errorLog: Bool = false) throws {
        // A child that crashes ends at once: Swift's backtracer would keep it (and the test
        // run's output pipes) alive.
        var env = ProcessInfo.processInfo.environment
        env["SWIFT_BACKTRACE"] = "enable=no"
        errorFile = errorLog ? FileManager.default.temporaryDirectory.appendingPathComponent("\(TestEnv.unique(executable)).stderr").path : nil
        child = try Spawned(TestEnv.binDir.appendingPathComponent(executable).path, arguments, environment: env, captureOutput: true, errorFile: errorFile)
        let fd = child.output
        // Reads until the child closes its output (it ended); a thread of its own, as a
        // blocking read must not hold one of the two cooperative threads.
        Thread { [weak self] in
            var partial: [UInt8] = []
            Subprocess.readChunks(fd) { chunk in
                partial += chunk
                var done: [String] = []
                while let nl = partial.firstIndex(of: 10) {
                    done.append(String(decoding: partial[..<nl], as: UTF8.self))
                    partial.removeSubrange(...nl)
                }
                guard let self else { return false }
                if !done.isEmpty {
                    self.lock.lock()
                    self._lines += done
                    self.lock.unlock()
                }
                return true
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

    /// The last lines of the child's error log, when it has one.
    func errorLogTail(_ count: Int = 60) -> String {
        errorFile.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) }
            .map { $0.split(separator: "\n").suffix(count).joined(separator: "\n") } ?? "(not kept)"
    }

    /// Waits for the child to end. Past `timeout`, the failure shows the child's last lines
    /// of output and of its error log.
    func waitForExit(timeout: Duration = .seconds(20), sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await eventually("process exit", timeout: timeout, sourceLocation: sourceLocation, detail: {
            "pid \(child.pid); its last output:\n\(lines.suffix(5).joined(separator: "\n"))\nits error log's last lines:\n\(errorLogTail())"
        }) { !child.isRunning }
    }

    deinit {
        if let errorFile { try? FileManager.default.removeItem(atPath: errorFile) }
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
    guard let (pid, _) = try? Subprocess.spawn(arguments[0], Array(arguments.dropFirst()), captureOutput: false) else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return Subprocess.exitCode(status)
}
