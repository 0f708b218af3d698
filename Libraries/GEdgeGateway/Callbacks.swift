import Foundation
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePostgres
import Logging
import Metrics
import ServiceLifecycle

/// Settings of callback delivery. Keys in docs/configuration.md.
public struct CallbackSettings: Sendable {
    public var maxAttempts = 8
    public var firstBackoff: Duration = .seconds(1)
    public var maxBackoff: Duration = .seconds(300)
    public var timeout: Duration = .seconds(10)
    public var pollInterval: Duration = .milliseconds(250)
    /// HMAC-SHA-256 key; when set, each delivery carries `X-GEdge-Signature: sha256=<hex>`.
    public var signingKey: String?

    public init() {}

    public init(_ c: ConfigReader) throws {
        maxAttempts = try c.int("gateway.callback.attempts", default: maxAttempts)
        firstBackoff = try c.duration("gateway.callback.backoff", default: firstBackoff)
        maxBackoff = try c.duration("gateway.callback.backoff.max", default: maxBackoff)
        timeout = try c.duration("gateway.callback.timeout", default: timeout)
        signingKey = try c.secret("gateway.callback.signing.key")
    }

    func backoff(afterAttempt n: Int) -> Duration {
        let ms = firstBackoff.milliseconds << min(max(n - 1, 0), 20)
        return .milliseconds(min(ms, maxBackoff.milliseconds))
    }
}

/// Reads end states from the results topic and records the callbacks owed, once per
/// request, before storing the offsets: a crash replays the topic, never loses a callback.
public struct CallbackRecorder: Service {
    let consumer: KafkaConsumer
    let pool: PostgresPool
    let logger: Logger
    let codec = EnvelopeCodec()
    let wake: Wakeup

    public init(consumer: KafkaConsumer, pool: PostgresPool, wake: Wakeup, logger: Logger) {
        self.consumer = consumer
        self.pool = pool
        self.wake = wake
        self.logger = logger
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            while true {
                let batch = await consumer.nextBatch(max: 200)
                if batch.isEmpty { break }
                var owed: [(String, String, JSONValue)] = []
                for m in batch {
                    guard let env = try? codec.decode(m.value), env.hcode == .scheduleRequest, env.lcode == .reply,
                          let id = env.msg["request_id"]?.stringValue, let url = env.msg["callback_url"]?.stringValue
                    else { continue }
                    owed.append((id, url, env.msg))
                }
                var attempt = 0
                while !owed.isEmpty {
                    do {
                        for (id, url, msg) in owed {
                            try await pool.execute(
                                "INSERT INTO callback_deliveries (request_id, url, payload) VALUES ($1, $2, $3) ON CONFLICT (request_id) DO NOTHING",
                                [.text(id), .text(url), .json(msg)])
                        }
                        wake.signal()
                        break
                    } catch {
                        attempt += 1
                        logger.error("callbacks not recorded; retrying", metadata: [LogKeys.error: "\(error)"])
                        try? await Task.sleep(for: .milliseconds(min(5000, 100 << min(attempt, 6))))
                    }
                }
                for m in batch { try? consumer.storeOffset(m) }
            }
        } onGracefulShutdown: {
            consumer.stopPolling()
        }
        try await consumer.close()
    }
}

/// Delivers the callbacks owed: a JSON POST of the request's end state to its
/// `callback_url`, retried with exponential backoff until a 2xx answer or `maxAttempts`.
/// Any number of gateway replicas share the work (SKIP LOCKED).
public struct CallbackDeliverer: Service {
    let pool: PostgresPool
    let http: HTTPClient
    let settings: CallbackSettings
    let logger: Logger
    let wake: Wakeup
    let delivered = Counter(label: "gedge_gateway_callbacks_total", dimensions: [("outcome", "delivered")])
    let retried = Counter(label: "gedge_gateway_callbacks_total", dimensions: [("outcome", "retry")])
    let failed = Counter(label: "gedge_gateway_callbacks_total", dimensions: [("outcome", "failed")])

    public init(pool: PostgresPool, http: HTTPClient, settings: CallbackSettings, wake: Wakeup, logger: Logger) {
        self.pool = pool
        self.http = http
        self.settings = settings
        self.wake = wake
        self.logger = logger
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let due = try await claim()
                await withTaskGroup(of: Void.self) { g in
                    for d in due { g.addTask { await deliver(d) } }
                }
                if due.count == 20 { continue }
            } catch {
                logger.error("callback delivery cycle failed", metadata: [LogKeys.error: "\(error)"])
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
            UPDATE callback_deliveries SET next_at = clock_timestamp() + $1::interval, attempts = attempts + 1
            WHERE request_id IN (
                SELECT request_id FROM callback_deliveries WHERE state = 'pending' AND next_at <= clock_timestamp()
                ORDER BY next_at LIMIT 20 FOR UPDATE SKIP LOCKED)
            RETURNING request_id, url, payload, attempts
            """,
            [.text(lease)])
        return try rows.map { Due(id: try $0.decode("request_id"), url: try $0.decode("url"), payload: try $0.decode("payload"), attempts: try $0.decode("attempts")) }
    }

    func deliver(_ d: Due) async {
        let body = d.payload.serialized()
        var headers = [("Content-Type", "application/json"), ("X-GEdge-Request-ID", d.id), ("X-GEdge-Attempt", String(d.attempts))]
        if let key = settings.signingKey {
            headers.append(("X-GEdge-Signature", "sha256=" + HMACSHA256.hex(key: Array(key.utf8), message: body)))
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
                    "UPDATE callback_deliveries SET state = 'delivered', last_status = $2, last_error = NULL, finished_at = clock_timestamp() WHERE request_id = $1",
                    [.text(d.id), status.map { PostgresValue.int($0) } ?? .null])
                delivered.increment()
            } else if d.attempts >= settings.maxAttempts {
                try await pool.execute(
                    "UPDATE callback_deliveries SET state = 'failed', last_status = $2, last_error = $3, finished_at = clock_timestamp() WHERE request_id = $1",
                    [.text(d.id), status.map { PostgresValue.int($0) } ?? .null, .optional(problem)])
                failed.increment()
                logger.warning("callback given up", metadata: [LogKeys.requestID: .string(d.id), "attempts": "\(d.attempts)", LogKeys.error: .string(problem ?? "")])
            } else {
                let wait = settings.backoff(afterAttempt: d.attempts)
                try await pool.execute(
                    "UPDATE callback_deliveries SET next_at = clock_timestamp() + $2::interval, last_status = $3, last_error = $4 WHERE request_id = $1",
                    [.text(d.id), .text("\(wait.milliseconds) milliseconds"), status.map { PostgresValue.int($0) } ?? .null, .optional(problem)])
                retried.increment()
            }
        } catch {
            // The lease runs out and the delivery is tried again.
            logger.error("callback outcome not recorded", metadata: [LogKeys.requestID: .string(d.id), LogKeys.error: "\(error)"])
        }
    }
}
