import GEdgeCore

/// Proves which project wrote a schedule request to Kafka (docs/security.md). Each project
/// has a producer key, derived from the platform's signing secret
/// (`HMAC-SHA-256(secret, "gedge-producer-key:v1:" + project)`), so no key is stored
/// anywhere; an admin hands a project its key (`GET /v1/projects/{p}/producer-key`). A
/// producer sends two headers:
///
/// - `gedge-project`: the project it writes for;
/// - `gedge-signature`: `v1=` and the hex HMAC-SHA-256, under the project's key, of the
///   record's key, one 0 byte, and its value.
///
/// The scheduler checks the signature (in constant time) before it decodes anything, and
/// takes the request's project from the header, not from the message.
public struct ProducerSigning: Sendable {
    public static let projectHeader = "gedge-project"
    public static let signatureHeader = "gedge-signature"

    let secret: [UInt8]

    public init(secret: [UInt8]) throws(ConfigurationError) {
        guard secret.count >= 32 else {
            throw ConfigurationError(key: "producers.secret", reason: "the signing secret must be at least 32 bytes (openssl rand -hex 32)")
        }
        self.secret = secret
    }

    /// The project's producer key, as hex.
    public func key(project: String) -> [UInt8] {
        Digests.hmacSHA256(key: secret, message: Array("gedge-producer-key:v1:\(project)".utf8))
    }

    public static func signedBytes(key: [UInt8]?, value: [UInt8]) -> [UInt8] {
        (key ?? []) + [0] + value
    }

    /// The headers for a record written by `project`, signed with `projectKey`.
    public static func headers(project: String, projectKey: [UInt8], key: [UInt8]?, value: [UInt8]) -> [(String, String)] {
        [(projectHeader, project), (signatureHeader, "v1=" + Digests.hmacSHA256Hex(key: projectKey, message: signedBytes(key: key, value: value)))]
    }

    public enum Failure: Error, Sendable, CustomStringConvertible {
        case unsigned
        case badSignature(project: String)
        public var description: String {
            switch self {
            case .unsigned: "unauthenticated: the message has no gedge-project and gedge-signature headers"
            case .badSignature(let p): "unauthenticated: the signature does not match project '\(p)''s producer key"
            }
        }
    }

    /// The project that signed the record; throws when it is unsigned or the signature is wrong.
    public func verify(headers: [(String, String?)], key: [UInt8]?, value: [UInt8]) throws(Failure) -> String {
        guard let project = headers.last(where: { $0.0 == Self.projectHeader })?.1, !project.isEmpty,
              let signature = headers.last(where: { $0.0 == Self.signatureHeader })?.1 else { throw .unsigned }
        guard signature.hasPrefix("v1="),
              Digests.isValidHMACSHA256(signatureHex: String(signature.dropFirst(3)), key: self.key(project: project), message: Self.signedBytes(key: key, value: value))
        else { throw .badSignature(project: project) }
        return project
    }
}
