/// Why a message could not be decoded, naming the field at fault (a dotted path such as
/// `source.object` or `msg.policy`; empty for the document as a whole).
public struct MessageDecodingError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let raw: String
        public static let malformedJSON = Code(raw: "malformed_json")
        public static let tooLarge = Code(raw: "too_large")
        public static let missingField = Code(raw: "missing_field")
        public static let unknownField = Code(raw: "unknown_field")
        public static let wrongType = Code(raw: "wrong_type")
        public static let invalidValue = Code(raw: "invalid_value")
        public static let unknownCode = Code(raw: "unknown_code")
        public var description: String { raw }
    }

    public let code: Code
    public let field: String
    public let reason: String

    public init(_ code: Code, field: String, reason: String) {
        self.code = code
        self.field = field
        self.reason = reason
    }

    public var description: String {
        field.isEmpty ? "\(code): \(reason)" : "\(code) at \(field): \(reason)"
    }

    /// The same error for a part decoded on its own (with an empty path) inside `path`:
    /// lets a decoder of many parts build a part's path only when one fails.
    public func under(_ path: String) -> MessageDecodingError {
        guard !path.isEmpty else { return self }
        let inner = field.isEmpty ? path : (field.hasPrefix("[") ? path + field : path + "." + field)
        return MessageDecodingError(code, field: inner, reason: reason)
    }

    /// A decoding error is never retriable: the same bytes fail the same way.
    public var isRetriable: Bool { false }
}

/// Reads typed fields out of a `JSONValue` object, building the error path as it goes.
public struct FieldReader: Sendable {
    public let path: String
    public let fields: [String: JSONValue]

    public init(_ value: JSONValue, path: String) throws(MessageDecodingError) {
        guard case .object(let fields) = value else {
            throw MessageDecodingError(.wrongType, field: path, reason: "expected an object, got \(value.kindName)")
        }
        self.path = path
        self.fields = fields
    }

    public func childPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Rejects any field not in `allowed`: a short list, searched in place (a literal list
    /// costs no allocation, where a Set literal would be hashed on every message).
    public func rejectUnknown(allowed: [String]) throws(MessageDecodingError) {
        guard fields.keys.contains(where: { !allowed.contains($0) }) else { return }
        try rejectUnknown(allowed: Set(allowed))
    }

    /// Rejects any field not in `allowed`.
    public func rejectUnknown(allowed: Set<String>) throws(MessageDecodingError) {
        guard fields.keys.contains(where: { !allowed.contains($0) }) else { return }
        // The first unknown field in order, so the same message always names the same one.
        for key in fields.keys.sorted() where !allowed.contains(key) {
            throw MessageDecodingError(.unknownField, field: childPath(key), reason: "unknown field '\(key)'")
        }
    }

    public func required(_ key: String) throws(MessageDecodingError) -> JSONValue {
        guard let value = fields[key], value != .null else {
            throw MessageDecodingError(.missingField, field: childPath(key), reason: "required field '\(key)' is missing")
        }
        return value
    }

    public func string(_ key: String) throws(MessageDecodingError) -> String {
        let value = try required(key)
        guard case .string(let s) = value else {
            throw MessageDecodingError(.wrongType, field: childPath(key), reason: "expected a string, got \(value.kindName)")
        }
        return s
    }

    public func optionalString(_ key: String) throws(MessageDecodingError) -> String? {
        guard let value = fields[key], value != .null else { return nil }
        guard case .string(let s) = value else {
            throw MessageDecodingError(.wrongType, field: childPath(key), reason: "expected a string, got \(value.kindName)")
        }
        return s
    }

    public func optionalBool(_ key: String) throws(MessageDecodingError) -> Bool? {
        guard let value = fields[key], value != .null else { return nil }
        switch value {
        case .bool(let b): return b
        case .string("true"), .string("True"): return true
        case .string("false"), .string("False"): return false
        default:
            throw MessageDecodingError(.wrongType, field: childPath(key), reason: "expected a boolean, got \(value.kindName)")
        }
    }

    public func optionalStringList(_ key: String) throws(MessageDecodingError) -> [String]? {
        guard let value = fields[key], value != .null else { return nil }
        guard case .array(let items) = value else {
            throw MessageDecodingError(.wrongType, field: childPath(key), reason: "expected a list of strings, got \(value.kindName)")
        }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            guard case .string(let s) = item else {
                throw MessageDecodingError(.wrongType, field: "\(childPath(key))[\(i)]", reason: "expected a string, got \(item.kindName)")
            }
            out.append(s)
        }
        return out
    }

    public func optionalNumber(_ key: String) throws(MessageDecodingError) -> Double? {
        guard let value = fields[key], value != .null else { return nil }
        switch value {
        case .number(let d): return d
        case .string(let s) where Double(s) != nil: return Double(s)
        default:
            throw MessageDecodingError(.wrongType, field: childPath(key), reason: "expected a number, got \(value.kindName)")
        }
    }

    public func optionalInt(_ key: String) throws(MessageDecodingError) -> Int? {
        guard let d = try optionalNumber(key) else { return nil }
        guard d.rounded() == d, abs(d) < 9.0e15 else {
            throw MessageDecodingError(.invalidValue, field: childPath(key), reason: "expected a whole number, got \(d)")
        }
        return Int(d)
    }

    public func optionalObject(_ key: String) throws(MessageDecodingError) -> FieldReader? {
        guard let value = fields[key], value != .null else { return nil }
        return try FieldReader(value, path: childPath(key))
    }

    public func optionalList(_ key: String) throws(MessageDecodingError) -> [JSONValue]? {
        guard let value = fields[key], value != .null else { return nil }
        guard case .array(let items) = value else {
            throw MessageDecodingError(.wrongType, field: childPath(key), reason: "expected a list, got \(value.kindName)")
        }
        return items
    }

    /// A map of string values (labels, selectors).
    public func optionalStringMap(_ key: String) throws(MessageDecodingError) -> [String: String]? {
        guard let reader = try optionalObject(key) else { return nil }
        var out: [String: String] = [:]
        for (k, v) in reader.fields {
            switch v {
            case .string(let s): out[k] = s
            case .number(let d): out[k] = d.rounded() == d ? String(Int64(d)) : String(d)
            case .bool(let b): out[k] = String(b)
            default:
                throw MessageDecodingError(.wrongType, field: reader.childPath(k), reason: "expected a string, got \(v.kindName)")
            }
        }
        return out
    }
}
