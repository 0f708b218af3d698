import Crypto
import GEdgeCore

/// SHA-256 and HMAC-SHA-256 from swift-crypto, as the suite uses them: API tokens are stored
/// as their digest, webhook deliveries and callbacks are signed, Kafka producers sign their
/// envelopes. Every check of a presented signature compares in constant time.
public enum Digests {
    public static func sha256(_ input: some Collection<UInt8>) -> [UInt8] {
        Array(SHA256.hash(data: Array(input)))
    }

    public static func sha256Hex(_ input: some Collection<UInt8>) -> String { Hex.encode(sha256(input)) }

    /// The digest of bytes held elsewhere (a C library's buffer), without copying them.
    public static func sha256Hex(_ buffer: UnsafeRawBufferPointer) -> String { Hex.encode(Array(SHA256.hash(data: buffer))) }

    public static func hmacSHA256(key: some Collection<UInt8>, message: some Collection<UInt8>) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(message), using: SymmetricKey(data: Array(key))))
    }

    public static func hmacSHA256Hex(key: some Collection<UInt8>, message: some Collection<UInt8>) -> String {
        Hex.encode(hmacSHA256(key: key, message: message))
    }

    /// Whether `signatureHex` is the HMAC-SHA-256 of `message` under `key`, compared in
    /// constant time (text that is not 64 hex digits is simply wrong).
    public static func isValidHMACSHA256(signatureHex: String, key: some Collection<UInt8>, message: some Collection<UInt8>) -> Bool {
        guard let presented = Hex.decode(signatureHex), presented.count == 32 else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(presented, authenticating: Array(message), using: SymmetricKey(data: Array(key)))
    }

    /// Equality of two byte strings in time that depends on their lengths only.
    public static func constantTimeEquals(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for (x, y) in zip(a, b) { diff |= x ^ y }
        return diff == 0
    }
}
