import Foundation
import GEdgeCore
import GEdgeKubernetes
import GEdgePlacement

/// The inventory of a real cluster: one page of a kind from the API (`limit` and `continue`
/// passed through), each object summarized to `InventoryItem`'s fixed fields.
extension KubernetesCluster {
    public func inventory(_ q: InventoryQuery) async throws -> InventoryPage {
        let (apiVersion, kind) = q.kind.kubernetes
        if let name = q.name {
            guard let object = try await api.get(Self.ref(kind, q.kind.namespaced ? q.namespace : nil, name)) else { return InventoryPage(items: []) }
            return InventoryPage(items: [Self.summary(q.kind, object)].compactMap { $0 })
        }
        var fields: String?
        if let k = q.objectKind, let n = q.objectName {
            // Events name the object they are about (events support these field selectors).
            fields = "involvedObject.kind=\(k),involvedObject.name=\(n)"
        }
        let list = try await api.list(apiVersion: apiVersion, kind: kind, namespace: q.kind.namespaced ? q.namespace : nil, fieldSelector: fields,
                                      limit: q.limit, continueToken: q.continueToken)
        return InventoryPage(items: list.items.compactMap { Self.summary(q.kind, $0) }, continueToken: list.continueToken)
    }

    /// One object's summary; nil for an object without a name.
    static func summary(_ kind: InventoryKind, _ o: JSONValue) -> JSONValue? {
        guard let name = o["metadata"]?["name"]?.stringValue else { return nil }
        let ns = o["metadata"]?["namespace"]?.stringValue ?? ""
        func at(_ path: [String]) -> JSONValue? { path.reduce(Optional(o)) { $0?[$1] } }
        func s(_ path: String...) -> String? { at(path)?.stringValue }
        func n(_ path: String...) -> Int { Int(at(path)?.numberValue ?? 0) }
        func strings(_ v: JSONValue?) -> [String] { v?.arrayValue?.compactMap(\.stringValue) ?? [] }
        switch kind {
        case .pods:
            let statuses = o["status"]?["containerStatuses"]?.arrayValue ?? []
            let containers = o["spec"]?["containers"]?.arrayValue?.count ?? statuses.count
            let waiting = statuses.lazy.compactMap { $0["state"]?["waiting"]?["reason"]?.stringValue }.first
            let unschedulable = (o["status"]?["conditions"]?.arrayValue ?? []).first { $0["type"]?.stringValue == "PodScheduled" && $0["status"]?.stringValue == "False" }
            let owner = o["metadata"]?["ownerReferences"]?.arrayValue?.first.map { "\($0["kind"]?.stringValue ?? "")/\($0["name"]?.stringValue ?? "")" }
            return InventoryItem.pod(
                namespace: ns, name: name, node: s("spec", "nodeName"), podIP: s("status", "podIP"), hostIP: s("status", "hostIP"),
                phase: s("status", "phase") ?? "Unknown", readyContainers: statuses.filter { $0["ready"] == .bool(true) }.count, containers: containers,
                restarts: statuses.reduce(0) { $0 + Int($1["restartCount"]?.numberValue ?? 0) }, startedAt: s("status", "startTime"),
                waitingReason: waiting ?? unschedulable?["reason"]?.stringValue, owner: owner)
        case .deployments:
            let conditions = (o["status"]?["conditions"]?.arrayValue ?? []).map {
                InventoryItem.condition(type: $0["type"]?.stringValue ?? "", status: $0["status"]?.stringValue ?? "",
                                        reason: $0["reason"]?.stringValue, message: $0["message"]?.stringValue)
            }
            let images = (o["spec"]?["template"]?["spec"]?["containers"]?.arrayValue ?? []).compactMap { $0["image"]?.stringValue }
            return InventoryItem.deployment(
                namespace: ns, name: name, replicas: n("spec", "replicas"), ready: n("status", "readyReplicas"), available: n("status", "availableReplicas"),
                updated: n("status", "updatedReplicas"), conditions: conditions, images: images, createdAt: s("metadata", "creationTimestamp"))
        case .persistentvolumes:
            let claim = o["spec"]?["claimRef"].map { "\($0["namespace"]?.stringValue ?? "")/\($0["name"]?.stringValue ?? "")" }
            return InventoryItem.persistentVolume(
                name: name, capacity: s("spec", "capacity", "storage"), accessModes: strings(o["spec"]?["accessModes"]),
                reclaimPolicy: s("spec", "persistentVolumeReclaimPolicy"), status: s("status", "phase"), claim: claim, storageClass: s("spec", "storageClassName"))
        case .persistentvolumeclaims:
            return InventoryItem.persistentVolumeClaim(
                namespace: ns, name: name, status: s("status", "phase"), volume: s("spec", "volumeName"), capacity: s("status", "capacity", "storage"),
                accessModes: strings(o["spec"]?["accessModes"]), storageClass: s("spec", "storageClassName"))
        case .storageclasses:
            let annotations = o["metadata"]?["annotations"]
            return InventoryItem.storageClass(
                name: name, provisioner: s("provisioner") ?? "", reclaimPolicy: s("reclaimPolicy"), bindingMode: s("volumeBindingMode"),
                expansion: o["allowVolumeExpansion"] == .bool(true),
                isDefault: annotations?["storageclass.kubernetes.io/is-default-class"]?.stringValue == "true")
        case .events:
            return InventoryItem.event(
                namespace: ns, name: name, type: s("type") ?? "Normal", reason: s("reason") ?? "", message: s("message") ?? "",
                count: max(1, n("count")), firstAt: s("firstTimestamp") ?? s("eventTime"), lastAt: s("lastTimestamp") ?? s("eventTime"),
                objectKind: s("involvedObject", "kind") ?? "", objectName: s("involvedObject", "name") ?? "")
        }
    }
}
