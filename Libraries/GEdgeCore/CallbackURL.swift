import Foundation

/// Where a request's end state may be delivered. GS-Scheduler's front server took any
/// `callback_url` text; here a scheme-less `host[:port]/path` gets `http://` as the
/// original's users wrote it, and a target that would turn the gateway against its own
/// network is refused: link-local and cloud metadata addresses always, loopback and private
/// addresses unless the operator allows them (`gateway.callback.allow.private`).
public enum CallbackURL {
    public struct Refusal: Error, Sendable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    /// The URL to deliver to, or why not.
    public static func check(_ raw: String, allowPrivate: Bool) throws(Refusal) -> String {
        let text = raw.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty, text.utf8.count <= 2048 else { throw Refusal(reason: "callback_url must be 1-2048 characters") }
        guard !text.utf8.contains(where: { $0 < 0x21 || $0 == 0x7F }) else {
            throw Refusal(reason: "callback_url must not contain spaces or control characters")
        }
        let lower = text.lowercased()
        let withScheme: String
        if lower.hasPrefix("http://") || lower.hasPrefix("https://") {
            withScheme = text
        } else if let colon = lower.range(of: "://") {
            throw Refusal(reason: "callback_url scheme '\(lower[..<colon.lowerBound])' is not http or https")
        } else {
            withScheme = "http://" + text
        }
        guard let c = URLComponents(string: withScheme), let host = c.host?.lowercased(), !host.isEmpty else {
            throw Refusal(reason: "callback_url '\(text.prefix(200))' is not a URL")
        }
        guard c.user == nil, c.password == nil else { throw Refusal(reason: "callback_url must not carry a user or password") }
        if let port = c.port, !(1...65535).contains(port) { throw Refusal(reason: "callback_url port \(port) is out of range") }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        switch classify(bare) {
        case .forbidden(let why): throw Refusal(reason: "callback_url host '\(bare)' is \(why)")
        case .internalOnly(let why) where !allowPrivate:
            throw Refusal(reason: "callback_url host '\(bare)' is \(why); the gateway delivers only to public addresses unless gateway.callback.allow.private=true")
        default: return withScheme
        }
    }

    enum Class: Equatable { case `public`, internalOnly(String), forbidden(String) }

    static func classify(_ host: String) -> Class {
        if ["metadata.google.internal", "metadata", "instance-data", "instance-data.ec2.internal"].contains(host) {
            return .forbidden("a cloud metadata service")
        }
        if host == "localhost" || host.hasSuffix(".localhost") { return .internalOnly("loopback") }
        if let v4 = ipv4(host) { return classify(v4: v4) }
        if host.allSatisfy({ $0.isNumber || $0 == "." }) || host.hasPrefix("0x") {
            return .forbidden("an address written other than as a.b.c.d")
        }
        if host.contains(":") {
            var addr = in6_addr()
            guard inet_pton(AF_INET6, host, &addr) == 1 else { return .forbidden("not an address") }
            let b = withUnsafeBytes(of: &addr) { Array($0) }
            if b.allSatisfy({ $0 == 0 }) { return .forbidden("the unspecified address") }
            if b[0..<15].allSatisfy({ $0 == 0 }) && b[15] == 1 { return .internalOnly("loopback") }
            if b[0] == 0xFE && (b[1] & 0xC0) == 0x80 { return .forbidden("link-local") }
            if b[0] == 0xFF { return .forbidden("multicast") }
            if (b[0] & 0xFE) == 0xFC { return .internalOnly("a private (unique local) address") }
            if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF {
                return classify(v4: (b[12], b[13], b[14], b[15]))
            }
            return .public
        }
        return .public
    }

    static func classify(v4 a: (UInt8, UInt8, UInt8, UInt8)) -> Class {
        switch a {
        case (0, _, _, _): return .forbidden("the unspecified network")
        case (169, 254, _, _): return .forbidden("link-local (the cloud metadata range)")
        case (224...239, _, _, _): return .forbidden("multicast")
        case (240...255, _, _, _): return .forbidden("reserved")
        case (127, _, _, _): return .internalOnly("loopback")
        case (10, _, _, _), (192, 168, _, _): return .internalOnly("a private address")
        case (172, let b, _, _) where (16...31).contains(b): return .internalOnly("a private address")
        case (100, let b, _, _) where (64...127).contains(b): return .internalOnly("a shared (carrier-grade NAT) address")
        default: return .public
        }
    }

    /// Dotted-quad IPv4 only (inet_aton's octal and short forms are refused as not addresses).
    static func ipv4(_ host: String) -> (UInt8, UInt8, UInt8, UInt8)? {
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }) else {
            return nil
        }
        let n = parts.compactMap { UInt8($0) }
        guard n.count == 4 else { return nil }
        return (n[0], n[1], n[2], n[3])
    }
}
