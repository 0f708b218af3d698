import Foundation
import GEdgeCore
import GEdgeHTTPClient
import Logging

// gedgectl: the operator's command line for the gateway. Tables for people, --json for scripts.

let usage = """
    usage: gedgectl [--server URL] [--token TOKEN | --token-file FILE] [--json] COMMAND

    commands:
      service create -f FILE            define an edge service (GS-Engine YAML or JSON)
      service list [--namespace NS]     the project's services
      service get NS/NAME               a service with its manifests and placement
      service delete NS/NAME            delete a service and withdraw its workload
      submit -f FILE --policy POLICY    submit a schedule request (workload YAML or JSON)
             [--select '["c1",["c2"]]'] [--source-cluster C] [--param KEY=VALUE]...
             [--fast] [--callback URL] [--id ID] [--watch]
      watch ID                          follow a request's lifecycle until it ends
      get ID                            a request with its history
      requests [--state S] [--policy P] [--limit N] [--all]
      cancel ID                         cancel a request that has not ended
      clusters                          clusters as their agents report them
      nodes CLUSTER                     a cluster's nodes
      functions                         functions and their replicas (faas-trigger)
      function NS/NAME                  a function's recent scale events
      function create -f FILE [--cluster C]   ScaledObjects with their Secrets and TriggerAuthentications (admin)
      function delete NS/NAME           stop scaling a function (admin)
      workflow create -f FILE [--watch] submit a workflow (a DAG of services, YAML or JSON)
      workflows                         the project's workflows
      workflow get ID                   a workflow's steps: state, attempt, placement
      workflow delete ID                cancel a workflow and withdraw its steps' placements
      scaling list                      autoscaling policies and their replicas
      scaling get NS/NAME               a policy, where its replicas run, recent decisions
      scaling decisions NS/NAME [--limit N]   decisions with their inputs and reasons
      scaling set NS/NAME -f FILE       create or replace a policy (JSON or YAML)
      scaling delete NS/NAME            remove a policy (replicas over the edge withdrawn)
      bind PROJECT CLUSTER[,CLUSTER]    bind clusters to a project (admin)
      namespaces bind PROJECT NS[,NS]   the namespaces a project owns, all of them (admin)
      namespaces get PROJECT            a project's own and bound namespaces
      policy set PROJECT [--pod-security baseline|restricted] [--kinds K[,K]]   (admin)
      policy get PROJECT                a project's Pod Security level and allowed kinds
      producer-key PROJECT              the key a project's Kafka producers sign with (admin)
      token create --user U --workspace W --project P [--admin]   (admin)
      whoami

    The server defaults to $GEDGE_SERVER or http://127.0.0.1:8888; the token to $GEDGE_TOKEN,
    or the file named by $GEDGE_TOKEN_FILE. `watch` exits 0 when the request completes, 1
    when it fails, is rejected or canceled.
    """

struct CLIError: Error, CustomStringConvertible {
    var description: String
    var exitCode: Int32 = 2
}

struct Options {
    var server = ProcessInfo.processInfo.environment["GEDGE_SERVER"] ?? "http://127.0.0.1:8888"
    var token: String? = ProcessInfo.processInfo.environment["GEDGE_TOKEN"]
    var json = false
    var args: [String] = []
    var flags: [String: [String]] = [:]
    var switches: Set<String> = []

    func flag(_ name: String) -> String? { flags[name]?.last }
}

func parse(_ argv: [String]) throws -> Options {
    var o = Options()
    if let file = ProcessInfo.processInfo.environment["GEDGE_TOKEN_FILE"], o.token == nil {
        o.token = try? String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }
    let valued: Set<String> = [
        "--server", "--token", "--token-file", "-f", "--file", "--namespace", "--policy", "--select", "--source-cluster",
        "--param", "--callback", "--id", "--state", "--limit", "--user", "--workspace", "--project", "--pod-security", "--kinds",
    ]
    var i = 0
    while i < argv.count {
        let a = argv[i]
        if valued.contains(a) {
            guard i + 1 < argv.count else { throw CLIError(description: "\(a) needs a value") }
            o.flags[a == "--file" ? "-f" : a, default: []].append(argv[i + 1])
            i += 2
            continue
        }
        switch a {
        case "--json": o.json = true
        case "--fast", "--watch", "--admin", "--all": o.switches.insert(a)
        case "-h", "--help": throw CLIError(description: usage, exitCode: 0)
        default:
            if a.hasPrefix("--") { throw CLIError(description: "unknown option \(a)\n\n\(usage)") }
            o.args.append(a)
        }
        i += 1
    }
    if let s = o.flag("--server") { o.server = s }
    if let t = o.flag("--token") { o.token = t }
    if let f = o.flag("--token-file") {
        guard let t = try? String(contentsOfFile: f, encoding: .utf8) else { throw CLIError(description: "cannot read \(f)") }
        o.token = t.trimmingCharacters(in: .whitespacesAndNewlines)
    }
    while o.server.hasSuffix("/") { o.server.removeLast() }
    return o
}

