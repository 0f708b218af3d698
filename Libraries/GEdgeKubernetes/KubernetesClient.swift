import Foundation
import GEdgeCore
import GEdgeHTTPClient
import Synchronization

/// A resource type as API discovery names it: `deployments` in `apps/v1`, namespaced.
public struct APIResource: Sendable, Hashable {
    public let groupVersion: String
    public let kind: String
    /// The plural the REST paths use (`endpoints`, `ingresses`, `networkpolicies`).
    public let name: String
    public let namespaced: Bool
    public let verbs: [String]
}

/// An object's address: its type and, for one object, namespace and name.
public struct ObjectReference: Sendable, Hashable, CustomStringConvertible {
    public var apiVersion: String
    public var kind: String
    public var namespace: String?
    public var name: String?

    public init(apiVersion: String, kind: String, namespace: String? = nil, name: String? = nil) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.namespace = namespace
        self.name = name
    }

    /// The reference of an object (its apiVersion, kind and metadata).
    public init(of object: JSONValue) throws {
        guard let v = object["apiVersion"]?.stringValue, !v.isEmpty, let k = object["kind"]?.stringValue, !k.isEmpty,
              let n = object["metadata"]?["name"]?.stringValue, !n.isEmpty else {
            throw KubernetesAPIError(status: 422, reason: "Invalid", message: "an object without apiVersion, kind or metadata.name")
        }
        self.init(apiVersion: v, kind: k, namespace: object["metadata"]?["namespace"]?.stringValue, name: n)
    }

    public var description: String {
        "\(kind.lowercased()) \(namespace.map { "\($0)/" } ?? "")\(name ?? "*")"
    }
}

/// A list's items with the resourceVersion to watch from, and the token of the next page
/// when the list was asked for a page (`limit`) and more remain.
public struct ObjectList: Sendable {
    public var items: [JSONValue]
    public var resourceVersion: String
    public var continueToken: String? = nil
}

/// The Kubernetes REST API over libcurl: resource paths from API discovery (cached per
/// group-version, read again when a kind is missing or a path answers 404), server-side
/// apply, JSON merge and strategic merge patches, get, list, delete, and watch (see
/// `watch` and `Reflector`). Every error answer is a `KubernetesAPIError` built from the
/// server's Status.
public struct KubernetesClient: Sendable {
    public let http: HTTPClient
    public let configuration: KubernetesAPIConfiguration
    private let discovery: DiscoveryCache

    public init(http: HTTPClient, configuration: KubernetesAPIConfiguration) {
        self.http = http
        self.configuration = configuration
        self.discovery = DiscoveryCache()
    }

    // MARK: raw calls

    static func encode(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }

    static func queryString(_ query: [(String, String)]) -> String {
        query.isEmpty ? "" : "?" + query.map { "\($0.0)=\(encode($0.1))" }.joined(separator: "&")
    }

    /// One call: the parsed JSON body of a 2xx answer (`.null` when empty), nil for a 404
    /// when `allowNotFound`, else a `KubernetesAPIError` from the answer's Status.
    public func call(_ method: String, _ path: String, query: [(String, String)] = [], body: JSONValue? = nil,
                     contentType: String = "application/json", allowNotFound: Bool = false, timeout: Duration? = nil) async throws -> JSONValue? {
        let response = try await raw(method, path, query: query, body: body.map { Array($0.serialized()) }, contentType: contentType, accept: "application/json", timeout: timeout)
        if response.status == 404 && allowNotFound { return nil }
        guard response.isSuccess else { throw KubernetesAPIError(response: response, context: "\(method) \(path)") }
        return response.body.isEmpty ? .null : try response.json()
    }

    /// One call returning the answer as it is (a pod's log is text).
    public func raw(_ method: String, _ path: String, query: [(String, String)] = [], body: [UInt8]? = nil,
                    contentType: String = "application/json", accept: String, timeout: Duration? = nil) async throws -> HTTPResponse {
        var headers = [("Accept", accept)]
        if body != nil { headers.append(("Content-Type", contentType)) }
        let request = HTTPRequest(method: method, url: configuration.url + path + Self.queryString(query), headers: headers, body: body,
                                  timeout: timeout, bearerToken: configuration.token())
        return try await http.execute(request)
    }

    // MARK: discovery

    /// The resource for a kind of an apiVersion, from discovery. A kind not in the cached
    /// list is looked up again once (a CRD installed since), then refused clearly.
    public func resource(apiVersion: String, kind: String) async throws -> APIResource {
        if let r = discovery.lookup(apiVersion, kind) { return r }
        try await refresh(apiVersion)
        if let r = discovery.lookup(apiVersion, kind) { return r }
        throw KubernetesAPIError(status: 404, reason: "NotFound", message: "the server has no resource of kind \(kind) in \(apiVersion) (is its CRD installed?)")
    }

    func refresh(_ apiVersion: String) async throws {
        let path = apiVersion.contains("/") ? "/apis/\(apiVersion)" : "/api/\(apiVersion)"
        guard let list = try await call("GET", path, allowNotFound: true) else {
            throw KubernetesAPIError(status: 404, reason: "NotFound", message: "the server does not serve \(apiVersion) (is its API group installed?)")
        }
        var found: [String: APIResource] = [:]
        for r in list["resources"]?.arrayValue ?? [] {
            // Subresources (deployments/scale, pods/log) are reached from their parent.
            guard let name = r["name"]?.stringValue, !name.contains("/"), let kind = r["kind"]?.stringValue else { continue }
            found[kind] = APIResource(groupVersion: apiVersion, kind: kind, name: name, namespaced: r["namespaced"] == .bool(true),
                                      verbs: (r["verbs"]?.arrayValue ?? []).compactMap(\.stringValue))
        }
        discovery.store(apiVersion, found)
    }

