import Foundation
import GEdgeAMQP
import GEdgeCore
import GEdgePostgres
import Logging
import Metrics
import ServiceLifecycle

/// Settings of the notifier. Keys in docs/configuration.md.
public struct NotifierSettings: Sendable {
    /// Result queues to consume (the FaaS seed's detections).
    public var queues = ["accident", "fire", "knife"]
    /// Webhooks every notification goes to; `notifier.webhooks.<queue>` adds per-queue ones.
    public var webhooks: [String] = []
    public var queueWebhooks: [String: [String]] = [:]
    public var prefetch: UInt16 = 1000
    public var batch = 500
    public var maxEventBytes = 64 * 1024

    public init() {}

    public init(_ c: ConfigReader) throws {
        queues = c.list("notifier.queues", default: queues)
        webhooks = c.list("notifier.webhooks", default: [])
        for q in queues {
            let extra = c.list("notifier.webhooks.\(q)", default: [])
            if !extra.isEmpty { queueWebhooks[q] = extra }
        }
        prefetch = UInt16(clamping: try c.int("notifier.prefetch", default: Int(prefetch)))
        batch = try c.int("notifier.batch", default: batch)
    }

    func hooks(for queue: String) -> [String] { Array(Set(webhooks + (queueWebhooks[queue] ?? []))).sorted() }
}

/// A detection event as the functions publish it: a JSON object with an `event_id`
/// (1-128 characters of `[A-Za-z0-9._:-]`); `type`, `camera`, `detected_at` and anything
/// else are kept as they are.
public enum DetectionEvent {
    public static func validate(_ body: [UInt8], maxBytes: Int) throws(MessageDecodingError) -> (id: String, payload: JSONValue) {
        guard body.count <= maxBytes else { throw MessageDecodingError(.tooLarge, field: "", reason: "the event is over \(maxBytes) bytes") }
        let value = try JSONValue.parse(body)
        if let at = value.pathOfNUL() { throw MessageDecodingError(.invalidValue, field: at, reason: "a NUL character, which cannot be stored") }
        let r = try FieldReader(value, path: "")
        let id = try r.string("event_id")
        guard RequestID.isValid(id) else {
            throw MessageDecodingError(.invalidValue, field: "event_id", reason: "1-128 characters of [A-Za-z0-9._:-]")
        }
        _ = try r.optionalString("type")
        return (id, value)
    }
}

/// Consumes one result queue with manual acks: each batch is validated, stored once per
/// event ID (with the deliveries it owes) in one transaction, and only then acknowledged.
/// A crash before the commit redelivers the batch; the event ID makes the second store a
/// no-op. Malformed events go to `<queue>.dlq` with the reason in headers.
public struct NotificationConsumer: Service {
    let queue: String
    let client: AMQPClient
    let pool: PostgresPool
    let settings: NotifierSettings
    let wake: Wakeup
    let logger: Logger
    let stored = Counter(label: "gedge_notifier_events_total", dimensions: [("outcome", "stored")])
    let duplicates = Counter(label: "gedge_notifier_events_total", dimensions: [("outcome", "duplicate")])
    let deadLettered = Counter(label: "gedge_notifier_events_total", dimensions: [("outcome", "dead_lettered")])

    public init(queue: String, client: AMQPClient, pool: PostgresPool, settings: NotifierSettings, wake: Wakeup, logger: Logger) {
        self.queue = queue
        self.client = client
        self.pool = pool
        self.settings = settings
        self.wake = wake
        self.logger = logger
    }

    public static func declare(_ client: AMQPClient, queue: String) async throws {
        _ = try await client.declareQueue(AMQPQueueSpec(name: queue + ".dlq"))
        _ = try await client.declareQueue(AMQPQueueSpec(name: queue))
    }

