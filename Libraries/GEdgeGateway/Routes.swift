import Foundation
import GEdgeAutoscaler
import GEdgeWorkflow
import GEdgeCore
import GEdgeFaaS
import GEdgePlacement
import GEdgeScheduler
import GEdgeSecurity
import Hummingbird
import Logging
import NIOCore

extension Gateway {
    /// Every route: GS-Engine's `/gse`, GS-Scheduler's front API `/scheduler`, `/v1`, and the
    /// OpenAPI document. The ops endpoints are added by the caller.
    public func addRoutes(to router: Router<GatewayRequestContext>) {
        if settings.accessLog { router.add(middleware: AccessLogMiddleware(logger: logger)) }
        router.add(middleware: ProblemMiddleware(logger: logger, routes: Self.routeTable, maxBody: settings.maxBody))
        router.add(middleware: MetricsMiddleware())

        router.get("/openapi.yaml") { _, _ in self.openAPIResponse() }
        router.get("/v1/openapi.yaml") { _, _ in self.openAPIResponse() }

        // GS-Engine's service API as its server answered (gse_api_server/service.py):
        // `{"err": null, "res": ...}`; errors `{"err": "<reason>", "res": null}` with the status.
        router.post("/gse/service/create") { request, _ in
            let p = try await self.auth.principal(request)
            let (change, out) = try await self.createService(p, definitionValue: try await self.gseDocument(request), apply: true)
            var res = out
            if case .object(var o) = out { o["action"] = .string(change.rawValue); res = .object(o) }
            return Self.gse(res)
        }
        router.get("/gse/service/list") { request, _ in
            let p = try await self.auth.principal(request)
            let ns = request.uri.queryParameters["namespace"].flatMap { $0.isEmpty ? nil : String($0) }
            let services = try await self.store.services(project: p.admin ? nil : p.project, namespace: ns)
            return Self.gse(.array(services.compactMap { $0["name"] }))
        }
        router.get("/gse/service/get") { request, _ in
            let p = try await self.auth.principal(request)
            let (ns, name) = try Self.gseName(request)
            let (json, _) = try await self.visibleService(ns, name, p)
            var res: [String: JSONValue] = [:]
            if case .object(let d)? = json["definition"] { res = d }
            // The Service's ports, as the original added them from `kubectl get services`.
            if case .array(let manifests)? = json["manifests"],
               let svc = manifests.first(where: { $0["kind"]?.stringValue == "Service" }), let ports = svc["spec"]?["ports"] {
                res["ports"] = ports
            }
            res["request_id"] = json["request_id"]
            res["state"] = json["state"]
            return Self.gse(.object(res))
        }
        router.get("/gse/service/status") { request, _ in
            let p = try await self.auth.principal(request)
            let (ns, name) = try Self.gseName(request)
            let (json, id) = try await self.visibleService(ns, name, p)
            return Self.gse(try await self.deploymentStatus(json, requestID: id, principal: p))
        }
        router.delete("/gse/service/delete") { request, _ in
            let p = try await self.auth.principal(request)
            let (ns, name) = try Self.gseName(try await self.gseDocument(request))
            _ = try await self.deleteService(ns, name, p)
            return Self.gse(.null)
        }
        router.post("/gse/service/delete") { request, _ in
            let p = try await self.auth.principal(request)
            let (ns, name) = try Self.gseName(try await self.gseDocument(request))
            _ = try await self.deleteService(ns, name, p)
            return Self.gse(.null)
        }
        router.get("/gse/service/:namespace/:name") { request, context in
            let p = try await self.auth.principal(request)
            return Self.gse(try await self.visibleService(try context.parameters.require("namespace"), try context.parameters.require("name"), p).0)
        }
        router.get("/gse/service/:namespace/:name/status") { request, context in
            let p = try await self.auth.principal(request)
            let (_, id) = try await self.visibleService(try context.parameters.require("namespace"), try context.parameters.require("name"), p)
            return Self.gse(try await self.visibleRequest(id, p, history: true))
        }
        router.delete("/gse/service/:namespace/:name") { request, context in
            let p = try await self.auth.principal(request)
            _ = try await self.deleteService(try context.parameters.require("namespace"), try context.parameters.require("name"), p)
            return Self.gse(.null)
        }

        // GS-Scheduler's front API.
        router.post("/scheduler/:policy") { request, context in
            let p = try await self.auth.principal(request)
            let name = try context.parameters.require("policy")
            guard let policy = SchedulingPolicy(name: name) else {
                throw Problem.notFound("no policy '\(name)': low, most, select, set, binpack")
            }
            let fields = try await self.frontFields(request, policy: policy)
            let r = try await self.submit(p, fields: fields)
            return Reply.json(.object(["request_id": .string(r.requestID), "state": "submitted"]), status: .accepted)
        }
        router.get("/scheduler/status/:id") { request, context in
            let p = try await self.auth.principal(request)
            return Reply.json(try await self.visibleRequest(try context.parameters.require("id"), p, history: true))
        }
        router.post("/scheduler/cancel/:id") { request, context in
            let p = try await self.auth.principal(request)
            let id = try context.parameters.require("id")
            try await self.cancel(id, p, withdraw: false, reason: "canceled by \(p.user)")
            return Reply.json(.object(["request_id": .string(id), "state": "canceling"]), status: .accepted)
        }

        // GS-Scheduler's front server at its own paths (GE_GSCH_server.py), answering as it did.
        router.post("/GEP/GSCH/test/:policy") { request, context in
            let p = try await self.auth.principal(request)
            let name = try context.parameters.require("policy")
            let policies: [String: SchedulingPolicy] = ["low": .lowLatency, "most": .mostRequested, "select": .selectedCluster]
            guard let policy = policies[name] else { throw Problem.notFound("no policy '\(name)': low, most or select") }
            var fields = try await self.frontFields(request, policy: policy, original: true)
            // IDs as the original's RequestJob made them: req-<uuid>.
            if fields["request_id"] == nil { fields["request_id"] = .string("req-" + RequestID.make()) }
            let r = try await self.submit(p, fields: fields)
            return Reply.json(.object(["result": .string("request_id:" + r.requestID)]))
        }
        router.get("/GEP/GSCH/dispatchedqueue/requestjobs/:id/status") { request, context in
            let p = try await self.auth.principal(request)
            let json = try await self.visibleRequest(try context.parameters.require("id"), p, history: false)
            let state = json["state"]?.stringValue ?? "submitted"
            return Reply.json(.object(["result": .string(Self.originalStatus(state)), "state": .string(state)]))
        }
        router.put("/GEP/GSCH/dispatchedqueue/requestjobs/:id/status") { request, context in
            let p = try await self.auth.principal(request)
            let id = try context.parameters.require("id")
            let changed = request.uri.queryParameters["changed_status"].map(String.init) ?? ""
            guard changed == "canceled" else {
                throw Problem(.badRequest, code: "invalid_value",
                              detail: "changed_status '\(changed)': only canceled is taken from clients; the scheduler records completed and failed itself",
                              field: "changed_status")
            }
            try await self.cancel(id, p, withdraw: false, reason: "canceled by \(p.user)")
            return Reply.json(.object(["result": "this job is canceled"]))
        }
        router.get("/GEP/GSCH/policyNameList") { request, _ in
            _ = try await self.auth.principal(request)
            return Reply.json(.object(["result": .array(SchedulingPolicy.allCases.map { .string($0.rawValue) })]))
        }

        // /v1: requests.
        router.post("/v1/requests") { request, _ in
            let p = try await self.auth.principal(request)
            guard case .object(let fields) = try await self.document(request) else {
                throw Problem(.badRequest, code: "wrong_type", detail: "expected an object", field: "")
            }
            let r = try await self.submit(p, fields: fields)
            return Reply.json(
                .object([
                    "request_id": .string(r.requestID), "state": "submitted", "policy": .string(r.policy.rawValue),
                    "project_name": .string(r.projectName), "links": .object(["self": .string("/v1/requests/\(r.requestID)")]),
                ]),
                status: .accepted, headers: [.location: "/v1/requests/\(r.requestID)"])
        }
        router.get("/v1/requests") { request, _ in
            let p = try await self.auth.principal(request)
            let q = request.uri.queryParameters
            var f = GatewayStore.RequestFilter()
            let projectParam = q["project"].flatMap { $0.isEmpty ? nil : String($0) }
            f.project = p.admin ? projectParam : p.project
            if let project = projectParam, !p.mayAccess(project: project) {
                throw Problem.forbidden("this token acts for project '\(p.project)'")
            }
            if let s = q["state"].flatMap({ $0.isEmpty ? nil : String($0) }) {
                guard RequestState(rawValue: s) != nil else {
                    throw Problem(.badRequest, code: "invalid_value", detail: "unknown state '\(s)'", field: "state")
                }
                f.state = s
            }
            if let pol = q["policy"].flatMap({ $0.isEmpty ? nil : String($0) }) {
                guard let known = SchedulingPolicy(name: pol) else {
                    throw Problem(.badRequest, code: "invalid_value", detail: "unknown policy '\(pol)'", field: "policy")
                }
                f.policy = known.rawValue
            }
            f.user = q["user"].flatMap { $0.isEmpty ? nil : String($0) }
            f.cluster = q["cluster"].flatMap { $0.isEmpty ? nil : String($0) }
            if let c = f.cluster, !KubeNames.isDNSLabel(c) { throw Problem(.badRequest, code: "invalid_value", detail: "'\(c)' is not a cluster name", field: "cluster") }
            f.name = q["name"].flatMap { $0.isEmpty ? nil : String($0) }
            if let n = f.name, n.utf8.count > 253 { throw Problem(.badRequest, code: "invalid_value", detail: "name is at most 253 characters", field: "name") }
            if let l = q["limit"] {
                guard let n = Int(l), (1...500).contains(n) else {
                    throw Problem(.badRequest, code: "invalid_value", detail: "limit is a number from 1 to 500", field: "limit")
                }
                f.limit = n
            }
            if let c = q["cursor"], !c.isEmpty {
                guard let cursor = Cursor.decode(String(c)) else {
                    throw Problem(.badRequest, code: "invalid_value", detail: "not a cursor this API gave", field: "cursor")
                }
                f.before = cursor
            }
            let (page, next) = try await self.store.requests(f)
            var o: [String: JSONValue] = ["requests": .array(page)]
            if let next { o["next_cursor"] = .string(next) }
            return Reply.json(.object(o))
        }
        router.get("/v1/requests/:id") { request, context in
            let p = try await self.auth.principal(request)
            return Reply.json(try await self.visibleRequest(try context.parameters.require("id"), p, history: true))
        }
        router.get("/v1/requests/:id/history") { request, context in
            let p = try await self.auth.principal(request)
            let id = try context.parameters.require("id")
            _ = try await self.visibleRequest(id, p, history: false)
            var after: Int64 = 0
            if let a = request.uri.queryParameters["after"] {
                guard let n = Int64(a), n >= 0 else {
                    throw Problem(.badRequest, code: "invalid_value", detail: "after is an event sequence number", field: "after")
                }
                after = n
            }
            return Reply.json(.object(["request_id": .string(id), "history": .array(try await self.store.history(id: id, after: after))]))
        }
        router.post("/v1/requests/:id/cancel") { request, context in
            let p = try await self.auth.principal(request)
            let id = try context.parameters.require("id")
            try await self.cancel(id, p, withdraw: false, reason: "canceled by \(p.user)")
            return Reply.json(.object(["request_id": .string(id), "state": "canceling"]), status: .accepted)
        }

        // /v1: services.
        router.post("/v1/services") { request, _ in
            let p = try await self.auth.principal(request)
            let (_, out) = try await self.createService(p, definitionValue: try await self.document(request))
            let ns = out["namespace"]?.stringValue ?? "", name = out["name"]?.stringValue ?? ""
            return Reply.json(out, status: .accepted, headers: [.location: "/v1/services/\(ns)/\(name)"])
        }
        router.get("/v1/services") { request, _ in
            let p = try await self.auth.principal(request)
            let ns = request.uri.queryParameters["namespace"].map(String.init)
            return Reply.json(.object(["services": .array(try await self.store.services(project: p.admin ? nil : p.project, namespace: ns))]))
        }
        router.get("/v1/services/:namespace/:name") { request, context in
            let p = try await self.auth.principal(request)
            return Reply.json(try await self.visibleService(try context.parameters.require("namespace"), try context.parameters.require("name"), p).0)
        }
        router.delete("/v1/services/:namespace/:name") { request, context in
            let p = try await self.auth.principal(request)
            return try await self.deleteService(try context.parameters.require("namespace"), try context.parameters.require("name"), p)
        }

        // /v1: clusters and nodes as the agents report them.
        router.get("/v1/clusters") { request, _ in
            let p = try await self.auth.principal(request)
            let now = Date()
            let list = try await self.visibleClusters(p).map { c, age in
                Gateway.clusterSummary(c, age: age, stale: now.timeIntervalSince(c.reportedAt) > Double(self.view.staleAfter.milliseconds) / 1000)
            }
            return Reply.json(.object(["clusters": .array(list)]))
        }
        router.get("/v1/clusters/:name") { request, context in
            let p = try await self.auth.principal(request)
            let (c, age) = try await self.visibleCluster(try context.parameters.require("name"), p)
            let stale = Date().timeIntervalSince(c.reportedAt) > Double(self.view.staleAfter.milliseconds) / 1000
            guard case .object(var o) = Gateway.clusterSummary(c, age: age, stale: stale) else { return Reply.json(.null) }
            o["node_list"] = .array(c.nodes.map(\.json))
            return Reply.json(.object(o))
        }
        router.get("/v1/clusters/:name/nodes") { request, context in
            let p = try await self.auth.principal(request)
            let (c, _) = try await self.visibleCluster(try context.parameters.require("name"), p)
            return Reply.json(.object(["cluster": .string(c.name), "nodes": .array(c.nodes.map(\.json))]))
        }

        // /v1: functions (faas-trigger): definitions in, replicas and scale events out.
        router.get("/v1/functions") { request, _ in
            let p = try await self.auth.principal(request)
            let owned = try await self.ownedNamespaces(p)
            return Reply.json(.object(["functions": .array(try await self.functions.list().filter { owned?.contains($0["namespace"]?.stringValue ?? "") ?? true })]))
        }
        router.get("/v1/functions/:namespace/:name") { request, context in
            let p = try await self.auth.principal(request)
            let ns = try context.parameters.require("namespace"), name = try context.parameters.require("name")
            if let owned = try await self.ownedNamespaces(p), !owned.contains(ns) { throw Problem.notFound("no function \(ns)/\(name)") }
            guard let f = try await self.functions.list().first(where: { $0["namespace"]?.stringValue == ns && $0["name"]?.stringValue == name }),
                  case .object(var o) = f else { throw Problem.notFound("no function \(ns)/\(name)") }
            o["events"] = .array(try await self.functions.events(namespace: ns, name: name))
            return Reply.json(.object(o))
        }
        router.post("/v1/functions") { request, _ in
            let p = try await self.auth.principal(request)
            guard p.admin else { throw Problem.forbidden("defining functions takes an admin token") }
            // One ScaledObject, or a file of them with their Secrets and TriggerAuthentications.
            _ = try self.kind(request, allowed: "application/json or application/yaml")
            let bytes = try await self.body(request)
            let parsed: [(object: ScaledObject, definition: JSONValue)]
            do {
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    throw MessageDecodingError(.malformedJSON, field: "", reason: "the body is not UTF-8")
                }
                let docs = try YAMLText.documents(text, path: "").filter { $0 != .null }
                if let at = docs.lazy.compactMap({ $0.pathOfNUL() }).first {
                    throw MessageDecodingError(.invalidValue, field: at, reason: "a NUL character, which cannot be stored")
                }
                parsed = try ScaledObject.parseSet(docs, defaultQueue: self.settings.defaultFunctionQueue)
            } catch let e as MessageDecodingError { throw Problem.badInput(e) }
            let cluster = request.uri.queryParameters["cluster"].map(String.init) ?? self.settings.functionCluster
            for (object, definition) in parsed { try await self.functions.upsert(object, definition: definition, cluster: cluster) }
            let answers: [JSONValue] = parsed.map { o, _ in
                .object([
                    "namespace": .string(o.namespace), "name": .string(o.name), "cluster": .string(cluster),
                    "target": .string(o.target.name), "notes": .array(o.notes.map(JSONValue.string)),
                ])
            }
            return Reply.json(answers.count == 1 ? answers[0] : .object(["functions": .array(answers)]), status: .created)
        }
        router.delete("/v1/functions/:namespace/:name") { request, context in
            let p = try await self.auth.principal(request)
            guard p.admin else { throw Problem.forbidden("deleting functions takes an admin token") }
            let ns = try context.parameters.require("namespace"), name = try context.parameters.require("name")
            guard try await self.functions.delete(namespace: ns, name: name) else { throw Problem.notFound("no function \(ns)/\(name)") }
            return Reply.json(.object(["namespace": .string(ns), "name": .string(name), "state": "deleted"]))
        }

