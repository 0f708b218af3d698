import ArgumentParser
import Foundation
import GEdgeCore
import GEdgePlacement

// kubectl's get, describe and logs for a cluster's objects, read by its agent through the
// gateway: `get pods|deployments|pv|pvc|storageclasses|events [NAME] [-c CLUSTER] [-n NS]`,
// `describe KIND NAME`, `logs POD [-f] [--tail N]`.

/// The cluster and namespace options of the inventory commands.
struct Scope: ParsableArguments {
    @Option(name: [.short, .customLong("cluster")], help: "The cluster (needed when the token sees more than one).") var cluster: String?
    @Option(name: [.customShort("n"), .customLong("namespace")],
            help: "The namespace (default: every namespace the token reads: its project's own and bound ones; an admin's, all).")
    var namespaceOption: String?
    @Flag(name: [.customShort("A"), .customLong("all-namespaces")], help: "Every namespace the token reads, as without -n (kubectl's -A; it wins over -n).")
    var allNamespaces = false

    /// The namespace asked for; nil for every namespace the token reads.
    var namespace: String? { allNamespaces ? nil : namespaceOption }

    /// The cluster named, or the only one the token sees.
    func clusterName(_ c: Client) async throws -> String {
        if let cluster { return cluster }
        let names = (try await c.call("GET", "/v1/clusters"))["clusters"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        guard names.count == 1 else {
            throw CLIError(description: names.isEmpty ? "no cluster is reported for this token" : "which cluster? -c one of \(names.joined(separator: ", "))", exitCode: 64)
        }
        return names[0]
    }
}

/// `get KIND [NAME]`: a page (or every page with --all) as a table, as kubectl prints it.
func getInventory(_ c: Client, _ g: Global, kind: InventoryKind, name: String?, scope: Scope, limit: Int, all: Bool) async throws {
    let cluster = try await scope.clusterName(c)
    if kind.namespaced, scope.namespace == nil, name != nil {
        throw CLIError(description: "give the namespace of \(kind.rawValue) \(name!) with -n", exitCode: 64)
    }
    var items: [JSONValue] = []
    if let name {
        let path = "/v1/clusters/\(segment(cluster))/\(kind.rawValue)/" + (kind.namespaced ? "\(segment(scope.namespace!))/" : "") + segment(name)
        if let item = try await c.call("GET", path)["item"] { items = [item] }
    } else {
        var token: String?
        repeat {
            let r = try await c.call("GET", "/v1/clusters/\(segment(cluster))/\(kind.rawValue)"
                + query([("namespace", kind.namespaced ? scope.namespace : nil), ("limit", String(limit)), ("continue", token)]))
            items += r["items"]?.arrayValue ?? []
            token = all ? r["continue"]?.stringValue : nil
            if !all, r["continue"] != nil, !g.machineReadable {
                FileHandle.standardError.write(Data("(more: --all for every page)\n".utf8))
            }
        } while token != nil
    }
    emit(.array(items), g) { wide in
        let (header, rows) = inventoryTable(kind, items, wide: wide)
        if rows.isEmpty {
            print("No resources found" + (kind.namespaced ? scope.namespace.map { " in \($0) namespace" } ?? " in the namespaces this token reads" : "") + " of cluster \(cluster).")
        } else {
            table(header, rows)
        }
    }
}

/// kubectl's columns for each kind.
func inventoryTable(_ kind: InventoryKind, _ items: [JSONValue], wide: Bool) -> ([String], [[String]]) {
    switch kind {
    case .pods:
        return (["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (wide ? ["IP", "NODE"] : []), items.map { p in
            [text(p["namespace"]), text(p["name"]), text(p["ready"]), p["waiting_reason"]?.stringValue ?? text(p["phase"]), text(p["restarts"]), age(since: p["started_at"])]
                + (wide ? [text(p["pod_ip"]), text(p["node"])] : [])
        })
    case .deployments:
        return (["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] + (wide ? ["IMAGES"] : []), items.map { d in
            [text(d["namespace"]), text(d["name"]), "\(text(d["ready"]))/\(text(d["replicas"]))", text(d["updated"]), text(d["available"]), age(since: d["created_at"])]
                + (wide ? [(d["images"]?.arrayValue ?? []).map { text($0) }.joined(separator: ",")] : [])
        })
    case .persistentvolumes:
        return (["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS"], items.map { v in
            [text(v["name"]), text(v["capacity"]), accessModes(v["access_modes"]), text(v["reclaim_policy"]), text(v["status"]), text(v["claim"]), text(v["storage_class"])]
        })
    case .persistentvolumeclaims:
        return (["NAMESPACE", "NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS"], items.map { v in
            [text(v["namespace"]), text(v["name"]), text(v["status"]), text(v["volume"]), text(v["capacity"]), accessModes(v["access_modes"]), text(v["storage_class"])]
        })
    case .storageclasses:
        return (["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION"], items.map { s in
            [text(s["name"]) + (s["default"] == .bool(true) ? " (default)" : ""), text(s["provisioner"]), text(s["reclaim_policy"]),
             text(s["volume_binding_mode"]), s["allow_volume_expansion"] == .bool(true) ? "true" : "false"]
        })
    case .events:
        return (["NAMESPACE", "LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], items.map { e in
            [text(e["namespace"]), age(since: e["last_at"]), text(e["type"]), text(e["reason"]),
             "\(text(e["object"]?["kind"]).lowercased())/\(text(e["object"]?["name"]))", text(e["message"])]
        })
    }
}

/// kubectl's short access modes: RWO, ROX, RWX, RWOP.
func accessModes(_ v: JSONValue?) -> String {
    let short = ["ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"]
    let modes = (v?.arrayValue ?? []).compactMap(\.stringValue).map { short[$0] ?? $0 }
    return modes.isEmpty ? "-" : modes.joined(separator: ",")
}

struct Describe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One object of a cluster with its events (pods, deployments, pv, pvc, storageclasses).",
        discussion: "Kinds take kubectl's names: pods (po), deployments (deploy), persistentvolumes (pv), persistentvolumeclaims (pvc), storageclasses (sc).")
    @OptionGroup var g: Global
    @OptionGroup var scope: Scope
    @Argument(help: "The kind.") var kind: String
    @Argument(help: "The object's name.") var name: String

    func validate() throws {
        guard let k = InventoryKind.named(kind), k != .events else { throw ValidationError("'\(kind)' is not a kind to describe: pods, deployments, pv, pvc or storageclasses") }
    }

    func run() async throws {
        let k = InventoryKind.named(kind)!
        try await withClient(g) { c in
            let cluster = try await scope.clusterName(c)
            guard !k.namespaced || scope.namespace != nil else { throw CLIError(description: "give the namespace of \(k.rawValue) \(name) with -n", exitCode: 64) }
            let r = try await c.call("GET", "/v1/clusters/\(segment(cluster))/\(k.rawValue)/" + (k.namespaced ? "\(segment(scope.namespace!))/" : "") + segment(name))
            emit(r, g) { _ in
                print("Cluster:\t\(cluster)")
                if case .object(let o)? = r["item"] {
                    for key in o.keys.sorted() where key != "conditions" {
                        let v = o[key]!
                        print("\(key.replacingOccurrences(of: "_", with: " ").capitalized):\t" + (v.arrayValue.map { $0.map { text($0) }.joined(separator: ", ") } ?? text(v)))
                    }
                    if let conditions = o["conditions"]?.arrayValue, !conditions.isEmpty {
                        print("Conditions:")
                        table(["  TYPE", "STATUS", "REASON", "MESSAGE"], conditions.map { ["  " + text($0["type"]), text($0["status"]), text($0["reason"]), text($0["message"])] })
                    }
                }
                let events = r["events"]?.arrayValue ?? []
                print("Events:" + (events.isEmpty ? "\t<none>" : ""))
                if !events.isEmpty {
                    table(["  TYPE", "REASON", "AGE", "COUNT", "MESSAGE"], events.map {
                        ["  " + text($0["type"]), text($0["reason"]), age(since: $0["last_at"]), text($0["count"]), text($0["message"])]
                    })
                }
            }
        }
    }
}

