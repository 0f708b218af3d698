import CLibPQ
import Foundation
import GEdgeCore
import Logging

/// One libpq connection, confined to a thread of its own: every blocking libpq call runs
/// there, never on Swift's cooperative pool. Statements take parameters apart from the SQL
/// text (`$1`, `$2`, ...).
public final class PostgresConnection: @unchecked Sendable {
    private var conn: OpaquePointer?
    private let conninfo: String
    private let sessionSettings: [String]
    private let thread: DedicatedThread
    private let logger: Logger
    /// Set when the connection broke; the pool reconnects it before the next use.
    private let broken = RunFlag(false)
    /// Statements with parameters are prepared on first use and executed by name after
    /// (parsed and planned once, not on every call): SQL text -> statement name. Touched
    /// only on the connection's thread; emptied on reconnect.
    private var prepared: [String: String] = [:]
    private var preparedSequence = 0
    /// Beyond this many, statements run unprepared (SQL built with literals in it would
    /// otherwise fill the server's memory with one-off statements).
    static let maxPrepared = 256

    private init(conninfo: String, sessionSettings: [String], logger: Logger, name: String) {
        self.conninfo = conninfo
        self.sessionSettings = sessionSettings
        self.logger = logger
        self.thread = DedicatedThread(name: name)
    }

    /// Opens a connection. `sessionSettings` are statements run after every (re)connect.
    public static func connect(
        conninfo: String, sessionSettings: [String] = [], logger: Logger, name: String = "postgres"
    ) async throws -> PostgresConnection {
        let c = PostgresConnection(conninfo: conninfo, sessionSettings: sessionSettings, logger: logger, name: name)
        try await c.thread.run { try c.openOnThread() }
        return c
    }

    deinit {
        if let conn { PQfinish(conn) }
        thread.stop()
    }