        // /v1: autoscaling policies (the autoscaler's API) and their decisions.
        router.get("/v1/autoscaling") { request, _ in
            let p = try await self.auth.principal(request)
            let list = try await self.autoscaling.policies(project: p.admin ? nil : p.project)
            return Reply.json(.object(["policies": .array(list.map(\.json))]))
        }
        router.put("/v1/autoscaling/:namespace/:name") { request, context in
            let p = try await self.auth.principal(request)
            let ns = try context.parameters.require("namespace"), name = try context.parameters.require("name")
            guard case .object(var doc) = try await self.document(request) else {
                throw Problem(.badRequest, code: "wrong_type", detail: "expected an object", field: "")
            }
            for (k, v) in [("namespace", ns), ("name", name)] {
                if let given = doc[k]?.stringValue, given != v {
                    throw Problem(.badRequest, code: "invalid_value", detail: "'\(given)' differs from the path's '\(v)'", field: k)
                }
                doc[k] = .string(v)
            }
            // Replacing a policy may leave out its request: the existing one's is kept.
            let existing = try await self.autoscaling.policy(namespace: ns, name: name)
            if let existing, !p.mayAccess(project: existing.projectName) { throw Problem.notFound("no autoscaling policy \(ns)/\(name)") }
            if doc["request_id"] == nil, let existing { doc["request_id"] = .string(existing.requestID) }
            let policy: AutoscalePolicy
            do { policy = try AutoscalePolicy.decode(.object(doc), project: nil) } catch let e as MessageDecodingError { throw Problem.badInput(e) }
            // The request named must be one this token may see; the policy belongs to its project.
            _ = try await self.visibleRequest(policy.requestID, p, history: false)
            guard let placed = try await self.autoscaling.request(id: policy.requestID) else { throw Problem.notFound("no request '\(policy.requestID)'") }
            var owned = policy
            owned.projectName = placed.projectName
            try await self.autoscaling.upsert(owned, source: "api")
            return Reply.json(owned.json)
        }
        router.get("/v1/autoscaling/:namespace/:name") { request, context in
            let p = try await self.auth.principal(request)
            let ns = try context.parameters.require("namespace"), name = try context.parameters.require("name")
            guard let policy = try await self.autoscaling.policy(namespace: ns, name: name), p.mayAccess(project: policy.projectName) else {
                throw Problem.notFound("no autoscaling policy \(ns)/\(name)")
            }
            guard case .object(var o) = policy.json else { throw Problem.notFound("no autoscaling policy \(ns)/\(name)") }
            let placements = try await self.autoscaling.placements(namespace: ns, name: name)
            o["placements"] = .array(placements.map(\.json))
            o["replicas"] = .number(Double(placements.reduce(0) { $0 + $1.replicas }))
            o["decisions"] = .array(try await self.autoscaling.decisions(namespace: ns, name: name, limit: 20).map(\.json))
            return Reply.json(.object(o))
        }
        router.get("/v1/autoscaling/:namespace/:name/decisions") { request, context in
            let p = try await self.auth.principal(request)
            let ns = try context.parameters.require("namespace"), name = try context.parameters.require("name")
            guard let policy = try await self.autoscaling.policy(namespace: ns, name: name), p.mayAccess(project: policy.projectName) else {
                throw Problem.notFound("no autoscaling policy \(ns)/\(name)")
            }
            let q = request.uri.queryParameters
            let limit = q["limit"].map { Int(String($0)) ?? -1 } ?? 50
            guard (1...500).contains(limit) else { throw Problem(.badRequest, code: "invalid_value", detail: "limit is 1 to 500", field: "limit") }
            var before: Int64?
            if let b = q["before"] {
                guard let v = Int64(String(b)), v > 0 else { throw Problem(.badRequest, code: "invalid_value", detail: "before is a decision ID", field: "before") }
                before = v
            }
            let list = try await self.autoscaling.decisions(namespace: ns, name: name, limit: limit, before: before)
            var out: [String: JSONValue] = ["decisions": .array(list.map(\.json))]
            if list.count == limit, let last = list.last { out["next"] = .string("/v1/autoscaling/\(ns)/\(name)/decisions?limit=\(limit)&before=\(last.id)") }
            return Reply.json(.object(out))
        }
        router.delete("/v1/autoscaling/:namespace/:name") { request, context in
            let p = try await self.auth.principal(request)
            let ns = try context.parameters.require("namespace"), name = try context.parameters.require("name")
            guard let policy = try await self.autoscaling.policy(namespace: ns, name: name), p.mayAccess(project: policy.projectName) else {
                throw Problem.notFound("no autoscaling policy \(ns)/\(name)")
            }
            for o in try await self.autoscaling.placements(namespace: ns, name: name) where !o.home {
                try await self.publish(CancelRequest(requestID: o.requestID, reason: "autoscaling policy \(ns)/\(name) deleted", withdraw: true).envelope, key: o.requestID)
            }
            _ = try await self.autoscaling.delete(namespace: ns, name: name)
            return Response(status: .noContent)
        }

