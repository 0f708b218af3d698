import Foundation
import GEdgeCore

/// One call to the fake API, as the server saw it.
struct APICall {
    var method: String
    var path: String
    var query: [String: String]
    var contentType: String?
    var token: String?
    var body: [UInt8]
}

/// What the fake answers: a JSON body, text, or a watch to stream.
enum APIAnswer {
    case json(Int, JSONValue)
    case text(Int, String)
    case watch(AsyncStream<JSONValue>)
}

func status(_ code: Int, _ reason: String, _ message: String, causes: [JSONValue] = []) -> APIAnswer {
    var o: [String: JSONValue] = ["kind": "Status", "apiVersion": "v1", "metadata": .object([:]), "status": "Failure",
                                  "message": .string(message), "reason": .string(reason), "code": .number(Double(code))]
    if !causes.isEmpty { o["details"] = .object(["causes": .array(causes)]) }
    return .json(code, .object(o))
}

extension FakeCluster {
    static func resource(group: String, version: String, name: String) -> Resource? {
        resources.first { $0.group == group && $0.version == version && $0.name == name }
    }

    func handle(_ call: APICall, tokens: [String: String], rbac: RBAC, bookmarkInterval: Duration) -> APIAnswer {
        guard let token = call.token, let user = tokens[token] else { return status(401, "Unauthorized", "Unauthorized") }
        let parts = call.path.split(separator: "/").map(String.init)
        // Discovery (system:discovery: every authenticated user).
        if parts == ["api"] { return .json(200, .object(["kind": "APIVersions", "versions": .array(["v1"])])) }
        if parts == ["apis"] {
            let groups = Set(Self.resources.filter { !$0.group.isEmpty }.map { "\($0.group)/\($0.version)" }).sorted()
            return .json(200, .object(["kind": "APIGroupList", "apiVersion": "v1", "groups": .array(groups.map { gv in
                let g = String(gv.split(separator: "/")[0])
                return .object(["name": .string(g), "versions": .array([.object(["groupVersion": .string(gv)])])])
            })]))
        }
        var group = "", version = "", rest: [String] = []
        if parts.count >= 2, parts[0] == "api" {
            version = parts[1]; rest = Array(parts.dropFirst(2))
        } else if parts.count >= 3, parts[0] == "apis" {
            group = parts[1]; version = parts[2]; rest = Array(parts.dropFirst(3))
        } else {
            return status(404, "NotFound", "the server could not find the requested resource")
        }
        let served = Self.resources.filter { $0.group == group && $0.version == version }
        guard !served.isEmpty else { return status(404, "NotFound", "the server could not find the requested resource") }
        if rest.isEmpty {
            if group == "metrics.k8s.io" && !serveMetrics { return status(503, "ServiceUnavailable", "the server is currently unable to handle the request") }
            var list: [JSONValue] = []
            for r in served {
                list.append(.object(["name": .string(r.name), "kind": .string(r.kind), "namespaced": .bool(r.namespaced), "verbs": .array(r.verbs.map(JSONValue.string))]))
                for sub in r.subresources {
                    list.append(.object(["name": .string("\(r.name)/\(sub)"), "kind": .string(sub == "scale" ? "Scale" : r.kind), "namespaced": .bool(r.namespaced),
                                         "verbs": .array(sub == "scale" ? ["get", "patch", "update"] : ["get"])]))
                }
            }
            return .json(200, .object(["kind": "APIResourceList", "apiVersion": "v1", "groupVersion": .string(group.isEmpty ? version : "\(group)/\(version)"), "resources": .array(list)]))
        }
        // /namespaces/<ns>/<resource>[/<name>[/<sub>]] or /<resource>[/<name>[/<sub>]]
        var namespace: String?
        if rest.count >= 3, rest[0] == "namespaces" {
            namespace = rest[1]; rest = Array(rest.dropFirst(2))
        }
        guard let resource = Self.resource(group: group, version: version, name: rest[0]), rest.count <= 3 else {
            return status(404, "NotFound", "the server could not find the requested resource")
        }
        if group == "metrics.k8s.io" && !serveMetrics { return status(503, "ServiceUnavailable", "the server is currently unable to handle the request") }
        if !resource.namespaced, namespace != nil { return status(404, "NotFound", "the server could not find the requested resource") }
        let name = rest.count >= 2 ? rest[1] : nil
        let sub = rest.count == 3 ? rest[2] : nil
        if let sub, !resource.subresources.contains(sub) { return status(404, "NotFound", "the server could not find the requested resource") }
        let watching = call.query["watch"] == "1" || call.query["watch"] == "true"
        let verb: String
        switch call.method {
        case "GET": verb = name == nil ? (watching ? "watch" : "list") : "get"
        case "PATCH": verb = "patch"
        case "DELETE": verb = "delete"
        case "POST": verb = "create"
        case "PUT": verb = "update"
        default: return status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        }
        let rbacResource = resource.name + (sub.map { "/\($0)" } ?? "")
        func forbidden(_ v: String) -> APIAnswer {
            let what = name.map { "\(resource.name)\(group.isEmpty ? "" : ".\(group)") \"\($0)\"" } ?? "\(resource.name)\(group.isEmpty ? "" : ".\(group)")"
            lock.withLock { calls.append("DENIED \(user) \(v) \(rbacResource)") }
            return status(403, "Forbidden", "\(what) is forbidden: User \"\(user)\" cannot \(v) resource \"\(rbacResource)\" in API group \"\(group)\"\(namespace.map { " in the namespace \"\($0)\"" } ?? (resource.namespaced ? "" : " at the cluster scope"))")
        }
        guard rbac.allows(user: user, verb: verb, group: group, resource: rbacResource, name: name) else { return forbidden(verb) }
        lock.withLock { calls.append("\(user) \(verb) \(rbacResource)") }

