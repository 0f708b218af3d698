import ArgumentParser
import Foundation
import GEdgeCore
import GEdgePlacement

// MARK: services

struct ServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service", abstract: "Edge services (GS-Engine definitions).",
        subcommands: [ServiceCreate.self, ServiceApply.self, ServiceList.self, ServiceGet.self, ServiceDelete.self])
}

struct ServiceCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Define a new edge service (YAML or JSON); refused if it exists.")
    @OptionGroup var g: Global
    @Option(name: .shortAndLong, help: "The definition file, or - for standard input.") var file: String
    @Flag(help: "Follow its schedule request until it ends.") var watch = false

    func run() async throws {
        try await withClient(g) { c in
            let (bytes, type) = try readFile(file)
            let r = try await c.call("POST", "/v1/services", body: bytes, contentType: type)
            try await announce(c, r, verb: "submitted", watching: watch, g)
        }
    }
}

struct ServiceApply: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply", abstract: "Create or replace an edge service (the definition is declarative; the same one again changes nothing).")
    @OptionGroup var g: Global
    @Option(name: .shortAndLong, help: "The definition file, or - for standard input.") var file: String
    @Flag(help: "Follow its schedule request until it ends.") var watch = false

    func run() async throws {
        try await withClient(g) { c in
            let (bytes, type) = try readFile(file)
            let answer = try await c.call("POST", "/gse/service/create", body: bytes, contentType: type)
            let r = answer["res"] ?? .null
            try await announce(c, r, verb: text(r["action"]), watching: watch && r["action"] != "unchanged", g)
        }
    }
}

/// What `service create` and `apply` print: the request and the manifests, then perhaps the
/// request's lifecycle.
func announce(_ c: Client, _ r: JSONValue, verb: String, watching: Bool, _ g: Global) async throws {
    if g.machineReadable {
        emit(r, g) { _ in }
    } else {
        print("service \(text(r["namespace"]))/\(text(r["name"])) \(verb): request \(text(r["request_id"])) (\(text(r["policy"])))")
        for m in r["manifests"]?.arrayValue ?? [] { print("  \(text(m["kind"]))/\(text(m["metadata"]?["name"]))") }
    }
    if watching, let id = r["request_id"]?.stringValue { try await watch(c, id, json: g.format == .json) }
}

struct ServiceList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The project's services.")
    @OptionGroup var g: Global
    @Option(name: .shortAndLong, help: "Only this namespace.") var namespace: String?

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/services" + query([("namespace", namespace)]))
            emit(r, g) { wide in
                table(["NAMESPACE", "NAME", "STATE", "PLACEMENT"] + (wide ? ["REQUEST", "CREATED"] : ["AGE"]), (r["services"]?.arrayValue ?? []).map {
                    [text($0["namespace"]), text($0["name"]), text($0["state"]), placementText($0["placement"])]
                        + (wide ? [text($0["request_id"]), text($0["created_at"])] : [age(since: $0["created_at"])])
                })
            }
        }
    }
}

struct ServiceGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "A service with its definition, manifests and placement.")
    @OptionGroup var g: Global
    @Argument(help: "NAMESPACE/NAME") var service: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/services/\(try namespaced(service, "service"))")
            emit(r, g) { wide in
                table(["NAMESPACE", "NAME", "STATE", "PLACEMENT", "REQUEST"] + (wide ? ["REASON"] : []), [
                    [text(r["namespace"]), text(r["name"]), text(r["state"]), placementText(r["placement"]), text(r["request_id"])] + (wide ? [text(r["reason"])] : []),
                ])
            }
        }
    }
}

struct ServiceDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a service and withdraw its workload.")
    @OptionGroup var g: Global
    @Argument(help: "NAMESPACE/NAME") var service: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("DELETE", "/v1/services/\(try namespaced(service, "service"))")
            emit(r, g) { _ in print("service \(service) deleted; its workload is being withdrawn") }
        }
    }
}

// MARK: requests

struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Submit a schedule request (the workload as YAML or JSON manifests).")
    @OptionGroup var g: Global
    @Option(name: .shortAndLong, help: "The workload file, or - for standard input.") var file: String
    @Option(help: "low, most, select, set or binpack (or a policy's full name).") var policy: String
    @Option(help: "Clusters in order of preference, a JSON list such as '[\"c1\", [\"c2\", \"c3\"]]'.") var select: String?
    @Option(name: .customLong("source-cluster"), help: "The source of a low-latency request.") var sourceCluster: String?
    @Option(help: "A policy parameter KEY=VALUE (repeatable).") var param: [String] = []
    @Flag(help: "The fast queue.") var fast = false
    @Option(help: "A URL called with the end state.") var callback: String?
    @Option(help: "The request ID (default: one is made).") var id: String?
    @Flag(help: "Follow the request until it ends.") var watch = false

    func run() async throws {
        var parameters: [String: JSONValue] = [:]
        for kv in param {
            let parts = kv.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else { throw ValidationError("--param takes KEY=VALUE, got '\(kv)'") }
            parameters[parts[0]] = (try? JSONValue.parse(Array(parts[1].utf8))) ?? .string(parts[1])
        }
        if let select {
            guard let v = try? JSONValue.parse(Array(select.utf8)), case .array = v else {
                throw ValidationError("--select takes a JSON list such as '[\"c1\", [\"c2\", \"c3\"]]'")
            }
            parameters["select_clusters"] = v
        }
        if let sourceCluster { parameters["source_cluster"] = .string(sourceCluster) }
        let (bytes, _) = try readFile(file)
        let workload: JSONValue = (try? JSONValue.parse(bytes)) ?? .string(String(decoding: bytes, as: UTF8.self))
        var body: [String: JSONValue] = ["policy": .string(policy), "workload": workload, "parameters": .object(parameters)]
        if fast { body["fast_option"] = true }
        if let callback { body["callback_url"] = .string(callback) }
        if let id { body["request_id"] = .string(id) }
        try await withClient(g) { c in
            let r = try await c.json("POST", "/v1/requests", .object(body))
            let rid = text(r["request_id"])
            if watch {
                if g.format != .json { print("request \(rid) submitted (\(text(r["policy"])))") }
                try await GEdgeCtl.watch(c, rid, json: g.format == .json)
            } else if g.machineReadable {
                emit(r, g) { _ in }
            } else {
                print("request \(rid) submitted (\(text(r["policy"])))")
            }
        }
    }
}

/// The module's own names where a command shadows them.
enum GEdgeCtl {
    static func watch(_ c: Client, _ id: String, json: Bool) async throws { try await gedgectl.watch(c, id, json: json) }
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Follow a request's lifecycle until it ends (status 1 unless it completes).")
    @OptionGroup var g: Global
    @Argument(help: "The request ID.") var id: String

    func run() async throws {
        try await withClient(g) { c in try await GEdgeCtl.watch(c, id, json: g.format == .json) }
    }
}

struct GetRequest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "A request with its history, or a cluster's objects (get nodes|pods|deployments|pv|pvc|storageclasses|events [NAME]).",
        discussion: """
            Kinds take kubectl's names: nodes (no), pods (po), deployments (deploy), persistentvolumes (pv), \
            persistentvolumeclaims (pvc), storageclasses (sc), events (ev); and clusters, the clusters the token sees. \
            The suite's own objects read the same way: get requests|services|workflows|functions|scaling|projects [NAME] \
            is gedgectl requests, service list|get NAME, workflows, workflow get NAME, and so on.
            """)
    @OptionGroup var g: Global
    @OptionGroup var scope: Scope
    @Argument(help: "A request ID; or a kind and optionally an object's name.") var words: [String]
    @Flag(help: "Then follow the request until it ends.") var watch = false
    @Option(help: "Objects per page (1 to 500).") var limit = 100
    @Flag(help: "Every page of objects, not only the first.") var all = false

    func validate() throws {
        guard (1...2).contains(words.count) else { throw ValidationError("give a request ID, or a kind and optionally a name") }
        guard (1...500).contains(limit) else { throw ValidationError("--limit is 1 to 500") }
        if words.count == 2, InventoryKind.named(words[0]) == nil, Self.viewKind(words[0]) == nil, Self.suiteKind(words[0]) == nil {
            throw ValidationError("'\(words[0])' is not a kind: nodes, pods, deployments, pv, pvc, storageclasses, events, clusters, "
                                  + "requests, services, workflows, functions, scaling or projects")
        }
    }

    /// The suite's own objects under kubectl's verb: the command that lists them, and the one
    /// that reads one by name.
    static func suiteKind(_ word: String) -> (list: [String], one: [String])? {
        switch word.lowercased() {
        case "requests", "request", "req": (["requests"], ["get"])
        case "services", "service", "svc": (["service", "list"], ["service", "get"])
        case "workflows", "workflow", "wf": (["workflows"], ["workflow", "get"])
        case "functions", "function", "fn": (["functions"], ["function", "get"])
        case "scaling", "scalingpolicies", "hpa": (["scaling", "list"], ["scaling", "get"])
        case "projects", "project": (["project", "list"], ["project", "list"])
        default: nil
        }
    }

    static func redirect(_ kind: (list: [String], one: [String]), named: Bool) async -> Never {
        await rewrite(verb: "get", kind: { suiteKind($0) != nil }, as: named ? kind.one : kind.list)
    }

    /// Kinds read from the gateway's view (what the agents last reported), not from a cluster's API.
    enum ViewKind { case nodes, clusters }
    static func viewKind(_ word: String) -> ViewKind? {
        switch word.lowercased() {
        case "nodes", "node", "no": .nodes
        case "clusters", "cluster": .clusters
        default: nil
        }
    }

    func run() async throws {
        if let kind = Self.suiteKind(words[0]) { await Self.redirect(kind, named: words.count == 2) }
        switch Self.viewKind(words[0]) {
        case .nodes:
            try await withClient(g) { c in try await printNodes(c, g, cluster: try await scope.clusterName(c), name: words.count == 2 ? words[1] : nil) }
            return
        case .clusters:
            try await withClient(g) { c in try await printClusters(c, g, name: words.count == 2 ? words[1] : nil) }
            return
        case nil:
            break
        }
        if let kind = InventoryKind.named(words[0]) {
            try await withClient(g) { c in try await getInventory(c, g, kind: kind, name: words.count == 2 ? words[1] : nil, scope: scope, limit: limit, all: all) }
            return
        }
        let id = words[0]
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/requests/\(segment(id))")
            emit(r, g) { wide in
                table(["FIELD", "VALUE"], [
                    ["request", text(r["request_id"])], ["state", text(r["state"])], ["policy", text(r["policy"])],
                    ["project", text(r["project_name"])], ["placement", placementText(r["placement"])],
                    ["failures", text(r["fail_count"])], ["reason", text(r["reason"])],
                ] + (wide ? [["user", text(r["user_name"])], ["created", text(r["created_at"])], ["callback", text(r["callback_url"])]] : []))
                print("")
                table(["AT", "STATE", "REASON"], (r["history"]?.arrayValue ?? []).map { [text($0["at"]), text($0["state"]), text($0["reason"])] })
            }
            if watch, !terminal.contains(text(r["state"])) { try await GEdgeCtl.watch(c, id, json: g.format == .json) }
        }
    }
}

