import Foundation

/// A configuration error, naming the key and the source it came from.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    public let key: String
    public let reason: String
    public init(key: String, reason: String) {
        self.key = key
        self.reason = reason
    }
    public var description: String { "configuration \(key): \(reason)" }
}

/// Reads dotted configuration keys (`kafka.brokers`) from, in order of precedence:
/// command-line flags (`--kafka.brokers=X`, `--kafka-brokers X`), environment variables
/// (`GEDGE_KAFKA_BROKERS`), a configuration file (`--config FILE` or `GEDGE_CONFIG`: JSON,
/// nested or flat, or `key = value` lines), then the default given at the call.
///
/// A key ending in `.file` names a file holding a secret: `secret("postgres.password")`
/// reads `postgres.password` or the contents of the file named by `postgres.password.file`.
public struct ConfigReader: Sendable {
    private var flags: [String: String]
    /// Each flag as it was typed, by its key (for error messages).
    private var typed: [String: String] = [:]
    private var environment: [String: String]
    private var file: [String: String]
    /// Positional arguments (those not starting with `--`).
    public let arguments: [String]

    public init(
        commandLine: [String] = Array(CommandLine.arguments.dropFirst()),
        environment: [String: String] = ProcessInfo.processInfo.environment,
        fileValues: [String: String]? = nil
    ) throws {
        var flags: [String: String] = [:]
        var typed: [String: String] = [:]
        var positional: [String] = []
        var i = 0
        while i < commandLine.count {
            let arg = commandLine[i]
            if arg.hasPrefix("--") {
                let body = arg.dropFirst(2)
                if let eq = body.firstIndex(of: "=") {
                    flags[Self.normalize(String(body[..<eq]))] = String(body[body.index(after: eq)...])
                    typed[Self.normalize(String(body[..<eq]))] = "--" + body[..<eq]
                } else if i + 1 < commandLine.count, !commandLine[i + 1].hasPrefix("--") {
                    flags[Self.normalize(String(body))] = commandLine[i + 1]
                    typed[Self.normalize(String(body))] = arg
                    i += 1
                } else {
                    flags[Self.normalize(String(body))] = "true"
                    typed[Self.normalize(String(body))] = arg
                }
            } else {
                positional.append(arg)
            }
            i += 1
        }
        self.flags = flags
        self.typed = typed
        self.arguments = positional
        self.environment = environment
        if let fileValues {
            self.file = fileValues
        } else if let path = flags["config"] ?? environment["GEDGE_CONFIG"] {
            self.file = try Self.loadFile(path)
        } else {
            self.file = [:]
        }
    }

    /// Whether `--help` (or `-h`) was given.
    public var helpRequested: Bool { flags["help"] != nil || arguments.contains("-h") }

    /// A program's startup check of what it was given, before it touches anything: `--help`
    /// prints the program's help on standard output and exits 0; a positional argument the
    /// program takes none of, or a flag or file key the suite does not know, is a
    /// configuration error naming it (with the nearest known key).
    public func check(program: String, extraFlags: Set<String> = [], usage: String? = nil) throws {
        if helpRequested {
            FileHandle.standardOutput.write(Data(ConfigKeys.help(program: program, usage: usage).utf8))
            exit(0)
        }
        if let extra = arguments.first {
            throw ConfigurationError(key: extra, reason: "\(program) takes no arguments, only --KEY VALUE flags (see \(program) --help)")
        }
        for key in flags.keys.sorted() where !ConfigKeys.isKnown(key) && !extraFlags.contains(key) {
            let flag = typed[key] ?? "--" + key
            let hint = ConfigKeys.suggestion(for: key, program: program).map { "; did you mean --\($0.replacingOccurrences(of: ".", with: "-"))?" } ?? ""
            throw ConfigurationError(key: key, reason: "unknown flag \(flag)\(hint) (see \(program) --help)")
        }
        for key in file.keys.sorted() where !ConfigKeys.isKnown(key) {
            let hint = ConfigKeys.suggestion(for: key, program: program).map { "; did you mean \($0)?" } ?? ""
            throw ConfigurationError(key: key, reason: "unknown key in the configuration file\(hint)")
        }
    }

    /// Flags may use dashes or dots between words: `--kafka-brokers` is `kafka.brokers`.
    static func normalize(_ flag: String) -> String {
        flag.replacingOccurrences(of: "-", with: ".").lowercased()
    }

    static func environmentName(_ key: String) -> String {
        "GEDGE_" + key.uppercased().replacingOccurrences(of: ".", with: "_").replacingOccurrences(of: "-", with: "_")
    }