final class Client: Sendable {
    let http: HTTPClient
    let server: String
    let token: String?

    init(_ o: Options) {
        var logger = Logger(label: "gedgectl")
        logger.logLevel = .error
        http = HTTPClient(logger: logger)
        server = o.server
        token = o.token
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
            var msg = "\(r.status): " + (json["detail"]?.stringValue ?? r.bodyString)
            if let f = json["field"]?.stringValue, !f.isEmpty { msg += " (field: \(f))" }
            throw CLIError(description: msg, exitCode: r.status == 401 || r.status == 403 ? 4 : 1)
        }
        return json
    }

    func json(_ method: String, _ path: String, _ value: JSONValue) async throws -> JSONValue {
        try await call(method, path, body: value.serialized())
    }
}

// MARK: output

func printJSON(_ v: JSONValue) {
    print(v.prettyPrinted())
}

func table(_ header: [String], _ rows: [[String]]) {
    var widths = header.map(\.count)
    for r in rows { for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
            .joined(separator: "  ")
    }
    print(line(header))
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

func placementText(_ v: JSONValue?) -> String {
    guard case .array(let parts)? = v, !parts.isEmpty else { return "-" }
    return parts.map { p in
        text(p["cluster"]) + (p["node"].map { "/" + text($0) } ?? "") + (p["replicas"].map { " x" + text($0) } ?? "")
    }.joined(separator: ", ")
}

func readFile(_ path: String?) throws -> (bytes: [UInt8], contentType: String) {
    guard let path else { throw CLIError(description: "-f FILE is required") }
    let data: Data
    if path == "-" {
        data = FileHandle.standardInput.readDataToEndOfFile()
    } else {
        guard let d = FileManager.default.contents(atPath: path) else { throw CLIError(description: "cannot read \(path)") }
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

/// Follows a request's history, printing each new event, until an end state.
func watch(_ c: Client, _ id: String, json: Bool) async throws -> Int32 {
    var after = 0
    var lastState = ""
    let started = ContinuousClock.now
    while true {
        let h = try await c.call("GET", "/v1/requests/\(id)/history?after=\(after)")
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
                let r = try await c.call("GET", "/v1/requests/\(id)")
                print("\(id): \(text(r["state"])) on \(placementText(r["placement"])) after \(ContinuousClock.now - started)")
            }
            return lastState == "completed" ? 0 : 1
        }
        try await Task.sleep(for: .milliseconds(200))
    }
}

func run(_ o: Options) async throws -> Int32 {
    let c = Client(o)
    defer { Task { await c.http.shutdown() } }
    let args = o.args
    guard let command = args.first else { throw CLIError(description: usage) }
    switch (command, args.count > 1 ? args[1] : nil) {
    case ("service", "create"):
        let (bytes, type) = try readFile(o.flag("-f"))
        let r = try await c.call("POST", "/v1/services", body: bytes, contentType: type)
        if o.json { printJSON(r); return 0 }
        print("service \(text(r["namespace"]))/\(text(r["name"])) submitted: request \(text(r["request_id"])) (\(text(r["policy"])))")
        for m in r["manifests"]?.arrayValue ?? [] { print("  \(text(m["kind"]))/\(text(m["metadata"]?["name"]))") }
        if o.switches.contains("--watch"), let id = r["request_id"]?.stringValue { return try await watch(c, id, json: false) }
    case ("service", "list"):
        let ns = o.flag("--namespace").map { "?namespace=\($0)" } ?? ""
        let r = try await c.call("GET", "/v1/services\(ns)")
        if o.json { printJSON(r); return 0 }
        table(["NAMESPACE", "NAME", "STATE", "PLACEMENT", "REQUEST"], (r["services"]?.arrayValue ?? []).map {
            [text($0["namespace"]), text($0["name"]), text($0["state"]), placementText($0["placement"]), text($0["request_id"])]
        })
    case ("service", "get"), ("service", "delete"):
        guard args.count > 2, args[2].contains("/") else { throw CLIError(description: "give the service as NAMESPACE/NAME") }
        let r = try await c.call(args[1] == "get" ? "GET" : "DELETE", "/v1/services/\(args[2])")
        if o.json || args[1] == "get" { printJSON(r) } else { print("service \(args[2]) deleted; its workload is being withdrawn") }
    case ("submit", _):
        let (bytes, _) = try readFile(o.flag("-f"))
        guard let policy = o.flag("--policy") else { throw CLIError(description: "--policy is required (low, most, select, set, binpack)") }
        var parameters: [String: JSONValue] = [:]
        for kv in o.flags["--param"] ?? [] {
            let parts = kv.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { throw CLIError(description: "--param takes KEY=VALUE, got \(kv)") }
            parameters[parts[0]] = (try? JSONValue.parse(Array(parts[1].utf8))) ?? .string(parts[1])
        }
        if let sel = o.flag("--select") {
            guard let v = try? JSONValue.parse(Array(sel.utf8)), case .array = v else {
                throw CLIError(description: "--select takes a JSON list such as '[\"c1\", [\"c2\", \"c3\"]]'")
            }
            parameters["select_clusters"] = v
        }
        if let s = o.flag("--source-cluster") { parameters["source_cluster"] = .string(s) }
        let workloadText = String(decoding: bytes, as: UTF8.self)
        let workload: JSONValue = (try? JSONValue.parse(bytes)) ?? .string(workloadText)
        var body: [String: JSONValue] = ["policy": .string(policy), "workload": workload, "parameters": .object(parameters)]
        if o.switches.contains("--fast") { body["fast_option"] = true }
        if let cb = o.flag("--callback") { body["callback_url"] = .string(cb) }
        if let id = o.flag("--id") { body["request_id"] = .string(id) }
        let r = try await c.json("POST", "/v1/requests", .object(body))
        let id = text(r["request_id"])
        if o.json && !o.switches.contains("--watch") { printJSON(r); return 0 }
        if !o.json { print("request \(id) submitted (\(text(r["policy"])))") }
        if o.switches.contains("--watch") { return try await watch(c, id, json: o.json) }
    case ("watch", let id?):
        return try await watch(c, id, json: o.json)
    case ("get", let id?):
        let r = try await c.call("GET", "/v1/requests/\(id)")
        if o.json { printJSON(r); return 0 }
        table(["FIELD", "VALUE"], [
            ["request", text(r["request_id"])], ["state", text(r["state"])], ["policy", text(r["policy"])],
            ["project", text(r["project_name"])], ["placement", placementText(r["placement"])],
            ["failures", text(r["fail_count"])], ["reason", text(r["reason"])],
        ])
        print("")
        table(["AT", "STATE", "REASON"], (r["history"]?.arrayValue ?? []).map { [text($0["at"]), text($0["state"]), text($0["reason"])] })
    case ("requests", _):
        var query: [String] = ["limit=\(o.flag("--limit") ?? "50")"]
        if let s = o.flag("--state") { query.append("state=\(s)") }
        if let p = o.flag("--policy") { query.append("policy=\(p)") }
        var all: [JSONValue] = []
        var cursor: String?
        repeat {
            let r = try await c.call("GET", "/v1/requests?" + (query + (cursor.map { ["cursor=\($0)"] } ?? [])).joined(separator: "&"))
            all += r["requests"]?.arrayValue ?? []
            cursor = o.switches.contains("--all") ? r["next_cursor"]?.stringValue : nil
        } while cursor != nil
        if o.json { printJSON(.array(all)); return 0 }
        table(["REQUEST", "STATE", "POLICY", "PLACEMENT", "FAILS", "CREATED"], all.map {
            [text($0["request_id"]), text($0["state"]), text($0["policy"]), placementText($0["placement"]), text($0["fail_count"]), text($0["created_at"])]
        })
    case ("cancel", let id?):
        let r = try await c.call("POST", "/v1/requests/\(id)/cancel")
        if o.json { printJSON(r) } else { print("request \(id): cancel sent") }
    case ("clusters", _):
        let r = try await c.call("GET", "/v1/clusters")
        if o.json { printJSON(r); return 0 }
        table(["CLUSTER", "KIND", "NODES", "READY", "CPU m (req/alloc)", "MEMORY MiB", "GPU", "AGE", "STALE"], (r["clusters"]?.arrayValue ?? []).map { cl in
            let (a, q) = (cl["allocatable"], cl["requested"])
            return [text(cl["name"]), text(cl["kind"]), text(cl["nodes"]), text(cl["ready_nodes"]), usage(q, a, "cpu"),
                    usage(q, a, "memory"), usage(q, a, "nvidia.com/gpu"), text(cl["age_seconds"]) + "s", text(cl["stale"])]
        })
    case ("nodes", let cluster?):
        let r = try await c.call("GET", "/v1/clusters/\(cluster)/nodes")
        if o.json { printJSON(r); return 0 }
        table(["NODE", "READY", "CPU m (req/alloc)", "MEMORY MiB", "GPU", "LABELS"], (r["nodes"]?.arrayValue ?? []).map { n in
            let (a, q) = (n["allocatable"], n["requested"])
            let labels = (n["labels"].flatMap { v -> [String]? in
                guard case .object(let l) = v else { return nil }
                return l.keys.sorted().filter { !$0.hasPrefix("kubernetes.io/") }.map { "\($0)=\(text(l[$0]))" }
            } ?? []).joined(separator: ",")
            return [text(n["name"]), text(n["ready"]), usage(q, a, "cpu"), usage(q, a, "memory"), usage(q, a, "nvidia.com/gpu"),
                    labels.isEmpty ? "-" : labels]
        })
    case ("functions", _):
        let r = try await c.call("GET", "/v1/functions")
        if o.json { printJSON(r); return 0 }
        table(["NAMESPACE", "FUNCTION", "TARGET", "CLUSTER", "REPLICAS", "METRIC", "LAST REASON"], (r["functions"]?.arrayValue ?? []).map {
            [text($0["namespace"]), text($0["name"]), text($0["target"]), text($0["cluster"]), text($0["replicas"]), text($0["metric"]), text($0["reason"])]
        })
    case ("function", "create"):
        // A ScaledObject file, with its Secrets and TriggerAuthentications (admin).
        let (bytes, type) = try readFile(o.flag("-f"))
        let query = o.flag("--cluster").map { "?cluster=\($0)" } ?? ""
        let r = try await c.call("POST", "/v1/functions" + query, body: bytes, contentType: type)
        if o.json { printJSON(r); return 0 }
        for f in r["functions"]?.arrayValue ?? [r] {
            print("function \(text(f["namespace"]))/\(text(f["name"])) scales \(text(f["target"])) on \(text(f["cluster"]))")
            for n in f["notes"]?.arrayValue ?? [] { print("  note: \(text(n))") }
        }
    case ("function", "delete"):
        guard args.count > 2, args[2].contains("/") else { throw CLIError(description: "give the function as NAMESPACE/NAME") }
        let r = try await c.call("DELETE", "/v1/functions/\(args[2])")
        if o.json { printJSON(r); return 0 }
        print("function \(args[2]) deleted; its workload keeps the replicas it has")
    case ("function", let key?):
        let r = try await c.call("GET", "/v1/functions/\(key)")
        if o.json { printJSON(r); return 0 }
        print("\(key): \(text(r["replicas"])) replica(s) of \(text(r["target"])) on \(text(r["cluster"]))")
        table(["AT", "FROM", "TO", "METRIC", "REASON"], (r["events"]?.arrayValue ?? []).reversed().map {
            [text($0["at"]), text($0["from"]), text($0["to"]), text($0["metric"]), text($0["reason"])]
        })
    case ("workflows", _):
        let r = try await c.call("GET", "/v1/workflows")
        if o.json { printJSON(r); return 0 }
        table(["ID", "NAME", "NAMESPACE", "STATE", "STEPS DONE", "CREATED"], (r["workflows"]?.arrayValue ?? []).map {
            [text($0["id"]), text($0["name"]), text($0["namespace"]), text($0["state"]), "\(text($0["completed"]))/\(text($0["steps"]))", text($0["created_at"])]
        })
    case ("workflow", "create"):
        let (bytes, type) = try readFile(o.flag("-f"))
        let r = try await c.call("POST", "/v1/workflows", body: bytes, contentType: type)
        let id = text(r["id"])
        if !o.switches.contains("--watch") {
            if o.json { printJSON(r) } else { print("workflow \(id) submitted; order: \((r["order"]?.arrayValue ?? []).map { text($0) }.joined(separator: " -> "))") }
            return 0
        }
        print("workflow \(id) submitted")
        var last = ""
        while true {
            let w = try await c.call("GET", "/v1/workflows/\(id)")
            let line = (w["steps"]?.arrayValue ?? []).map { "\(text($0["name"]))=\(text($0["state"]))" }.joined(separator: " ")
            if line != last { print("  \(line)"); last = line }
            let state = text(w["state"])
            if ["completed", "failed", "canceled"].contains(state) {
                print("workflow \(id): \(state)\(w["reason"]?.stringValue.map { " (\($0))" } ?? "")")
                return state == "completed" ? 0 : 1
            }
            try await Task.sleep(for: .milliseconds(300))
        }
    case ("workflow", "get"), ("workflow", "delete"):
        guard args.count > 2 else { throw CLIError(description: "workflow \(args[1]) ID") }
        let r = try await c.call(args[1] == "get" ? "GET" : "DELETE", "/v1/workflows/\(args[2])")
        if o.json || args[1] == "delete" { printJSON(r); return 0 }
        print("\(text(r["id"])) \(text(r["name"])) in \(text(r["namespace"])): \(text(r["state"])) (placement \(text(r["placement"])))")
        table(["STEP", "DEPENDS ON", "STATE", "ATTEMPT", "CLUSTER/NODE", "REASON"], (r["steps"]?.arrayValue ?? []).map {
            [text($0["name"]), ($0["depends_on"]?.arrayValue ?? []).map { text($0) }.joined(separator: ","), text($0["state"]), text($0["attempt"]),
             "\(text($0["cluster"]))/\(text($0["node"]))", text($0["reason"])]
        })
    case ("scaling", "list"):
        let r = try await c.call("GET", "/v1/autoscaling")
        if o.json { printJSON(r); return 0 }
        table(["NAMESPACE", "NAME", "REQUEST", "MIN", "MAX", "METRICS", "OVERFLOW"], (r["policies"]?.arrayValue ?? []).map { p in
            let metrics = (p["metrics"]?.arrayValue ?? []).map { m in
                let t = m["targetUtilization"].map { "\(text($0))%" } ?? text(m["targetAverageValue"] ?? m["targetValue"])
                return "\(text(m["type"]))=\(t)"
            }.joined(separator: ",")
            return [text(p["namespace"]), text(p["name"]), text(p["request_id"]), text(p["minReplicas"]), text(p["maxReplicas"]), metrics, text(p["overflow"])]
        })
    case ("scaling", "get"), ("scaling", "decisions"), ("scaling", "delete"), ("scaling", "set"):
        guard args.count > 2, args[2].contains("/") else { throw CLIError(description: "give the workload as NAMESPACE/NAME") }
        let key = args[2]
        switch args[1] {
        case "delete":
            _ = try await c.call("DELETE", "/v1/autoscaling/\(key)")
            print("autoscaling policy \(key) deleted")
        case "set":
            let (bytes, type) = try readFile(o.flag("-f"))
            let r = try await c.call("PUT", "/v1/autoscaling/\(key)", body: bytes, contentType: type)
            if o.json { printJSON(r) } else { print("autoscaling policy \(key) set: \(text(r["minReplicas"]))..\(text(r["maxReplicas"])) replicas") }
        case "get":
            let r = try await c.call("GET", "/v1/autoscaling/\(key)")
            if o.json { printJSON(r); return 0 }
            print("\(key): \(text(r["replicas"])) replica(s), \(text(r["minReplicas"]))..\(text(r["maxReplicas"])), request \(text(r["request_id"]))")
            table(["CLUSTER", "HOME", "REPLICAS", "STATE", "REQUEST"], (r["placements"]?.arrayValue ?? []).map {
                [text($0["cluster"]), text($0["home"]), text($0["replicas"]), text($0["state"]), text($0["request_id"])]
            })
            print("")
            table(["AT", "KIND", "FROM", "TO", "REASON"], (r["decisions"]?.arrayValue ?? []).reversed().map {
                [text($0["at"]), text($0["kind"]), text($0["current"]), text($0["target"]), text($0["reason"])]
            })
        default:
            let r = try await c.call("GET", "/v1/autoscaling/\(key)/decisions?limit=\(o.flag("--limit") ?? "50")")
            if o.json { printJSON(r); return 0 }
            table(["ID", "AT", "KIND", "FROM", "TO", "REASON"], (r["decisions"]?.arrayValue ?? []).reversed().map {
                [text($0["id"]), text($0["at"]), text($0["kind"]), text($0["current"]), text($0["target"]), text($0["reason"])]
            })
        }
    case ("bind", let project?):
        guard args.count > 2 else { throw CLIError(description: "bind PROJECT CLUSTER[,CLUSTER...]") }
        let clusters = args[2].split(separator: ",").map { JSONValue.string(String($0)) }
        let r = try await c.json("PUT", "/v1/projects/\(project)/clusters", .object(["clusters": .array(clusters)]))
        if o.json { printJSON(r) } else { print("project \(project): \(text(r["clusters"]))") }
    case ("namespaces", "bind"):
        guard args.count > 3 else { throw CLIError(description: "namespaces bind PROJECT NS[,NS...]") }
        let names = args[3].split(separator: ",").map { JSONValue.string(String($0)) }
        let r = try await c.json("PUT", "/v1/projects/\(args[2])/namespaces", .object(["namespaces": .array(names)]))
        if o.json { printJSON(r) } else { print("project \(args[2]) owns namespaces: \(text(r["namespaces"]))") }
    case ("namespaces", "get"):
        guard args.count > 2 else { throw CLIError(description: "namespaces get PROJECT") }
        let r = try await c.call("GET", "/v1/projects/\(args[2])/namespaces")
        if o.json { printJSON(r) } else { print("project \(args[2]): own \(text(r["own"])); bound \(text(r["namespaces"]))") }
    case ("policy", "set"):
        guard args.count > 2 else { throw CLIError(description: "policy set PROJECT [--pod-security baseline|restricted] [--kinds K,K]") }
        var doc: [String: JSONValue] = ["pod_security": .string(o.flag("--pod-security") ?? "baseline")]
        if let k = o.flag("--kinds") { doc["kinds"] = .array(k.split(separator: ",").map { .string(String($0)) }) }
        let r = try await c.json("PUT", "/v1/projects/\(args[2])/policy", .object(doc))
        if o.json { printJSON(r) } else { print("project \(args[2]): pod security \(text(r["pod_security"])); kinds \(text(r["kinds"]))") }
    case ("policy", "get"):
        guard args.count > 2 else { throw CLIError(description: "policy get PROJECT") }
        let r = try await c.call("GET", "/v1/projects/\(args[2])/policy")
        if o.json { printJSON(r) } else { print("project \(args[2]): pod security \(text(r["pod_security"])); kinds \(text(r["kinds"]))") }
    case ("producer-key", let project?):
        let r = try await c.call("GET", "/v1/projects/\(project)/producer-key")
        if o.json { printJSON(r) } else { print(text(r["key"])) }
    case ("token", "create"):
        guard let u = o.flag("--user"), let w = o.flag("--workspace"), let p = o.flag("--project") else {
            throw CLIError(description: "token create needs --user, --workspace and --project")
        }
        let r = try await c.json("POST", "/v1/tokens", .object([
            "user_name": .string(u), "workspace_name": .string(w), "project_name": .string(p), "admin": .bool(o.switches.contains("--admin")),
        ]))
        if o.json { printJSON(r) } else { print("token \(text(r["id"])) for \(u)/\(w)/\(p): \(text(r["token"]))\n(shown once; it is stored hashed)") }
    case ("whoami", _):
        let r = try await c.call("GET", "/v1/whoami")
        if o.json { printJSON(r) } else { print("\(text(r["user_name"])) in \(text(r["workspace_name"]))/\(text(r["project_name"]))\(r["admin"] == true ? " (admin)" : "")") }
    default:
        throw CLIError(description: "unknown command: \(args.joined(separator: " "))\n\n\(usage)")
    }
    return 0
}

do {
    let options = try parse(Array(CommandLine.arguments.dropFirst()))
    exit(try await run(options))
} catch let e as CLIError {
    FileHandle.standardError.write(Data((e.description + "\n").utf8))
    exit(e.exitCode)
} catch {
    FileHandle.standardError.write(Data("gedgectl: \(error)\n".utf8))
    exit(1)
}