/// `get requests`, `delete service NS/NAME` and the like: the command line again, with
/// `verb KIND` taken out and `command` put first (every other word after it in its order),
/// run as if typed so.
func rewrite(verb: String, kind isKind: (String) -> Bool, as command: [String]) async -> Never {
    var args = Array(CommandLine.arguments.dropFirst())
    if let at = args.firstIndex(of: verb), let word = args[(at + 1)...].firstIndex(where: isKind) {
        args.remove(at: word)
        args.remove(at: at)
        args = command + args
    }
    await Gedgectl.run(args)
}

/// kubectl's `delete KIND NAME` for the suite's own objects.
struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete by kind and name: service NS/NAME, workflow ID, function NS/NAME, scaling NS/NAME, project NAME, request ID (a cancel).",
        discussion: "The same as service delete, workflow delete, function delete, scaling delete, project delete and cancel, with their options.")
    @OptionGroup var g: Global
    @Argument(help: "The kind: services (svc), workflows (wf), functions (fn), scaling (hpa), projects or requests (req).") var kind: String
    @Argument(parsing: .captureForPassthrough, help: "The name, and the command's own options.") var rest: [String] = []

    static func command(_ word: String) -> [String]? {
        switch word.lowercased() {
        case "services", "service", "svc": ["service", "delete"]
        case "workflows", "workflow", "wf": ["workflow", "delete"]
        case "functions", "function", "fn": ["function", "delete"]
        case "scaling", "scalingpolicies", "hpa": ["scaling", "delete"]
        case "projects", "project": ["project", "delete"]
        case "requests", "request", "req": ["cancel"]
        default: nil
        }
    }

    func validate() throws {
        guard Self.command(kind) != nil else {
            throw ValidationError("'\(kind)' is not a kind: services, workflows, functions, scaling, projects or requests")
        }
    }

    func run() async throws {
        await rewrite(verb: "delete", kind: { Self.command($0) != nil }, as: Self.command(kind)!)
    }
}

