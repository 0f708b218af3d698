import Dispatch
import Foundation
import Synchronization

/// A service process that a benchmark or demo program starts beside itself (the executable
/// next to the running program), with its output in a log file. Every child still running is
/// stopped when the starting program is interrupted (after `stopAllOnInterrupt()`): a
/// benchmark stopped with Ctrl-C, or whose output reader went away, leaves no broker or
/// service behind holding its ports.
public final class ChildProcess: Sendable {
    public let name: String
    public let pid: pid_t
    public let logFile: String
    private let status = Mutex<Int32?>(nil)
    private static let live = Mutex<[pid_t: ChildProcess]>([:])
    private static let started = Atomic<Int>(0)
    private let order: Int

    /// Starts the program `name` found in `directory`, by default the one holding this program.
    public init(_ name: String, _ arguments: [String], logFile: String, directory: URL? = nil) throws {
        let dir = directory ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let path = dir.appendingPathComponent(name).path
        self.name = name
        self.logFile = logFile
        self.order = Self.started.add(1, ordering: .relaxed).newValue
        self.pid = try Subprocess.spawn(path, arguments, captureOutput: false, outputFile: logFile).pid
        Self.live.withLock { $0[pid] = self }
    }

    /// Its exit code once it has ended (as a shell reports it), nil while it runs.
    public var exitCode: Int32? {
        status.withLock { status in
            if status == nil {
                var s: Int32 = 0
                if waitpid(pid, &s, WNOHANG) == pid {
                    status = Subprocess.exitCode(s)
                    _ = Self.live.withLock { $0.removeValue(forKey: pid) }
                }
            }
            return status
        }
    }

    public var isRunning: Bool { exitCode == nil }

    /// SIGTERM, then SIGKILL if it has not ended within `grace`; waits for it to end.
    public func stop(grace: Duration = .seconds(5)) {
        Self.stop([self], grace: grace)
    }

    /// Stops these children together: SIGTERM to each, then SIGKILL to any still running
    /// after `grace`; waits for all of them to end.
    public static func stop(_ children: [ChildProcess], grace: Duration = .seconds(5)) {
        let running = children.filter(\.isRunning)
        for child in running { kill(child.pid, SIGTERM) }
        let deadline = ContinuousClock.now + grace
        while running.contains(where: \.isRunning) && ContinuousClock.now < deadline { usleep(20_000) }
        for child in running where child.isRunning {
            kill(child.pid, SIGKILL)
            while child.isRunning { usleep(5_000) }
        }
    }

    /// Waits until the child has written `path` (as a broker writes its bootstrap address once
    /// it listens). A child that ends first would leave this waiting forever: it throws then,
    /// with the last line of the child's log.
    public func waitForFile(_ path: String) async throws {
        while !FileManager.default.fileExists(atPath: path) {
            if let code = exitCode {
                let log = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
                let last = log.split(separator: "\n").last.map(String.init) ?? "no output"
                throw ConfigurationError(key: name, reason: "exited with \(code) before it was ready: \(last) (log: \(logFile))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    private static let handlers = Mutex<[any DispatchSourceSignal]>([])

    /// Stops every child still running: all but the first started together, then the first
    /// (the services, then the broker they flush to).
    public static func stopAll() {
        let children = live.withLock { $0.values.sorted { $0.order < $1.order } }
        stop(Array(children.dropFirst()))
        stop(Array(children.prefix(1)))
    }

    /// On SIGINT, SIGTERM or SIGHUP, or when standard output's reader goes away (SIGPIPE is
    /// ignored, so a write fails instead of killing the program): stops every child still
    /// running (`stopAll`), then exits with 128 + the signal, as the signal would have ended the program.
    public static func stopAllOnInterrupt() {
        handlers.withLock { handlers in
            guard handlers.isEmpty else { return }
            signal(SIGPIPE, SIG_IGN)
            Console.brokenPipe.withLock {
                $0 = {
                    stopAll()
                    exit(128 + SIGPIPE)
                }
            }
            for sig in [SIGINT, SIGTERM, SIGHUP] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler {
                    stopAll()
                    exit(128 + sig)
                }
                source.resume()
                handlers.append(source)
            }
        }
    }
}
