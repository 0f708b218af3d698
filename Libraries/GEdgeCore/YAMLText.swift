import CYAML

/// YAML text to JSON values, within `DecodeLimits`. libyaml (Debian's libyaml) parses; its
/// events are composed here into values with an explicit stack, so no document's shape
/// can drive a recursion: nesting stops at `decode.max.depth`, every value (aliases
/// expanded, by the size of what they name) counts against `decode.max.nodes`, alias uses
/// against `decode.max.aliases`, and keys, strings and the text have their own limits.
///
/// Plain scalars resolve as Kubernetes' YAML reader (go-yaml, YAML 1.1) resolves them:
/// `null`/`~`/empty, booleans including `yes`/`no`/`on`/`off`, integers (decimal, `0x`,
/// `0o`, `0b`, leading-0 octal), floats; quoted scalars are strings. `.inf` and `.nan`
/// stay strings (JSON has no such numbers). Merge keys (`<<`) merge as YAML 1.1 says.
/// Mapping keys must be scalars; a key twice is an error.
public enum YAMLText {
    /// Every document of `text`, in order. Errors name `path`.
    public static func documents(_ text: String, path: String, limits: DecodeLimits = .process) throws(MessageDecodingError) -> [JSONValue] {
        var bytes = Array(text.utf8)
        return try documents(bytes: &bytes, path: path, limits: limits)
    }

    /// Exactly one document.
    public static func document(_ text: String, path: String, limits: DecodeLimits = .process) throws(MessageDecodingError) -> JSONValue {
        let docs = try documents(text, path: path, limits: limits)
        switch docs.count {
        case 0: throw MessageDecodingError(.missingField, field: path, reason: "the YAML holds no document")
        case 1: return docs[0]
        default: throw MessageDecodingError(.invalidValue, field: path, reason: "expected one YAML document, got \(docs.count)")
        }
    }

