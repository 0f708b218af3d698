import Crypto
import Foundation
import GEdgeCore

/// The key that seals registered clusters' credentials: 32 random bytes, hex in a file
/// (`openssl rand -hex 32`), never in the database. Its ID (the first 16 hex digits of its
/// SHA-256) is stored beside each sealed box, so a wrong key is named as such.
public struct ClusterCredentialsKey: Sendable {
    private let bytes: [UInt8]
    var key: SymmetricKey { SymmetricKey(data: bytes) }
    public let id: String

    public init(hex: String) throws {
        let h = hex.trimmingCharacters(in: .whitespacesAndNewlines)
        guard h.count == 64, let bytes = Hex.decode(h) else {
            throw ConfigurationError(key: "cluster.credentials.key.file", reason: "the key is 64 hex digits (32 bytes: openssl rand -hex 32)")
        }
        self.bytes = bytes
        id = String(SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined().prefix(16))
    }

    public init(file: String) throws {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw ConfigurationError(key: "cluster.credentials.key.file", reason: "cannot read \(file)")
        }
        try self.init(hex: String(decoding: data, as: UTF8.self))
    }

    /// From `cluster.credentials.key.file`, or nil when it is not set.
    public init?(_ config: ConfigReader) throws {
        guard let file = config.string("cluster.credentials.key.file") else { return nil }
        try self.init(file: file)
    }
}

/// A cluster's API credentials: a bearer token and the CA that signs its server's
/// certificate. Never printed: `description` names no secret.
public struct ClusterCredentials: Sendable, Equatable, CustomStringConvertible {
    public var token: String
    public var caPEM: String?

    public init(token: String, caPEM: String?) {
        self.token = token
        self.caPEM = caPEM
    }

    public var description: String { "ClusterCredentials(token: <redacted>, ca: \(caPEM == nil ? "none" : "\(caPEM!.utf8.count) bytes"))" }

    /// AES-256-GCM with the cluster's name as associated data (a box moved to another
    /// cluster's row does not open): base64 of nonce, ciphertext and tag.
    public func sealed(for cluster: String, with key: ClusterCredentialsKey) throws -> String {
        var o: [String: JSONValue] = ["token": .string(token)]
        if let caPEM { o["ca"] = .string(caPEM) }
        let box = try AES.GCM.seal(JSONValue.object(o).serialized(), using: key.key, authenticating: Array(cluster.utf8))
        guard let combined = box.combined else { throw SealError(reason: "no combined form") }
        return combined.base64EncodedString()
    }

    public static func open(_ sealed: String, for cluster: String, keyID: String, with key: ClusterCredentialsKey) throws -> ClusterCredentials {
        guard keyID == key.id else {
            throw SealError(reason: "cluster \(cluster)'s credentials were sealed with key \(keyID), not this one (\(key.id))")
        }
        guard let data = Data(base64Encoded: sealed) else { throw SealError(reason: "cluster \(cluster)'s sealed credentials are not base64") }
        let plain: Data
        do {
            plain = try AES.GCM.open(AES.GCM.SealedBox(combined: data), using: key.key, authenticating: Array(cluster.utf8))
        } catch {
            throw SealError(reason: "cluster \(cluster)'s credentials do not open with this key (altered, or moved from another cluster)")
        }
        let doc = try JSONValue.parse(Array(plain))
        guard let token = doc["token"]?.stringValue else { throw SealError(reason: "cluster \(cluster)'s credentials hold no token") }
        return ClusterCredentials(token: token, caPEM: doc["ca"]?.stringValue)
    }
}

public struct SealError: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}
