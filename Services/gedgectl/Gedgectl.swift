import ArgumentParser
import Synchronization
import Foundation
import GEdgeCore
import GEdgeHTTPClient
import Logging

// gedgectl: the operator's command line for the gateway, with kubectl's manners: subcommands
// with their own help, -o table|wide|json|yaml on every read, --watch where state changes,
// contexts in ~/.config/gedge/config, version and shell completion.

@main
struct Gedgectl: AsyncParsableCommand {
    static let version = "0.20.0"

    static let configuration = CommandConfiguration(
        commandName: "gedgectl",
        abstract: "The GEdge gateway's command line.",
        discussion: """
            The server is --server, else $GEDGE_SERVER, else the current context's (config \
            use-context), else http://127.0.0.1:8888. The token is --token or --token-file, else \
            $GEDGE_TOKEN or the file named by $GEDGE_TOKEN_FILE, else the context's token file. \
            Exit status: 0 done, 1 failed (or the request or workflow watched did not complete), \
            2 a file or context that cannot be read, 3 the server cannot be reached, 4 refused \
            (401, 403), 64 wrong arguments.
            """,
        version: version,
        subcommands: [
            ServiceCommand.self, Submit.self, Watch.self, GetRequest.self, Delete.self, Requests.self, Cancel.self,
            Clusters.self, ClusterCommand.self, Nodes.self, Describe.self, Logs.self, ProjectCommand.self, Functions.self, FunctionCommand.self, Workflows.self, WorkflowCommand.self,
            ScalingCommand.self, Bind.self, NamespacesCommand.self, PolicyCommand.self, ProducerKey.self,
            TokenCommand.self, Whoami.self, ConfigCommand.self, Version.self, Completion.self,
        ])

    /// Parses with the global options anywhere (kubectl takes `--token X get ID` as well as
    /// `get ID --token X`), runs, and maps failures to the exit statuses above.
    static func main() async {
        await run(Array(CommandLine.arguments.dropFirst()))
    }

    /// A command line as `main` takes it (also a command's own words rewritten, as `get
    /// requests` is `requests`).
    static func run(_ arguments: [String]) async -> Never {
        do {
            var command = try parseAsRoot(Global.movedAfterSubcommand(arguments))
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let e as CLIError {
            FileHandle.standardError.write(Data("gedgectl: \(e.description)\n".utf8))
            Foundation.exit(e.exitCode)
        } catch {
            exit(withError: error)
        }
        Foundation.exit(0)
    }
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    var exitCode: Int32 = 1
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, wide, json, yaml
}

/// The options every command takes.
struct Global: ParsableArguments {
    @Option(help: "The gateway's URL.") var server: String?
    @Option(help: "A bearer token.") var token: String?
    @Option(name: .customLong("token-file"), help: "A file holding the token.") var tokenFile: String?
    @Option(help: "A context of the contexts file (~/.config/gedge/config, or $GEDGECTL_CONFIG).") var context: String?
    @Option(name: .customLong("ca-file"), help: "PEM bundle to trust for an https server.") var caFile: String?
    @Flag(name: .customLong("insecure-skip-tls-verify"), help: "Do not check the server's certificate (tests only).") var insecure = false
    @Option(name: [.short, .customLong("output")], help: "table, wide, json or yaml.") var output: OutputFormat?
    @Flag(help: "The same as -o json.") var json = false
    @Flag(name: .customLong("no-headers"), help: "Tables (-o table, -o wide) without their header line, as kubectl prints them for scripts.") var noHeaders = false

    mutating func validate() throws {
        TableStyle.headers.store(!noHeaders, ordering: .relaxed)
    }

    var format: OutputFormat { output ?? (json ? .json : .table) }
    /// JSON or YAML: the answer as it is, for scripts.
    var machineReadable: Bool { format == .json || format == .yaml }

    static let valued: Set<String> = ["--server", "--token", "--token-file", "--context", "--ca-file", "-o", "--output"]
    static let switches: Set<String> = ["--insecure-skip-tls-verify", "--json", "--no-headers"]

    /// Global options given before the subcommand's name moved after it.
    static func movedAfterSubcommand(_ argv: [String]) -> [String] {
        var leading: [String] = []
        var i = 0
        while i < argv.count {
            let a = argv[i]
            let name = a.split(separator: "=", maxSplits: 1).first.map(String.init) ?? a
            if valued.contains(name) {
                leading.append(a)
                if !a.contains("="), i + 1 < argv.count { leading.append(argv[i + 1]); i += 1 }
            } else if switches.contains(a) {
                leading.append(a)
            } else {
                break
            }
            i += 1
        }
        guard !leading.isEmpty, i < argv.count else { return argv }
        // After the whole command path: the words up to the first option or argument.
        var rest = Array(argv[i...])
        let path = rest.prefix { !$0.hasPrefix("-") }.count
        let insertAt = min(path, commandDepth(Array(rest.prefix(path))))
        rest.insert(contentsOf: leading, at: insertAt)
        return rest
    }