struct Requests: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The project's requests, newest first.")
    @OptionGroup var g: Global
    @Option(help: "Only this state.") var state: String?
    @Option(help: "Only this policy.") var policy: String?
    @Option(help: "At most this many (1 to 500).") var limit = 50
    @Flag(help: "Every page, not only the first.") var all = false

    func run() async throws {
        guard (1...500).contains(limit) else { throw ValidationError("--limit is 1 to 500") }
        try await withClient(g) { c in
            var rows: [JSONValue] = []
            var cursor: String?
            repeat {
                let r = try await c.call("GET", "/v1/requests" + query([("limit", String(limit)), ("state", state), ("policy", policy), ("cursor", cursor)]))
                rows += r["requests"]?.arrayValue ?? []
                cursor = all ? r["next_cursor"]?.stringValue : nil
            } while cursor != nil
            emit(.array(rows), g) { wide in
                table(["REQUEST", "STATE", "POLICY", "PLACEMENT", "FAILS"] + (wide ? ["PROJECT", "CREATED", "REASON"] : ["AGE"]), rows.map {
                    [text($0["request_id"]), text($0["state"]), text($0["policy"]), placementText($0["placement"]), text($0["fail_count"])]
                        + (wide ? [text($0["project_name"]), text($0["created_at"]), text($0["reason"])] : [age(since: $0["created_at"])])
                })
            }
        }
    }
}

struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a request that has not ended.")
    @OptionGroup var g: Global
    @Argument(help: "The request ID.") var id: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("POST", "/v1/requests/\(segment(id))/cancel")
            emit(r, g) { _ in print("request \(id): cancel sent") }
        }
    }
}

// MARK: clusters

struct Clusters: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Clusters as their agents last reported them.")
    @OptionGroup var g: Global

    func run() async throws {
        try await withClient(g) { c in try await printClusters(c, g, name: nil) }
    }
}

/// The objects of a list answer (`key`), or the one `name`d (status 1 when there is none):
/// the rows to print, and what -o json|yaml prints (the answer, or the one object).
func named(_ name: String?, in answer: JSONValue, _ key: String, missing: String) throws -> (rows: [JSONValue], shown: JSONValue) {
    let all = answer[key]?.arrayValue ?? []
    guard let name else { return (all, answer) }
    guard let one = all.first(where: { $0["name"]?.stringValue == name }) else { throw CLIError(description: "404: " + missing, exitCode: 1) }
    return ([one], one)
}

/// The clusters the token sees (or the one named) as a table, as `gedgectl clusters` and
/// `gedgectl get clusters [NAME]` print them.
func printClusters(_ c: Client, _ g: Global, name: String?) async throws {
    let r = try await c.call("GET", "/v1/clusters")
    let (clusters, shown) = try named(name, in: r, "clusters", missing: "no cluster '\(name ?? "")' reported for this token")
    emit(shown, g) { wide in
        table(["CLUSTER", "KIND", "NODES", "READY", "CPU m (req/alloc)", "MEMORY MiB", "GPU", "AGE", "STALE"] + (wide ? ["SEQUENCE"] : []),
              clusters.map { cl in
            let (a, q) = (cl["allocatable"], cl["requested"])
            return [text(cl["name"]), text(cl["kind"]), text(cl["nodes"]), text(cl["ready_nodes"]), usage(q, a, "cpu"),
                    usage(q, a, "memory"), usage(q, a, "nvidia.com/gpu"), age(seconds: cl["age_seconds"]?.numberValue ?? 0), text(cl["stale"])]
                + (wide ? [text(cl["sequence"])] : [])
        })
    }
}

struct Nodes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A cluster's nodes (also: get nodes -c CLUSTER).")
    @OptionGroup var g: Global
    @Argument(help: "The cluster.") var cluster: String

    func run() async throws {
        try await withClient(g) { c in try await printNodes(c, g, cluster: cluster, name: nil) }
    }
}

/// A cluster's nodes (or the one named) as the agent last reported them.
func printNodes(_ c: Client, _ g: Global, cluster: String, name: String?) async throws {
    let r = try await c.call("GET", "/v1/clusters/\(segment(cluster))/nodes")
    let (nodes, shown) = try named(name, in: r, "nodes", missing: "no node '\(name ?? "")' in cluster '\(cluster)'")
    emit(shown, g) { wide in
        table(["NODE", "READY", "CPU m (req/alloc)", "MEMORY MiB", "GPU", "LABELS"], nodes.map { n in
            let (a, q) = (n["allocatable"], n["requested"])
            let labels = (n["labels"].flatMap { v -> [String]? in
                guard case .object(let l) = v else { return nil }
                return l.keys.sorted().filter { wide || !$0.hasPrefix("kubernetes.io/") }.map { "\($0)=\(text(l[$0]))" }
            } ?? []).joined(separator: ",")
            return [text(n["name"]), text(n["ready"]), usage(q, a, "cpu"), usage(q, a, "memory"), usage(q, a, "nvidia.com/gpu"),
                    labels.isEmpty ? "-" : labels]
        })
    }
}

// MARK: functions

