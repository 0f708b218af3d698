import Foundation
import GEdgeCore
import GEdgePostgres

/// The lifecycle states of a schedule request.
public enum RequestState: String, Sendable, CaseIterable {
    case received, enqueued, dispatched, scheduling, applying, completed, failed, canceled, rejected
}

/// One entry of a request's history.
public struct RequestEvent: Sendable, Hashable {
    public var state: RequestState
    public var reason: String?
    public var at: Date
}

/// A request as stored.
public struct StoredRequest: Sendable {
    public var id: String
    public var policy: String
    public var state: RequestState
    public var failCount: Int
    public var projectName: String
    public var createdAt: Date
}

/// Where a request came from on Kafka, stored for tracing.
public struct MessageOrigin: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public init(topic: String, partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// The request lifecycle in PostgreSQL. Recording is idempotent: a request delivered twice
/// (a redelivery after a crash, a duplicate publish) is stored once.
public struct RequestStore: Sendable {
    public let pool: PostgresPool

    public init(pool: PostgresPool) { self.pool = pool }

    /// The migrations of the scheduler's tables, shipped with the module.
    public static func migrations() throws -> [Migration] {
        guard let url = Bundle.module.url(forResource: "Migrations", withExtension: nil) else {
            throw PostgresError(.migration, message: "the Migrations folder is missing from the GEdgeScheduler bundle")
        }
        return try Migration.load(directory: url)
    }

    /// Records a newly received request as received then enqueued, in one transaction.
    /// Returns false, changing nothing, if the request was already recorded.
    @discardableResult
    public func recordReceived(_ request: ScheduleRequest, source: Endpoint, origin: MessageOrigin?) async throws -> Bool {
        try await pool.transaction { c in
            let inserted = try await c.query(
                """
                INSERT INTO schedule_requests
                    (id, policy, user_name, workspace_name, project_name, fast, state, workload, parameters,
                     callback_url, source, kafka_topic, kafka_partition, kafka_offset)
                VALUES ($1, $2, $3, $4, $5, $6, 'enqueued', $7::jsonb, $8::jsonb, $9, $10::jsonb, $11, $12, $13)
                ON CONFLICT (id) DO NOTHING
                RETURNING id
                """,
                [
                    .text(request.requestID), .text(request.policy.rawValue), .text(request.userName),
                    .text(request.workspaceName), .text(request.projectName), .bool(request.fast),
                    .json(request.workload), .json(request.parameters), .optional(request.callbackURL),
                    .json(EnvelopeCodec.endpointJSON(source)), .optional(origin?.topic),
                    origin.map { .int(Int64($0.partition)) } ?? .null, origin.map { .int($0.offset) } ?? .null,
                ])
            guard !inserted.isEmpty else { return false }
            let reason = origin.map { "from \($0.topic)[\($0.partition)]@\($0.offset)" } ?? "submitted"
            try await c.execute(
                """
                INSERT INTO schedule_request_events (request_id, state, reason)
                VALUES ($1, 'received', $2), ($1, 'enqueued', $3)
                """,
                [.text(request.requestID), .text(reason), .text(request.fast ? "fast queue" : "base queue")])
            return true
        }
    }

    public func request(id: String) async throws -> StoredRequest? {
        let rows = try await pool.query(
            "SELECT id, policy, state, fail_count, project_name, created_at FROM schedule_requests WHERE id = $1",
            [.text(id)], retryOnConnectionLoss: true)
        guard let row = rows.first else { return nil }
        let stateName = try row.decode("state", as: String.self)
        guard let state = RequestState(rawValue: stateName) else {
            throw PostgresError(.decoding, message: "unknown state '\(stateName)'")
        }
        return StoredRequest(
            id: try row.decode("id"), policy: try row.decode("policy"), state: state,
            failCount: try row.decode("fail_count"), projectName: try row.decode("project_name"),
            createdAt: try row.decode("created_at"))
    }

    /// The request's history, oldest first.
    public func lifecycle(id: String) async throws -> [RequestEvent] {
        let rows = try await pool.query(
            "SELECT state, reason, at FROM schedule_request_events WHERE request_id = $1 ORDER BY id",
            [.text(id)], retryOnConnectionLoss: true)
        return try rows.map { row in
            let name = try row.decode("state", as: String.self)
            guard let state = RequestState(rawValue: name) else { throw PostgresError(.decoding, message: "unknown state '\(name)'") }
            return RequestEvent(state: state, reason: try row.decodeOptional("reason", as: String.self), at: try row.decode("at"))
        }
    }
}