    /// How many leading words name (sub)commands.
    static func commandDepth(_ words: [String]) -> Int {
        var type: any ParsableCommand.Type = Gedgectl.self
        var depth = 0
        for w in words {
            guard let sub = type.configuration.subcommands.first(where: { $0.configuration.commandName == w || $0._commandName == w }) else { break }
            type = sub
            depth += 1
        }
        return depth
    }

    /// The client for these options: flags, then the environment, then the context.
    func client() throws -> Client {
        // An empty variable counts as unset.
        let env = ProcessInfo.processInfo.environment.filter { !$0.value.isEmpty }
        let ctx = try Contexts.load().context(named: context)
        var server = server ?? env["GEDGE_SERVER"] ?? ctx?.server ?? "http://127.0.0.1:8888"
        while server.hasSuffix("/") { server.removeLast() }
        guard let scheme = URLComponents(string: server)?.scheme, ["http", "https"].contains(scheme.lowercased()) else {
            throw CLIError(description: "--server '\(server)' is not an http(s) URL", exitCode: 2)
        }
        var bearer = token
        if bearer == nil, let f = tokenFile { bearer = try Self.read(f) }
        if bearer == nil { bearer = env["GEDGE_TOKEN"] }
        if bearer == nil, let f = env["GEDGE_TOKEN_FILE"] { bearer = try Self.read(f) }
        if bearer == nil, let f = ctx?.tokenFile { bearer = try Self.read(f) }
        var http = HTTPClientConfiguration()
        http.caFile = caFile ?? ctx?.caFile
        http.insecureSkipVerify = insecure || (ctx?.insecure ?? false)
        return Client(server: server, token: bearer, configuration: http)
    }

