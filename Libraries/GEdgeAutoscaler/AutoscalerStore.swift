import Foundation
import GEdgeCore
import GEdgePostgres

/// Where a scaled workload runs: its home cluster, or an overflow placement in a neighbour.
public struct WorkloadPlacement: Sendable, Hashable {
    public enum State: String, Sendable { case placing, running }
    public var requestID: String
    public var cluster: String?
    public var home: Bool
    public var replicas: Int
    public var state: State
    public var createdAt: Date

    public init(requestID: String, cluster: String?, home: Bool, replicas: Int, state: State, createdAt: Date = Date()) {
        self.requestID = requestID
        self.cluster = cluster
        self.home = home
        self.replicas = replicas
        self.state = state
        self.createdAt = createdAt
    }

    public var json: JSONValue {
        .object([
            "request_id": .string(requestID), "cluster": cluster.map(JSONValue.string) ?? .null, "home": .bool(home),
            "replicas": .number(Double(replicas)), "state": .string(state.rawValue),
        ])
    }
}

/// One stored decision: what the autoscaler saw, what it chose and why.
public struct ScalingDecision: Sendable {
    public enum Kind: String, Sendable { case horizontal, vertical, overflow }
    public var id: Int64
    public var namespace: String
    public var name: String
    public var kind: Kind
    public var current: Int
    public var target: Int
    public var inputs: JSONValue
    public var reason: String
    public var at: Date

    public init(namespace: String, name: String, kind: Kind, current: Int, target: Int, inputs: JSONValue, reason: String, id: Int64 = 0, at: Date = Date()) {
        self.namespace = namespace
        self.name = name
        self.kind = kind
        self.current = current
        self.target = target
        self.inputs = inputs
        self.reason = reason
        self.id = id
        self.at = at
    }

    public var json: JSONValue {
        .object([
            "id": .number(Double(id)), "namespace": .string(namespace), "name": .string(name), "kind": .string(kind.rawValue),
            "current": .number(Double(current)), "target": .number(Double(target)), "inputs": inputs, "reason": .string(reason), "at": .timestamp(at),
        ])
    }
}

/// The schedule request a policy names, as the autoscaler needs it.
public struct PlacedRequest: Sendable {
    public var state: String
    public var userName: String
    public var workspaceName: String
    public var projectName: String
    public var workload: JSONValue
    public var parameters: JSONValue
    public var placement: JSONValue
    public var reason: String?

    /// The first cluster of the placement.
    public var cluster: String? { placement.arrayValue?.first?["cluster"]?.stringValue }
}

public enum AutoscalerStoreError: Error, CustomStringConvertible {
    case unknownRequest(String)
    public var description: String {
        switch self {
        case .unknownRequest(let id): "no schedule request '\(id)'"
        }
    }
}