        // /v1: workflows (GS-AIflow): DAGs of services deployed in dependency order.
        router.post("/v1/workflows") { request, _ in
            let p = try await self.auth.principal(request)
            let doc = try await self.document(request)
            let spec: WorkflowSpec
            do { spec = try WorkflowSpec.decode(doc) } catch let e as MessageDecodingError { throw Problem.badInput(e) }
            _ = try await self.admitted(project: p.project) { policy throws(AdmissionError) in
                try Admission.checkNamespace(spec.namespace, project: p.project, policy: policy)
            }
            let id: String
            do { id = try await self.workflows.create(spec, source: doc, project: p.project, user: p.user, workspace: p.workspace) } catch let e as WorkflowError {
                throw Problem.forbidden("namespace '\(spec.namespace)': \(p.admin ? e.description : "it belongs to another project")")
            }
            return Reply.json(.object([
                "id": .string(id), "name": .string(spec.name), "namespace": .string(spec.namespace), "state": "running",
                "order": .array(spec.steps.map { .string($0.name) }), "links": .object(["self": .string("/v1/workflows/\(id)")]),
            ]), status: .accepted, headers: [.location: "/v1/workflows/\(id)"])
        }
        router.get("/v1/workflows") { request, _ in
            let p = try await self.auth.principal(request)
            return Reply.json(.object(["workflows": .array(try await self.workflows.list(project: p.admin ? nil : p.project))]))
        }
        router.get("/v1/workflows/:id") { request, context in
            let p = try await self.auth.principal(request)
            let id = try context.parameters.require("id")
            guard let w = try await self.workflows.get(id: id, project: p.admin ? nil : p.project) else { throw Problem.notFound("no workflow '\(id)'") }
            return Reply.json(w)
        }
        router.delete("/v1/workflows/:id") { request, context in
            let p = try await self.auth.principal(request)
            let id = try context.parameters.require("id")
            guard let requests = try await self.workflows.cancel(id: id, project: p.admin ? nil : p.project) else { throw Problem.notFound("no workflow '\(id)'") }
            for rid in requests {
                try await self.publish(CancelRequest(requestID: rid, reason: "workflow \(id) deleted", withdraw: true).envelope, key: rid)
            }
            return Reply.json(.object(["id": .string(id), "state": "canceled", "withdrawn": .array(requests.map(JSONValue.string))]), status: .accepted)
        }