    static func read(_ path: String) throws -> String {
        guard let t = try? String(contentsOfFile: path, encoding: .utf8) else { throw CLIError(description: "cannot read the token file \(path)", exitCode: 2) }
        return t.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

final class Client: Sendable {
    let http: HTTPClient
    let server: String
    let token: String?

    init(server: String, token: String?, configuration: HTTPClientConfiguration) {
        var logger = Logger(label: "gedgectl")
        logger.logLevel = .error
        http = HTTPClient(configuration: configuration, logger: logger)
        self.server = server
        self.token = token
    }

    func call(_ method: String, _ path: String, body: [UInt8]? = nil, contentType: String = "application/json") async throws -> JSONValue {
        let r: HTTPResponse
        do {
            r = try await http.execute(HTTPRequest(
                method: method, url: server + path, headers: body == nil ? [] : [("Content-Type", contentType)], body: body,
                timeout: .seconds(30), bearerToken: token))
        } catch {
            throw CLIError(description: "cannot reach \(server): \(error)", exitCode: 3)
        }
        let json = r.body.isEmpty ? JSONValue.null : (try? r.json()) ?? .string(r.bodyString)
        guard r.isSuccess else {
            var msg = "\(r.status): " + (json["detail"]?.stringValue ?? json["err"]?.stringValue ?? r.bodyString)
            if let f = json["field"]?.stringValue, !f.isEmpty { msg += " (field: \(f))" }
            throw CLIError(description: msg, exitCode: r.status == 401 || r.status == 403 ? 4 : 1)
        }
        return json
    }

    func json(_ method: String, _ path: String, _ value: JSONValue) async throws -> JSONValue {
        try await call(method, path, body: value.serialized())
    }

    func shutdown() async { await http.shutdown() }
}

/// Runs a command's body with a client, closing it afterwards.
func withClient(_ g: Global, _ body: (Client) async throws -> Void) async throws {
    let c = try g.client()
    do {
        try await body(c)
    } catch {
        await c.shutdown()
        throw error
    }
    await c.shutdown()
}

// MARK: contexts

/// `~/.config/gedge/config` (or `$GEDGECTL_CONFIG`), YAML or JSON:
///
///     current-context: local
///     contexts:
///       - name: local
///         server: http://127.0.0.1:8888
///         token-file: /root/gedge/.local/admin-token
///         ca-file: /etc/gedge/ca.pem
///         insecure-skip-tls-verify: false
struct Contexts {
    struct Context {
        var name: String
        var server: String?
        var tokenFile: String?
        var caFile: String?
        var insecure = false
    }

    var current: String?
    var contexts: [Context] = []

    static var path: String {
        if let p = ProcessInfo.processInfo.environment["GEDGECTL_CONFIG"] { return p }
        let home = ProcessInfo.processInfo.environment["HOME"] ?? FileManager.default.homeDirectoryForCurrentUser.path
        return home + "/.config/gedge/config"
    }

    static func load() throws -> Contexts {
        guard let data = FileManager.default.contents(atPath: path) else { return Contexts() }
        let doc: JSONValue
        do { doc = try YAMLText.document(String(decoding: data, as: UTF8.self), path: "") } catch {
            throw CLIError(description: "\(path): \(error)", exitCode: 2)
        }
        var out = Contexts(current: doc["current-context"]?.stringValue)
        for c in doc["contexts"]?.arrayValue ?? [] {
            guard let name = c["name"]?.stringValue else { throw CLIError(description: "\(path): a context without a name", exitCode: 2) }
            var ctx = Context(name: name, server: c["server"]?.stringValue, tokenFile: c["token-file"]?.stringValue, caFile: c["ca-file"]?.stringValue)
            if case .bool(let b)? = c["insecure-skip-tls-verify"] { ctx.insecure = b }
            out.contexts.append(ctx)
        }
        return out
    }

    /// The named context, or the current one; nil when there is none.
    func context(named name: String?) throws -> Context? {
        guard let wanted = name ?? current else { return nil }
        guard let c = contexts.first(where: { $0.name == wanted }) else {
            throw CLIError(description: "no context '\(wanted)' in \(Self.path)", exitCode: 2)
        }
        return c
    }

    var json: JSONValue {
        var o: [String: JSONValue] = [
            "contexts": .array(contexts.map { c in
                var f: [String: JSONValue] = ["name": .string(c.name)]
                if let s = c.server { f["server"] = .string(s) }
                if let t = c.tokenFile { f["token-file"] = .string(t) }
                if let ca = c.caFile { f["ca-file"] = .string(ca) }
                if c.insecure { f["insecure-skip-tls-verify"] = true }
                return .object(f)
            }),
        ]
        if let current { o["current-context"] = .string(current) }
        return .object(o)
    }

    func save() throws {
        let url = URL(fileURLWithPath: Self.path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(YAMLOut.text(json).utf8).write(to: url, options: .atomic)
    }
}

// MARK: output

/// Prints a read: as JSON or YAML, or as the table `rows` makes (with `wide` its extra
/// columns).
func emit(_ value: JSONValue, _ g: Global, table render: (Bool) -> Void) {
    switch g.format {
    case .json: print(value.prettyPrinted())
    case .yaml: print(YAMLOut.text(value), terminator: "")
    case .table: render(false)
    case .wide: render(true)
    }
}

func printJSON(_ v: JSONValue) {
    print(v.prettyPrinted())
}

/// YAML text for a value: block style, strings quoted when YAML would read them otherwise.
enum YAMLOut {
    static func text(_ v: JSONValue) -> String {
        var out = ""
        write(v, indent: 0, into: &out, inList: false)
        if out.isEmpty || !out.hasSuffix("\n") { out += "\n" }
        return out
    }

    static func scalar(_ v: JSONValue) -> String? {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let d): return d.rounded() == d && abs(d) < 1e15 ? String(Int64(d)) : String(d)
        case .string(let s): return quote(s)
        case .array(let a) where a.isEmpty: return "[]"
        case .object(let o) where o.isEmpty: return "{}"
        default: return nil
        }
    }

    static func quote(_ s: String) -> String {
        let plain = !s.isEmpty && s.allSatisfy { $0.isLetter || $0.isNumber || "-_./".contains($0) }
            && !["true", "false", "null", "yes", "no", "on", "off", "~"].contains(s.lowercased())
            && Double(s) == nil && s.first != "-"
        return plain ? s : String(decoding: JSONValue.string(s).serialized(), as: UTF8.self)
    }

    static func write(_ v: JSONValue, indent: Int, into out: inout String, inList: Bool) {
        let pad = String(repeating: " ", count: indent)
        switch v {
        case .object(let o) where !o.isEmpty:
            for (i, k) in o.keys.sorted().enumerated() {
                let prefix = (inList && i == 0) ? "" : pad
                let value = o[k]!
                if let s = scalar(value) {
                    out += "\(prefix)\(quote(k)): \(s)\n"
                } else {
                    out += "\(prefix)\(quote(k)):\n"
                    write(value, indent: indent + 2, into: &out, inList: false)
                }
            }
        case .array(let a) where !a.isEmpty:
            for item in a {
                if let s = scalar(item) {
                    out += "\(pad)- \(s)\n"
                } else {
                    out += "\(pad)- "
                    write(item, indent: indent + 2, into: &out, inList: true)
                }
            }
        default:
            out += "\(inList ? "" : pad)\(scalar(v) ?? "null")\n"
        }
    }
}

/// How tables print, from the global options.
enum TableStyle {
    static let headers = Atomic<Bool>(true)
}

func table(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }
    if TableStyle.headers.load(ordering: .relaxed) { print(line(header)) }
    for r in rows { print(line(r)) }
}

func text(_ v: JSONValue?) -> String {
    switch v {
    case .string(let s)?: return s
    case .number(let d)?: return d.rounded() == d ? String(Int64(d)) : String(format: "%.2f", d)
    case .bool(let b)?: return b ? "yes" : "no"
    case .null?, nil: return "-"
    case let other?: return String(decoding: other.serialized(), as: UTF8.self)
    }
}

/// An age as kubectl writes it: 42s, 5m12s, 3h4m, 2d3h.
func age(seconds: Double) -> String {
    let s = Int(max(0, seconds).rounded(.down))
    if s < 60 { return "\(s)s" }
    if s < 3600 { return "\(s / 60)m\(s % 60)s" }
    if s < 86400 { return "\(s / 3600)h\((s % 3600) / 60)m" }
    return "\(s / 86400)d\((s % 86400) / 3600)h"
}

/// The age of an ISO 8601 timestamp.
func age(since timestamp: JSONValue?) -> String {
    guard let t = timestamp?.stringValue else { return "-" }
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    guard let d = f.date(from: t) ?? ISO8601DateFormatter().date(from: t) else { return t }
    return age(seconds: Date().timeIntervalSince(d))
}

func placementText(_ v: JSONValue?) -> String {
    guard case .array(let parts)? = v, !parts.isEmpty else { return "-" }
    return parts.map { p in
        text(p["cluster"]) + (p["node"].map { "/" + text($0) } ?? "") + (p["replicas"].map { " x" + text($0) } ?? "")
    }.joined(separator: ", ")
}

/// A query string, each value percent-encoded.
func query(_ items: [(String, String?)]) -> String {
    let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
    let parts = items.compactMap { k, v in v.map { "\(k)=\($0.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0)" } }
    return parts.isEmpty ? "" : "?" + parts.joined(separator: "&")
}

/// A path segment, percent-encoded (NAMESPACE/NAME keeps its slash between two encoded parts).
func segment(_ s: String) -> String {
    s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
}

func namespaced(_ key: String, _ what: String) throws -> String {
    let parts = key.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
        throw CLIError(description: "give the \(what) as NAMESPACE/NAME, got '\(key)'", exitCode: 2)
    }
    return segment(String(parts[0])) + "/" + segment(String(parts[1]))
}

