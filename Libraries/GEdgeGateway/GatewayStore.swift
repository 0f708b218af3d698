import Foundation
import GEdgeCore
import GEdgePlacement
import GEdgePostgres
import Synchronization

/// The gateway's reads and writes in PostgreSQL: requests as the scheduler records them,
/// edge services, project clusters.
public struct GatewayStore: Sendable {
    public let pool: PostgresPool
    private let projects = ProjectCache()

    public init(pool: PostgresPool) { self.pool = pool }

    // MARK: requests

    static let requestColumns = """
        id, policy, state, fail_count, attempt, user_name, workspace_name, project_name, fast, placement, reason,
        callback_url, created_at, updated_at, finished_at, (extract(epoch FROM created_at) * 1000000)::bigint AS created_us,
        \(workloadName) AS workload_name, parameters->>'namespace' AS namespace_parameter
        """

    /// The workload's name: a manifest's, or the first of a list's.
    static let workloadName = "COALESCE(workload->'metadata'->>'name', workload->0->'metadata'->>'name')"

    static func requestJSON(_ r: PostgresRow) throws -> JSONValue {
        var o: [String: JSONValue] = [
            "request_id": .string(try r.decode("id")), "policy": .string(try r.decode("policy")),
            "state": .string(try r.decode("state")), "fail_count": .number(Double(try r.decode("fail_count", as: Int.self))),
            "attempt": .number(Double(try r.decode("attempt", as: Int.self))),
            "user_name": .string(try r.decode("user_name")), "workspace_name": .string(try r.decode("workspace_name")),
            "project_name": .string(try r.decode("project_name")), "fast_option": .bool(try r.decode("fast")),
            "placement": try r.decodeOptional("placement") ?? .null,
            "created_at": (try r.decode("created_at", as: Date.self)).iso8601,
            "updated_at": (try r.decode("updated_at", as: Date.self)).iso8601,
        ]
        if let reason: String = try r.decodeOptional("reason") { o["reason"] = .string(reason) }
        // Rows of the request queries carry the workload's name (those joined from services do not).
        if (try? r.index(of: "workload_name")) != nil, let name: String = try r.decodeOptional("workload_name") { o["workload_name"] = .string(name) }
        if (try? r.index(of: "namespace_parameter")) != nil {
            // Where its objects go, as the scheduler and the agent derive it.
            let given: String? = try r.decodeOptional("namespace_parameter")
            o["namespace"] = .string(KubeNames.namespace(project: try r.decode("project_name"), parameters: given.map { .object(["namespace": .string($0)]) } ?? .null))
        }
        if let cb: String = try r.decodeOptional("callback_url") { o["callback_url"] = .string(cb) }
        if let f: Date = try r.decodeOptional("finished_at") { o["finished_at"] = f.iso8601 }
        return .object(o)
    }

    /// The request and its project, or nil.
    public func request(id: String) async throws -> (json: JSONValue, project: String)? {
        let rows = try await pool.query("SELECT \(Self.requestColumns) FROM schedule_requests WHERE id = $1", [.text(id)], retryOnConnectionLoss: true)
        guard let r = rows.first else { return nil }
        return (try Self.requestJSON(r), try r.decode("project_name"))
    }

    public func history(id: String, after: Int64 = 0) async throws -> [JSONValue] {
        let rows = try await pool.query(
            "SELECT id, state, reason, detail, at FROM schedule_request_events WHERE request_id = $1 AND id > $2 ORDER BY id",
            [.text(id), .int(after)], retryOnConnectionLoss: true)
        return try rows.map { r in
            var o: [String: JSONValue] = [
                "seq": .number(Double(try r.decode("id", as: Int64.self))), "state": .string(try r.decode("state")),
                "at": (try r.decode("at", as: Date.self)).iso8601,
            ]
            if let reason: String = try r.decodeOptional("reason") { o["reason"] = .string(reason) }
        // Rows of the request queries carry the workload's name (those joined from services do not).
        if (try? r.index(of: "workload_name")) != nil, let name: String = try r.decodeOptional("workload_name") { o["workload_name"] = .string(name) }
            if let d: JSONValue = try r.decodeOptional("detail") { o["detail"] = d }
            return .object(o)
        }
    }

