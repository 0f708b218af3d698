import Foundation
import GEdgeCore
import GEdgeHTTPClient

/// Where the Kubernetes API is and how to authenticate. In a pod: the in-cluster service
/// account (token re-read on every call, since it rotates). Keys: `kubernetes.url`,
/// `kubernetes.token.file`, `kubernetes.tls.ca.file` (and the other HTTP client keys under
/// `kubernetes.`).
public struct KubernetesAPIConfiguration: Sendable {
    public var url: String
    public var tokenFile: String?
    public var http: HTTPClientConfiguration

    static let serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount"

    public init(url: String, tokenFile: String?, http: HTTPClientConfiguration = HTTPClientConfiguration()) {
        self.url = url
        self.tokenFile = tokenFile
        self.http = http
    }

    /// The bearer token, read from its file on every call (service-account tokens rotate).
    public func token() -> String? {
        guard let file = tokenFile, let data = FileManager.default.contents(atPath: file) else { return nil }
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    public init(_ reader: ConfigReader) throws {
        let env = ProcessInfo.processInfo.environment
        let inCluster = env["KUBERNETES_SERVICE_HOST"].map { "https://\($0):\(env["KUBERNETES_SERVICE_PORT"] ?? "443")" }
        guard let url = reader.string("kubernetes.url") ?? inCluster else {
            throw ConfigurationError(key: "kubernetes.url", reason: "not set, and not running in a cluster (no KUBERNETES_SERVICE_HOST)")
        }
        var http = try HTTPClientConfiguration(reader, prefix: "kubernetes.")
        if http.caFile == nil, FileManager.default.fileExists(atPath: Self.serviceAccount + "/ca.crt") {
            http.caFile = Self.serviceAccount + "/ca.crt"
        }
        let defaultToken = FileManager.default.fileExists(atPath: Self.serviceAccount + "/token") ? Self.serviceAccount + "/token" : nil
        self.init(url: url, tokenFile: reader.string("kubernetes.token.file") ?? defaultToken, http: http)
    }
}

/// An error answer from the Kubernetes API.
public struct KubernetesAPIError: Error, Sendable, CustomStringConvertible {
    public let status: Int
    public let message: String
    public init(status: Int, message: String) {
        self.status = status
        self.message = message
    }
    public var isRetriable: Bool { status == 429 || status >= 500 }
    public var description: String { "Kubernetes API \(status): \(message)" }
}

/// Node reads and label patches through the Kubernetes API.
public struct KubernetesNodes: Sendable {
    let client: HTTPClient
    let configuration: KubernetesAPIConfiguration

    public init(client: HTTPClient, configuration: KubernetesAPIConfiguration) {
        self.client = client
        self.configuration = configuration
    }


    func nodeURL(_ name: String) -> String {
        configuration.url + "/api/v1/nodes/" + (name.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-."))) ?? name)
    }

    /// The node's labels and annotations.
    public func metadata(node: String) async throws -> (labels: [String: String], annotations: [String: String]) {
        let r = try await client.execute(HTTPRequest(url: nodeURL(node), headers: [("Accept", "application/json")], bearerToken: configuration.token()))
        guard r.isSuccess else { throw KubernetesAPIError(status: r.status, message: r.bodyString) }
        let json = try r.json()
        func strings(_ v: JSONValue?) -> [String: String] {
            guard case .object(let o)? = v else { return [:] }
            return o.compactMapValues(\.stringValue)
        }
        return (strings(json["metadata"]?["labels"]), strings(json["metadata"]?["annotations"]))
    }

    /// A JSON merge patch of the node's metadata: a nil value removes the key.
    public func patchMetadata(node: String, labels: [String: String?], annotations: [String: String?]) async throws {
        func object(_ m: [String: String?]) -> JSONValue { .object(m.mapValues { $0.map(JSONValue.string) ?? .null }) }
        var metadata: [String: JSONValue] = [:]
        if !labels.isEmpty { metadata["labels"] = object(labels) }
        if !annotations.isEmpty { metadata["annotations"] = object(annotations) }
        let r = try await client.execute(.json("PATCH", nodeURL(node), .object(["metadata": .object(metadata)]), contentType: "application/merge-patch+json", bearerToken: configuration.token()))
        guard r.isSuccess else { throw KubernetesAPIError(status: r.status, message: r.bodyString) }
    }
}

/// Brings a node's accelerator labels in line with an inventory: adds and changes what
/// differs, removes the labels it set before that no longer apply, never touches anyone
/// else's, and sends nothing when nothing changed.
public struct NodeLabeler: Sendable {
    public enum Outcome: Sendable, Equatable {
        case unchanged
        case patched(set: Int, removed: Int)
    }

    let nodes: KubernetesNodes

    public init(nodes: KubernetesNodes) { self.nodes = nodes }

    public func apply(_ inventory: AcceleratorInventory) async throws -> Outcome {
        let desired = AcceleratorLabels.labels(for: inventory)
        let (current, annotations) = try await nodes.metadata(node: inventory.node)
        let managedBefore = Set((annotations[AcceleratorLabels.managedAnnotation] ?? "").split(separator: ",").map(String.init))
        var patch: [String: String?] = [:]
        for (k, v) in desired where current[k] != v { patch[k] = .some(v) }
        var removed = 0
        for k in managedBefore.subtracting(desired.keys) where current[k] != nil {
            patch[k] = .some(nil)
            removed += 1
        }
        let managedNow = desired.keys.sorted().joined(separator: ",")
        var annotationPatch: [String: String?] = [:]
        let recorded = annotations[AcceleratorLabels.managedAnnotation]
        if managedNow.isEmpty {
            if recorded != nil { annotationPatch[AcceleratorLabels.managedAnnotation] = .some(nil) }
        } else if recorded != managedNow {
            annotationPatch[AcceleratorLabels.managedAnnotation] = .some(managedNow)
        }
        if patch.isEmpty && annotationPatch.isEmpty { return .unchanged }
        try await nodes.patchMetadata(node: inventory.node, labels: patch, annotations: annotationPatch)
        return .patched(set: patch.count - removed, removed: removed)
    }
}
