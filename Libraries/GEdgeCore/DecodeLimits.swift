import Synchronization

/// Bounds on every document the suite reads (JSON and YAML, from HTTP, Kafka, RabbitMQ or
/// a file). A document past one of them is refused with an error that names the limit's
/// configuration key, before it can cost more than a few MiB or drive any recursion deep.
///
/// Keys (docs/configuration.md): `decode.max.depth`, `decode.max.nodes`,
/// `decode.max.aliases`, `decode.max.keys`, `decode.max.string.bytes`,
/// `decode.max.document.bytes`.
public struct DecodeLimits: Sendable, Hashable {
    /// Nesting of lists and objects.
    public var maxDepth = 64
    /// Values in a document (every scalar, list and object), YAML aliases expanded: an
    /// alias counts every value of what it names, so a "billion laughs" stops here.
    public var maxNodes = 100_000
    /// YAML alias uses in a document.
    public var maxAliases = 1_000
    /// Keys in one object.
    public var maxKeys = 10_000
    /// Bytes of one string or key.
    public var maxStringBytes = 1 << 20
    /// Bytes of the whole text.
    public var maxDocumentBytes = 4 << 20

    public init() {}

    public static let keys = [
        "decode.max.depth", "decode.max.nodes", "decode.max.aliases", "decode.max.keys",
        "decode.max.string.bytes", "decode.max.document.bytes",
    ]

    public init(_ c: ConfigReader) throws {
        let d = DecodeLimits()
        func positive(_ key: String, _ value: Int) throws -> Int {
            let v = try c.int(key, default: value)
            guard v > 0 else { throw ConfigurationError(key: key, reason: "must be a positive number, got \(v)") }
            return v
        }
        maxDepth = try positive("decode.max.depth", d.maxDepth)
        maxNodes = try positive("decode.max.nodes", d.maxNodes)
        maxAliases = try c.int("decode.max.aliases", default: d.maxAliases)
        guard maxAliases >= 0 else { throw ConfigurationError(key: "decode.max.aliases", reason: "must be 0 (aliases refused) or more") }
        maxKeys = try positive("decode.max.keys", d.maxKeys)
        maxStringBytes = try positive("decode.max.string.bytes", d.maxStringBytes)
        maxDocumentBytes = try positive("decode.max.document.bytes", d.maxDocumentBytes)
        guard maxDepth <= 1_000 else {
            throw ConfigurationError(key: "decode.max.depth", reason: "at most 1000: deeper values are torn down recursively")
        }
    }

    private static let current = Mutex(DecodeLimits())

    /// The limits of this process: the defaults, or what its configuration set at startup.
    public static var process: DecodeLimits {
        get { current.withLock { $0 } }
        set { current.withLock { $0 = newValue } }
    }

    /// Reads the limits from configuration and makes them the process's.
    public static func configure(_ c: ConfigReader) throws {
        process = try DecodeLimits(c)
    }

    /// The error for a limit passed.
    func exceeded(_ key: String, _ what: String, at field: String = "") -> MessageDecodingError {
        MessageDecodingError(.tooLarge, field: field, reason: "\(what) (limit \(key))")
    }
}
