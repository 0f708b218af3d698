import Foundation

/// A JSON document held as a tree, for payloads whose shape is checked field by field.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// A short name of the JSON kind, used in error messages ("expected a string, got a number").
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "a list"
        case .object: "an object"
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let fields) = self { return fields[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The path of the first string (or key) holding a NUL character, which PostgreSQL's
    /// text and jsonb cannot store; nil when there is none.
    public func pathOfNUL(_ path: String = "") -> String? {
        // Paths are built only when there is one to report.
        containsNUL ? firstNUL(path) : nil
    }

    var containsNUL: Bool {
        switch self {
        case .string(let s): return s.utf8.contains(0)
        case .array(let items): return items.contains { $0.containsNUL }
        case .object(let fields): return fields.contains { $0.key.utf8.contains(0) || $0.value.containsNUL }
        default: return false
        }
    }

    private func firstNUL(_ path: String) -> String? {
        switch self {
        case .string(let s): return s.utf8.contains(0) ? path : nil
        case .array(let items):
            for (i, v) in items.enumerated() where v.containsNUL { return v.firstNUL("\(path)[\(i)]") }
            return nil
        case .object(let fields):
            for (k, v) in fields where k.utf8.contains(0) || v.containsNUL {
                let child = path.isEmpty ? k : "\(path).\(k)"
                return k.utf8.contains(0) ? child : v.firstNUL(child)
            }
            return nil
        default: return nil
        }
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    public var numberValue: Double? {
        if case .number(let d) = self { return d }
        return nil
    }
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {
            self = .bool(b)
        } else if let d = try? container.decode(Double.self) {
            self = .number(d)
        } else if let s = try? container.decode(String.self) {
            self = .string(s)
        } else if let a = try? container.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .number(let d):
            if d.rounded() == d, abs(d) < 9.0e15 { try container.encode(Int64(d)) } else { try container.encode(d) }
        case .string(let s): try container.encode(s)
        case .array(let a): try container.encode(a)
        case .object(let o): try container.encode(o)
        }
    }
}

extension JSONValue {
    /// Parses JSON bytes (RFC 8259) within `limits` (the process's unless given). Errors
    /// are `MessageDecodingError` with an empty field path; a limit passed is `too_large`
    /// and names its configuration key.
    public static func parse(_ bytes: some Collection<UInt8>, limits: DecodeLimits = .process) throws(MessageDecodingError) -> JSONValue {
        try JSONParser.parse(bytes, limits: limits)
    }

    /// Serializes compactly with keys sorted by their UTF-8 bytes, so equal values give
    /// equal bytes. A number that is not finite is written as null.
    public func serialized() -> [UInt8] { JSONWriter.write(self) }

    /// Indented text (two spaces, keys sorted), for people. Values come from the bounded
    /// decoder, so the recursion is as deep as `decode.max.depth` at most.
    public func prettyPrinted(indent: Int = 0) -> String {
        let pad = String(repeating: "  ", count: indent + 1), end = String(repeating: "  ", count: indent)
        switch self {
        case .array(let items) where !items.isEmpty:
            return "[\n" + items.map { pad + $0.prettyPrinted(indent: indent + 1) }.joined(separator: ",\n") + "\n\(end)]"
        case .object(let fields) where !fields.isEmpty:
            let keys = fields.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            return "{\n" + keys.map { k in
                pad + String(decoding: JSONValue.string(k).serialized(), as: UTF8.self) + ": " + fields[k]!.prettyPrinted(indent: indent + 1)
            }.joined(separator: ",\n") + "\n\(end)}"
        default:
            return String(decoding: serialized(), as: UTF8.self)
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral, ExpressibleByFloatLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .number(value) }
}

extension JSONValue {
    /// A timestamp as the suite writes it: ISO 8601, UTC, milliseconds.
    public static func timestamp(_ date: Date) -> JSONValue {
        .string(Date.ISO8601FormatStyle(includingFractionalSeconds: true).format(date))
    }
}