func readFile(_ path: String) throws -> (bytes: [UInt8], contentType: String) {
    let data: Data
    if path == "-" {
        data = FileHandle.standardInput.readDataToEndOfFile()
    } else {
        guard let d = FileManager.default.contents(atPath: path) else { throw CLIError(description: "cannot read \(path)", exitCode: 2) }
        data = d
    }
    let isJSON = path.hasSuffix(".json") || data.first == UInt8(ascii: "{")
    return (Array(data), isJSON ? "application/json" : "application/yaml")
}

/// `requested/allocatable` of one resource, from the agents' resource lists (`"1500m"`,
/// memory in bytes): CPU in millicores, memory in MiB.
func usage(_ requested: JSONValue?, _ allocatable: JSONValue?, _ key: String) -> String {
    func value(_ v: JSONValue?) -> Int64 {
        guard let s = v?[key]?.stringValue ?? v?[key].map(text) else { return 0 }
        if key == "cpu" { return s.hasSuffix("m") ? Int64(s.dropLast()) ?? 0 : (Int64(s) ?? 0) * 1000 }
        if key == "memory" { return (Int64(s) ?? 0) / 1_048_576 }
        return Int64(s) ?? 0
    }
    return "\(value(requested))/\(value(allocatable))"
}

let terminal: Set<String> = ["completed", "failed", "canceled", "rejected"]

/// Follows a request's history, printing each new event, until an end state; fails (status
/// 1) unless it completed.
func watch(_ c: Client, _ id: String, json: Bool) async throws {
    var after = 0
    var lastState = ""
    let started = ContinuousClock.now
    while true {
        let h = try await c.call("GET", "/v1/requests/\(segment(id))/history?after=\(after)")
        for e in h["history"]?.arrayValue ?? [] {
            after = max(after, Int(e["seq"]?.numberValue ?? 0))
            lastState = text(e["state"])
            if json {
                print(String(decoding: e.serialized(), as: UTF8.self))
            } else {
                print("\(text(e["at"]))  \(lastState.padding(toLength: 10, withPad: " ", startingAt: 0))  \(text(e["reason"]))")
            }
        }
        if terminal.contains(lastState) {
            if !json {
                let r = try await c.call("GET", "/v1/requests/\(segment(id))")
                print("\(id): \(text(r["state"])) on \(placementText(r["placement"])) after \(ContinuousClock.now - started)")
            }
            if lastState != "completed" { throw ExitCode(1) }
            return
        }
        try await Task.sleep(for: .milliseconds(200))
    }
}
