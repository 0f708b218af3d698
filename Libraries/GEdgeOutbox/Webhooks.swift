import Foundation
import GEdgeCore
import GEdgeSecurity
import GEdgeHTTPClient
import GEdgePostgres
import Logging
import Metrics
import ServiceLifecycle

/// Settings of webhook delivery. Keys in docs/configuration.md (`<prefix>.attempts`, ...).
public struct WebhookSettings: Sendable {
    public var maxAttempts = 8
    public var firstBackoff: Duration = .seconds(1)
    public var maxBackoff: Duration = .seconds(300)
    public var timeout: Duration = .seconds(10)
    public var pollInterval: Duration = .milliseconds(250)
    /// HMAC-SHA-256 key; when set, each delivery carries `X-GEdge-Signature: sha256=<hex>`.
    public var signingKey: String?

    public init() {}

    public init(_ c: ConfigReader, prefix: String) throws {
        maxAttempts = try c.int("\(prefix).attempts", default: maxAttempts)
        firstBackoff = try c.duration("\(prefix).backoff", default: firstBackoff)
        maxBackoff = try c.duration("\(prefix).backoff.max", default: maxBackoff)
        timeout = try c.duration("\(prefix).timeout", default: timeout)
        signingKey = try c.secret("\(prefix).signing.key")
    }

    func backoff(afterAttempt n: Int) -> Duration {
        let ms = firstBackoff.milliseconds << min(max(n - 1, 0), 20)
        return .milliseconds(min(ms, maxBackoff.milliseconds))
    }
}

/// Delivers what an outbox table holds: a JSON POST of each row's payload to its URL,
/// retried with exponential backoff until a 2xx answer or `maxAttempts` (then `failed`: the
/// dead letter, kept with its last error). Any number of replicas share the work (SKIP
/// LOCKED). The table has `key, url, payload, state, attempts, next_at, last_status,
/// last_error, finished_at`; `key` is its primary key column.
public struct WebhookDeliverer: Service {
    let pool: PostgresPool
    let http: HTTPClient
    let settings: WebhookSettings
    let logger: Logger
    let wake: Wakeup
    let table: String
    let key: String
    let delivered: Counter
    let retried: Counter
    let failed: Counter
    /// Deliveries still pending (`<metric>` with `_pending` for `_total`), sampled at most
    /// every 15 s.
    let pending: Gauge

    public init(pool: PostgresPool, http: HTTPClient, settings: WebhookSettings, wake: Wakeup, table: String, key: String, metric: String, logger: Logger) {
        self.pool = pool
        self.http = http
        self.settings = settings
        self.wake = wake
        self.table = table
        self.key = key
        self.logger = logger
        delivered = Counter(label: metric, dimensions: [("outcome", "delivered")])
        retried = Counter(label: metric, dimensions: [("outcome", "retry")])
        failed = Counter(label: metric, dimensions: [("outcome", "failed")])
        pending = Gauge(label: (metric.hasSuffix("_total") ? String(metric.dropLast(6)) : metric) + "_pending")
    }

    public func run() async throws {
        var sampled = ContinuousClock.now - .seconds(60)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            if ContinuousClock.now - sampled >= .seconds(15) {
                sampled = .now
                if let n = try? await pool.query("SELECT count(*) AS n FROM \(table) WHERE state = 'pending'").first?.decode("n", as: Int.self) {
                    pending.record(n)
                }
            }
            do {
                let due = try await claim()
                await withTaskGroup(of: Void.self) { g in
                    for d in due { g.addTask { await deliver(d) } }
                }
                if due.count == 20 { continue }
            } catch {
                logger.error("webhook delivery cycle failed", metadata: [LogKeys.error: "\(error)"])
            }
            await wake.wait(timeout: settings.pollInterval)
        }
    }

    struct Due: Sendable { var id: String; var url: String; var payload: JSONValue; var attempts: Int }

    /// Takes up to 20 due deliveries, leasing each for the request timeout and a margin.
    func claim() async throws -> [Due] {
        let lease = "\(settings.timeout.milliseconds + 30_000) milliseconds"
        let rows = try await pool.query(
            """
            UPDATE \(table) SET next_at = clock_timestamp() + $1::interval, attempts = attempts + 1
            WHERE \(key) IN (
                SELECT \(key) FROM \(table) WHERE state = 'pending' AND next_at <= clock_timestamp()
                ORDER BY next_at LIMIT 20 FOR UPDATE SKIP LOCKED)
            RETURNING \(key)::text AS key, url, payload, attempts
            """,
            [.text(lease)])
        return try rows.map { Due(id: try $0.decode("key"), url: try $0.decode("url"), payload: try $0.decode("payload"), attempts: try $0.decode("attempts")) }
    }

    func deliver(_ d: Due) async {
        let body = d.payload.serialized()
        var headers = [("Content-Type", "application/json"), ("X-GEdge-Delivery", d.id), ("X-GEdge-Attempt", String(d.attempts))]
        if let key = settings.signingKey {
            headers.append(("X-GEdge-Signature", "sha256=" + Digests.hmacSHA256Hex(key: Array(key.utf8), message: body)))
        }
        var status: Int?
        var problem: String?
        do {
            let r = try await http.execute(HTTPRequest(method: "POST", url: d.url, headers: headers, body: body, timeout: settings.timeout))
            status = r.status
            if !r.isSuccess { problem = "HTTP \(r.status)" }
        } catch {
            problem = "\(error)"
        }
        do {
            if problem == nil {
                try await pool.execute(
                    "UPDATE \(table) SET state = 'delivered', last_status = $2, last_error = NULL, finished_at = clock_timestamp() WHERE \(key)::text = $1",
                    [.text(d.id), status.map { PostgresValue.int($0) } ?? .null])
                delivered.increment()
            } else if d.attempts >= settings.maxAttempts {
                try await pool.execute(
                    "UPDATE \(table) SET state = 'failed', last_status = $2, last_error = $3, finished_at = clock_timestamp() WHERE \(key)::text = $1",
                    [.text(d.id), status.map { PostgresValue.int($0) } ?? .null, .optional(problem)])
                failed.increment()
                logger.warning("webhook delivery given up", metadata: [LogKeys.requestID: .string(d.id), "attempts": "\(d.attempts)", LogKeys.error: .string(problem ?? "")])
            } else {
                let wait = settings.backoff(afterAttempt: d.attempts)
                try await pool.execute(
                    "UPDATE \(table) SET next_at = clock_timestamp() + $2::interval, last_status = $3, last_error = $4 WHERE \(key)::text = $1",
                    [.text(d.id), .text("\(wait.milliseconds) milliseconds"), status.map { PostgresValue.int($0) } ?? .null, .optional(problem)])
                retried.increment()
            }
        } catch {
            // The lease runs out and the delivery is tried again.
            logger.error("webhook outcome not recorded", metadata: [LogKeys.requestID: .string(d.id), LogKeys.error: "\(error)"])
        }
    }
}
