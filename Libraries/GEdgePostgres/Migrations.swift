import Foundation
import GEdgeCore
import Logging

/// One versioned migration: `NNNN_name.sql`.
public struct Migration: Sendable, Hashable {
    public var version: Int
    public var name: String
    public var sql: String

    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    /// FNV-1a 64 of the SQL text: an applied migration whose file changed is refused.
    public var checksum: String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in sql.utf8 {
            h ^= UInt64(b)
            h = h &* 0x100_0000_01b3
        }
        return String(h, radix: 16)
    }

    /// Loads `NNNN_name.sql` files from a directory, ordered by version.
    public static func load(directory: URL) throws -> [Migration] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        var out: [Migration] = []
        for file in files where file.hasSuffix(".sql") {
            let base = file.dropLast(4)
            guard let underscore = base.firstIndex(of: "_"), let version = Int(base[..<underscore]) else {
                throw PostgresError(.migration, message: "\(file): expected NNNN_name.sql")
            }
            let sql = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            out.append(Migration(version: version, name: String(base[base.index(after: underscore)...]), sql: sql))
        }
        out.sort { $0.version < $1.version }
        for (a, b) in zip(out, out.dropFirst()) where a.version == b.version {
            throw PostgresError(.migration, message: "two migrations with version \(a.version): \(a.name), \(b.name)")
        }
        return out
    }
}

/// Applies migrations in order, each in its own transaction, recording them in
/// `gedge_schema_migrations`. Concurrent migrators of one schema (several replicas starting
/// at once) serialize on an advisory lock of that schema; migrators of other schemas in the
/// same database do not wait for them. Running it again changes nothing.
public struct PostgresMigrator: Sendable {
    let pool: PostgresPool
    let logger: Logger
    /// The lock's key: the schema the session creates its tables in.
    static let lockKey = "hashtextextended('gedge-migrations:' || coalesce(current_schema(), ''), 0)"

    public init(pool: PostgresPool, logger: Logger) {
        self.pool = pool
        self.logger = logger
    }

    /// Applies what is pending; returns the versions applied now.
    @discardableResult
    public func migrate(_ migrations: [Migration]) async throws -> [Int] {
        try await pool.withConnection { c in
            try await c.execute("SELECT pg_advisory_lock(\(Self.lockKey))")
            do {
                let applied = try await apply(migrations, on: c)
                try await c.execute("SELECT pg_advisory_unlock(\(Self.lockKey))")
                return applied
            } catch {
                _ = try? await c.execute("SELECT pg_advisory_unlock(\(Self.lockKey))")
                throw error
            }
        }
    }

    private func apply(_ migrations: [Migration], on c: PostgresConnection) async throws -> [Int] {
        try await c.execute(
            """
            CREATE TABLE IF NOT EXISTS gedge_schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """)
        let rows = try await c.query("SELECT version, name, checksum FROM gedge_schema_migrations ORDER BY version")
        var done: [Int: String] = [:]
        for row in rows { done[try row.decode("version", as: Int.self)] = try row.decode("checksum", as: String.self) }
        var applied: [Int] = []
        for m in migrations {
            if let checksum = done[m.version] {
                guard checksum == m.checksum else {
                    throw PostgresError(.migration, message: "migration \(m.version)_\(m.name) changed after it was applied")
                }
                continue
            }
            try await c.execute("BEGIN")
            do {
                try await c.executeScript(m.sql)
                try await c.execute(
                    "INSERT INTO gedge_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    [.int(m.version), .text(m.name), .text(m.checksum)])
                try await c.execute("COMMIT")
            } catch {
                _ = try? await c.execute("ROLLBACK")
                throw PostgresError(.migration, message: "migration \(m.version)_\(m.name) failed: \(error)")
            }
            logger.info("migration applied", metadata: ["migration.version": "\(m.version)", "migration.name": .string(m.name)])
            applied.append(m.version)
        }
        return applied
    }
}
