import Foundation
import GEdgeCore
import Logging
import Synchronization

/// Database settings. Keys: `postgres.url` (a libpq URL,
/// default `postgres://gedge@127.0.0.1:5432/gedge`), `postgres.password` (secret; or
/// `postgres.password.file`), `postgres.pool.size` (default 8),
/// `postgres.statement.timeout` (default 30s), `postgres.connect.timeout` (default 5s).
public struct PostgresConfiguration: Sendable {
    public var url: String
    public var password: String?
    public var poolSize: Int
    public var statementTimeout: Duration
    public var connectTimeout: Duration
    public var applicationName: String
    /// Run-time parameters set on every connection (`SET name = 'value'`), such as the
    /// planner settings of a service whose statements are all keyed batches.
    public var settings: [(name: String, value: String)] = []

    public init(
        url: String, password: String? = nil, poolSize: Int = 8, statementTimeout: Duration = .seconds(30),
        connectTimeout: Duration = .seconds(5), applicationName: String = "gedge"
    ) {
        self.url = url
        self.password = password
        self.poolSize = poolSize
        self.statementTimeout = statementTimeout
        self.connectTimeout = connectTimeout
        self.applicationName = applicationName
    }

    public init(_ reader: ConfigReader, applicationName: String) throws {
        self.init(
            url: reader.string("postgres.url", default: "postgres://gedge@127.0.0.1:5432/gedge"),
            password: try reader.secret("postgres.password"),
            poolSize: try reader.int("postgres.pool.size", default: 8),
            statementTimeout: try reader.duration("postgres.statement.timeout", default: .seconds(30)),
            connectTimeout: try reader.duration("postgres.connect.timeout", default: .seconds(5)),
            applicationName: applicationName)
    }

    /// `settings` as statements. Names are checked (letters, digits, `_` and `.`); values
    /// are quoted.
    var sessionStatements: [String] {
        settings.compactMap { s in
            guard !s.name.isEmpty, s.name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == ".") }) else { return nil }
            return "SET \(s.name) = '\(s.value.replacingOccurrences(of: "'", with: "''"))'"
        }
    }

    /// The libpq connection string: the URL with timeouts and keepalives added.
    public var conninfo: String {
        var params = [
            "connect_timeout=\(max(1, connectTimeout.components.seconds))",
            "application_name=\(applicationName)",
            "keepalives=1", "keepalives_idle=10", "keepalives_interval=5", "keepalives_count=3",
            "tcp_user_timeout=15000",
        ]
        if let password { params.append("password=\(password.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? password)") }
        return url + (url.contains("?") ? "&" : "?") + params.joined(separator: "&")
    }
}

/// A pool of connections. Each connection has its own thread; tasks wait (suspended, not
/// blocking a thread) when all are busy. Broken connections are re-established on their
/// next use.
public final class PostgresPool: Sendable {
    private struct State {
        var idle: [PostgresConnection] = []
        var open = 0
        var waiters: [(id: Int, continuation: CheckedContinuation<PostgresConnection?, Never>)] = []
        var nextWaiter = 0
        var closed = false
    }

    private let state = Mutex(State())
    public let configuration: PostgresConfiguration
    private let logger: Logger