    /// Forgets what discovery said (a 404 on a path it gave: the API changed under us).
    public func forgetDiscovery() { discovery.clear() }

    /// The REST path of a reference: `/apis/apps/v1/namespaces/ns/deployments/name`, with
    /// `subresource` appended (`scale`, `log`, `status`). A namespace is used only for a
    /// namespaced resource.
    public func path(_ ref: ObjectReference, subresource: String? = nil) async throws -> String {
        let r = try await resource(apiVersion: ref.apiVersion, kind: ref.kind)
        var p = ref.apiVersion.contains("/") ? "/apis/\(ref.apiVersion)" : "/api/\(ref.apiVersion)"
        if r.namespaced, let ns = ref.namespace { p += "/namespaces/\(Self.encode(ns))" }
        p += "/\(r.name)"
        if let name = ref.name { p += "/\(Self.encode(name))" }
        if let subresource { p += "/\(subresource)" }
        return p
    }

    public func isNamespaced(apiVersion: String, kind: String) async throws -> Bool {
        try await resource(apiVersion: apiVersion, kind: kind).namespaced
    }

    /// Runs a call on a discovered path; a 404 that is not the object's (the resource
    /// itself is gone from the path discovery gave) forgets discovery and tries once more.
    func onPath<T>(_ ref: ObjectReference, subresource: String? = nil, _ body: (String) async throws -> T) async throws -> T {
        let p = try await path(ref, subresource: subresource)
        do { return try await body(p) } catch let e as KubernetesAPIError where e.isNotFound && e.message.contains("the server could not find the requested resource") {
            discovery.clear()
            return try await body(try await path(ref, subresource: subresource))
        }
    }

    // MARK: verbs

    /// The object, or nil when it does not exist.
    public func get(_ ref: ObjectReference, subresource: String? = nil) async throws -> JSONValue? {
        try await onPath(ref, subresource: subresource) { try await call("GET", $0, allowNotFound: true) }
    }

    /// The objects of a kind (in a namespace, or in all), by label and field selector; with
    /// `limit`, one page of at most that many, and `continueToken` for the next (a token the
    /// server no longer holds answers 410 Gone, as for kubectl).
    public func list(apiVersion: String, kind: String, namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil,
                     limit: Int? = nil, continueToken: String? = nil) async throws -> ObjectList {
        var q: [(String, String)] = []
        if let labelSelector { q.append(("labelSelector", labelSelector)) }
        if let fieldSelector { q.append(("fieldSelector", fieldSelector)) }
        if let limit { q.append(("limit", "\(limit)")) }
        if let continueToken { q.append(("continue", continueToken)) }
        let ref = ObjectReference(apiVersion: apiVersion, kind: kind, namespace: namespace)
        let answer = try await onPath(ref) { try await call("GET", $0, query: q) } ?? .null
        let next = answer["metadata"]?["continue"]?.stringValue
        return ObjectList(items: answer["items"]?.arrayValue ?? [], resourceVersion: answer["metadata"]?["resourceVersion"]?.stringValue ?? "",
                          continueToken: next?.isEmpty == false ? next : nil)
    }

    /// Server-side apply (`application/apply-patch+yaml`; JSON is YAML): the fields in
    /// `object` become the manager's. Without `force` a field another manager owns with a
    /// different value is a 409 Conflict naming the fields; with it they are taken over.
    @discardableResult
    public func apply(_ object: JSONValue, fieldManager: String, force: Bool) async throws -> JSONValue {
        let ref = try ObjectReference(of: object)
        var q = [("fieldManager", fieldManager)]
        if force { q.append(("force", "true")) }
        return try await onPath(ref) { try await call("PATCH", $0, query: q, body: object, contentType: "application/apply-patch+yaml") } ?? .null
    }

    /// A JSON merge patch (RFC 7386): a null removes the key. Nil when the object is gone.
    @discardableResult
    public func mergePatch(_ ref: ObjectReference, _ patch: JSONValue, subresource: String? = nil, fieldManager: String? = nil) async throws -> JSONValue? {
        try await onPath(ref, subresource: subresource) {
            try await call("PATCH", $0, query: fieldManager.map { [("fieldManager", $0)] } ?? [], body: patch, contentType: "application/merge-patch+json", allowNotFound: true)
        }
    }

    /// A strategic merge patch (lists merged by their keys: containers by name).
    @discardableResult
    public func strategicPatch(_ ref: ObjectReference, _ patch: JSONValue, fieldManager: String? = nil) async throws -> JSONValue? {
        try await onPath(ref) {
            try await call("PATCH", $0, query: fieldManager.map { [("fieldManager", $0)] } ?? [], body: patch, contentType: "application/strategic-merge-patch+json", allowNotFound: true)
        }
    }

    /// Deletes the object; false when it was not there. Dependents go in the background, as
    /// kubectl's default (`propagationPolicy=Background`).
    @discardableResult
    public func delete(_ ref: ObjectReference) async throws -> Bool {
        try await onPath(ref) {
            try await call("DELETE", $0, query: [("propagationPolicy", "Background")], allowNotFound: true) != nil
        }
    }
}

/// Discovery's answers, per group-version, shared by the copies of a client.
final class DiscoveryCache: Sendable {
    private let state = Mutex<[String: [String: APIResource]]>([:])

    func lookup(_ groupVersion: String, _ kind: String) -> APIResource? {
        state.withLock { $0[groupVersion]?[kind] }
    }

    func store(_ groupVersion: String, _ resources: [String: APIResource]) {
        state.withLock { $0[groupVersion] = resources }
    }

    func clear() { state.withLock { $0 = [:] } }
}