        if resource.kind == "PodMetrics" { return podMetrics(namespace: namespace, query: call.query) }
        if verb == "list" { return list(resource, namespace: namespace, query: call.query) }
        if verb == "watch" { return watch(resource, namespace: namespace, query: call.query, bookmarkInterval: bookmarkInterval) }
        guard let name else { return status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource") }
        let key = Key(resource: resource.name, namespace: namespace ?? "", name: name)
        let notFound = status(404, "NotFound", "\(resource.name)\(group.isEmpty ? "" : ".\(group)") \"\(name)\" not found")
        switch (call.method, sub) {
        case ("GET", nil):
            return lock.withLock { objects[key] }.map { .json(200, $0) } ?? notFound
        case ("GET", "log"):
            guard lock.withLock({ objects[key] }) != nil else { return notFound }
            let tail = Int(call.query["tailLines"] ?? "") ?? 10
            return .text(200, (1...max(1, min(tail, 100))).map { "\(name) log line \($0)" }.joined(separator: "\n") + "\n")
        case ("GET", "scale"):
            return lock.withLock { objects[key] }.map { .json(200, scale(of: $0)) } ?? notFound
        case ("PATCH", "scale"):
            guard call.contentType == "application/merge-patch+json" else { return status(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml") }
            guard let patch = try? JSONValue.parse(call.body), let replicas = patch["spec"]?["replicas"]?.numberValue else {
                return status(400, "BadRequest", "the scale patch has no spec.replicas")
            }
            return lock.withLock {
                guard let o = objects[key] else { return notFound }
                let updated = write(key, o.setting(["spec", "replicas"], .number(replicas)), manager: "\(call.query["fieldManager"] ?? "unknown")/Update", paths: [["spec", "replicas"]])
                return .json(200, scale(of: updated))
            }
        case ("PATCH", nil):
            return patch(call, resource: resource, key: key, verbAllowed: { rbac.allows(user: user, verb: $0, group: group, resource: rbacResource, name: name) }, forbidden: forbidden)
        case ("DELETE", nil):
            return lock.withLock {
                guard let o = objects[key] else { return notFound }
                remove(key)
                if resource.name == "deployments" || resource.name == "statefulsets" {
                    for (k, _) in ownedPods(key) { remove(k) }
                }
                if resource.name == "namespaces" {
                    for k in objects.keys where k.namespace == name { remove(k) }
                }
                return .json(200, o)
            }
        default:
            return status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        }
    }

    func scale(of o: JSONValue) -> JSONValue {
        let labels = o["spec"]?["selector"]?["matchLabels"]?.objectValue ?? [:]
        let selector = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value.stringValue ?? "")" }.joined(separator: ",")
        return .object([
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": .object(["name": o["metadata"]?["name"] ?? .null, "namespace": o["metadata"]?["namespace"] ?? .null]),
            "spec": .object(["replicas": o["spec"]?["replicas"] ?? .number(1)]),
            "status": .object(["replicas": o["status"]?["replicas"] ?? .number(0), "selector": .string(selector)]),
        ])
    }

    // MARK: selectors

    /// Label selector terms: `k=v`, `k==v`, `k!=v`, `k`, `!k`. Nil when it does not parse.
    static func labelMatcher(_ s: String?) -> ((JSONValue) -> Bool)? {
        guard let s, !s.isEmpty else { return { _ in true } }
        var tests: [([String: JSONValue]) -> Bool] = []
        for term in s.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if let r = term.range(of: "!=") {
                let k = String(term[..<r.lowerBound]), v = String(term[r.upperBound...])
                tests.append { $0[k]?.stringValue != v }
            } else if let r = term.range(of: "==") ?? term.range(of: "=") {
                let k = String(term[..<r.lowerBound]), v = String(term[r.upperBound...])
                guard !k.isEmpty else { return nil }
                tests.append { $0[k]?.stringValue == v }
            } else if term.hasPrefix("!") {
                let k = String(term.dropFirst())
                tests.append { $0[k] == nil }
            } else {
                guard !term.isEmpty, !term.contains(" ") else { return nil }
                tests.append { $0[term] != nil }
            }
        }
        return { o in
            let labels = o["metadata"]?["labels"]?.objectValue ?? [:]
            return tests.allSatisfy { $0(labels) }
        }
    }