        // /v1: notifications (stored by the notifier) and pod logs (through the agent).
        router.get("/v1/notifications") { request, _ in
            let p = try await self.auth.principal(request)
            // Detection events come from shared queues and belong to no project.
            guard p.admin else { throw Problem.forbidden("notifications belong to no project; reading them takes an admin token") }
            let q = request.uri.queryParameters
            let limit = q["limit"].map { Int(String($0)) ?? -1 } ?? 100
            guard (1...1000).contains(limit) else { throw Problem(.badRequest, code: "invalid_value", detail: "limit is 1 to 1000", field: "limit") }
            return Reply.json(.object(["notifications": .array(try await self.notifications.list(queue: q["queue"].map(String.init), limit: limit))]))
        }
        router.get("/v1/clusters/:name/pods/:namespace/:pod/logs") { request, context in
            let p = try await self.auth.principal(request)
            let (c, _) = try await self.visibleCluster(try context.parameters.require("name"), p)
            let ns = try context.parameters.require("namespace"), pod = try context.parameters.require("pod")
            guard KubeNames.isDNSLabel(ns) else { throw Problem(.badRequest, code: "invalid_value", detail: "'\(ns)' is not a namespace", field: "namespace") }
            let owner = try await self.store.namespaceOwner(ns)
            guard p.admin || ns == KubeNames.namespace(forProject: p.project) || owner == p.project else {
                throw Problem.notFound("no pod \(ns)/\(pod) for this project")
            }
            let tail = request.uri.queryParameters["tail"].map { Int(String($0)) ?? -1 } ?? 200
            guard (1...5000).contains(tail) else { throw Problem(.badRequest, code: "invalid_value", detail: "tail is 1 to 5000", field: "tail") }
            guard let rpc = self.rpc else { throw Problem(.serviceUnavailable, code: "unavailable", detail: "pod logs are not enabled on this gateway", field: nil) }
            let answer: JSONValue
            do {
                answer = try await rpc.call(cluster: c.name, hcode: .podLogs, msg: ["namespace": .string(ns), "pod": .string(pod), "tail": .number(Double(tail))])
            } catch let e as AgentRPC.Timeout {
                throw Problem(.gatewayTimeout, code: "timeout", detail: e.description, field: nil)
            } catch let e as AgentRPC.Refused {
                throw Problem(.badGateway, code: "agent_error", detail: e.reason, field: nil)
            }
            guard answer["found"] == .bool(true) else { throw Problem.notFound("no pod \(ns)/\(pod) in cluster \(c.name)") }
            return Reply.json(.object(["cluster": .string(c.name), "namespace": .string(ns), "pod": .string(pod), "lines": answer["lines"] ?? .array([])]))
        }

