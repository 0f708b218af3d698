import Foundation
import GEdgeCore
import GEdgeSecurity
import GEdgePostgres
import Hummingbird
import Logging
import Synchronization

/// Who a bearer token speaks for. An admin token may act for any project.
public struct Principal: Sendable, Hashable {
    public var tokenID: String
    public var user: String
    public var workspace: String
    public var project: String
    public var admin: Bool

    public func mayAccess(project other: String) -> Bool { admin || other == project }
}

/// Bearer tokens, stored as their SHA-256 digest in PostgreSQL (`api_tokens`). A token is
/// 32 random bytes, so a plain digest is enough: there is nothing to guess from it. Lookups
/// are cached briefly (a revoked token stops working within `cacheTTL`).
public final class TokenStore: Sendable {
    let pool: PostgresPool
    let cacheTTL: Duration
    private let cache = Mutex<[String: (Principal?, ContinuousClock.Instant)]>([:])
    static let cacheLimit = 10_000

    public init(pool: PostgresPool, cacheTTL: Duration = .seconds(5)) {
        self.pool = pool
        self.cacheTTL = cacheTTL
    }

    public static let prefix = "gedge_"

    public static func digest(_ token: String) -> String { Digests.sha256Hex(Array(token.utf8)) }

    /// The principal of a presented token, or nil if it is unknown or revoked.
    public func authenticate(_ token: String) async throws -> Principal? {
        let hash = Self.digest(token)
        let now = ContinuousClock.now
        if let hit = cache.withLock({ c -> (Principal?, ContinuousClock.Instant)? in c[hash] }), now - hit.1 < cacheTTL {
            return hit.0
        }
        let rows = try await pool.query(
            """
            SELECT id, user_name, workspace_name, project_name, admin FROM api_tokens
            WHERE token_hash = $1 AND revoked_at IS NULL
            """,
            [.text(hash)], retryOnConnectionLoss: true)
        let principal = try rows.first.map { row in
            Principal(
                tokenID: try row.decode("id"), user: try row.decode("user_name"), workspace: try row.decode("workspace_name"),
                project: try row.decode("project_name"), admin: try row.decode("admin"))
        }
        cache.withLock { c in
            if c.count >= Self.cacheLimit { c.removeAll(keepingCapacity: true) }
            c[hash] = (principal, now)
        }
        return principal
    }

    /// Creates a token; the only time its text is known.
    public func create(user: String, workspace: String, project: String, admin: Bool, description: String?) async throws -> (id: String, token: String) {
        let token = Self.prefix + Hex.random(bytes: 32)
        let id = "tok_" + Hex.random(bytes: 6)
        try await pool.execute(
            """
            INSERT INTO api_tokens (id, token_hash, user_name, workspace_name, project_name, admin, description)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            """,
            [.text(id), .text(Self.digest(token)), .text(user), .text(workspace), .text(project), .bool(admin), .optional(description)])
        return (id, token)
    }

    /// Makes sure the configured admin token exists (its digest, that is).
    public func ensureAdmin(token: String, user: String = "admin", project: String = "admin") async throws {
        try await pool.execute(
            """
            INSERT INTO api_tokens (id, token_hash, user_name, workspace_name, project_name, admin, description)
            VALUES ('tok_admin_' || substr($1, 1, 8), $1, $2, 'admin', $3, true, 'from gateway.admin.token')
            ON CONFLICT (token_hash) DO UPDATE SET revoked_at = NULL, admin = true
            """,
            [.text(Self.digest(token)), .text(user), .text(project)])
    }

    public func list(project: String?) async throws -> [JSONValue] {
        let rows = try await pool.query(
            """
            SELECT id, user_name, workspace_name, project_name, admin, description, created_at, revoked_at FROM api_tokens
            WHERE $1::text IS NULL OR project_name = $1 ORDER BY created_at
            """,
            [.optional(project)], retryOnConnectionLoss: true)
        return try rows.map { r in
            var o: [String: JSONValue] = [
                "id": .string(try r.decode("id")), "user_name": .string(try r.decode("user_name")),
                "workspace_name": .string(try r.decode("workspace_name")), "project_name": .string(try r.decode("project_name")),
                "admin": .bool(try r.decode("admin")), "created_at": (try r.decode("created_at", as: Date.self)).iso8601,
            ]
            if let d: String = try r.decodeOptional("description") { o["description"] = .string(d) }
            if let at: Date = try r.decodeOptional("revoked_at") { o["revoked_at"] = at.iso8601 }
            return .object(o)
        }
    }

    public func revoke(id: String) async throws -> Bool {
        let n = try await pool.execute("UPDATE api_tokens SET revoked_at = clock_timestamp() WHERE id = $1 AND revoked_at IS NULL", [.text(id)])
        cache.withLock { $0.removeAll() }
        return n > 0
    }
}

/// Token buckets, one per API token: `rate` requests a second on average, `burst` at once.
public final class RateLimiter: Sendable {
    struct Bucket { var tokens: Double; var at: ContinuousClock.Instant }
    let rate: Double
    let burst: Double
    private let buckets = Mutex<[String: Bucket]>([:])

    public init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = max(1, burst)
    }

    /// Nil when allowed; otherwise the seconds until the next request would be.
    public func take(_ key: String, now: ContinuousClock.Instant = .now) -> Double? {
        guard rate > 0 else { return nil }
        return buckets.withLock { b in
            var bucket = b[key] ?? Bucket(tokens: burst, at: now)
            let elapsed = Double((now - bucket.at).components.attoseconds) / 1e18 + Double((now - bucket.at).components.seconds)
            bucket.tokens = min(burst, bucket.tokens + elapsed * rate)
            bucket.at = now
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                b[key] = bucket
                return nil
            }
            b[key] = bucket
            return (1 - bucket.tokens) / rate
        }
    }
}

/// Reads the bearer token of a request and applies the per-token rate limit.
public struct Authenticator: Sendable {
    let tokens: TokenStore
    let limiter: RateLimiter

    public func principal(_ request: Request) async throws -> Principal {
        guard let header = request.headers[.authorization] else {
            throw Problem.unauthorized("an API token is required: Authorization: Bearer <token>")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer", !parts[1].isEmpty, parts[1].utf8.count <= 256 else {
            throw Problem.unauthorized("the Authorization header must be 'Bearer <token>'")
        }
        let principal: Principal?
        do {
            principal = try await tokens.authenticate(String(parts[1]))
        } catch {
            throw Problem.unavailable("tokens cannot be checked now: the database is unreachable")
        }
        guard let principal else { throw Problem.unauthorized("the token is unknown or revoked") }
        AccessRecord.current?.project.withLock { $0 = principal.admin ? "(admin)" : principal.project }
        if let wait = limiter.take(principal.tokenID) {
            var p = Problem(.tooManyRequests, code: "rate_limited", detail: "this token's request rate is exceeded; retry later")
            p.headers[.retryAfter] = String(Int(wait.rounded(.up)))
            throw p
        }
        return principal
    }
}