    /// Every document of UTF-8 bytes (invalid UTF-8 is an error from the parser).
    public static func documents(bytes: inout [UInt8], path: String, limits: DecodeLimits = .process) throws(MessageDecodingError) -> [JSONValue] {
        guard bytes.count <= limits.maxDocumentBytes else {
            throw limits.exceeded("decode.max.document.bytes", "a document of \(bytes.count) bytes, over \(limits.maxDocumentBytes)", at: path)
        }
        let result: Result<[JSONValue], MessageDecodingError> = bytes.withUnsafeBufferPointer { buf in
            var composer = YAMLComposer(limits: limits, path: path)
            do throws(MessageDecodingError) {
                return .success(try composer.run(buf))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}

/// Builds values from libyaml's events. One frame per open list or object.
struct YAMLComposer {
    let limits: DecodeLimits
    let path: String

    enum Container {
        case list([JSONValue])
        case object([String: JSONValue], key: String?, merges: [JSONValue])
    }

    struct Frame {
        var container: Container
        var anchor: String?
        /// The document's value count before this container opened: what it holds is the
        /// difference when it closes, for anchors.
        var start: Int
        /// The deepest nesting below this container, for anchors.
        var height: Int
    }

    /// An anchored value, with what it costs to use it again.
    struct Anchored {
        var value: JSONValue
        var nodes: Int
        var height: Int
    }

    var stack: [Frame] = []
    var anchors: [String: Anchored] = [:]
    var nodes = 0
    var aliases = 0
    var documents: [JSONValue] = []
    var root: JSONValue?

    init(limits: DecodeLimits, path: String) {
        self.limits = limits
        self.path = path
    }

    mutating func run(_ input: UnsafeBufferPointer<UInt8>) throws(MessageDecodingError) -> [JSONValue] {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            throw MessageDecodingError(.invalidValue, field: path, reason: "the YAML parser could not start")
        }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_input_string(&parser, input.baseAddress ?? UnsafePointer(bitPattern: 1), input.count)
        var event = yaml_event_t()
        while true {
            guard yaml_parser_parse(&parser, &event) == 1 else { throw syntaxError(parser) }
            let type = event.type
            do throws(MessageDecodingError) {
                try handle(&event)
            } catch {
                yaml_event_delete(&event)
                throw error
            }
            yaml_event_delete(&event)
            if type == YAML_STREAM_END_EVENT { return documents }
        }
    }

    func syntaxError(_ parser: yaml_parser_t) -> MessageDecodingError {
        let problem = parser.problem.map { String(cString: $0) } ?? "unknown error"
        let context = parser.context.map { String(cString: $0) + " " } ?? ""
        let mark = parser.problem_mark
        return MessageDecodingError(
            .malformedJSON, field: path,
            reason: "not valid YAML: \(context)\(problem) at line \(mark.line + 1), column \(mark.column + 1)")
    }

    static func text(_ p: UnsafeMutablePointer<yaml_char_t>?, length: Int? = nil) -> String? {
        guard let p else { return nil }
        var n = 0
        if let length { n = length } else { while p[n] != 0 { n += 1 } }
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }

    /// Where the composer is, as a field path, for errors.
    func here() -> String {
        var out = path
        for f in stack {
            switch f.container {
            case .list(let items): out += "[\(items.count)]"
            case .object(_, let key, _): if let key { out += out.isEmpty ? key : ".\(key)" }
            }
        }
        return out
    }

    mutating func count(_ n: Int) throws(MessageDecodingError) {
        nodes += n
        if nodes > limits.maxNodes {
            throw limits.exceeded("decode.max.nodes", "more than \(limits.maxNodes) values, aliases expanded", at: here())
        }
    }

    mutating func open(_ container: Container, anchor: String?) throws(MessageDecodingError) {
        if stack.count >= limits.maxDepth {
            throw limits.exceeded("decode.max.depth", "nested deeper than \(limits.maxDepth) levels", at: here())
        }
        let start = nodes
        try count(1)
        stack.append(Frame(container: container, anchor: anchor, start: start, height: 1))
    }

    mutating func handle(_ event: inout yaml_event_t) throws(MessageDecodingError) {
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            root = nil
            anchors.removeAll()
        case YAML_DOCUMENT_END_EVENT:
            documents.append(root ?? .null)
            root = nil
        case YAML_SCALAR_EVENT:
            let s = event.data.scalar
            guard s.length <= limits.maxStringBytes else {
                throw limits.exceeded("decode.max.string.bytes", "a scalar of \(s.length) bytes, over \(limits.maxStringBytes)", at: here())
            }
            let raw = Self.text(s.value, length: s.length) ?? ""
            let tag = Self.text(s.tag)
            let plain = s.style == YAML_PLAIN_SCALAR_STYLE
            try count(1)
            // A key in an object waiting for one is kept as its text.
            if case .object(_, nil, _)? = stack.last?.container {
                try setKey(raw)
                if let anchor = Self.text(s.anchor) { anchors[anchor] = Anchored(value: .string(raw), nodes: 1, height: 0) }
                return
            }
            let value = try Self.resolve(raw, plain: plain, tag: tag, at: here())
            if let anchor = Self.text(s.anchor) { anchors[anchor] = Anchored(value: value, nodes: 1, height: 0) }
            try add(value, height: 0)
        case YAML_ALIAS_EVENT:
            let name = Self.text(event.data.alias.anchor) ?? ""
            aliases += 1
            if aliases > limits.maxAliases {
                throw limits.exceeded("decode.max.aliases", limits.maxAliases == 0 ? "YAML aliases are not accepted" : "more than \(limits.maxAliases) alias uses", at: here())
            }
            guard let hit = anchors[name] else {
                throw MessageDecodingError(.invalidValue, field: here(), reason: "the alias *\(name) names no anchor before it")
            }
            if stack.count + hit.height > limits.maxDepth {
                throw limits.exceeded("decode.max.depth", "nested deeper than \(limits.maxDepth) levels through alias *\(name)", at: here())
            }
            try count(hit.nodes)
            if case .object(_, nil, _)? = stack.last?.container {
                guard case .string(let key) = hit.value else {
                    throw MessageDecodingError(.invalidValue, field: here(), reason: "a mapping key that is not a string")
                }
                try setKey(key)
                return
            }
            try add(hit.value, height: hit.height)
        case YAML_SEQUENCE_START_EVENT:
            if case .object(_, nil, _)? = stack.last?.container {
                throw MessageDecodingError(.invalidValue, field: here(), reason: "a mapping key that is not a string")
            }
            try open(.list([]), anchor: Self.text(event.data.sequence_start.anchor))
        case YAML_MAPPING_START_EVENT:
            if case .object(_, nil, _)? = stack.last?.container {
                throw MessageDecodingError(.invalidValue, field: here(), reason: "a mapping key that is not a string")
            }
            try open(.object([:], key: nil, merges: []), anchor: Self.text(event.data.mapping_start.anchor))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let frame = stack.popLast() else { return }
            let value: JSONValue
            switch frame.container {
            case .list(let items): value = .array(items)
            case .object(var fields, _, let merges):
                // Explicit keys win over merged ones; earlier merge sources over later ones.
                for source in merges {
                    let maps: [JSONValue]
                    if case .array(let list) = source { maps = list } else { maps = [source] }
                    for m in maps {
                        guard case .object(let extra) = m else {
                            throw MessageDecodingError(.invalidValue, field: here() + ".<<", reason: "a merge key takes a mapping or a list of mappings")
                        }
                        for (k, v) in extra where fields[k] == nil { fields[k] = v }
                    }
                }
                if fields.count > limits.maxKeys {
                    throw limits.exceeded("decode.max.keys", "an object of more than \(limits.maxKeys) keys", at: here())
                }
                value = .object(fields)
            }
            if let anchor = frame.anchor { anchors[anchor] = Anchored(value: value, nodes: nodes - frame.start, height: frame.height) }
            try add(value, height: frame.height)
        default:
            break
        }
    }

    mutating func setKey(_ key: String) throws(MessageDecodingError) {
        guard case .object(let fields, nil, let merges)? = stack.last?.container else { return }
        if fields[key] != nil {
            let field = here()
            throw MessageDecodingError(.invalidValue, field: field.isEmpty ? key : "\(field).\(key)", reason: "the key appears twice")
        }
        if fields.count >= limits.maxKeys {
            throw limits.exceeded("decode.max.keys", "an object of more than \(limits.maxKeys) keys", at: here())
        }
        stack[stack.count - 1].container = .object(fields, key: key, merges: merges)
    }

    /// A finished value goes to its parent: the list, the object's pending key, or the root.
    mutating func add(_ value: JSONValue, height: Int) throws(MessageDecodingError) {
        guard let last = stack.indices.last else {
            root = value
            return
        }
        stack[last].height = max(stack[last].height, height + 1)
        switch stack[last].container {
        case .list(var items):
            stack[last].container = .list([])
            items.append(value)
            stack[last].container = .list(items)
        case .object(var fields, let key?, var merges):
            stack[last].container = .object([:], key: nil, merges: [])
            if key == "<<" {
                merges.append(value)
            } else {
                fields[key] = value
            }
            stack[last].container = .object(fields, key: nil, merges: merges)
        case .object(_, nil, _):
            throw MessageDecodingError(.invalidValue, field: here(), reason: "a mapping key that is not a string")
        }
    }

    // MARK: scalars

    static let yamlTag = "tag:yaml.org,2002:"

    static func resolve(_ raw: String, plain: Bool, tag: String?, at field: String) throws(MessageDecodingError) -> JSONValue {
        if let tag, tag != "!" {
            guard tag.hasPrefix(yamlTag) else { return .string(raw) }
            switch tag.dropFirst(yamlTag.count) {
            case "str", "binary", "timestamp": return .string(raw)
            case "null": return .null
            case "bool":
                guard let b = boolean(raw) else { throw MessageDecodingError(.invalidValue, field: field, reason: "'\(raw)' is not a !!bool") }
                return .bool(b)
            case "int":
                guard let n = integer(raw) else { throw MessageDecodingError(.invalidValue, field: field, reason: "'\(raw)' is not an !!int") }
                return .number(n)
            case "float":
                guard let n = integer(raw) ?? float(raw) else { throw MessageDecodingError(.invalidValue, field: field, reason: "'\(raw)' is not a !!float") }
                return .number(n)
            default: return .string(raw)
            }
        }
        guard plain else { return .string(raw) }
        switch raw {
        case "", "~", "null", "Null", "NULL": return .null
        default: break
        }
        if let b = boolean(raw) { return .bool(b) }
        guard let first = raw.utf8.first, first == UInt8(ascii: "-") || first == UInt8(ascii: "+") || first == UInt8(ascii: ".")
                || (first >= 0x30 && first <= 0x39) else { return .string(raw) }
        if let n = integer(raw) { return .number(n) }
        if let n = float(raw) { return .number(n) }
        return .string(raw)
    }

    static func boolean(_ s: String) -> Bool? {
        switch s {
        case "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON": true
        case "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF": false
        default: nil
        }
    }

    /// Integers as YAML 1.1 writes them, up to 64 bits; larger ones stay text.
    static func integer(_ s: String) -> Double? {
        var body = Substring(s)
        var negative = false
        if let f = body.first, f == "-" || f == "+" {
            negative = f == "-"
            body = body.dropFirst()
        }
        guard !body.isEmpty, !body.hasPrefix("_") else { return nil }
        var radix = 10
        if body.hasPrefix("0x") { radix = 16; body = body.dropFirst(2) }
        else if body.hasPrefix("0o") { radix = 8; body = body.dropFirst(2) }
        else if body.hasPrefix("0b") { radix = 2; body = body.dropFirst(2) }
        else if body.count > 1, body.hasPrefix("0") { radix = 8; body = body.dropFirst() }
        let digits = body.filter { $0 != "_" }
        guard !digits.isEmpty, let magnitude = UInt64(digits, radix: radix), magnitude <= UInt64(Int64.max) else { return nil }
        let v = Double(magnitude)
        return negative ? -v : v
    }

    /// Finite floats only: `.inf` and `.nan` are not JSON numbers and stay text.
    static func float(_ s: String) -> Double? {
        let cleaned = s.filter { $0 != "_" }
        guard cleaned.contains(where: { $0.isNumber }),
              cleaned.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }),
              let d = Double(cleaned), d.isFinite else { return nil }
        return d
    }
}