/// Policies, placements and decisions in PostgreSQL (migration 0005).
public struct AutoscalerStore: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) { self.pool = pool }

    /// Creates or replaces a policy; its placements are kept when the request is the same.
    public func upsert(_ p: AutoscalePolicy, source: String) async throws {
        try await pool.transaction { c in
            let old = try await c.query("SELECT request_id FROM autoscale_policies WHERE namespace = $1 AND name = $2 FOR UPDATE", [.text(p.namespace), .text(p.name)])
            if let previous = try old.first?.decode("request_id", as: String.self), previous != p.requestID {
                _ = try await c.execute("DELETE FROM autoscale_placements WHERE namespace = $1 AND name = $2", [.text(p.namespace), .text(p.name)])
            }
            _ = try await c.execute("""
                INSERT INTO autoscale_policies (namespace, name, project_name, request_id, spec, source)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (namespace, name) DO UPDATE SET project_name = EXCLUDED.project_name, request_id = EXCLUDED.request_id,
                    spec = EXCLUDED.spec, source = EXCLUDED.source, updated_at = clock_timestamp()
                """, [.text(p.namespace), .text(p.name), .text(p.projectName), .text(p.requestID), .json(p.json), .text(source)])
        }
    }

    public func delete(namespace: String, name: String) async throws -> Bool {
        try await pool.execute("DELETE FROM autoscale_policies WHERE namespace = $1 AND name = $2", [.text(namespace), .text(name)]) > 0
    }

    public func policies(project: String? = nil) async throws -> [AutoscalePolicy] {
        let rows = try await pool.query(
            "SELECT spec, project_name FROM autoscale_policies WHERE $1::text IS NULL OR project_name = $1 ORDER BY namespace, name",
            [project.map(PostgresValue.text) ?? .null], retryOnConnectionLoss: true)
        return rows.compactMap { row in
            guard let spec = try? row.decode("spec", as: JSONValue.self), let project = try? row.decode("project_name", as: String.self) else { return nil }
            return try? AutoscalePolicy.decode(spec, project: project)
        }
    }

    public func policy(namespace: String, name: String) async throws -> AutoscalePolicy? {
        let rows = try await pool.query("SELECT spec, project_name FROM autoscale_policies WHERE namespace = $1 AND name = $2", [.text(namespace), .text(name)], retryOnConnectionLoss: true)
        guard let row = rows.first else { return nil }
        return try AutoscalePolicy.decode(try row.decode("spec"), project: try row.decode("project_name"))
    }

    public func placements(namespace: String, name: String) async throws -> [WorkloadPlacement] {
        let rows = try await pool.query("""
            SELECT request_id, cluster, home, replicas, state, created_at FROM autoscale_placements
            WHERE namespace = $1 AND name = $2 ORDER BY home DESC, created_at, request_id
            """, [.text(namespace), .text(name)], retryOnConnectionLoss: true)
        return try rows.map { r in
            WorkloadPlacement(
                requestID: try r.decode("request_id"), cluster: try r.decodeOptional("cluster"), home: try r.decode("home"), replicas: try r.decode("replicas"),
                state: WorkloadPlacement.State(rawValue: try r.decode("state")) ?? .placing, createdAt: try r.decode("created_at"))
        }
    }

    public func save(namespace: String, name: String, _ p: WorkloadPlacement) async throws {
        _ = try await pool.execute("""
            INSERT INTO autoscale_placements (namespace, name, request_id, cluster, home, replicas, state)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (namespace, name, request_id) DO UPDATE SET cluster = EXCLUDED.cluster, replicas = EXCLUDED.replicas,
                state = EXCLUDED.state, updated_at = clock_timestamp()
            """, [.text(namespace), .text(name), .text(p.requestID), p.cluster.map(PostgresValue.text) ?? .null, .bool(p.home), .int(p.replicas), .text(p.state.rawValue)],
            retryOnConnectionLoss: true)
    }

    public func remove(namespace: String, name: String, requestID: String) async throws {
        _ = try await pool.execute("DELETE FROM autoscale_placements WHERE namespace = $1 AND name = $2 AND request_id = $3",
                                   [.text(namespace), .text(name), .text(requestID)], retryOnConnectionLoss: true)
    }

    /// How many overflow placements the workload has ever had (for the next one's ID).
    public func overflowCount(namespace: String, name: String) async throws -> Int {
        let rows = try await pool.query(
            "SELECT count(*) AS n FROM autoscale_decisions WHERE namespace = $1 AND name = $2 AND kind = 'overflow' AND inputs ? 'placement_request'",
            [.text(namespace), .text(name)], retryOnConnectionLoss: true)
        return try rows.first?.decode("n", as: Int.self) ?? 0
    }

    public func request(id: String) async throws -> PlacedRequest? {
        let rows = try await pool.query("""
            SELECT state, user_name, workspace_name, project_name, workload, parameters, placement, reason
            FROM schedule_requests WHERE id = $1
            """, [.text(id)], retryOnConnectionLoss: true)
        guard let r = rows.first else { return nil }
        return PlacedRequest(
            state: try r.decode("state"), userName: try r.decode("user_name"), workspaceName: try r.decode("workspace_name"),
            projectName: try r.decode("project_name"), workload: try r.decode("workload"), parameters: try r.decode("parameters"),
            placement: try r.decodeOptional("placement") ?? .null, reason: try r.decodeOptional("reason"))
    }

    public func record(_ d: ScalingDecision) async throws {
        _ = try await pool.execute("""
            INSERT INTO autoscale_decisions (namespace, name, kind, current_replicas, target_replicas, inputs, reason)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """, [.text(d.namespace), .text(d.name), .text(d.kind.rawValue), .int(d.current), .int(d.target), .json(d.inputs), .text(d.reason)],
            retryOnConnectionLoss: true)
    }

    /// Decisions newest first; `before` pages back by ID.
    public func decisions(namespace: String, name: String, limit: Int = 50, before: Int64? = nil) async throws -> [ScalingDecision] {
        let rows = try await pool.query("""
            SELECT id, kind, current_replicas, target_replicas, inputs, reason, at FROM autoscale_decisions
            WHERE namespace = $1 AND name = $2 AND ($3::bigint IS NULL OR id < $3) ORDER BY id DESC LIMIT $4
            """, [.text(namespace), .text(name), before.map { PostgresValue.int($0) } ?? .null, .int(limit)], retryOnConnectionLoss: true)
        return try rows.map { r in
            ScalingDecision(
                namespace: namespace, name: name, kind: ScalingDecision.Kind(rawValue: try r.decode("kind")) ?? .horizontal,
                current: try r.decode("current_replicas"), target: try r.decode("target_replicas"), inputs: try r.decode("inputs"),
                reason: try r.decode("reason"), id: try r.decode("id"), at: try r.decode("at"))
        }
    }
}