struct Functions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Functions (KEDA ScaledObjects) and their replicas.")
    @OptionGroup var g: Global

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/functions")
            emit(r, g) { _ in
                table(["NAMESPACE", "FUNCTION", "TARGET", "CLUSTER", "REPLICAS", "METRIC", "LAST REASON"], (r["functions"]?.arrayValue ?? []).map {
                    [text($0["namespace"]), text($0["name"]), text($0["target"]), text($0["cluster"]), text($0["replicas"]), text($0["metric"]), text($0["reason"])]
                })
            }
        }
    }
}

struct FunctionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "function", abstract: "One function: its scale events; create and delete.",
        subcommands: [FunctionGet.self, FunctionCreate.self, FunctionDelete.self], defaultSubcommand: FunctionGet.self)
}

struct FunctionGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "A function's replicas and recent scale events.")
    @OptionGroup var g: Global
    @Argument(help: "NAMESPACE/NAME") var function: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/functions/\(try namespaced(function, "function"))")
            emit(r, g) { _ in
                print("\(function): \(text(r["replicas"])) replica(s) of \(text(r["target"])) on \(text(r["cluster"]))")
                table(["AT", "FROM", "TO", "METRIC", "REASON"], (r["events"]?.arrayValue ?? []).reversed().map {
                    [text($0["at"]), text($0["from"]), text($0["to"]), text($0["metric"]), text($0["reason"])]
                })
            }
        }
    }
}

struct FunctionCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Define functions: ScaledObjects with their Secrets and TriggerAuthentications (admin).")
    @OptionGroup var g: Global
    @Option(name: .shortAndLong, help: "The file, or - for standard input.") var file: String
    @Option(help: "The cluster whose agent scales them.") var cluster: String?

    func run() async throws {
        try await withClient(g) { c in
            let (bytes, type) = try readFile(file)
            let r = try await c.call("POST", "/v1/functions" + query([("cluster", cluster)]), body: bytes, contentType: type)
            if g.machineReadable { emit(r, g) { _ in }; return }
            for f in r["functions"]?.arrayValue ?? [r] {
                print("function \(text(f["namespace"]))/\(text(f["name"])) scales \(text(f["target"])) on \(text(f["cluster"]))")
                for n in f["notes"]?.arrayValue ?? [] { print("  note: \(text(n))") }
            }
        }
    }
}

struct FunctionDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Stop scaling a function (admin).")
    @OptionGroup var g: Global
    @Argument(help: "NAMESPACE/NAME") var function: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("DELETE", "/v1/functions/\(try namespaced(function, "function"))")
            emit(r, g) { _ in print("function \(function) deleted; its workload keeps the replicas it has") }
        }
    }
}

// MARK: workflows

struct Workflows: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The project's workflows.")
    @OptionGroup var g: Global

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/workflows")
            emit(r, g) { wide in
                table(["ID", "NAME", "NAMESPACE", "STATE", "STEPS DONE"] + (wide ? ["CREATED"] : ["AGE"]), (r["workflows"]?.arrayValue ?? []).map {
                    [text($0["id"]), text($0["name"]), text($0["namespace"]), text($0["state"]), "\(text($0["completed"]))/\(text($0["steps"]))"]
                        + (wide ? [text($0["created_at"])] : [age(since: $0["created_at"])])
                })
            }
        }
    }
}

struct WorkflowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workflow", abstract: "Workflows: DAGs of services.", subcommands: [WorkflowCreate.self, WorkflowGet.self, WorkflowDelete.self])
}

struct WorkflowCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Submit a workflow (YAML or JSON).")
    @OptionGroup var g: Global
    @Option(name: .shortAndLong, help: "The workflow file, or - for standard input.") var file: String
    @Flag(help: "Follow it until it ends (status 1 unless it completes).") var watch = false

    func run() async throws {
        try await withClient(g) { c in
            let (bytes, type) = try readFile(file)
            let r = try await c.call("POST", "/v1/workflows", body: bytes, contentType: type)
            let id = text(r["id"])
            guard watch else {
                if g.machineReadable { emit(r, g) { _ in } } else {
                    print("workflow \(id) submitted; order: \((r["order"]?.arrayValue ?? []).map { text($0) }.joined(separator: " -> "))")
                }
                return
            }
            print("workflow \(id) submitted")
            var last = ""
            while true {
                let w = try await c.call("GET", "/v1/workflows/\(segment(id))")
                let line = (w["steps"]?.arrayValue ?? []).map { "\(text($0["name"]))=\(text($0["state"]))" }.joined(separator: " ")
                if line != last { print("  \(line)"); last = line }
                let state = text(w["state"])
                if ["completed", "failed", "canceled"].contains(state) {
                    print("workflow \(id): \(state)\(w["reason"]?.stringValue.map { " (\($0))" } ?? "")")
                    if state != "completed" { throw ExitCode(1) }
                    return
                }
                try await Task.sleep(for: .milliseconds(300))
            }
        }
    }
}

