import Foundation
import GEdgeCore

/// A query parameter, sent in PostgreSQL's text format. Parameters are always sent apart
/// from the SQL text: no value is ever spliced into a statement.
public enum PostgresValue: Sendable, Hashable {
    case null
    case text(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    case bytes([UInt8])
    case json(JSONValue)
    case timestamp(Date)

    var textForm: String? {
        switch self {
        case .null: return nil
        case .text(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bool(let b): return b ? "t" : "f"
        case .bytes(let b): return "\\x" + b.map { String(format: "%02x", $0) }.joined()
        case .json(let j): return String(decoding: j.serialized(), as: UTF8.self)
        case .timestamp(let d): return PostgresTimestamp.format(d)
        }
    }
}

extension PostgresValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension PostgresValue {
    public static func optional(_ s: String?) -> PostgresValue { s.map(PostgresValue.text) ?? .null }
    public static func int(_ i: Int) -> PostgresValue { .int(Int64(i)) }

    /// A `text[]` parameter: `{"a","b"}`, each element quoted with quotes and backslashes
    /// escaped (cast it in the statement: `$1::text[]`).
    public static func textArray(_ items: [String]) -> PostgresValue {
        .text("{" + items.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }.joined(separator: ",") + "}")
    }
}

/// A type that can be read from a column's text form.
public protocol PostgresDecodable: Sendable {
    static func decode(postgresText: String) -> Self?
}

extension String: PostgresDecodable {
    public static func decode(postgresText: String) -> String? { postgresText }
}
extension Int: PostgresDecodable {
    public static func decode(postgresText: String) -> Int? { Int(postgresText) }
}
extension Int64: PostgresDecodable {
    public static func decode(postgresText: String) -> Int64? { Int64(postgresText) }
}
extension Int32: PostgresDecodable {
    public static func decode(postgresText: String) -> Int32? { Int32(postgresText) }
}
extension Double: PostgresDecodable {
    public static func decode(postgresText: String) -> Double? { Double(postgresText) }
}
extension Bool: PostgresDecodable {
    public static func decode(postgresText: String) -> Bool? {
        switch postgresText {
        case "t", "true": true
        case "f", "false": false
        default: nil
        }
    }
}
extension Date: PostgresDecodable {
    public static func decode(postgresText: String) -> Date? { PostgresTimestamp.parse(postgresText) }
}
extension JSONValue: PostgresDecodable {
    public static func decode(postgresText: String) -> JSONValue? { try? JSONValue.parse(Array(postgresText.utf8)) }
}
extension UUID: PostgresDecodable {
    public static func decode(postgresText: String) -> UUID? { UUID(uuidString: postgresText) }
}

/// Timestamps in the text form a session with `TimeZone=UTC` uses: `2026-11-23 04:33:47.123456+00`.
public enum PostgresTimestamp {
    public static func format(_ date: Date) -> String {
        let t = date.timeIntervalSince1970
        var secs = time_t(floor(t))
        let micros = Int(((t - floor(t)) * 1_000_000).rounded())
        var tmv = tm()
        gmtime_r(&secs, &tmv)
        return String(
            format: "%04d-%02d-%02d %02d:%02d:%02d.%06d+00", tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday,
            tmv.tm_hour, tmv.tm_min, tmv.tm_sec, min(micros, 999_999))
    }

    public static func parse(_ text: String) -> Date? {
        // yyyy-mm-dd hh:mm:ss[.ffffff][+hh[:mm]]
        let u = Array(text.utf8)
        guard u.count >= 19 else { return nil }
        func num(_ a: Int, _ b: Int) -> Int? {
            var v = 0
            for i in a..<b {
                guard u[i] >= 48 && u[i] <= 57 else { return nil }
                v = v * 10 + Int(u[i] - 48)
            }
            return v
        }
        guard let y = num(0, 4), let mo = num(5, 7), let d = num(8, 10), let h = num(11, 13), let mi = num(14, 16), let s = num(17, 19) else {
            return nil
        }
        var i = 19
        var frac = 0.0
        if i < u.count, u[i] == 46 {
            i += 1
            var scale = 0.1
            while i < u.count, u[i] >= 48, u[i] <= 57 {
                frac += Double(u[i] - 48) * scale
                scale /= 10
                i += 1
            }
        }
        var offset = 0
        if i < u.count, u[i] == 43 || u[i] == 45 {
            let sign = u[i] == 45 ? -1 : 1
            guard i + 3 <= u.count, let oh = num(i + 1, i + 3) else { return nil }
            var om = 0
            if i + 6 <= u.count, u[i + 3] == 58, let m = num(i + 4, i + 6) { om = m }
            offset = sign * (oh * 3600 + om * 60)
        }
        var tmv = tm()
        tmv.tm_year = Int32(y - 1900)
        tmv.tm_mon = Int32(mo - 1)
        tmv.tm_mday = Int32(d)
        tmv.tm_hour = Int32(h)
        tmv.tm_min = Int32(mi)
        tmv.tm_sec = Int32(s)
        let epoch = timegm(&tmv)
        return Date(timeIntervalSince1970: Double(epoch - offset) + frac)
    }
}

/// One result row. Values are kept in text form and decoded on access.
public struct PostgresRow: Sendable {
    public let columns: [String]
    public let values: [String?]

    public func index(of column: String) throws(PostgresError) -> Int {
        guard let i = columns.firstIndex(of: column) else {
            throw PostgresError(.decoding, message: "no column '\(column)' in \(columns)")
        }
        return i
    }

    /// Decodes a non-null column.
    public func decode<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws(PostgresError) -> T {
        let i = try index(of: column)
        guard let text = values[i] else {
            throw PostgresError(.decoding, message: "column '\(column)' is null, expected \(T.self)")
        }
        guard let v = T.decode(postgresText: text) else {
            throw PostgresError(.decoding, message: "column '\(column)': '\(text.prefix(64))' is not a \(T.self)")
        }
        return v
    }

    /// Decodes a nullable column.
    public func decodeOptional<T: PostgresDecodable>(_ column: String, as type: T.Type = T.self) throws(PostgresError) -> T? {
        let i = try index(of: column)
        guard let text = values[i] else { return nil }
        guard let v = T.decode(postgresText: text) else {
            throw PostgresError(.decoding, message: "column '\(column)': '\(text.prefix(64))' is not a \(T.self)")
        }
        return v
    }
}
