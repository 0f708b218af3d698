import Foundation
import GEdgeClusters
import GEdgeCore
import GEdgePlacement
import GEdgePostgres
import Hummingbird

/// Projects (create, list, delete) and clusters registered in push mode (register,
/// list, unregister): what GS-AIflow's console offered an administrator. Credentials go
/// in and are never answered, logged or shown.
extension Gateway {
    static let managementRoutes: [(method: String, path: String)] = [
        ("GET", "/v1/projects"), ("POST", "/v1/projects"), ("DELETE", "/v1/projects/:project"),
        ("GET", "/v1/registered-clusters"), ("PUT", "/v1/registered-clusters/:cluster"), ("DELETE", "/v1/registered-clusters/:cluster"),
    ]

    static let maxTokenBytes = 16384
    static let maxCABytes = 65536

    func addManagementRoutes(to router: Router<GatewayRequestContext>) {
        router.get("/v1/projects") { request, _ in
            let p = try await self.auth.principal(request)
            let names = p.admin ? try await self.projectNames() : [p.project]
            var out: [JSONValue] = []
            for name in names { out.append(try await self.projectSummary(name)) }
            return Reply.json(.object(["projects": .array(out)]))
        }
        router.post("/v1/projects") { request, _ in
            let p = try await self.auth.principal(request)
            guard p.admin else { throw Problem.forbidden("creating projects takes an admin token") }
            let doc = try await self.document(request)
            let name: String
            do {
                let r = try FieldReader(doc, path: "")
                try r.rejectUnknown(allowed: ["name"])
                name = try r.string("name")
            } catch let e as MessageDecodingError { throw Problem.badInput(e) }
            guard KubeNames.isDNSLabel(name) else {
                throw Problem(.badRequest, code: "invalid_value", detail: "'\(name)' is not a project name: lower-case letters, digits and '-', 63 at most", field: "name")
            }
            let rows = try await self.store.pool.query(
                "INSERT INTO projects (name, created_by) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING name", [.text(name), .text(p.user)])
            guard !rows.isEmpty else { throw Problem(.conflict, code: "exists", detail: "project '\(name)' exists", field: "name") }
            self.logger.info("project created", metadata: ["project": .string(name), "user": .string(p.user)])
            return Reply.json(try await self.projectSummary(name), status: .created)
        }
        router.delete("/v1/projects/:project") { request, context in
            let project = try await self.adminProject(request, context, "deleting projects takes an admin token")
            guard try await self.projectNames().contains(project) else { throw Problem.notFound("no project '\(project)'") }
            // What still runs is the project's: delete its services and workflows first.
            let services = try await self.store.services(project: project, namespace: nil).count
            let workflows = try await self.store.pool.query(
                "SELECT count(*) AS n FROM workflows WHERE project_name = $1 AND state NOT IN ('completed', 'failed', 'canceled')", [.text(project)])
                .first?.decode("n", as: Int.self) ?? 0
            guard services == 0, workflows == 0 else {
                throw Problem(.conflict, code: "in_use", detail: "project '\(project)' still has \(services) service(s) and \(workflows) running workflow(s); delete them first")
            }
            let revoked = try await self.store.pool.transaction { c -> Int in
                let n = try await c.execute("UPDATE api_tokens SET revoked_at = clock_timestamp() WHERE project_name = $1 AND revoked_at IS NULL", [.text(project)])
                try await c.execute("DELETE FROM project_clusters WHERE project_name = $1", [.text(project)])
                try await c.execute("DELETE FROM project_namespaces WHERE project_name = $1", [.text(project)])
                try await c.execute("DELETE FROM project_policies WHERE project_name = $1", [.text(project)])
                try await c.execute("DELETE FROM projects WHERE name = $1", [.text(project)])
                return n
            }
            self.store.forgetProject(project)
            self.logger.info("project deleted", metadata: ["project": .string(project), "tokens.revoked": "\(revoked)"])
            return Reply.json(.object(["name": .string(project), "deleted": true, "tokens_revoked": .number(Double(revoked))]))
        }

        router.get("/v1/registered-clusters") { request, _ in
            guard try await self.auth.principal(request).admin else { throw Problem.forbidden("registered clusters are an admin's") }
            return Reply.json(.object(["clusters": .array(try await ClusterRegistry(pool: self.store.pool).list().map(\.json))]))
        }
        router.put("/v1/registered-clusters/:cluster") { request, context in
            let p = try await self.auth.principal(request)
            guard p.admin else { throw Problem.forbidden("registering clusters takes an admin token") }
            guard let key = self.settings.clusterKey else {
                throw Problem(.serviceUnavailable, code: "unavailable", detail: "cluster registration needs cluster.credentials.key.file on this gateway")
            }
            let name = try context.parameters.require("cluster")
            guard KubeNames.isDNSLabel(name) else { throw Problem(.badRequest, code: "invalid_value", detail: "'\(name)' is not a cluster name", field: "cluster") }
            let (server, credentials) = try Self.registration(try await self.document(request))
            let registry = ClusterRegistry(pool: self.store.pool)
            let known = try await registry.list().contains { $0.name == name }
            // A cluster its own agent already reports (pull mode) is not served twice.
            if !known, self.view.all().contains(where: { $0.0.name == name }) {
                throw Problem(.conflict, code: "exists", detail: "cluster '\(name)' is reported by an agent of its own (pull mode); unregister nothing, or stop that agent first", field: "cluster")
            }
            let created = try await registry.register(name: name, server: server, credentials: credentials, key: key, by: p.user)
            self.logger.info(created ? "cluster registered" : "cluster registration replaced",
                             metadata: [LogKeys.cluster: .string(name), "server": .string(server), "user": .string(p.user)])
            guard let stored = try await registry.list().first(where: { $0.name == name }) else { throw Problem.notFound("no cluster '\(name)'") }
            return Reply.json(stored.json, status: created ? .created : .ok)
        }
        router.delete("/v1/registered-clusters/:cluster") { request, context in
            let p = try await self.auth.principal(request)
            guard p.admin else { throw Problem.forbidden("unregistering clusters takes an admin token") }
            let name = try context.parameters.require("cluster")
            guard try await ClusterRegistry(pool: self.store.pool).unregister(name: name) else { throw Problem.notFound("no registered cluster '\(name)'") }
            self.logger.info("cluster unregistered", metadata: [LogKeys.cluster: .string(name), "user": .string(p.user)])
            return Reply.json(.object(["name": .string(name), "unregistered": true]))
        }
    }

