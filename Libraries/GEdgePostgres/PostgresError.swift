import GEdgeCore

/// An error from PostgreSQL or libpq.
public struct PostgresError: Error, Sendable, CustomStringConvertible, TransientError {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let raw: String
        /// Could not connect.
        public static let connectionFailed = Code(raw: "connection_failed")
        /// The connection broke during a call; the statement may or may not have run.
        public static let connectionLost = Code(raw: "connection_lost")
        /// The server rejected the statement (see `sqlState`).
        public static let server = Code(raw: "server")
        /// A value could not be decoded into the asked-for type.
        public static let decoding = Code(raw: "decoding")
        /// A migration file or the migration history is inconsistent.
        public static let migration = Code(raw: "migration")
        /// The pool is shut down.
        public static let poolClosed = Code(raw: "pool_closed")
        public var description: String { raw }
    }

    public let code: Code
    /// The SQLSTATE for server errors (`23505` unique violation, `40001` serialization failure...).
    public let sqlState: String?
    public let message: String

    public init(_ code: Code, sqlState: String? = nil, message: String) {
        self.code = code
        self.sqlState = sqlState
        self.message = message
    }

    /// Trying again (on a fresh connection or transaction) may succeed. A closed pool
    /// counts as transient: it is closed at shutdown, and a consumer then stops retrying
    /// without acknowledging anything.
    public var isRetriable: Bool {
        switch code {
        case .connectionFailed, .connectionLost, .poolClosed: return true
        case .server:
            // serialization_failure, deadlock_detected, statement timeout, admin/crash
            // shutdown, cannot_connect_now; connection exceptions; insufficient resources.
            let state = sqlState ?? ""
            return ["40001", "40P01", "57014", "57P01", "57P02", "57P03"].contains(state)
                || state.hasPrefix("08") || state.hasPrefix("53")
        default: return false
        }
    }

    public var isUniqueViolation: Bool { sqlState == "23505" }

    public var description: String {
        "PostgresError(\(code)\(sqlState.map { ", \($0)" } ?? "")): \(message)"
    }
}