        addInventoryRoutes(to: router)
        addManagementRoutes(to: router)

        // The web console: one page; its data comes from /v1 with the same tokens.
        router.get("/console") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"], body: .init(byteBuffer: ByteBuffer(bytes: self.console)))
        }

        // /v1: projects, tokens, identity.
        router.get("/v1/whoami") { request, _ in
            let p = try await self.auth.principal(request)
            return Reply.json(.object([
                "token_id": .string(p.tokenID), "user_name": .string(p.user), "workspace_name": .string(p.workspace),
                "project_name": .string(p.project), "admin": .bool(p.admin),
            ]))
        }
        router.get("/v1/projects/:project/clusters") { request, context in
            let project = try await self.readableProject(request, context)
            return Reply.json(.object(["project_name": .string(project), "clusters": .array(try await self.store.clusters(project: project).sorted().map(JSONValue.string))]))
        }
        router.put("/v1/projects/:project/clusters") { request, context in
            let project = try await self.adminProject(request, context, "binding clusters to projects takes an admin token")
            let doc = try await self.document(request)
            let names: [String]
            do {
                let r = try FieldReader(doc, path: "")
                try r.rejectUnknown(allowed: ["clusters"])
                guard let list = try r.optionalStringList("clusters") else {
                    throw MessageDecodingError(.missingField, field: "clusters", reason: "required: the project's cluster names")
                }
                names = list
            } catch let e as MessageDecodingError { throw Problem.badInput(e) }
            try await self.store.bind(project: project, clusters: names, replace: true)
            return Reply.json(.object(["project_name": .string(project), "clusters": .array(names.sorted().map(JSONValue.string))]))
        }
        router.get("/v1/projects/:project/namespaces") { request, context in
            let project = try await self.readableProject(request, context)
            let bound = try await self.policies.namespaces(project: project)
            return Reply.json(.object([
                "project_name": .string(project), "own": .string(KubeNames.namespace(forProject: project)),
                "namespaces": .array(bound.map(JSONValue.string)),
            ]))
        }
        router.put("/v1/projects/:project/namespaces") { request, context in
            let project = try await self.adminProject(request, context, "binding namespaces to projects takes an admin token")
            let names: [String]
            do {
                let r = try FieldReader(try await self.document(request), path: "")
                try r.rejectUnknown(allowed: ["namespaces"])
                guard let list = try r.optionalStringList("namespaces") else {
                    throw MessageDecodingError(.missingField, field: "namespaces", reason: "required: the namespaces the project owns")
                }
                names = list
            } catch let e as MessageDecodingError { throw Problem.badInput(e) }
            do {
                try await self.policies.bind(project: project, namespaces: names, replace: true)
            } catch let e as ProjectPolicyStore.BindError {
                switch e {
                case .taken(let ns, let owner): throw Problem.conflict("namespace '\(ns)' is bound to project '\(owner)'")
                case .system(let ns): throw Problem(.forbidden, code: "system_namespace", detail: "namespace '\(ns)' is a system namespace; no project may own it", field: "namespaces")
                case .invalid(let ns): throw Problem(.badRequest, code: "invalid_value", detail: "'\(ns)' is not a namespace name (RFC 1123 label)", field: "namespaces")
                }
            }
            return Reply.json(.object(["project_name": .string(project), "namespaces": .array(names.sorted().map(JSONValue.string))]))
        }
        router.get("/v1/projects/:project/policy") { request, context in
            let project = try await self.readableProject(request, context)
            let policy = try await self.policies.policy(project: project)
            return Reply.json(policy.json(project: project))
        }
        router.put("/v1/projects/:project/policy") { request, context in
            let project = try await self.adminProject(request, context, "setting a project's policy takes an admin token")
            let level: ProjectPolicy.PodSecurity
            let kinds: [String]?
            do {
                let r = try FieldReader(try await self.document(request), path: "")
                try r.rejectUnknown(allowed: ["pod_security", "kinds"])
                let name = try r.optionalString("pod_security") ?? "baseline"
                guard let l = ProjectPolicy.PodSecurity(rawValue: name) else {
                    throw MessageDecodingError(.invalidValue, field: "pod_security", reason: "'\(name)' is not baseline or restricted")
                }
                level = l
                kinds = try r.optionalStringList("kinds")
            } catch let e as MessageDecodingError { throw Problem.badInput(e) }
            try await self.policies.setPolicy(project: project, podSecurity: level, kinds: kinds)
            let policy = try await self.policies.policy(project: project)
            return Reply.json(policy.json(project: project))
        }
        router.get("/v1/projects/:project/producer-key") { request, context in
            let project = try await self.adminProject(request, context, "a project's producer key is handed out with an admin token")
            guard let signing = self.settings.producers else {
                throw Problem(.notFound, code: "not_found", detail: "this gateway has no producers.secret: producers are trusted, not signed")
            }
            return Reply.json(.object([
                "project_name": .string(project), "key": .string(Hex.encode(signing.key(project: project))),
                "headers": .object(["project": .string(ProducerSigning.projectHeader), "signature": .string(ProducerSigning.signatureHeader)]),
                "signature": "v1=hex(HMAC-SHA-256(key, record key + 0x00 + record value))",
            ]))
        }
        router.post("/v1/tokens") { request, _ in
            let p = try await self.auth.principal(request)
            guard p.admin else { throw Problem.forbidden("creating tokens takes an admin token") }
            let doc = try await self.document(request)
            let user: String, workspace: String, project: String, admin: Bool, description: String?
            do {
                let r = try FieldReader(doc, path: "")
                try r.rejectUnknown(allowed: ["user_name", "workspace_name", "project_name", "admin", "description"])
                user = try r.string("user_name")
                workspace = try r.string("workspace_name")
                project = try r.string("project_name")
                admin = try r.optionalBool("admin") ?? false
                description = try r.optionalString("description")
                for (k, v) in [("user_name", user), ("workspace_name", workspace), ("project_name", project)] where v.isEmpty || v.count > 128 {
                    throw MessageDecodingError(.invalidValue, field: k, reason: "1 to 128 characters")
                }
            } catch let e as MessageDecodingError { throw Problem.badInput(e) }
            let (id, token) = try await self.tokens.create(user: user, workspace: workspace, project: project, admin: admin, description: description)
            return Reply.json(
                .object(["id": .string(id), "token": .string(token), "user_name": .string(user), "workspace_name": .string(workspace),
                         "project_name": .string(project), "admin": .bool(admin)]),
                status: .created)
        }
        router.get("/v1/tokens") { request, _ in
            let p = try await self.auth.principal(request)
            guard p.admin else { throw Problem.forbidden("listing tokens takes an admin token") }
            return Reply.json(.object(["tokens": .array(try await self.tokens.list(project: request.uri.queryParameters["project"].map(String.init)))]))
        }
        router.delete("/v1/tokens/:id") { request, context in
            let p = try await self.auth.principal(request)
            guard p.admin else { throw Problem.forbidden("revoking tokens takes an admin token") }
            let id = try context.parameters.require("id")
            guard try await self.tokens.revoke(id: id) else { throw Problem.notFound("no active token '\(id)'") }
            return Response(status: .noContent)
        }
    }

    /// Every route, for 405 answers (keep in step with `addRoutes`).
    static let routeTable: [(method: String, path: [Substring])] = [
        ("GET", "/openapi.yaml"), ("GET", "/v1/openapi.yaml"),
        ("POST", "/gse/service/create"), ("GET", "/gse/service/list"), ("GET", "/gse/service/get"), ("GET", "/gse/service/status"),
        ("DELETE", "/gse/service/delete"), ("GET", "/gse/service/:namespace/:name"),
        ("DELETE", "/gse/service/:namespace/:name"), ("GET", "/gse/service/:namespace/:name/status"), ("POST", "/gse/service/delete"),
        ("POST", "/scheduler/:policy"), ("GET", "/scheduler/status/:id"), ("POST", "/scheduler/cancel/:id"),
        ("POST", "/GEP/GSCH/test/:policy"), ("GET", "/GEP/GSCH/dispatchedqueue/requestjobs/:id/status"),
        ("PUT", "/GEP/GSCH/dispatchedqueue/requestjobs/:id/status"), ("GET", "/GEP/GSCH/policyNameList"),
        ("POST", "/v1/requests"), ("GET", "/v1/requests"), ("GET", "/v1/requests/:id"), ("GET", "/v1/requests/:id/history"),
        ("POST", "/v1/requests/:id/cancel"), ("POST", "/v1/services"), ("GET", "/v1/services"),
        ("GET", "/v1/services/:namespace/:name"), ("DELETE", "/v1/services/:namespace/:name"),
        ("GET", "/v1/clusters"), ("GET", "/v1/clusters/:name"), ("GET", "/v1/clusters/:name/nodes"), ("GET", "/v1/whoami"),
        ("GET", "/v1/projects/:project/clusters"), ("PUT", "/v1/projects/:project/clusters"),
        ("GET", "/v1/projects/:project/namespaces"), ("PUT", "/v1/projects/:project/namespaces"),
        ("GET", "/v1/projects/:project/policy"), ("PUT", "/v1/projects/:project/policy"), ("GET", "/v1/projects/:project/producer-key"),
        ("POST", "/v1/tokens"), ("GET", "/v1/tokens"), ("DELETE", "/v1/tokens/:id"),
        ("GET", "/v1/functions"), ("POST", "/v1/functions"), ("DELETE", "/v1/functions/:namespace/:name"), ("GET", "/v1/functions/:namespace/:name"),
        ("GET", "/v1/autoscaling"), ("PUT", "/v1/autoscaling/:namespace/:name"), ("GET", "/v1/autoscaling/:namespace/:name"),
        ("DELETE", "/v1/autoscaling/:namespace/:name"), ("GET", "/v1/autoscaling/:namespace/:name/decisions"),
        ("POST", "/v1/workflows"), ("GET", "/v1/workflows"), ("GET", "/v1/workflows/:id"), ("DELETE", "/v1/workflows/:id"),
        ("GET", "/v1/notifications"), ("GET", "/v1/clusters/:name/pods/:namespace/:pod/logs"), ("GET", "/console"),
        ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"),
    ].map { ($0.0, $0.1.split(separator: "/")) } + (inventoryRoutes + managementRoutes).map { ($0.method, $0.path.split(separator: "/")) }

    /// The project a route's `:project` names, when the token may read it (its own, or any
    /// for an admin); 403 otherwise.
    func readableProject(_ request: Request, _ context: some RequestContext) async throws -> String {
        let p = try await auth.principal(request)
        let project = try context.parameters.require("project")
        guard p.mayAccess(project: project) else { throw Problem.forbidden("this token acts for project '\(p.project)'") }
        return project
    }

    /// The project a route's `:project` names, for an admin token; 403 with `refusal` otherwise.
    func adminProject(_ request: Request, _ context: some RequestContext, _ refusal: String) async throws -> String {
        guard try await auth.principal(request).admin else { throw Problem.forbidden(refusal) }
        return try context.parameters.require("project")
    }

    /// The namespaces a principal may read in: its project's own and bound ones; nil for
    /// an admin (every namespace).
    func ownedNamespaces(_ p: Principal) async throws -> Set<String>? {
        guard !p.admin else { return nil }
        return try await policies.policy(project: p.project).namespaces.union([KubeNames.namespace(forProject: p.project)])
    }

    func openAPIResponse() -> Response {
        Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: ByteBuffer(bytes: openAPI)))
    }

    func visibleCluster(_ name: String, _ p: Principal) async throws -> (ClusterState, age: TimeInterval) {
        guard let hit = try await visibleClusters(p).first(where: { $0.0.name == name }) else {
            throw Problem.notFound("no cluster '\(name)' reported for this project")
        }
        return hit
    }

    static let frontFieldNames: Set<String> = [
        "yaml_file", "user_name", "workspace_name", "project_name", "select_clusters", "mode", "source_cluster",
        "source_node", "pod_name", "select_cluster", "select_node", "fast_option", "callback_url", "request_id",
    ]

    /// GS-Engine's answer: `{"err": null, "res": ...}`.
    static func gse(_ res: JSONValue) -> Response { Reply.json(.object(["err": .null, "res": res])) }

    /// `?name=&namespace=`, both required as the original's yamale schema had them.
    static func gseName(_ request: Request) throws -> (String, String) {
        let q = request.uri.queryParameters
        var doc: [String: JSONValue] = [:]
        if let n = q["name"] { doc["name"] = .string(String(n)) }
        if let ns = q["namespace"] { doc["namespace"] = .string(String(ns)) }
        return try gseName(.object(doc))
    }

    static func gseName(_ doc: JSONValue) throws -> (String, String) {
        for key in ["name", "namespace"] {
            guard let v = doc[key], v != .null else { throw Problem(.badRequest, code: "missing_field", detail: "\(key): Required field missing", field: key) }
            guard case .string(let s) = v, !s.isEmpty else {
                throw Problem(.badRequest, code: "wrong_type", detail: "\(key): '\(v.kindName)' is not a str.", field: key)
            }
        }
        return (doc["namespace"]!.stringValue!, doc["name"]!.stringValue!)
    }

    /// GS-Engine's body: YAML (JSON included) whatever the Content-Type says, as Flask's
    /// `request.data` was read; `curl --data-binary @svc.yaml` sends it form-encoded.
    func gseDocument(_ request: Request) async throws -> JSONValue {
        let bytes = try await body(request)
        guard !bytes.isEmpty else { throw Problem(.badRequest, code: "missing_field", detail: "the body is empty", field: "") }
        do {
            guard let text = String(validating: bytes, as: UTF8.self) else {
                throw MessageDecodingError(.malformedJSON, field: "", reason: "the body is not UTF-8")
            }
            let value = try YAMLText.document(text, path: "")
            if let at = value.pathOfNUL() { throw MessageDecodingError(.invalidValue, field: at, reason: "a NUL character, which cannot be stored") }
            return value
        } catch let e as MessageDecodingError {
            throw Problem.badInput(e)
        }
    }

    /// The Deployment's status as `kubectl get deployment -o json` gives `.status`, from what
    /// the scheduler recorded: the placed replicas are ready once the agents reported the
    /// rollout done (state `completed`).
    func deploymentStatus(_ service: JSONValue, requestID: String, principal: Principal) async throws -> JSONValue {
        var replicas = 1
        if case .array(let manifests)? = service["manifests"],
           let d = manifests.first(where: { $0["kind"]?.stringValue == "Deployment" }), let n = d["spec"]?["replicas"]?.numberValue.map({ Int($0) }) {
            replicas = n
        }
        let state = service["state"]?.stringValue ?? "submitted"
        var clusters: [JSONValue] = []
        if case .array(let parts)? = service["placement"]?["parts"] {
            let placed = parts.compactMap { $0["replicas"]?.numberValue.map { Int($0) } }.reduce(0, +)
            if placed > 0 { replicas = placed }
            clusters = parts.compactMap { $0["cluster"] }
        }
        let ready = state == "completed" ? replicas : 0
        var condition: [String: JSONValue] = [
            "type": "Available", "status": .string(ready == replicas && ready > 0 ? "True" : "False"),
            "reason": .string(state == "completed" ? "MinimumReplicasAvailable" : "Request" + state.prefix(1).uppercased() + state.dropFirst()),
        ]
        if let reason = service["reason"]?.stringValue { condition["message"] = .string(reason) }
        var o: [String: JSONValue] = [
            "replicas": .number(Double(replicas)), "updatedReplicas": .number(Double(ready)),
            "readyReplicas": .number(Double(ready)), "availableReplicas": .number(Double(ready)),
            "conditions": .array([.object(condition)]),
            "request_id": .string(requestID), "state": .string(state), "clusters": .array(clusters),
        ]
        if ready < replicas { o["unavailableReplicas"] = .number(Double(replicas - ready)) }
        return .object(o)
    }

    /// The original queue's status words for the suite's states (GE_GSCH_queue.py).
    static func originalStatus(_ state: String) -> String {
        switch state {
        case "dispatched": return "dispatched"
        case "scheduling", "applying": return "scheduling"
        case "completed": return "completed"
        case "failed", "rejected": return "failed"
        case "canceled": return "canceled"
        default: return "enqueue"
        }
    }

    /// The modes the front server took for each policy; `default` is `fromnode` for low
    /// latency and `cluster` for selected clusters.
    static let frontModes: [SchedulingPolicy: Set<String>] = [
        .lowLatency: ["default", "fromnode", "frompod"], .selectedCluster: ["default", "cluster", "node"],
    ]

    /// GS-Scheduler's form fields as an hcode 100 `msg`. `select_clusters` is a Python list
    /// literal (`['c1',['c2','c3']]`) or JSON, read as data and never evaluated.
    func frontFields(_ request: Request, policy: SchedulingPolicy, original: Bool = false) async throws -> [String: JSONValue] {
        let k = try kind(request, allowed: "multipart/form-data or application/x-www-form-urlencoded")
        let bytes = try await body(request)
        let form: [String: String]?
        switch k {
        case .form: form = FormData.urlEncoded(bytes)
        case .multipart(let boundary): form = FormData.multipart(bytes, boundary: boundary)
        default: throw Problem(.unsupportedMediaType, code: "unsupported_media_type", detail: "send the form as multipart/form-data or application/x-www-form-urlencoded")
        }
        guard let form else { throw Problem(.badRequest, code: "malformed_body", detail: "the form could not be read") }
        if let unknown = form.keys.sorted().first(where: { !Self.frontFieldNames.contains($0) }) {
            throw Problem(.badRequest, code: "unknown_field", detail: "'\(unknown)' is not a field of this API", field: unknown)
        }
        guard let yaml = form["yaml_file"], !yaml.isEmpty else {
            throw Problem(.badRequest, code: "missing_field", detail: "required: the workload as YAML", field: "yaml_file")
        }
        var msg: [String: JSONValue] = ["policy": .string(policy.rawValue), "workload": .string(yaml)]
        for key in ["user_name", "workspace_name", "project_name", "request_id"] {
            if let v = form[key], !v.isEmpty { msg[key] = .string(v) }
        }
        if let raw = form["callback_url"], !raw.isEmpty {
            do { msg["callback_url"] = .string(try CallbackURL.check(raw, allowPrivate: settings.callbackAllowPrivate)) } catch {
                throw Problem(.badRequest, code: "invalid_value", detail: "\(error)", field: "callback_url")
            }
        }
        if let fast = form["fast_option"], !fast.isEmpty {
            switch fast.lowercased() {
            case "fast", "true", "1", "yes", "on": msg["fast_option"] = true
            case "false", "0", "no", "off", "normal": msg["fast_option"] = false
            default: throw Problem(.badRequest, code: "invalid_value", detail: "fast_option is fast (or true/false)", field: "fast_option")
            }
        }
        var parameters: [String: JSONValue] = [:]
        for key in ["mode", "source_cluster", "source_node", "pod_name", "select_cluster", "select_node"] {
            if let v = form[key], !v.isEmpty { parameters[key] = .string(v) }
        }
        if let mode = form["mode"], !mode.isEmpty, let modes = Self.frontModes[policy], !modes.contains(mode) {
            throw Problem(.badRequest, code: "invalid_value", detail: "mode '\(mode)' is not one of \(modes.sorted().joined(separator: ", "))", field: "mode")
        }
        if policy == .lowLatency, form["mode"] == "frompod", (form["pod_name"] ?? "").isEmpty {
            throw Problem(.badRequest, code: "missing_field", detail: "frompod mode needs pod_name", field: "pod_name")
        }
        if let text = form["select_clusters"], !text.isEmpty {
            let value: JSONValue
            do { value = try PythonLiteral.stringList(text) } catch {
                throw Problem(.badRequest, code: "invalid_value", detail: "select_clusters must be a list such as ['c1',['c2','c3']]: \(error)", field: "select_clusters")
            }
            parameters["select_clusters"] = value
        }
        msg["parameters"] = .object(parameters)
        return msg
    }
}