    /// Field selectors the real server supports for the fake's kinds.
    struct SelectorError: Error { let why: String }

    static func fieldMatcher(_ s: String?, resource: String = "pods") -> Result<(JSONValue) -> Bool, SelectorError> {
        guard let s, !s.isEmpty else { return .success { _ in true } }
        // Every kind: its name and namespace; pods and events add their own, as the API server.
        var fields: [String: [String]] = ["metadata.name": ["metadata", "name"], "metadata.namespace": ["metadata", "namespace"]]
        switch resource {
        case "pods":
            fields["status.phase"] = ["status", "phase"]; fields["spec.nodeName"] = ["spec", "nodeName"]
        case "events":
            for f in ["kind", "name", "namespace", "uid"] { fields["involvedObject.\(f)"] = ["involvedObject", f] }
            fields["reason"] = ["reason"]; fields["type"] = ["type"]
        default: break
        }
        var tests: [(JSONValue) -> Bool] = []
        for term in s.split(separator: ",").map(String.init) {
            let negate = term.contains("!=")
            let pieces = term.components(separatedBy: negate ? "!=" : (term.contains("==") ? "==" : "="))
            guard pieces.count == 2, let path = fields[pieces[0]] else { return .failure(SelectorError(why: "field label not supported: \(pieces[0])")) }
            let v = pieces[1]
            tests.append { o in (o.at(path)?.stringValue ?? "") == v ? !negate : negate }
        }
        return .success { o in tests.allSatisfy { $0(o) } }
    }

    // MARK: list and watch

