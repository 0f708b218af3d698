import Foundation
import Synchronization
import Logging

/// Metadata keys used across the suite, in one place so that logs can be queried by them.
public enum LogKeys {
    public static let service = "service"
    public static let component = "component"
    public static let requestID = "request.id"
    public static let kafkaTopic = "kafka.topic"
    public static let kafkaPartition = "kafka.partition"
    public static let kafkaOffset = "kafka.offset"
    public static let kafkaGroup = "kafka.group"
    public static let amqpQueue = "amqp.queue"
    public static let dbTable = "db.table"
    public static let error = "error"
    public static let errorCode = "error.code"
    public static let errorField = "error.field"
    public static let state = "state"
    public static let cluster = "cluster"
    public static let node = "node"
}

/// Writes one JSON object per log record to standard error.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let label: String

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level
        let message = event.message
        let explicit = event.metadata
        var fields: [String: JSONValue] = [
            "ts": .string(Self.timestamp()),
            "level": .string(level.rawValue),
            "logger": .string(label),
            "msg": .string(message.description),
        ]
        let merged = metadata.merging(explicit ?? [:]) { _, new in new }
        for (k, v) in merged { fields[k] = Self.json(v) }
        if let error = event.error { fields[LogKeys.error] = .string("\(error)") }
        var bytes = JSONValue.object(fields).serialized()
        bytes.append(10)
        bytes.withUnsafeBufferPointer { buf in
            var offset = 0
            while offset < buf.count {
                let n = write(2, buf.baseAddress! + offset, buf.count - offset)
                if n <= 0 { break }
                offset += n
            }
        }
    }

    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let s): .string(s)
        case .stringConvertible(let c): .string(c.description)
        case .array(let a): .array(a.map(json))
        case .dictionary(let d): .object(d.mapValues(json))
        }
    }

    static func timestamp() -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        var tmv = tm()
        var secs = tv.tv_sec
        gmtime_r(&secs, &tmv)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday,
            tmv.tm_hour, tmv.tm_min, tmv.tm_sec, Int(tv.tv_usec / 1000))
    }
}

public enum GEdgeLogging {
    /// Plain text logs on standard error at `level`, for command-line programs.
    public static func bootstrapConsole(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }

    /// Sets up swift-log from `log.level` (trace...critical, default info) and `log.format`
    /// (`json`, the default, or `text`).
    public static func bootstrap(_ config: ConfigReader) throws {
        let levelName = config.string("log.level", default: "info")
        guard let level = Logger.Level(rawValue: levelName.lowercased()) else {
            throw ConfigurationError(key: "log.level", reason: "'\(levelName)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        let format = config.string("log.format", default: "json")
        switch format {
        case "json":
            LoggingSystem.bootstrap { label in
                var h = JSONLogHandler(label: label)
                h.logLevel = level
                return h
            }
        case "text":
            LoggingSystem.bootstrap { label in
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = level
                return h
            }
        default:
            throw ConfigurationError(key: "log.format", reason: "'\(format)' is not json or text")
        }
    }
}

/// Unbuffered lines on standard output, for programs whose output other programs read.
public enum Console {
    public static func line(_ text: String) { emit(text, to: 1) }

    /// What a program does when a line cannot be written because its reader went away (with
    /// SIGPIPE ignored, as `ChildProcess.stopAllOnInterrupt` has it); nothing by default.
    public static let brokenPipe = Mutex<(@Sendable () -> Void)?>(nil)

    /// A line on standard error.
    public static func error(_ text: String) { emit(text, to: 2) }

    /// Runs a program's body; an error it throws (a bad setting, a port taken) is printed as
    /// one line on standard error, `<program>: <error>`, and the program exits with status 1
    /// rather than crashing with a backtrace.
    public static func runMain(_ program: String, _ body: () async throws -> Void) async {
        do {
            try await body()
        } catch {
            Console.error("\(program): \(error)")
            exit(1)
        }
    }

    /// `runMain` for a program that must stay on its main thread (one that takes its stop
    /// signals with `sigwait` there).
    public static func runMainSync(_ program: String, _ body: () throws -> Void) {
        do {
            try body()
        } catch {
            Console.error("\(program): \(error)")
            exit(1)
        }
    }

    static func emit(_ text: String, to fd: Int32) {
        var bytes = Array(text.utf8)
        bytes.append(10)
        bytes.withUnsafeBytes { buf in
            var off = 0
            while off < buf.count {
                let n = write(fd, buf.baseAddress! + off, buf.count - off)
                if n < 0 && errno == EINTR { continue }
                if n < 0 && errno == EPIPE, let hook = brokenPipe.withLock({ $0 }) {
                    // The reader went away (`program | head`), SIGPIPE being ignored here.
                    hook()
                    return
                }
                if n <= 0 { return }
                off += n
            }
        }
    }
}
