import Foundation
import GEdgeCore
import GEdgePlacement
import Hummingbird

/// A cluster's objects through its agent (hcode 550): pods, deployments, volumes, claims,
/// storage classes and events, a page at a time, and one object with its events.
///
/// A project's token sees its bound clusters, and in them the namespaces it owns (its own,
/// those bound to it, those its services use); without `namespace` it lists its own. Of
/// the cluster-wide kinds it sees every storage class and the volumes bound to claims in
/// its namespaces. An admin sees everything.
extension Gateway {
    static let inventoryRoutes: [(method: String, path: String)] = InventoryKind.allCases.flatMap { k in
        [("GET", "/v1/clusters/:name/\(k.rawValue)"), ("GET", objectRoute(k))]
    }

    /// One object's path; a pod's parameter is `pod`, as in its logs' path beside it.
    static func objectRoute(_ k: InventoryKind) -> String {
        let object = k == .pods ? ":pod" : ":object"
        return k.namespaced ? "/v1/clusters/:name/\(k.rawValue)/:namespace/\(object)" : "/v1/clusters/:name/\(k.rawValue)/\(object)"
    }

    func addInventoryRoutes(to router: Router<GatewayRequestContext>) {
        for kind in InventoryKind.allCases {
            router.get("/v1/clusters/:name/\(kind.rawValue)") { request, context in
                let p = try await self.auth.principal(request)
                let (c, _) = try await self.visibleCluster(try context.parameters.require("name"), p)
                let q = request.uri.queryParameters
                let limit = q["limit"].map { Int(String($0)) ?? -1 } ?? 100
                guard (1...InventoryQuery.maxLimit).contains(limit) else {
                    throw Problem(.badRequest, code: "invalid_value", detail: "limit is 1 to \(InventoryQuery.maxLimit)", field: "limit")
                }
                let token = q["continue"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
                if let token, token.utf8.count > 4096 { throw Problem(.badRequest, code: "invalid_value", detail: "continue is at most 4096 bytes", field: "continue") }
                var namespace = q["namespace"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
                if kind.namespaced {
                    if namespace == nil, !p.admin { namespace = KubeNames.namespace(forProject: p.project) }
                    if let ns = namespace { try await self.mayRead(namespace: ns, p) }
                } else if namespace != nil {
                    throw Problem(.badRequest, code: "invalid_value", detail: "\(kind.rawValue) belong to no namespace", field: "namespace")
                }
                let page = try await self.inventory(c.name, InventoryQuery(kind: kind, namespace: namespace, limit: limit, continueToken: token))
                var items = page["items"]?.arrayValue ?? []
                if kind == .persistentvolumes, !p.admin { items = try await self.claimedByProject(items, p) }
                var out: [String: JSONValue] = ["cluster": .string(c.name), "kind": .string(kind.rawValue), "items": .array(items)]
                if let ns = namespace { out["namespace"] = .string(ns) }
                if let next = page["continue"] { out["continue"] = next }
                return Reply.json(.object(out))
            }
            router.get(RouterPath(Self.objectRoute(kind))) { request, context in
                let p = try await self.auth.principal(request)
                let (c, _) = try await self.visibleCluster(try context.parameters.require("name"), p)
                let name = try context.parameters.require(kind == .pods ? "pod" : "object")
                guard KubeNames.isDNSSubdomain(name) else { throw Problem(.badRequest, code: "invalid_value", detail: "'\(name)' is not an object name", field: "object") }
                var namespace: String?
                if kind.namespaced {
                    let ns = try context.parameters.require("namespace")
                    try await self.mayRead(namespace: ns, p)
                    namespace = ns
                }
                let found = try await self.inventory(c.name, InventoryQuery(kind: kind, namespace: namespace, name: name, limit: 1))
                var items = found["items"]?.arrayValue ?? []
                if kind == .persistentvolumes, !p.admin { items = try await self.claimedByProject(items, p) }
                guard let item = items.first else {
                    throw Problem.notFound("no \(kind.rawValue) \(namespace.map { "\($0)/" } ?? "")\(name) in cluster \(c.name)")
                }
                // Its events, as kubectl describe shows them (events have none of their own).
                var events: [JSONValue] = []
                if kind != .events {
                    let (_, k) = kind.kubernetes
                    let page = try await self.inventory(c.name, InventoryQuery(
                        kind: .events, namespace: kind.namespaced ? namespace : nil, objectKind: k, objectName: name, limit: InventoryQuery.maxLimit))
                    events = page["items"]?.arrayValue ?? []
                }
                return Reply.json(.object(["cluster": .string(c.name), "kind": .string(kind.rawValue), "item": item, "events": .array(events)]))
            }
        }
    }

    /// One RPC to the cluster's agent; its refusal or silence as a problem.
    func inventory(_ cluster: String, _ query: InventoryQuery) async throws -> JSONValue {
        guard let rpc = self.rpc else { throw Problem(.serviceUnavailable, code: "unavailable", detail: "cluster inventory is not enabled on this gateway", field: nil) }
        do {
            return try await rpc.call(cluster: cluster, hcode: .inventory, msg: query.msg)
        } catch let e as AgentRPC.Timeout {
            throw Problem(.gatewayTimeout, code: "timeout", detail: e.description, field: nil)
        } catch let e as AgentRPC.Refused {
            // A continue token the API server no longer holds: start the list again, as kubectl says.
            if e.reason.contains("410") || e.reason.contains("Expired") {
                throw Problem(.gone, code: "expired", detail: "the list changed too much since the first page; start again without continue", field: "continue")
            }
            throw Problem(.badGateway, code: "agent_error", detail: e.reason, field: nil)
        }
    }

    /// A project reads in its own namespace, the namespaces bound to it and those its
    /// services or workflows use; 404 for any other (as for an object that is not there).
    func mayRead(namespace ns: String, _ p: Principal) async throws {
        guard KubeNames.isDNSLabel(ns) else { throw Problem(.badRequest, code: "invalid_value", detail: "'\(ns)' is not a namespace", field: "namespace") }
        if p.admin { return }
        if let owned = try await ownedNamespaces(p), owned.contains(ns) { return }
        if try await store.namespaceOwner(ns) == p.project { return }
        throw Problem.notFound("no namespace '\(ns)' for this project")
    }

    /// The volumes bound to claims in namespaces the project reads.
    func claimedByProject(_ volumes: [JSONValue], _ p: Principal) async throws -> [JSONValue] {
        var allowed: [String: Bool] = [:]
        var out: [JSONValue] = []
        for v in volumes {
            guard let claim = v["claim"]?.stringValue, let ns = claim.split(separator: "/").first.map(String.init) else { continue }
            if allowed[ns] == nil { allowed[ns] = (try? await mayRead(namespace: ns, p)) != nil }
            if allowed[ns] == true { out.append(v) }
        }
        return out
    }
}