    public struct RequestFilter: Sendable {
        public var project: String?
        public var state: String?
        public var policy: String?
        public var user: String?
        /// Placed on this cluster.
        public var cluster: String?
        /// The workload's name holds this (case-insensitive).
        public var name: String?
        public var limit = 50
        /// Keyset cursor: the last row of the previous page.
        public var before: (Int64, String)?
    }

    /// Newest first. Returns the page and the cursor of the next one.
    public func requests(_ f: RequestFilter) async throws -> ([JSONValue], String?) {
        let rows = try await pool.query(
            """
            SELECT \(Self.requestColumns) FROM schedule_requests
            WHERE ($1::text IS NULL OR project_name = $1) AND ($2::text IS NULL OR state = $2)
              AND ($3::text IS NULL OR policy = $3) AND ($4::text IS NULL OR user_name = $4)
              AND ($5::bigint IS NULL OR (created_at, id) < (timestamptz 'epoch' + $5::bigint * interval '1 microsecond', $6))
              AND ($8::text IS NULL OR placement @> jsonb_build_array(jsonb_build_object('cluster', $8::text)))
              AND ($9::text IS NULL OR strpos(lower(\(Self.workloadName)), lower($9::text)) > 0)
            ORDER BY created_at DESC, id DESC LIMIT $7
            """,
            [.optional(f.project), .optional(f.state), .optional(f.policy), .optional(f.user),
             f.before.map { .int($0.0) } ?? .null, .text(f.before?.1 ?? ""), .int(Int64(f.limit + 1)), .optional(f.cluster), .optional(f.name)],
            retryOnConnectionLoss: true)
        let page = try rows.prefix(f.limit).map(Self.requestJSON)
        var next: String?
        if rows.count > f.limit, let last = rows.prefix(f.limit).last {
            next = Cursor.encode(micros: try last.decode("created_us"), id: try last.decode("id"))
        }
        return (page, next)
    }

    // MARK: services

    /// The project whose services or workflows are in a namespace, if any.
    public func namespaceOwner(_ namespace: String) async throws -> String? {
        let rows = try await pool.query("""
            SELECT project_name FROM edge_services WHERE namespace = $1
            UNION ALL SELECT project_name FROM workflows WHERE namespace = $1 AND state <> 'canceled' LIMIT 1
            """, [.text(namespace)], retryOnConnectionLoss: true)
        return try rows.first?.decode("project_name", as: String.self)
    }

    public enum ServiceInsert: Sendable { case created, exists, namespaceTaken(String) }

    public func insertService(project: String, user: String, namespace: String, name: String, definition: JSONValue,
                              manifests: JSONValue, requestID: String) async throws -> ServiceInsert {
        try await pool.transaction { c in
            // One project per namespace: the first to put a service there owns it.
            try await c.execute("SELECT pg_advisory_xact_lock(hashtext('gedge-namespace:' || $1))", [.text(namespace)])
            let owner = try await c.query(
                "SELECT project_name FROM edge_services WHERE namespace = $1 AND project_name <> $2 LIMIT 1", [.text(namespace), .text(project)])
            if let o = owner.first { return .namespaceTaken(try o.decode("project_name")) }
            let n = try await c.execute(
                """
                INSERT INTO edge_services (project_name, namespace, name, user_name, definition, manifests, request_id)
                VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (namespace, name) DO NOTHING
                """,
                [.text(project), .text(namespace), .text(name), .text(user), .json(definition), .json(manifests), .text(requestID)])
            return n == 1 ? .created : .exists
        }
    }

    /// Points a service at a new request (its new definition), if it is still at
    /// `previousRequestID`.
    public func replaceService(namespace: String, name: String, previousRequestID: String, user: String, definition: JSONValue,
                               manifests: JSONValue, requestID: String) async throws -> Bool {
        return try await pool.execute(
            """
            UPDATE edge_services SET definition = $3, manifests = $4, request_id = $5, user_name = $6
            WHERE namespace = $1 AND name = $2 AND request_id = $7
            """,
            [.text(namespace), .text(name), .json(definition), .json(manifests), .text(requestID), .text(user), .text(previousRequestID)]) == 1
    }

    static let serviceColumns = """
        s.project_name, s.namespace, s.name, s.user_name, s.definition, s.manifests, s.request_id, s.created_at,
        r.state, r.placement, r.reason
        """

