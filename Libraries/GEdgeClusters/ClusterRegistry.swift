import Foundation
import GEdgeCore
import GEdgePostgres

/// A cluster registered in push mode, as anyone may see it: never its credentials.
public struct RegisteredCluster: Sendable, Equatable {
    public var name: String
    public var server: String
    public var generation: Int64
    public var registeredAt: Date
    public var registeredBy: String
    /// The push agent serving it, while its lease runs.
    public var servedBy: String?
    public var leaseUntil: Date?

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "name": .string(name), "server": .string(server), "generation": .number(Double(generation)),
            "registered_at": .string(ISO8601DateFormatter().string(from: registeredAt)), "registered_by": .string(registeredBy), "mode": "push",
        ]
        if let servedBy { o["served_by"] = .string(servedBy) }
        if let leaseUntil { o["lease_until"] = .string(ISO8601DateFormatter().string(from: leaseUntil)) }
        return .object(o)
    }
}

/// Registered clusters in PostgreSQL: what `gedgectl cluster register` stores (credentials
/// sealed, `ClusterCredentials`), and the leases by which push agents share them, each
/// cluster served by one agent at a time.
public struct ClusterRegistry: Sendable {
    public let pool: PostgresPool

    public init(pool: PostgresPool) {
        self.pool = pool
    }

    /// Stores a registration, or replaces one (a new generation: its agent reconnects with
    /// the new credentials). True when it was new.
    @discardableResult
    public func register(name: String, server: String, credentials: ClusterCredentials, key: ClusterCredentialsKey, by: String) async throws -> Bool {
        let sealed = try credentials.sealed(for: name, with: key)
        let rows = try await pool.query("""
            INSERT INTO cluster_registrations (name, server, credentials, key_id, registered_by) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (name) DO UPDATE SET server = EXCLUDED.server, credentials = EXCLUDED.credentials, key_id = EXCLUDED.key_id,
                registered_by = EXCLUDED.registered_by, registered_at = clock_timestamp(), generation = cluster_registrations.generation + 1
            RETURNING generation
            """, [.text(name), .text(server), .text(sealed), .text(key.id), .text(by)])
        return try rows.first?.decode("generation", as: Int64.self) == 1
    }

    public func unregister(name: String) async throws -> Bool {
        try await pool.execute("DELETE FROM cluster_registrations WHERE name = $1", [.text(name)]) > 0
    }

    public func list() async throws -> [RegisteredCluster] {
        let rows = try await pool.query("""
            SELECT name, server, generation, registered_at, registered_by,
                   CASE WHEN lease_until > clock_timestamp() THEN lease_holder END AS served_by,
                   CASE WHEN lease_until > clock_timestamp() THEN lease_until END AS lease_until
            FROM cluster_registrations ORDER BY name
            """, retryOnConnectionLoss: true)
        return try rows.map { r in
            RegisteredCluster(
                name: try r.decode("name"), server: try r.decode("server"), generation: try r.decode("generation"),
                registeredAt: try r.decode("registered_at"), registeredBy: try r.decode("registered_by"),
                servedBy: try r.decodeOptional("served_by"), leaseUntil: try r.decodeOptional("lease_until"))
        }
    }

    // MARK: push agents

    /// This agent is alive; the number of agents seen within `window` (itself included).
    public func heartbeat(instance: String, window: Duration) async throws -> Int {
        _ = try await pool.execute("""
            INSERT INTO push_agents (instance) VALUES ($1) ON CONFLICT (instance) DO UPDATE SET seen_at = clock_timestamp()
            """, [.text(instance)])
        let rows = try await pool.query("SELECT count(*) AS n FROM push_agents WHERE seen_at > clock_timestamp() - $1 * interval '1 millisecond'",
                                        [.int(window.milliseconds)])
        return max(1, try rows.first?.decode("n", as: Int.self) ?? 1)
    }

    /// Takes a cluster whose lease is free or ran out (or renews this agent's own); its
    /// generation when taken, nil when another agent holds it.
    public func claim(name: String, instance: String, ttl: Duration) async throws -> Int64? {
        let rows = try await pool.query("""
            UPDATE cluster_registrations SET lease_holder = $2, lease_until = clock_timestamp() + $3 * interval '1 millisecond'
            WHERE name = $1 AND (lease_holder IS NULL OR lease_holder = $2 OR lease_until < clock_timestamp())
            RETURNING generation
            """, [.text(name), .text(instance), .int(ttl.milliseconds)])
        return try rows.first?.decode("generation", as: Int64.self)
    }

    /// Renews every lease this agent holds; what it still holds, with generations.
    public func renew(instance: String, ttl: Duration) async throws -> [String: Int64] {
        let rows = try await pool.query("""
            UPDATE cluster_registrations SET lease_until = clock_timestamp() + $2 * interval '1 millisecond'
            WHERE lease_holder = $1 AND lease_until >= clock_timestamp() RETURNING name, generation
            """, [.text(instance), .int(ttl.milliseconds)])
        return Dictionary(uniqueKeysWithValues: try rows.map { (try $0.decode("name", as: String.self), try $0.decode("generation", as: Int64.self)) })
    }

    public func release(instance: String, names: [String]) async throws {
        guard !names.isEmpty else { return }
        for name in names {
            _ = try await pool.execute("UPDATE cluster_registrations SET lease_holder = NULL, lease_until = NULL WHERE name = $1 AND lease_holder = $2",
                                       [.text(name), .text(instance)])
        }
    }

    public func forget(instance: String) async throws {
        _ = try await pool.execute("DELETE FROM push_agents WHERE instance = $1", [.text(instance)])
    }

    /// A registration's server and opened credentials (for the agent that holds its lease).
    public func connection(name: String, key: ClusterCredentialsKey) async throws -> (server: String, credentials: ClusterCredentials, generation: Int64)? {
        let rows = try await pool.query("SELECT server, credentials, key_id, generation FROM cluster_registrations WHERE name = $1", [.text(name)])
        guard let r = rows.first else { return nil }
        let creds = try ClusterCredentials.open(try r.decode("credentials"), for: name, keyID: try r.decode("key_id"), with: key)
        return (try r.decode("server"), creds, try r.decode("generation"))
    }
}