    /// `{server, token, ca?}`: an https URL (http only to this host), a bearer token, the
    /// PEM of the CA that signs the server's certificate.
    static func registration(_ doc: JSONValue) throws -> (String, ClusterCredentials) {
        func read() throws(MessageDecodingError) -> (String, String, String?) {
            let r = try FieldReader(doc, path: "")
            try r.rejectUnknown(allowed: ["server", "token", "ca"])
            return (try r.string("server"), try r.string("token"), try r.optionalString("ca"))
        }
        let server: String, token: String, ca: String?
        do { (server, token, ca) = try read() } catch { throw Problem.badInput(error) }
        guard let url = URL(string: server), let scheme = url.scheme, let host = url.host, !host.isEmpty, url.user == nil,
              scheme == "https" || (scheme == "http" && ["127.0.0.1", "localhost", "::1"].contains(host)),
              url.query == nil, url.fragment == nil else {
            throw Problem(.badRequest, code: "invalid_value", detail: "server is the API server's https URL (http only to this host), without credentials, query or fragment", field: "server")
        }
        guard (1...maxTokenBytes).contains(token.utf8.count), token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else {
            throw Problem(.badRequest, code: "invalid_value", detail: "token is 1 to \(maxTokenBytes) printable characters without spaces", field: "token")
        }
        if let ca {
            guard ca.utf8.count <= maxCABytes, ca.contains("-----BEGIN CERTIFICATE-----"), ca.contains("-----END CERTIFICATE-----") else {
                throw Problem(.badRequest, code: "invalid_value", detail: "ca is a PEM certificate (at most \(maxCABytes) bytes)", field: "ca")
            }
        }
        return (server.hasSuffix("/") ? String(server.dropLast()) : server, ClusterCredentials(token: token, caPEM: ca))
    }

    /// Projects made here and those that exist by their tokens, bindings or services.
    func projectNames() async throws -> [String] {
        let rows = try await store.pool.query("""
            SELECT name FROM projects UNION SELECT project_name FROM api_tokens WHERE NOT admin AND revoked_at IS NULL
            UNION SELECT project_name FROM project_clusters UNION SELECT project_name FROM project_namespaces
            UNION SELECT project_name FROM edge_services ORDER BY 1
            """, retryOnConnectionLoss: true)
        return try rows.map { try $0.decode("name", as: String.self) }
    }

    func projectSummary(_ name: String) async throws -> JSONValue {
        let created = try await store.pool.query("SELECT created_at, created_by FROM projects WHERE name = $1", [.text(name)]).first
        let namespaces = try await store.pool.query("SELECT namespace FROM project_namespaces WHERE project_name = $1 ORDER BY 1", [.text(name)])
            .map { try $0.decode("namespace", as: String.self) }
        var o: [String: JSONValue] = [
            "name": .string(name), "clusters": .array(try await store.clusters(project: name).sorted().map(JSONValue.string)),
            "namespaces": .array(([KubeNames.namespace(forProject: name)] + namespaces).map(JSONValue.string)),
            "services": .number(Double(try await store.services(project: name, namespace: nil).count)),
        ]
        if let created {
            o["created_at"] = .string(ISO8601DateFormatter().string(from: try created.decode("created_at", as: Date.self)))
            o["created_by"] = .string(try created.decode("created_by"))
        }
        return .object(o)
    }
}