struct WorkflowGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "A workflow's steps: state, attempt, placement.")
    @OptionGroup var g: Global
    @Argument(help: "The workflow ID.") var id: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/workflows/\(segment(id))")
            emit(r, g) { _ in
                print("\(text(r["id"])) \(text(r["name"])) in \(text(r["namespace"])): \(text(r["state"])) (placement \(text(r["placement"])))")
                table(["STEP", "DEPENDS ON", "STATE", "ATTEMPT", "CLUSTER/NODE", "REASON"], (r["steps"]?.arrayValue ?? []).map {
                    [text($0["name"]), ($0["depends_on"]?.arrayValue ?? []).map { text($0) }.joined(separator: ","), text($0["state"]), text($0["attempt"]),
                     "\(text($0["cluster"]))/\(text($0["node"]))", text($0["reason"])]
                })
            }
        }
    }
}

struct WorkflowDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Cancel a workflow and withdraw its steps' placements.")
    @OptionGroup var g: Global
    @Argument(help: "The workflow ID.") var id: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("DELETE", "/v1/workflows/\(segment(id))")
            if g.format == .table || g.format == .wide { print("workflow \(id): \(text(r["state"]))") } else { emit(r, g) { _ in } }
        }
    }
}

// MARK: autoscaling

struct ScalingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scaling", abstract: "Autoscaling policies and their decisions.",
        subcommands: [ScalingList.self, ScalingGet.self, ScalingDecisions.self, ScalingSet.self, ScalingDelete.self])
}

struct ScalingList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Autoscaling policies.")
    @OptionGroup var g: Global

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/autoscaling")
            emit(r, g) { _ in
                table(["NAMESPACE", "NAME", "REQUEST", "MIN", "MAX", "METRICS", "OVERFLOW"], (r["policies"]?.arrayValue ?? []).map { p in
                    let metrics = (p["metrics"]?.arrayValue ?? []).map { m in
                        let t = m["targetUtilization"].map { "\(text($0))%" } ?? text(m["targetAverageValue"] ?? m["targetValue"])
                        return "\(text(m["type"]))=\(t)"
                    }.joined(separator: ",")
                    return [text(p["namespace"]), text(p["name"]), text(p["request_id"]), text(p["minReplicas"]), text(p["maxReplicas"]), metrics, text(p["overflow"])]
                })
            }
        }
    }
}

struct ScalingGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "A policy, where its replicas run, recent decisions.")
    @OptionGroup var g: Global
    @Argument(help: "NAMESPACE/NAME") var workload: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/autoscaling/\(try namespaced(workload, "workload"))")
            emit(r, g) { _ in
                print("\(workload): \(text(r["replicas"])) replica(s), \(text(r["minReplicas"]))..\(text(r["maxReplicas"])), request \(text(r["request_id"]))")
                table(["CLUSTER", "HOME", "REPLICAS", "STATE", "REQUEST"], (r["placements"]?.arrayValue ?? []).map {
                    [text($0["cluster"]), text($0["home"]), text($0["replicas"]), text($0["state"]), text($0["request_id"])]
                })
                print("")
                table(["AT", "KIND", "FROM", "TO", "REASON"], (r["decisions"]?.arrayValue ?? []).reversed().map {
                    [text($0["at"]), text($0["kind"]), text($0["current"]), text($0["target"]), text($0["reason"])]
                })
            }
        }
    }
}

struct ScalingDecisions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "decisions", abstract: "Decisions with their inputs and reasons.")
    @OptionGroup var g: Global
    @Argument(help: "NAMESPACE/NAME") var workload: String
    @Option(help: "At most this many.") var limit = 50

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/autoscaling/\(try namespaced(workload, "workload"))/decisions" + query([("limit", String(limit))]))
            emit(r, g) { _ in
                table(["ID", "AT", "KIND", "FROM", "TO", "REASON"], (r["decisions"]?.arrayValue ?? []).reversed().map {
                    [text($0["id"]), text($0["at"]), text($0["kind"]), text($0["current"]), text($0["target"]), text($0["reason"])]
                })
            }
        }
    }
}

struct ScalingSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Create or replace a policy (JSON or YAML).")
    @OptionGroup var g: Global
    @Argument(help: "NAMESPACE/NAME") var workload: String
    @Option(name: .shortAndLong, help: "The policy file, or - for standard input.") var file: String

    func run() async throws {
        try await withClient(g) { c in
            let (bytes, type) = try readFile(file)
            let r = try await c.call("PUT", "/v1/autoscaling/\(try namespaced(workload, "workload"))", body: bytes, contentType: type)
            if g.machineReadable { emit(r, g) { _ in } } else {
                print("autoscaling policy \(workload) set: \(text(r["minReplicas"]))..\(text(r["maxReplicas"])) replicas")
            }
        }
    }
}