    public func run() async throws {
        try await withTaskCancellationOrGracefulShutdownHandler {
            // Declared under the shutdown handler: with the broker away these wait for it, and
            // a SIGTERM meanwhile closes the client, which ends them.
            let deliveries: AMQPDeliveries
            do {
                try await Self.declare(client, queue: queue)
                deliveries = try await client.consume(queue: queue, prefetch: settings.prefetch)
            } catch let e as AMQPError where e.code == .closed {
                return
            }
            while true {
                let batch = await deliveries.nextBatch(max: settings.batch)
                if batch.isEmpty { break }
                await handle(batch)
            }
        } onCancelOrGracefulShutdown: {
            // Closing ends the deliveries; unacked ones go back to the queue.
            Task { await client.close() }
        }
        logger.info("notifier consumer stopped", metadata: ["queue": .string(queue)])
    }

    var consumerName: String { "notifier." + queue }

    /// Stores the batch's events, then acknowledges it. PostgreSQL down holds the batch; an
    /// event the database refuses is dead-lettered alone; a shutdown meanwhile acknowledges
    /// nothing (RabbitMQ delivers the rest again, and storing is idempotent).
    func handle(_ batch: [AMQPDelivery]) async {
        var good: [(String, JSONValue, AMQPDelivery)] = []
        for d in batch {
            do throws(MessageDecodingError) {
                if let o = d.oversize { throw o.error }
                let (id, payload) = try DetectionEvent.validate(d.message.body, maxBytes: settings.maxEventBytes)
                good.append((id, payload, d))
            } catch {
                guard await deadLetter(d, error) else { return }
            }
        }
        if !good.isEmpty {
            switch await Retry.run("storing events", consumer: consumerName, logger: logger, { try await store(good.map { ($0.0, $0.1) }) }) {
            case .done: break
            case .stopped: return
            case .permanent(let error):
                logger.warning("a batch of events was refused; storing them one by one", metadata: ["queue": .string(queue), LogKeys.error: "\(error)"])
                for (id, payload, d) in good {
                    switch await Retry.run("storing an event", consumer: consumerName, logger: logger, { try await store([(id, payload)]) }) {
                    case .done: continue
                    case .stopped: return
                    case .permanent(let e):
                        guard await deadLetter(d, MessageDecodingError(.invalidValue, field: "", reason: "refused by the database: \(e)")) else { return }
                    }
                }
            }
            wake.signal()
        }
        if let last = batch.last { try? await client.ackThrough(last) }
    }

    func store(_ events: [(String, JSONValue)]) async throws {
        let hooks = settings.hooks(for: queue)
        let rows: JSONValue = .array(events.map { .object(["event_id": .string($0.0), "payload": $0.1]) })
        let new = try await pool.transaction { c -> Int in
            let inserted = try await c.query(
                """
                INSERT INTO notifications (event_id, queue, payload)
                SELECT DISTINCT ON (event_id) event_id, $2, payload FROM jsonb_to_recordset($1::jsonb) AS x(event_id text, payload jsonb)
                ON CONFLICT (event_id) DO NOTHING RETURNING event_id
                """,
                [.json(rows), .text(queue)])
            if !hooks.isEmpty && !inserted.isEmpty {
                try await c.execute(
                    """
                    INSERT INTO notification_deliveries (event_id, url, payload)
                    SELECT n.event_id, u.url, jsonb_build_object('event_id', n.event_id, 'queue', n.queue, 'event', n.payload, 'received_at', n.received_at)
                    FROM notifications n CROSS JOIN unnest($2::text[]) AS u(url)
                    WHERE n.event_id = ANY($1::text[])
                    ON CONFLICT (event_id, url) DO NOTHING
                    """,
                    [.textArray(try inserted.map { try $0.decode("event_id", as: String.self) }), .textArray(hooks)])
            }
            return inserted.count
        }
        stored.increment(by: new)
        duplicates.increment(by: events.count - new)
    }


