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
    public init(state: RequestState, reason: String?, at: Date) {
        self.state = state
        self.reason = reason
        self.at = at
    }
}

/// A request as stored.
public struct StoredRequest: Sendable {
    public var id: String
    public var policy: String
    public var state: RequestState
    public var failCount: Int
    public var projectName: String
    public var createdAt: Date
    public var attempt: Int
    public var placement: JSONValue
    public var reason: String?
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

/// Reads of the request lifecycle in PostgreSQL (RequestQueue writes it).
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

    public func request(id: String) async throws -> StoredRequest? {
        let rows = try await pool.query(
            "SELECT id, policy, state, fail_count, project_name, created_at, attempt, placement, reason FROM schedule_requests WHERE id = $1",
            [.text(id)], retryOnConnectionLoss: true)
        guard let row = rows.first else { return nil }
        let stateName = try row.decode("state", as: String.self)
        guard let state = RequestState(rawValue: stateName) else {
            throw PostgresError(.decoding, message: "unknown state '\(stateName)'")
        }
        return StoredRequest(
            id: try row.decode("id"), policy: try row.decode("policy"), state: state,
            failCount: try row.decode("fail_count"), projectName: try row.decode("project_name"),
            createdAt: try row.decode("created_at"), attempt: try row.decode("attempt"),
            placement: try row.decodeOptional("placement") ?? .null, reason: try row.decodeOptional("reason"))
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