struct ScalingDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Remove a policy (replicas over the edge withdrawn).")
    @OptionGroup var g: Global
    @Argument(help: "NAMESPACE/NAME") var workload: String

    func run() async throws {
        try await withClient(g) { c in
            _ = try await c.call("DELETE", "/v1/autoscaling/\(try namespaced(workload, "workload"))")
            print("autoscaling policy \(workload) deleted")
        }
    }
}

// MARK: projects and tokens (admin)

func names(_ list: String) -> JSONValue { .array(list.split(separator: ",").map { .string(String($0)) }) }

struct Bind: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Bind clusters to a project (admin).")
    @OptionGroup var g: Global
    @Argument(help: "The project.") var project: String
    @Argument(help: "CLUSTER[,CLUSTER...]") var clusters: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.json("PUT", "/v1/projects/\(segment(project))/clusters", .object(["clusters": names(clusters)]))
            emit(r, g) { _ in print("project \(project): \(text(r["clusters"]))") }
        }
    }
}

struct NamespacesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "namespaces", abstract: "The namespaces a project owns.", subcommands: [NamespacesBind.self, NamespacesGet.self])
}

struct NamespacesBind: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bind", abstract: "The namespaces a project owns, all of them (admin).")
    @OptionGroup var g: Global
    @Argument(help: "The project.") var project: String
    @Argument(help: "NS[,NS...]") var namespaces: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.json("PUT", "/v1/projects/\(segment(project))/namespaces", .object(["namespaces": names(namespaces)]))
            emit(r, g) { _ in print("project \(project) owns namespaces: \(text(r["namespaces"]))") }
        }
    }
}

struct NamespacesGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "A project's own and bound namespaces.")
    @OptionGroup var g: Global
    @Argument(help: "The project.") var project: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/projects/\(segment(project))/namespaces")
            emit(r, g) { _ in print("project \(project): own \(text(r["own"])); bound \(text(r["namespaces"]))") }
        }
    }
}

struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "A project's Pod Security level and allowed kinds.", subcommands: [PolicySet.self, PolicyGet.self])
}

enum PodSecurity: String, ExpressibleByArgument, CaseIterable { case baseline, restricted }

struct PolicySet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Set a project's policy (admin).")
    @OptionGroup var g: Global
    @Argument(help: "The project.") var project: String
    @Option(name: .customLong("pod-security"), help: "baseline or restricted.") var podSecurity: PodSecurity = .baseline
    @Option(help: "K[,K...]: the kinds it may deploy.") var kinds: String?

    func run() async throws {
        var doc: [String: JSONValue] = ["pod_security": .string(podSecurity.rawValue)]
        if let kinds { doc["kinds"] = names(kinds) }
        try await withClient(g) { c in
            let r = try await c.json("PUT", "/v1/projects/\(segment(project))/policy", .object(doc))
            emit(r, g) { _ in print("project \(project): pod security \(text(r["pod_security"])); kinds \(text(r["kinds"]))") }
        }
    }
}

struct PolicyGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "A project's Pod Security level and allowed kinds.")
    @OptionGroup var g: Global
    @Argument(help: "The project.") var project: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/projects/\(segment(project))/policy")
            emit(r, g) { _ in print("project \(project): pod security \(text(r["pod_security"])); kinds \(text(r["kinds"]))") }
        }
    }
}

struct ProducerKey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "producer-key", abstract: "The key a project's Kafka producers sign with (admin).")
    @OptionGroup var g: Global
    @Argument(help: "The project.") var project: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/projects/\(segment(project))/producer-key")
            emit(r, g) { _ in print(text(r["key"])) }
        }
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "API tokens (admin).", subcommands: [TokenCreate.self, TokenList.self, TokenRevoke.self])
}

struct TokenCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "A token for a user, workspace and project; shown once.")
    @OptionGroup var g: Global
    @Option var user: String
    @Option var workspace: String
    @Option var project: String
    @Flag(help: "An admin token.") var admin = false

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.json("POST", "/v1/tokens", .object([
                "user_name": .string(user), "workspace_name": .string(workspace), "project_name": .string(project), "admin": .bool(admin),
            ]))
            emit(r, g) { _ in print("token \(text(r["id"])) for \(user)/\(workspace)/\(project): \(text(r["token"]))\n(shown once; it is stored hashed)") }
        }
    }
}

