import Foundation
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKubernetes

/// Node reads and label patches through the Kubernetes API.
public struct KubernetesNodes: Sendable {
    let client: KubernetesClient

    public init(client: KubernetesClient) { self.client = client }

    public init(client: HTTPClient, configuration: KubernetesAPIConfiguration) {
        self.init(client: KubernetesClient(http: client, configuration: configuration))
    }

    static func ref(_ node: String) -> ObjectReference { ObjectReference(apiVersion: "v1", kind: "Node", name: node) }

    /// The node's labels and annotations.
    public func metadata(node: String) async throws -> (labels: [String: String], annotations: [String: String]) {
        guard let json = try await client.get(Self.ref(node)) else {
            throw KubernetesAPIError(status: 404, reason: "NotFound", message: "nodes \"\(node)\" not found")
        }
        func strings(_ v: JSONValue?) -> [String: String] { v?.objectValue?.compactMapValues(\.stringValue) ?? [:] }
        return (strings(json["metadata"]?["labels"]), strings(json["metadata"]?["annotations"]))
    }

    /// A JSON merge patch of the node's metadata: a nil value removes the key.
    public func patchMetadata(node: String, labels: [String: String?], annotations: [String: String?]) async throws {
        func object(_ m: [String: String?]) -> JSONValue { .object(m.mapValues { $0.map(JSONValue.string) ?? .null }) }
        var metadata: [String: JSONValue] = [:]
        if !labels.isEmpty { metadata["labels"] = object(labels) }
        if !annotations.isEmpty { metadata["annotations"] = object(annotations) }
        guard try await client.mergePatch(Self.ref(node), .object(["metadata": .object(metadata)]), fieldManager: "gedge-accelerator-monitor") != nil else {
            throw KubernetesAPIError(status: 404, reason: "NotFound", message: "nodes \"\(node)\" not found")
        }
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