    static func serviceJSON(_ r: PostgresRow, withManifests: Bool) throws -> JSONValue {
        var o: [String: JSONValue] = [
            "name": .string(try r.decode("name")), "namespace": .string(try r.decode("namespace")),
            "project_name": .string(try r.decode("project_name")), "user_name": .string(try r.decode("user_name")),
            "request_id": .string(try r.decode("request_id")), "created_at": (try r.decode("created_at", as: Date.self)).iso8601,
            "state": .string(try r.decodeOptional("state") ?? "submitted"),
            "placement": try r.decodeOptional("placement") ?? .null,
        ]
        if let reason: String = try r.decodeOptional("reason") { o["reason"] = .string(reason) }
        // Rows of the request queries carry the workload's name (those joined from services do not).
        if (try? r.index(of: "workload_name")) != nil, let name: String = try r.decodeOptional("workload_name") { o["workload_name"] = .string(name) }
        if withManifests {
            o["definition"] = try r.decode("definition")
            o["manifests"] = try r.decode("manifests")
        }
        return .object(o)
    }

    public func service(namespace: String, name: String) async throws -> (json: JSONValue, project: String, requestID: String)? {
        let rows = try await pool.query(
            """
            SELECT \(Self.serviceColumns) FROM edge_services s LEFT JOIN schedule_requests r ON r.id = s.request_id
            WHERE s.namespace = $1 AND s.name = $2
            """,
            [.text(namespace), .text(name)], retryOnConnectionLoss: true)
        guard let r = rows.first else { return nil }
        return (try Self.serviceJSON(r, withManifests: true), try r.decode("project_name"), try r.decode("request_id"))
    }

    public func services(project: String?, namespace: String?) async throws -> [JSONValue] {
        let rows = try await pool.query(
            """
            SELECT \(Self.serviceColumns) FROM edge_services s LEFT JOIN schedule_requests r ON r.id = s.request_id
            WHERE ($1::text IS NULL OR s.project_name = $1) AND ($2::text IS NULL OR s.namespace = $2)
            ORDER BY s.namespace, s.name LIMIT 1000
            """,
            [.optional(project), .optional(namespace)], retryOnConnectionLoss: true)
        return try rows.map { try Self.serviceJSON($0, withManifests: false) }
    }

    public func deleteService(namespace: String, name: String) async throws -> Bool {
        try await pool.execute("DELETE FROM edge_services WHERE namespace = $1 AND name = $2", [.text(namespace), .text(name)]) > 0
    }

    // MARK: projects

    /// The clusters bound to a project, cached for a few seconds.
    public func clusters(project: String) async throws -> Set<String> {
        if let hit = projects.get(project) { return hit }
        let rows = try await pool.query("SELECT cluster FROM project_clusters WHERE project_name = $1", [.text(project)], retryOnConnectionLoss: true)
        let set = Set(try rows.map { try $0.decode("cluster", as: String.self) })
        projects.put(project, set)
        return set
    }

    /// Drops what is cached of a deleted project.
    public func forgetProject(_ project: String) { projects.drop(project) }

    public func bind(project: String, clusters: [String], replace: Bool) async throws {
        try await pool.transaction { c in
            if replace { try await c.execute("DELETE FROM project_clusters WHERE project_name = $1", [.text(project)]) }
            for cl in clusters {
                try await c.execute(
                    "INSERT INTO project_clusters (project_name, cluster) VALUES ($1, $2) ON CONFLICT DO NOTHING", [.text(project), .text(cl)])
            }
        }
        projects.drop(project)
    }
}

final class ProjectCache: Sendable {
    private let entries = Mutex<[String: (Set<String>, ContinuousClock.Instant)]>([:])
    func get(_ p: String) -> Set<String>? {
        entries.withLock { e in
            guard let (v, at) = e[p], ContinuousClock.now - at < .seconds(3) else { return nil }
            return v
        }
    }
    func put(_ p: String, _ v: Set<String>) { entries.withLock { $0[p] = (v, .now) } }
    func drop(_ p: String) { _ = entries.withLock { $0.removeValue(forKey: p) } }
}

/// Page cursors: opaque to clients, `<microseconds since the epoch>~<request id>`.
enum Cursor {
    static func encode(micros: Int64, id: String) -> String { "\(micros)~\(id)" }

    static func decode(_ s: String) -> (Int64, String)? {
        guard let sep = s.firstIndex(of: "~"), let micros = Int64(s[..<sep]) else { return nil }
        let id = String(s[s.index(after: sep)...])
        guard RequestID.isValid(id) else { return nil }
        return (micros, id)
    }
}