    /// Publishes the event to `<queue>.dlq` with the reason, retrying until RabbitMQ confirms
    /// it; false when the service stops first.
    func deadLetter(_ d: AMQPDelivery, _ error: MessageDecodingError) async -> Bool {
        var headers = d.message.headers
        headers["x-gedge-error"] = String(error.reason.prefix(4096))
        headers["x-gedge-error-code"] = error.code.description
        headers["x-gedge-error-field"] = String(error.field.prefix(1024))
        headers["x-gedge-original-queue"] = queue
        if let o = d.oversize {
            // Only a prefix was read into memory: it travels with the original's size and digest.
            headers["x-gedge-truncated"] = "true"
            headers["x-gedge-original-bytes"] = String(o.bodyBytes)
            headers["x-gedge-original-sha256"] = o.bodySHA256
        }
        let copy = AMQPMessage(body: d.message.body, headers: headers, messageID: d.message.messageID, contentType: d.message.contentType)
        let outcome = await Retry.run("dead-letter publish", consumer: consumerName, logger: logger) {
            do { try await client.publish(routingKey: queue + ".dlq", message: copy) } catch { throw RetryAnyway(error) }
        }
        guard case .done = outcome else { return false }
        deadLettered.increment()
        logger.warning("event dead-lettered", metadata: ["queue": .string(queue), "reason": .string("\(error)")])
        return true
    }
}

/// Reads notifications and their delivery status.
public struct NotificationStore: Sendable {
    public let pool: PostgresPool
    public init(pool: PostgresPool) { self.pool = pool }

    static func iso(_ d: Date) -> JSONValue { .timestamp(d) }

    public func list(queue: String?, limit: Int) async throws -> [JSONValue] {
        try await pool.query(
            """
            SELECT n.event_id, n.queue, n.received_at,
                   count(d.id) FILTER (WHERE d.state = 'delivered') AS delivered,
                   count(d.id) FILTER (WHERE d.state = 'pending') AS pending,
                   count(d.id) FILTER (WHERE d.state = 'failed') AS failed
            FROM notifications n LEFT JOIN notification_deliveries d ON d.event_id = n.event_id
            WHERE $1::text IS NULL OR n.queue = $1
            GROUP BY n.event_id ORDER BY n.received_at DESC LIMIT $2
            """,
            [.optional(queue), .int(limit)], retryOnConnectionLoss: true
        ).map { r in
            .object([
                "event_id": .string(try r.decode("event_id")), "queue": .string(try r.decode("queue")),
                "received_at": Self.iso(try r.decode("received_at")),
                "deliveries": .object([
                    "delivered": .number(Double(try r.decode("delivered", as: Int.self))),
                    "pending": .number(Double(try r.decode("pending", as: Int.self))),
                    "failed": .number(Double(try r.decode("failed", as: Int.self))),
                ]),
            ])
        }
    }

    public func get(eventID: String) async throws -> JSONValue? {
        guard let n = try await pool.query("SELECT event_id, queue, payload, received_at FROM notifications WHERE event_id = $1", [.text(eventID)], retryOnConnectionLoss: true).first else {
            return nil
        }
        let deliveries = try await pool.query(
            "SELECT url, state, attempts, last_status, last_error, finished_at FROM notification_deliveries WHERE event_id = $1 ORDER BY url",
            [.text(eventID)], retryOnConnectionLoss: true
        ).map { r -> JSONValue in
            var o: [String: JSONValue] = ["url": .string(try r.decode("url")), "state": .string(try r.decode("state")), "attempts": .number(Double(try r.decode("attempts", as: Int.self)))]
            if let s: Int = try r.decodeOptional("last_status") { o["last_status"] = .number(Double(s)) }
            if let e: String = try r.decodeOptional("last_error") { o["last_error"] = .string(e) }
            if let f: Date = try r.decodeOptional("finished_at") { o["finished_at"] = Self.iso(f) }
            return .object(o)
        }
        return .object([
            "event_id": .string(try n.decode("event_id")), "queue": .string(try n.decode("queue")), "event": try n.decode("payload"),
            "received_at": Self.iso(try n.decode("received_at")), "deliveries": .array(deliveries),
        ])
    }
}