struct Logs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A pod's log, read by its cluster's agent; -f follows it.",
        discussion: "Following asks the agent again every --interval and prints the lines that came after those already printed.")
    @OptionGroup var g: Global
    @OptionGroup var scope: Scope
    @Argument(help: "The pod.") var pod: String
    @Flag(name: [.short, .customLong("follow")], help: "Keep printing new lines until interrupted.") var follow = false
    @Option(help: "The last N lines (1 to 5000).") var tail = 200
    @Option(help: "How often to ask while following (seconds).") var interval = 2.0

    func validate() throws {
        guard (1...5000).contains(tail) else { throw ValidationError("--tail is 1 to 5000") }
        guard interval >= 0.2, interval <= 60 else { throw ValidationError("--interval is 0.2 to 60 seconds") }
    }

    func run() async throws {
        try await withClient(g) { c in
            let cluster = try await scope.clusterName(c)
            var ns = scope.namespace ?? "default"
            if scope.namespace == nil, let project = try await c.call("GET", "/v1/whoami")["project_name"]?.stringValue {
                ns = KubeNames.namespace(forProject: project)
            }
            let path = "/v1/clusters/\(segment(cluster))/pods/\(segment(ns))/\(segment(pod))/logs"
            // Written straight out (not print's buffer), so a pipe sees each line as it comes.
            func out(_ ls: [String]) { if !ls.isEmpty { FileHandle.standardOutput.write(Data(ls.map { $0 + "\n" }.joined().utf8)) } }
            var printed = try await lines(c, path, tail: tail)
            out(printed)
            while follow, !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(Int(interval * 1000)))
                let latest = try await lines(c, path, tail: 5000)
                let new = LogFollow.newLines(after: printed, in: latest)
                out(new)
                printed = Array((printed + new).suffix(5000))
            }
        }
    }

    func lines(_ c: Client, _ path: String, tail: Int) async throws -> [String] {
        (try await c.call("GET", path + query([("tail", String(tail))])))["lines"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }
}