    static func loadFile(_ path: String) throws -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(key: "config", reason: "cannot read configuration file \(path)")
        }
        let text = String(decoding: data, as: UTF8.self)
        if text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("{") {
            let json: JSONValue
            do { json = try JSONValue.parse(Array(data)) } catch {
                throw ConfigurationError(key: "config", reason: "\(path): \(error)")
            }
            var out: [String: String] = [:]
            flatten(json, prefix: "", into: &out)
            return out
        }
        var out: [String: String] = [:]
        for (n, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw ConfigurationError(key: "config", reason: "\(path):\(n + 1): expected 'key = value'")
            }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
            out[key] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
        }
        return out
    }

    static func flatten(_ value: JSONValue, prefix: String, into out: inout [String: String]) {
        switch value {
        case .object(let fields):
            for (k, v) in fields { flatten(v, prefix: prefix.isEmpty ? k.lowercased() : "\(prefix).\(k.lowercased())", into: &out) }
        case .array(let items):
            out[prefix] = items.compactMap { item -> String? in
                switch item {
                case .string(let s): return s
                case .number(let d): return d.rounded() == d ? String(Int64(d)) : String(d)
                case .bool(let b): return String(b)
                default: return nil
                }
            }.joined(separator: ",")
        case .string(let s): out[prefix] = s
        case .number(let d): out[prefix] = d.rounded() == d ? String(Int64(d)) : String(d)
        case .bool(let b): out[prefix] = String(b)
        case .null: break
        }
    }

    /// The raw value of a key, from the highest-precedence source that has it.
    public func value(_ key: String) -> String? {
        let k = key.lowercased()
        return flags[k] ?? environment[Self.environmentName(k)] ?? file[k]
    }

    public func string(_ key: String, default defaultValue: String) -> String {
        value(key) ?? defaultValue
    }

    public func string(_ key: String) -> String? { value(key) }

    public func int(_ key: String, default defaultValue: Int) throws -> Int {
        guard let raw = value(key) else { return defaultValue }
        guard let v = Int(raw.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigurationError(key: key, reason: "'\(raw)' is not a whole number")
        }
        return v
    }

    /// A TCP port: 0 (any free port) to 65535.
    public func port(_ key: String, default defaultValue: Int) throws -> Int {
        let v = try int(key, default: defaultValue)
        guard (0...65535).contains(v) else { throw ConfigurationError(key: key, reason: "\(v) is not a TCP port (0 to 65535)") }
        return v
    }

    public func double(_ key: String, default defaultValue: Double) throws -> Double {
        guard let raw = value(key) else { return defaultValue }
        guard let v = Double(raw.trimmingCharacters(in: .whitespaces)) else {
            throw ConfigurationError(key: key, reason: "'\(raw)' is not a number")
        }
        return v
    }

    public func bool(_ key: String, default defaultValue: Bool) throws -> Bool {
        guard let raw = value(key) else { return defaultValue }
        switch raw.lowercased() {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default: throw ConfigurationError(key: key, reason: "'\(raw)' is not a boolean (true/false)")
        }
    }

    /// A duration: a number with a unit (`250ms`, `5s`, `3m`, `1h`); a bare number is seconds.
    public func duration(_ key: String, default defaultValue: Duration) throws -> Duration {
        guard let raw = value(key) else { return defaultValue }
        guard let d = Self.parseDuration(raw) else {
            throw ConfigurationError(key: key, reason: "'\(raw)' is not a duration (e.g. 250ms, 5s, 3m)")
        }
        return d
    }

    public static func parseDuration(_ raw: String) -> Duration? {
        let text = raw.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let n = Double(text.dropLast(suffix.count)), n >= 0 else { return nil }
            return .milliseconds(Int64((n * scale * 1000).rounded()))
        }
        guard let n = Double(text), n >= 0 else { return nil }
        return .milliseconds(Int64((n * 1000).rounded()))
    }

    /// A comma-separated list.
    public func list(_ key: String, default defaultValue: [String]) -> [String] {
        guard let raw = value(key) else { return defaultValue }
        return raw.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// A secret: the key's value, or the trimmed contents of the file named by `key.file`.
    public func secret(_ key: String) throws -> String? {
        if let direct = value(key) { return direct }
        guard let path = value(key + ".file") else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(key: key + ".file", reason: "cannot read secret file \(path)")
        }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Whether a flag was given (`--once`).
    public func flag(_ name: String) -> Bool {
        (try? bool(name, default: false)) ?? false
    }
}

extension Duration {
    /// The duration in whole nanoseconds (saturating), for timers.
    public var nanoseconds: Int64 {
        let (seconds, atto) = components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? (seconds < 0 ? .min : .max) : ns &+ atto / 1_000_000_000
    }

    /// Whole milliseconds.
    public var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