/// Turns every error into problem+json: the router's own 404, a known path with another
/// method (405 with Allow), body limits, and anything unexpected (logged, answered 500
/// without internals).
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger
    let routes: [(method: String, path: [Substring])]
    let maxBody: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await problems(request, context: context, next: next)
        } catch var p as Problem {
            // The original APIs keep their own error bodies (GS-Scheduler's `Error`, GS-Engine's `err`).
            let path = request.uri.path
            if path.hasPrefix("/GEP/") { p.dialect = .gsch } else if path == "/gse" || path.hasPrefix("/gse/") { p.dialect = .gse }
            throw p
        }
    }

    func problems(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        // CONNECT asks for a tunnel: refused, and the connection closed.
        if request.method == .connect {
            // Past a CONNECT the HTTP parser reads no more requests: the connection is closed
            // once the answer is out.
            if let channel = (context as? GatewayRequestContext)?.channel {
                channel.eventLoop.scheduleTask(in: .milliseconds(200)) { channel.close(promise: nil) }
            }
            var p = Problem(.methodNotAllowed, code: "method_not_allowed", detail: "CONNECT is not served here")
            p.headers[.connection] = "close"
            throw p
        }
        // A declared length over the limit is refused before any of the body is read (with
        // `Expect: 100-continue`, before the client sends it).
        if let declared = request.headers[.contentLength] {
            guard let n = Int(declared), n >= 0 else {
                throw Problem(.badRequest, code: "malformed_body", detail: "Content-Length '\(declared)' is not a length")
            }
            if n > maxBody {
                var p = Problem(.contentTooLarge, code: "too_large", detail: "the body is larger than \(maxBody) bytes")
                p.headers[.connection] = "close"
                throw p
            }
        }
        // PostgreSQL cannot hold NUL in text: refuse it in the path and query up front.
        if request.uri.description.lowercased().contains("%00") {
            throw Problem(.badRequest, code: "invalid_value", detail: "a NUL character (%00) in the URL")
        }
        do {
            return try await next(request, context)
        } catch let p as Problem {
            throw p
        } catch let e as HTTPError where e.status == .notFound {
            let segments = request.uri.path.split(separator: "/")
            let allowed = routes.filter { r in
                r.path.count == segments.count && zip(r.path, segments).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
            }.map(\.method)
            guard !allowed.isEmpty else { throw Problem.notFound("no such path: \(request.uri.path)") }
            var p = Problem(.methodNotAllowed, code: "method_not_allowed", detail: "\(request.method) is not allowed here; use \(allowed.joined(separator: ", "))")
            p.headers[.allow] = allowed.joined(separator: ", ")
            throw p
        } catch let e as HTTPError {
            let code: String
            switch e.status {
            case .notFound: code = "not_found"
            case .methodNotAllowed: code = "method_not_allowed"
            case .contentTooLarge: code = "too_large"
            default: code = e.status.code < 500 ? "bad_request" : "internal"
            }
            throw Problem(e.status, code: code, detail: e.body ?? e.status.reasonPhrase)
        } catch let e as any HTTPResponseError {
            throw Problem(e.status, code: e.status == .contentTooLarge ? "too_large" : "bad_request", detail: e.status.reasonPhrase)
        } catch {
            logger.error("request failed", metadata: ["path": .string(request.uri.path), LogKeys.error: "\(error)"])
            throw Problem(.internalServerError, code: "internal", detail: "the request failed inside the gateway; it is logged")
        }
    }
}

/// The gateway's request context: Hummingbird's basics and the connection's channel (to close
/// a connection that must not be kept, such as one that sent CONNECT).
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: (any Channel)?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
