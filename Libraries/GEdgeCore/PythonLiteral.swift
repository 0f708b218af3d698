/// Reads the Python list literals GS-Scheduler's form fields carry (`['c1',['c2','c3']]`),
/// as the original read them with `ast.literal_eval`, but only strings and (nested) lists:
/// no numbers, names, calls or expressions, and nothing is ever evaluated. JSON lists of
/// strings are the same text and read the same way.
public enum PythonLiteral {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public var description: String { "at character \(offset + 1): \(reason)" }
    }

    /// A list of strings and lists. Depth and size are bounded by `limits`.
    public static func stringList(_ text: String, limits: DecodeLimits = .process) throws(Failure) -> JSONValue {
        var p = Parser(bytes: Array(text.utf8), limits: limits)
        p.skipSpace()
        guard p.peek == UInt8(ascii: "[") || p.peek == UInt8(ascii: "(") else {
            throw Failure(offset: p.i, reason: "expected a list such as ['c1', ['c2', 'c3']]")
        }
        let v = try p.value(depth: 1)
        p.skipSpace()
        guard p.i == p.bytes.count else { throw Failure(offset: p.i, reason: "unexpected text after the list") }
        return v
    }

    struct Parser {
        let bytes: [UInt8]
        let limits: DecodeLimits
        var i = 0
        var nodes = 0

        var peek: UInt8? { i < bytes.count ? bytes[i] : nil }

        mutating func skipSpace() {
            while let c = peek, c == 32 || c == 9 || c == 10 || c == 13 { i += 1 }
        }

        mutating func value(depth: Int) throws(Failure) -> JSONValue {
            guard depth <= limits.maxDepth else { throw Failure(offset: i, reason: "nested deeper than \(limits.maxDepth) (decode.max.depth)") }
            nodes += 1
            guard nodes <= limits.maxNodes else { throw Failure(offset: i, reason: "more than \(limits.maxNodes) values (decode.max.nodes)") }
            skipSpace()
            guard let c = peek else { throw Failure(offset: i, reason: "the text ends inside the list") }
            switch c {
            case UInt8(ascii: "["), UInt8(ascii: "("):
                let close = c == UInt8(ascii: "[") ? UInt8(ascii: "]") : UInt8(ascii: ")")
                i += 1
                var items: [JSONValue] = []
                while true {
                    skipSpace()
                    if peek == close { i += 1; return .array(items) }
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    if peek == UInt8(ascii: ",") { i += 1; continue }
                    if peek == close { i += 1; return .array(items) }
                    throw Failure(offset: i, reason: "expected ',' or '\(Character(UnicodeScalar(close)))'")
                }
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                return .string(try string(quote: c))
            default:
                throw Failure(offset: i, reason: "only quoted names and lists are accepted here")
            }
        }

        mutating func string(quote: UInt8) throws(Failure) -> String {
            let start = i
            i += 1
            var out: [UInt8] = []
            while let c = peek {
                i += 1
                if c == quote {
                    guard let s = String(validating: out, as: UTF8.self) else { throw Failure(offset: start, reason: "not UTF-8") }
                    return s
                }
                if c == 10 || c == 13 { break }
                if c == UInt8(ascii: "\\") {
                    guard let e = peek else { break }
                    i += 1
                    switch e {
                    case UInt8(ascii: "\\"), UInt8(ascii: "'"), UInt8(ascii: "\""): out.append(e)
                    case UInt8(ascii: "n"): out.append(10)
                    case UInt8(ascii: "t"): out.append(9)
                    default: throw Failure(offset: i - 2, reason: "escape '\\\(Character(UnicodeScalar(e)))' is not accepted")
                    }
                } else {
                    out.append(c)
                }
                guard out.count <= limits.maxStringBytes else { throw Failure(offset: start, reason: "a name longer than \(limits.maxStringBytes) bytes") }
            }
            throw Failure(offset: start, reason: "unterminated string")
        }
    }
}
