import Foundation
import GEdgeCore
import GEdgeHTTPClient

/// Where the Kubernetes API is and how to authenticate: a bearer token (read from its file
/// on every call, since service-account tokens rotate), a CA, or a client certificate.
///
/// Sources, in order: `kubernetes.kubeconfig` (with `kubernetes.context`), then
/// `kubernetes.url` with `kubernetes.token.file` and the HTTP client keys under
/// `kubernetes.` (`kubernetes.tls.ca.file`, `kubernetes.tls.cert.file`...), then the
/// in-cluster service account (`KUBERNETES_SERVICE_HOST`, the mounted token and CA).
public struct KubernetesAPIConfiguration: Sendable {
    public var url: String
    public var tokenFile: String?
    public var http: HTTPClientConfiguration
    /// A token held in memory (a registered cluster's, opened from its sealed credentials),
    /// used when there is no token file. Never printed.
    public var inlineToken: String?

    static let serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount"

    public init(url: String, tokenFile: String?, http: HTTPClientConfiguration = HTTPClientConfiguration()) {
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.tokenFile = tokenFile
        self.http = http
    }

    /// The bearer token, read from its file on every call.
    public func token() -> String? {
        if tokenFile == nil, let inlineToken { return inlineToken }
        guard let file = tokenFile, let data = FileManager.default.contents(atPath: file) else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// From the configuration keys: a kubeconfig when `kubernetes.kubeconfig` is set, else
    /// the URL and token keys, else the in-cluster service account.
    public init(_ reader: ConfigReader) throws {
        if let path = reader.string("kubernetes.kubeconfig") {
            self = try Kubeconfig.load(path: path, context: reader.string("kubernetes.context"))
            // Explicit client keys still apply on top (a longer timeout, say).
            let http = try HTTPClientConfiguration(reader, prefix: "kubernetes.")
            self.http.timeout = http.timeout
            self.http.connectTimeout = http.connectTimeout
            return
        }
        let env = ProcessInfo.processInfo.environment
        let inCluster = env["KUBERNETES_SERVICE_HOST"].map { host in
            let h = host.contains(":") ? "[\(host)]" : host  // an IPv6 service address
            return "https://\(h):\(env["KUBERNETES_SERVICE_PORT"] ?? "443")"
        }
        guard let url = reader.string("kubernetes.url") ?? inCluster else {
            throw ConfigurationError(key: "kubernetes.url", reason: "not set, no kubernetes.kubeconfig, and not running in a cluster (no KUBERNETES_SERVICE_HOST)")
        }
        var http = try HTTPClientConfiguration(reader, prefix: "kubernetes.")
        if http.caFile == nil, FileManager.default.fileExists(atPath: Self.serviceAccount + "/ca.crt") {
            http.caFile = Self.serviceAccount + "/ca.crt"
        }
        let defaultToken = FileManager.default.fileExists(atPath: Self.serviceAccount + "/token") ? Self.serviceAccount + "/token" : nil
        self.init(url: url, tokenFile: reader.string("kubernetes.token.file") ?? defaultToken, http: http)
    }
}

/// Reads a kubeconfig as kubectl does: the named context (or `current-context`), its
/// cluster's server, CA (file or inline data) and `insecure-skip-tls-verify`, its user's
/// token, token file or client certificate and key. Inline data (`*-data`) is written to
/// private files for libcurl. Exec and auth-provider plugins are refused by name: the
/// suite runs no external credential programs.
public enum Kubeconfig {
    public static func load(path: String, context: String? = nil) throws -> KubernetesAPIConfiguration {
        func fail(_ reason: String) -> ConfigurationError { ConfigurationError(key: "kubernetes.kubeconfig", reason: "\(path): \(reason)") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(key: "kubernetes.kubeconfig", reason: "cannot read \(path)")
        }
        guard data.count <= 4 << 20 else { throw fail("larger than 4 MiB") }
        let root: JSONValue
        do { root = try YAMLText.document(String(decoding: data, as: UTF8.self), path: "") } catch {
            throw fail("not a kubeconfig: \(error)")
        }
        func named(_ list: String, _ name: String) -> JSONValue? {
            root[list]?.arrayValue?.first { $0["name"]?.stringValue == name }
        }
        let contexts = (root["contexts"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        guard let ctxName = context ?? root["current-context"]?.stringValue, !ctxName.isEmpty else {
            throw fail("no current-context; name one with kubernetes.context (contexts: \(contexts.joined(separator: ", ")))")
        }
        guard let ctx = named("contexts", ctxName)?["context"] else {
            throw fail("no context \"\(ctxName)\" (contexts: \(contexts.isEmpty ? "none" : contexts.joined(separator: ", ")))")
        }
        guard let clusterName = ctx["cluster"]?.stringValue, let cluster = named("clusters", clusterName)?["cluster"] else {
            throw fail("context \"\(ctxName)\" names no known cluster")
        }
        guard let server = cluster["server"]?.stringValue, server.hasPrefix("https://") || server.hasPrefix("http://") else {
            throw fail("cluster \"\(clusterName)\" has no http(s) server")
        }
        let user = ctx["user"]?.stringValue.flatMap { named("users", $0)?["user"] } ?? .object([:])
        if user["exec"] != nil || user["auth-provider"] != nil {
            throw fail("user of context \"\(ctxName)\" authenticates through an exec or auth-provider plugin, which the suite does not run; give it a token, token file or client certificate")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gedge-kubeconfig-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        func file(_ fileKey: String, _ dataKey: String, in m: JSONValue, as name: String) throws -> String? {
            if let f = m[fileKey]?.stringValue {
                // Relative paths are relative to the kubeconfig, as kubectl reads them.
                return f.hasPrefix("/") ? f : URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(f).path
            }
            guard let b64 = m[dataKey]?.stringValue else { return nil }
            guard let data = Data(base64Encoded: b64) else { throw fail("\(dataKey) is not base64") }
            let url = dir.appendingPathComponent(name)
            FileManager.default.createFile(atPath: url.path, contents: data, attributes: [.posixPermissions: 0o600])
            return url.path
        }
        var http = HTTPClientConfiguration()
        http.caFile = try file("certificate-authority", "certificate-authority-data", in: cluster, as: "ca.crt")
        http.insecureSkipVerify = cluster["insecure-skip-tls-verify"] == .bool(true)
        http.clientCertFile = try file("client-certificate", "client-certificate-data", in: user, as: "client.crt")
        http.clientKeyFile = try file("client-key", "client-key-data", in: user, as: "client.key")
        var tokenFile = user["tokenFile"]?.stringValue
        if tokenFile == nil, let token = user["token"]?.stringValue {
            let url = dir.appendingPathComponent("token")
            FileManager.default.createFile(atPath: url.path, contents: Data(token.utf8), attributes: [.posixPermissions: 0o600])
            tokenFile = url.path
        }
        return KubernetesAPIConfiguration(url: server, tokenFile: tokenFile, http: http)
    }
}

extension KubernetesAPIConfiguration: CustomStringConvertible {
    /// Where, and how the token comes: never the token.
    public var description: String {
        "KubernetesAPIConfiguration(url: \(url), token: \(tokenFile.map { "file \($0)" } ?? (inlineToken == nil ? "none" : "<inline, redacted>")))"
    }
}