    func list(_ r: Resource, namespace: String?, query: [String: String]) -> APIAnswer {
        guard let labels = Self.labelMatcher(query["labelSelector"]) else { return status(400, "BadRequest", "unable to parse requirement: \(query["labelSelector"] ?? "")") }
        let fields: (JSONValue) -> Bool
        switch Self.fieldMatcher(query["fieldSelector"], resource: r.name) {
        case .success(let f): fields = f
        case .failure(let e): return status(400, "BadRequest", e.why)
        }
        // Pages: `limit`, and `continue` from the previous page (the key after which to go on
        // and the resourceVersion of the first page; once compaction passed it, 410 Expired).
        var limit: Int?
        if let l = query["limit"] {
            guard let n = Int(l), n >= 0 else { return status(400, "BadRequest", "limit must be a non-negative integer") }
            limit = n > 0 ? n : nil
        }
        var after: String?
        var firstRV: Int?
        if let token = query["continue"], !token.isEmpty {
            guard let data = Data(base64Encoded: token), let t = try? JSONValue.parse(Array(data)), let start = t["start"]?.stringValue,
                  let v = t["rv"]?.numberValue else {
                return status(400, "BadRequest", "continue key is not valid: illegal base64 data at input byte 0")
            }
            after = start
            firstRV = Int(v)
        }
        return lock.withLock {
            if let v = firstRV, v < compactedBelow {
                return status(410, "Expired", "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
            }
            var items = objects(r.name, namespace: namespace).filter { labels($0.1) && fields($0.1) }
            if let after { items = items.filter { "\($0.0.namespace)/\($0.0.name)" > after } }
            var metadata: [String: JSONValue] = ["resourceVersion": .string(String(rv))]
            if let limit, items.count > limit {
                let last = items[limit - 1].0
                let token: JSONValue = .object(["v": "meta.k8s.io/v1", "rv": .number(Double(firstRV ?? rv)), "start": .string("\(last.namespace)/\(last.name)")])
                metadata["continue"] = .string(Data(token.serialized()).base64EncodedString())
                metadata["remainingItemCount"] = .number(Double(items.count - limit))
                items = Array(items.prefix(limit))
            }
            return .json(200, .object([
                "kind": .string("\(r.kind)List"), "apiVersion": .string(r.groupVersion),
                "metadata": .object(metadata), "items": .array(items.map(\.1)),
            ]))
        }
    }

    func watch(_ r: Resource, namespace: String?, query: [String: String], bookmarkInterval: Duration) -> APIAnswer {
        guard let labels = Self.labelMatcher(query["labelSelector"]) else { return status(400, "BadRequest", "unable to parse requirement") }
        let fields: (JSONValue) -> Bool
        switch Self.fieldMatcher(query["fieldSelector"], resource: r.name) {
        case .success(let f): fields = f
        case .failure(let e): return status(400, "BadRequest", e.why)
        }
        let from = query["resourceVersion"] ?? ""
        let bookmarks = query["allowWatchBookmarks"] == "true"
        let timeout = Double(query["timeoutSeconds"] ?? "") ?? 1800
        func matches(_ o: JSONValue) -> Bool {
            (namespace == nil || o["metadata"]?["namespace"]?.stringValue == namespace) && labels(o) && fields(o)
        }
        let (stream, continuation) = AsyncStream<JSONValue>.makeStream()
        let id = UUID()
        lock.withLock {
            if let v = Int(from), v > 0, v < compactedBelow {
                continuation.yield(.object(["type": "ERROR", "object": .object([
                    "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Expired", "code": 410,
                    "message": .string("too old resource version: \(v) (\(compactedBelow))"),
                ])]))
                continuation.finish()
                return
            }
            if from.isEmpty || from == "0" {
                // "Any": the current state as ADDED events.
                for (_, o) in objects(r.name, namespace: namespace) where matches(o) {
                    continuation.yield(.object(["type": "ADDED", "object": o]))
                }
            } else if let v = Int(from) {
                for e in events where e.rv > v && e.resource == r.name && matches(e.object) {
                    continuation.yield(.object(["type": .string(e.type), "object": e.object]))
                }
            }
            watchers[id] = { e in
                guard e["resource"]?.stringValue == r.name, let object = e["object"], matches(object) else { return }
                continuation.yield(.object(["type": e["type"] ?? "MODIFIED", "object": object]))
            }
        }
        let ticker = Task { [weak self] in
            let end = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
            while ContinuousClock.now < end, !Task.isCancelled {
                try? await Task.sleep(for: min(bookmarkInterval, end - ContinuousClock.now))
                guard let self, bookmarks, ContinuousClock.now < end else { continue }
                let v = self.lock.withLock { self.rv }
                continuation.yield(.object(["type": "BOOKMARK", "object": .object([
                    "kind": .string(r.kind), "apiVersion": .string(r.groupVersion), "metadata": .object(["resourceVersion": .string(String(v))]),
                ])]))
            }
            continuation.finish()
        }
        continuation.onTermination = { [weak self] _ in
            ticker.cancel()
            guard let self else { return }
            // Not here and now: this runs inside the cancellation of the watching task, under
            // that task's status lock, while a change may hold the cluster's lock and be
            // yielding to this very stream (which takes the task's status lock): each would
            // wait for the other. A yield to a stream already ended is dropped meanwhile.
            DispatchQueue.global().async { _ = self.lock.withLock { self.watchers.removeValue(forKey: id) } }
        }
        return .watch(stream)
    }

    func podMetrics(namespace: String?, query: [String: String]) -> APIAnswer {
        guard let labels = Self.labelMatcher(query["labelSelector"]) else { return status(400, "BadRequest", "unable to parse requirement") }
        return lock.withLock {
            let items: [JSONValue] = objects("pods", namespace: namespace).map(\.1).filter { labels($0) && $0["status"]?["phase"]?.stringValue == "Running" }.map { p in
                .object([
                    "metadata": .object(["name": p["metadata"]?["name"] ?? .null, "namespace": p["metadata"]?["namespace"] ?? .null]),
                    "containers": .array((p["spec"]?["containers"]?.arrayValue ?? []).map { c in
                        .object(["name": c["name"] ?? "c", "usage": .object(["cpu": "123456789n", "memory": "65536Ki"])])
                    }),
                ])
            }
            return .json(200, .object(["kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": .object([:]), "items": .array(items)]))
        }
    }

    // MARK: writes

    /// Stores a changed object (lock held): generation moves when the spec changes; the
    /// changed paths become the manager's and no one else's.
    @discardableResult
    func write(_ key: Key, _ object: JSONValue, manager: String, paths: Set<[String]>) -> JSONValue {
        var o = object
        let before = objects[key]
        let generation = FakeCluster.int(before?["metadata"]?["generation"])
        if before == nil {
            o = o.setting(["metadata", "generation"], .number(1))
        } else if before?["spec"] != o["spec"] {
            o = o.setting(["metadata", "generation"], .number(Double(generation + 1)))
        } else {
            o = o.setting(["metadata", "generation"], .number(Double(max(1, generation))))
        }
        if before == o.setting(["metadata", "resourceVersion"], before?["metadata"]?["resourceVersion"]) { return before! }
        var owned = managers[key] ?? [:]
        for m in owned.keys where m != manager { owned[m]?.subtract(paths) }
        owned[manager, default: []].formUnion(paths)
        managers[key] = owned.filter { !$0.value.isEmpty }
        o = o.setting(["metadata", "managedFields"], .array(managers[key]!.keys.sorted().map { m in
            let parts = m.split(separator: "/")
            return .object(["manager": .string(String(parts[0])), "operation": .string(String(parts.last ?? "Update"))])
        }))
        return put(key, o, type: before == nil ? "ADDED" : "MODIFIED")
    }

    func patch(_ call: APICall, resource: Resource, key: Key, verbAllowed: (String) -> Bool, forbidden: (String) -> APIAnswer) -> APIAnswer {
        let ct = call.contentType ?? ""
        let manager = call.query["fieldManager"]
        if call.query["force"] != nil, ct != "application/apply-patch+yaml" {
            return status(400, "BadRequest", "force: Forbidden: may not be specified for non-apply patch")
        }
        switch ct {
        case "application/apply-patch+yaml":
            guard let manager, !manager.isEmpty else {
                return status(400, "BadRequest", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
            }
            let text = String(decoding: call.body, as: UTF8.self)
            guard let applied = try? YAMLText.document(text, path: "") else { return status(400, "BadRequest", "error decoding YAML") }
            guard applied["kind"]?.stringValue == resource.kind, applied["apiVersion"]?.stringValue == resource.groupVersion else {
                return status(400, "BadRequest", "the kind or apiVersion of the object does not match the URL (\(resource.groupVersion) \(resource.kind))")
            }
            guard applied["metadata"]?["name"]?.stringValue == key.name else {
                return status(400, "BadRequest", "the name of the object (\(applied["metadata"]?["name"]?.stringValue ?? "")) does not match the name on the URL (\(key.name))")
            }
            if let ns = applied["metadata"]?["namespace"]?.stringValue, resource.namespaced, ns != key.namespace {
                return status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
            }
            return lock.withLock {
                if resource.namespaced, objects[Key(resource: "namespaces", namespace: "", name: key.namespace)] == nil {
                    return status(404, "NotFound", "namespaces \"\(key.namespace)\" not found")
                }
                let existing = objects[key]
                if existing == nil, !verbAllowed("create") { return forbidden("create") }
                var leaves = applied.leaves()
                for p in [["apiVersion"], ["kind"], ["metadata", "name"], ["metadata", "namespace"], ["status"]] { leaves = leaves.filter { !$0.key.starts(with: p) } }
                let me = "\(manager)/Apply"
                var base = existing ?? .object([:])
                if let existing {
                    var conflicts: [(String, String)] = []
                    for (m, paths) in (managers[key] ?? [:]).sorted(by: { $0.key < $1.key }) where m != me {
                        for p in paths.sorted(by: { $0.joined(separator: ".") < $1.joined(separator: ".") }) {
                            guard let new = leaves[p] else { continue }
                            if existing.at(p) != new { conflicts.append((String(m.split(separator: "/")[0]), "." + p.joined(separator: "."))) }
                        }
                    }
                    if !conflicts.isEmpty && call.query["force"] != "true" {
                        let list = conflicts.map { "conflict with \"\($0.0)\": \($0.1)" }
                        return status(409, "Conflict", "Apply failed with \(conflicts.count) conflict\(conflicts.count == 1 ? "" : "s"): " + list.joined(separator: "\n"),
                                      causes: conflicts.map { .object(["reason": "FieldManagerConflict", "message": .string("conflict with \"\($0.0)\""), "field": .string($0.1)]) })
                    }
                    // Fields this manager applied before and no longer does are removed,
                    // unless someone else also owns them.
                    let others = (managers[key] ?? [:]).filter { $0.key != me }.values.reduce(into: Set<[String]>()) { $0.formUnion($1) }
                    for p in (managers[key]?[me] ?? []) where leaves[p] == nil && !others.contains(p) {
                        base = base.setting(p, nil)
                    }
                }
                var object = base
                for (p, v) in leaves { object = object.setting(p, v) }
                object = object.setting(["apiVersion"], .string(resource.groupVersion)).setting(["kind"], .string(resource.kind))
                object = object.setting(["metadata", "name"], .string(key.name))
                if let invalid = validate(resource, key, object, existing: existing) { return invalid }
                return .json(existing == nil ? 201 : 200, write(key, object, manager: me, paths: Set(leaves.keys)))
            }
        case "application/merge-patch+json", "application/strategic-merge-patch+json":
            guard let patch = try? JSONValue.parse(call.body), case .object = patch else { return status(400, "BadRequest", "the patch is not a JSON object") }
            return lock.withLock {
                guard let existing = objects[key] else {
                    return status(404, "NotFound", "\(resource.name)\(resource.group.isEmpty ? "" : ".\(resource.group)") \"\(key.name)\" not found")
                }
                let merged = ct == "application/merge-patch+json" ? existing.mergePatched(patch) : existing.strategicMerged(patch)
                if let invalid = validate(resource, key, merged, existing: existing) { return invalid }
                let paths = Set(patch.leaves().keys.filter { $0.first != "status" })
                return .json(200, write(key, merged, manager: "\(manager ?? "unknown")/Update", paths: paths))
            }
        default:
            return status(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")
        }
    }
}

extension FakeCluster {
    /// What the API server's validation refuses of the workload kinds: a selector that is
    /// missing, does not match the template's labels, or changed after creation.
    func validate(_ r: Resource, _ key: Key, _ o: JSONValue, existing: JSONValue?) -> APIAnswer? {
        guard r.name == "deployments" || r.name == "statefulsets" else { return nil }
        let what = "\(r.kind).apps \"\(key.name)\" is invalid"
        guard let selector = o["spec"]?["selector"]?["matchLabels"]?.objectValue, !selector.isEmpty else {
            return status(422, "Invalid", "\(what): spec.selector: Required value")
        }
        let labels = o["spec"]?["template"]?["metadata"]?["labels"]?.objectValue ?? [:]
        guard selector.allSatisfy({ labels[$0.key] == $0.value }) else {
            return status(422, "Invalid", "\(what): spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`")
        }
        if let existing, existing["spec"]?["selector"] != o["spec"]?["selector"] {
            return status(422, "Invalid", "\(what): spec.selector: Invalid value: field is immutable")
        }
        guard !(o["spec"]?["template"]?["spec"]?["containers"]?.arrayValue ?? []).isEmpty else {
            return status(422, "Invalid", "\(what): spec.template.spec.containers: Required value")
        }
        return nil
    }
}

extension JSONValue {
    /// A strategic merge patch for the fake's purposes: objects merged as a merge patch,
    /// lists of named objects (containers) merged by name.
    func strategicMerged(_ patch: JSONValue) -> JSONValue {
        switch (self, patch) {
        case (.object(var o), .object(let p)):
            for (k, v) in p {
                if v == .null { o[k] = nil } else { o[k] = (o[k] ?? .null).strategicMerged(v) }
            }
            return .object(o)
        case (.array(var items), .array(let changes)) where changes.allSatisfy({ $0["name"]?.stringValue != nil }) && items.allSatisfy({ $0["name"]?.stringValue != nil }):
            for c in changes {
                if let i = items.firstIndex(where: { $0["name"] == c["name"] }) { items[i] = items[i].strategicMerged(c) } else { items.append(c) }
            }
            return .array(items)
        default:
            return patch
        }
    }
}