    public init(configuration: PostgresConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    private enum Acquire {
        case use(PostgresConnection)
        case create
        case wait
        case closed
    }

    private func acquire() async throws -> PostgresConnection {
        let action: Acquire = state.withLock { s in
            if s.closed { return .closed }
            if let c = s.idle.popLast() { return .use(c) }
            if s.open < configuration.poolSize {
                s.open += 1
                return .create
            }
            return .wait
        }
        switch action {
        case .closed:
            throw PostgresError(.poolClosed, message: "the pool is shut down")
        case .use(let c):
            return try await ensureHealthy(c)
        case .create:
            do {
                return try await PostgresConnection.connect(
                    conninfo: configuration.conninfo,
                    sessionSettings: ["SET statement_timeout = \(configuration.statementTimeout.milliseconds)"] + configuration.sessionStatements,
                    logger: logger, name: "postgres-conn")
            } catch {
                state.withLock { $0.open -= 1 }
                wakeOneWaiterToCreate()
                throw error
            }
        case .wait:
            let c: PostgresConnection? = await withCheckedContinuation { cont in
                let closed = state.withLock { s -> Bool in
                    if s.closed { return true }
                    s.nextWaiter += 1
                    s.waiters.append((s.nextWaiter, cont))
                    return false
                }
                if closed { cont.resume(returning: nil) }
            }
            guard let c else {
                // Woken with no connection: either closed, or a slot freed for creating one.
                if state.withLock({ $0.closed }) { throw PostgresError(.poolClosed, message: "the pool is shut down") }
                return try await acquire()
            }
            return try await ensureHealthy(c)
        }
    }

    private func ensureHealthy(_ c: PostgresConnection) async throws -> PostgresConnection {
        guard c.isBroken else { return c }
        do {
            try await c.reconnect()
            return c
        } catch {
            release(c)
            throw error
        }
    }

    private func wakeOneWaiterToCreate() {
        let waiter = state.withLock { s in s.waiters.isEmpty ? nil : s.waiters.removeFirst() }
        waiter?.continuation.resume(returning: nil)
    }

    private func release(_ c: PostgresConnection) {
        let waiter = state.withLock { s -> CheckedContinuation<PostgresConnection?, Never>? in
            if s.closed {
                s.open -= 1
                return nil
            }
            if !s.waiters.isEmpty { return s.waiters.removeFirst().continuation }
            s.idle.append(c)
            return nil
        }
        waiter?.resume(returning: c)
    }

    /// Runs `body` with a connection of its own, returned to the pool afterwards.
    public func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let c = try await acquire()
        defer { release(c) }
        return try await body(c)
    }

    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    public func transaction<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await withConnection { c in
            try await c.execute("BEGIN")
            do {
                let value = try await body(c)
                try await c.execute("COMMIT")
                return value
            } catch {
                if !c.isBroken { _ = try? await c.execute("ROLLBACK") }
                throw error
            }
        }
    }

    /// Runs a statement. With `retryOnConnectionLoss`, a statement that failed because the
    /// connection was lost runs once more on a re-established one: use it for reads and for
    /// idempotent writes only.
    public func query(_ sql: String, _ params: [PostgresValue] = [], retryOnConnectionLoss: Bool = false) async throws -> [PostgresRow] {
        do {
            return try await withConnection { try await $0.query(sql, params) }
        } catch let e as PostgresError where retryOnConnectionLoss && e.code == .connectionLost {
            logger.warning("connection lost; retrying once", metadata: [LogKeys.error: "\(e)"])
            return try await withConnection { try await $0.query(sql, params) }
        }
    }

    @discardableResult
    public func execute(_ sql: String, _ params: [PostgresValue] = [], retryOnConnectionLoss: Bool = false) async throws -> Int {
        do {
            return try await withConnection { try await $0.execute(sql, params) }
        } catch let e as PostgresError where retryOnConnectionLoss && e.code == .connectionLost {
            logger.warning("connection lost; retrying once", metadata: [LogKeys.error: "\(e)"])
            return try await withConnection { try await $0.execute(sql, params) }
        }
    }

    /// Checks that a connection works (for readiness probes).
    public func ping() async -> Bool {
        (try? await query("SELECT 1", retryOnConnectionLoss: true)) != nil
    }

    /// Closes idle connections and refuses new work; busy ones close when returned.
    public func shutdown() {
        let (idle, waiters) = state.withLock { s in
            s.closed = true
            let idle = s.idle
            s.open -= idle.count
            s.idle = []
            let w = s.waiters
            s.waiters = []
            return (idle, w)
        }
        _ = idle
        waiters.forEach { $0.continuation.resume(returning: nil) }
    }
}