struct TokenList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Tokens (their IDs, never their secrets).")
    @OptionGroup var g: Global
    @Option(help: "Only this project's.") var project: String?

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/tokens" + query([("project", project)]))
            emit(r, g) { wide in
                table(["ID", "USER", "WORKSPACE", "PROJECT", "ADMIN", "REVOKED"] + (wide ? ["CREATED"] : ["AGE"]), (r["tokens"]?.arrayValue ?? []).map {
                    [text($0["id"]), text($0["user_name"]), text($0["workspace_name"]), text($0["project_name"]), text($0["admin"]),
                     $0["revoked_at"].map { _ in "yes" } ?? "no"] + (wide ? [text($0["created_at"])] : [age(since: $0["created_at"])])
                })
            }
        }
    }
}

struct TokenRevoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a token by its ID.")
    @OptionGroup var g: Global
    @Argument(help: "The token's ID (token list).") var id: String

    func run() async throws {
        try await withClient(g) { c in
            _ = try await c.call("DELETE", "/v1/tokens/\(segment(id))")
            print("token \(id) revoked")
        }
    }
}

struct Whoami: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Who the token acts for.")
    @OptionGroup var g: Global

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/whoami")
            emit(r, g) { _ in
                print("\(text(r["user_name"])) in \(text(r["workspace_name"]))/\(text(r["project_name"]))\(r["admin"] == true ? " (admin)" : "")")
            }
        }
    }
}

// MARK: contexts, version, completion

struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Contexts: a server, a token file and a CA, by name (\(Contexts.path)).",
        subcommands: [GetContexts.self, CurrentContext.self, UseContext.self, SetContext.self])
}

struct GetContexts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get-contexts", abstract: "The contexts; * marks the current one.")
    @OptionGroup var g: Global

    func run() async throws {
        let all = try Contexts.load()
        emit(all.json, g) { _ in
            table(["CURRENT", "NAME", "SERVER", "TOKEN FILE", "CA FILE"], all.contexts.map {
                [$0.name == all.current ? "*" : "", $0.name, $0.server ?? "-", $0.tokenFile ?? "-", $0.caFile ?? "-"]
            })
        }
    }
}

struct CurrentContext: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "current-context", abstract: "The current context's name.")

    func run() async throws {
        guard let current = try Contexts.load().current else { throw CLIError(description: "no current context in \(Contexts.path)") }
        print(current)
    }
}

struct UseContext: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "use-context", abstract: "Make a context the current one.")
    @Argument(help: "The context's name.") var name: String

    func run() async throws {
        var all = try Contexts.load()
        guard all.contexts.contains(where: { $0.name == name }) else {
            throw CLIError(description: "no context '\(name)' in \(Contexts.path); config set-context \(name) --server URL makes one", exitCode: 2)
        }
        all.current = name
        try all.save()
        print("switched to context \"\(name)\"")
    }
}

struct SetContext: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set-context", abstract: "Create or change a context.")
    @Argument(help: "The context's name.") var name: String
    @Option(help: "The gateway's URL.") var server: String?
    @Option(name: .customLong("token-file"), help: "A file holding the token.") var tokenFile: String?
    @Option(name: .customLong("ca-file"), help: "PEM bundle to trust.") var caFile: String?
    @Flag(name: .customLong("insecure-skip-tls-verify"), help: "Do not check the server's certificate.") var insecure = false

    func run() async throws {
        var all = try Contexts.load()
        var ctx = all.contexts.first { $0.name == name } ?? Contexts.Context(name: name)
        if let server { ctx.server = server }
        if let tokenFile { ctx.tokenFile = URL(fileURLWithPath: tokenFile).standardizedFileURL.path }
        if let caFile { ctx.caFile = URL(fileURLWithPath: caFile).standardizedFileURL.path }
        if insecure { ctx.insecure = true }
        all.contexts.removeAll { $0.name == name }
        all.contexts.append(ctx)
        if all.current == nil { all.current = name }
        try all.save()
        print("context \"\(name)\" set")
    }
}

struct Version: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "gedgectl's version (and the server's, when it answers).")
    @OptionGroup var g: Global

    func run() async throws {
        print("gedgectl \(Gedgectl.version)")
    }
}

struct Completion: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A completion script for bash, zsh or fish.",
        discussion: "bash: source <(gedgectl completion bash); zsh: gedgectl completion zsh > \"${fpath[1]}/_gedgectl\"; fish: gedgectl completion fish | source")
    @Argument(help: "bash, zsh or fish.") var shell: String

    func run() async throws {
        guard let s = CompletionShell(rawValue: shell) else { throw ValidationError("'\(shell)' is not bash, zsh or fish") }
        print(Gedgectl.completionScript(for: s))
    }
}