    private func openOnThread() throws {
        if let conn { PQfinish(conn) }
        prepared = [:]
        conn = PQconnectdb(conninfo)
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            let message = conn.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
            if let c = conn { PQfinish(c) }
            self.conn = nil
            broken.set(true)
            throw PostgresError(.connectionFailed, message: message.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        for setting in ["SET TIME ZONE 'UTC'", "SET client_min_messages TO warning"] + sessionSettings {
            _ = try execOnThread(setting, [])
        }
        broken.set(false)
    }

    /// Whether the connection is known to be broken.
    public var isBroken: Bool { broken.isSet }

    /// Reconnects (after a lost connection).
    public func reconnect() async throws {
        try await thread.run { try self.openOnThread() }
        logger.info("database connection re-established")
    }

    private func lostOrServerError(_ result: OpaquePointer?) -> PostgresError {
        let conn = self.conn!
        if PQstatus(conn) == CONNECTION_BAD {
            broken.set(true)
            let message = String(cString: PQerrorMessage(conn)).trimmingCharacters(in: .whitespacesAndNewlines)
            return PostgresError(.connectionLost, message: message.isEmpty ? "connection lost" : message)
        }
        let sqlState = result.flatMap { PQresultErrorField($0, Int32(UInt8(ascii: "C"))) }.map { String(cString: $0) }
        let message = result.flatMap { PQresultErrorMessage($0) }.map { String(cString: $0) } ?? String(cString: PQerrorMessage(conn))
        if sqlState == "57P01" || sqlState == "57P02" { broken.set(true) }
        return PostgresError(.server, sqlState: sqlState, message: message.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    private func withParams<R>(_ params: [PostgresValue], _ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
        let cstrings: [UnsafeMutablePointer<CChar>?] = params.map { $0.textForm.map { strdup($0) } ?? nil }
        defer { cstrings.forEach { free($0) } }
        let consts = cstrings.map { UnsafePointer($0) }
        return consts.withUnsafeBufferPointer { body($0.baseAddress) }
    }

    struct RawResult {
        var rows: [PostgresRow]
        var affected: Int
    }

    private func readResult(_ res: OpaquePointer) -> RawResult {
        let nrows = Int(PQntuples(res))
        let ncols = Int(PQnfields(res))
        let columns = (0..<ncols).map { String(cString: PQfname(res, Int32($0))) }
        var rows: [PostgresRow] = []
        rows.reserveCapacity(nrows)
        for r in 0..<nrows {
            var values: [String?] = []
            values.reserveCapacity(ncols)
            for c in 0..<ncols {
                if PQgetisnull(res, Int32(r), Int32(c)) != 0 {
                    values.append(nil)
                } else {
                    values.append(String(cString: PQgetvalue(res, Int32(r), Int32(c))))
                }
            }
            rows.append(PostgresRow(columns: columns, values: values))
        }
        let affected = Int(String(cString: PQcmdTuples(res))) ?? 0
        return RawResult(rows: rows, affected: affected)
    }

    private func execOnThread(_ sql: String, _ params: [PostgresValue]) throws -> RawResult {
        guard let conn, !broken.isSet || PQstatus(conn) == CONNECTION_OK else {
            throw PostgresError(.connectionLost, message: "connection is broken")
        }
        if !params.isEmpty, let name = try preparedName(conn, sql, count: params.count) {
            do {
                return try check(withParams(params) { PQexecPrepared(conn, name, Int32(params.count), $0, nil, nil, 0) })
            } catch let e as PostgresError where e.sqlState == "0A000" {
                // "cached plan must not change result type": a table changed under the
                // statement. Prepare it again once.
                prepared[sql] = nil
                _ = PQclear(PQexec(conn, "DEALLOCATE \(name)"))
                return try check(withParams(params) { PQexecParams(conn, sql, Int32(params.count), nil, $0, nil, nil, 0) })
            }
        }
        let res: OpaquePointer? =
            params.isEmpty
            ? PQexec(conn, sql)
            : withParams(params) { PQexecParams(conn, sql, Int32(params.count), nil, $0, nil, nil, 0) }
        return try check(res)
    }

    /// The result's rows, or its error; clears it.
    private func check(_ res: OpaquePointer?) throws -> RawResult {
        defer { PQclear(res) }
        guard let res else { throw lostOrServerError(nil) }
        switch PQresultStatus(res) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return readResult(res)
        default:
            throw lostOrServerError(res)
        }
    }

    /// The name `sql` is prepared under, preparing it first if need be; nil when the cache
    /// is full. A statement that cannot be prepared throws its error (the same one running
    /// it would).
    private func preparedName(_ conn: OpaquePointer, _ sql: String, count: Int) throws -> String? {
        if let name = prepared[sql] { return name }
        guard prepared.count < Self.maxPrepared else { return nil }
        preparedSequence += 1
        let name = "gedge_\(preparedSequence)"
        _ = try check(PQprepare(conn, name, sql, Int32(count), nil))
        prepared[sql] = name
        return name
    }

    /// Runs a statement and returns its rows.
    public func query(_ sql: String, _ params: [PostgresValue] = []) async throws -> [PostgresRow] {
        try await thread.run { try self.execOnThread(sql, params).rows }
    }

    /// Runs a statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ sql: String, _ params: [PostgresValue] = []) async throws -> Int {
        try await thread.run { try self.execOnThread(sql, params).affected }
    }

    /// Runs a script of several statements with no parameters (migrations).
    public func executeScript(_ sql: String) async throws {
        _ = try await thread.run { try self.execOnThread(sql, []) }
    }

    /// Runs one statement for each parameter row in pipeline mode, inside one transaction:
    /// the rows travel without a round trip each. All or nothing. Returns the rows affected.
    public func executeBatch(_ sql: String, rows: [[PostgresValue]], chunkSize: Int = 500) async throws -> Int {
        if rows.isEmpty { return 0 }
        return try await thread.run { try self.pipelineOnThread(sql, rows, chunkSize: chunkSize) }
    }

    private func pipelineOnThread(_ sql: String, _ rows: [[PostgresValue]], chunkSize: Int) throws -> Int {
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            throw PostgresError(.connectionLost, message: "connection is broken")
        }
        guard PQenterPipelineMode(conn) == 1 else { throw lostOrServerError(nil) }
        var firstError: PostgresError?
        var affected = 0

        func send(_ statement: String, _ params: [PostgresValue]) -> Bool {
            withParams(params) { PQsendQueryParams(conn, statement, Int32(params.count), nil, $0, nil, nil, 0) } == 1
        }
        /// Reads results up to and including the next sync point.
        func drain() {
            while true {
                guard let res = PQgetResult(conn) else {
                    // End of one statement's results; the sync result follows the last one.
                    if PQstatus(conn) == CONNECTION_BAD {
                        if firstError == nil { firstError = lostOrServerError(nil) }
                        return
                    }
                    continue
                }
                let status = PQresultStatus(res)
                switch status {
                case PGRES_PIPELINE_SYNC:
                    PQclear(res)
                    return
                case PGRES_COMMAND_OK, PGRES_TUPLES_OK:
                    affected += Int(String(cString: PQcmdTuples(res))) ?? 0
                case PGRES_PIPELINE_ABORTED:
                    break
                default:
                    if firstError == nil { firstError = lostOrServerError(res) }
                }
                PQclear(res)
            }
        }

        var ok = send("BEGIN", [])
        var index = 0
        while ok && index < rows.count && firstError == nil {
            let end = min(index + chunkSize, rows.count)
            for i in index..<end where ok {
                ok = send(sql, rows[i])
            }
            index = end
            if ok { ok = PQpipelineSync(conn) == 1 }
            if ok { drain() }
        }
        if ok {
            ok = send(firstError == nil ? "COMMIT" : "ROLLBACK", [])
            if ok { ok = PQpipelineSync(conn) == 1 }
            if ok { drain() }
        }
        if !ok, firstError == nil { firstError = lostOrServerError(nil) }
        PQexitPipelineMode(conn)
        if let firstError {
            if PQtransactionStatus(conn) != PQTRANS_IDLE, PQstatus(conn) == CONNECTION_OK {
                _ = try? execOnThread("ROLLBACK", [])
            }
            throw firstError
        }
        return affected
    }

    /// The server's process ID for this connection.
    public func backendPID() async throws -> Int32 {
        try await thread.run {
            guard let conn = self.conn else { throw PostgresError(.connectionLost, message: "not connected") }
            return PQbackendPID(conn)
        }
    }
}
