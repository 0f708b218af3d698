import Foundation
import GEdgeCore

/// The authentication documents beside ScaledObjects: v1 Secrets, KEDA's
/// TriggerAuthentication (namespaced, its Secrets in its namespace) and
/// ClusterTriggerAuthentication (cluster-wide, its Secrets in KEDA's namespace, `keda`).
/// `secretTargetRef` reads a Secret's key; `env` reads the faas-trigger's environment when the
/// trigger is read (KEDA reads the target container's). What else KEDA offers (pod identity,
/// Vault, cloud secret managers, ConfigMaps) is refused by name.
struct KEDAAuthentication: Sendable {
    /// KEDA's namespace, where ClusterTriggerAuthentications find their Secrets.
    static let clusterObjectNamespace = "keda"

    /// Secrets by namespace/name: key to value.
    var secrets: [String: [String: String]] = [:]
    /// Authentications by kind/namespace/name: parameter to (value, field it came from).
    var authentications: [String: [String: (ScaledObject.Parameter, String)]] = [:]
    /// The documents themselves, stored with the objects that use them.
    var documents: [JSONValue] = []

    init() {}

    init(_ docs: [JSONValue]) throws(MessageDecodingError) {
        // Secrets first: authentications name them in any order.
        for (i, d) in docs.enumerated() {
            let path = docs.count > 1 ? "[\(i)]" : ""
            let r = try FieldReader(d, path: path)
            let kind = try r.string("kind")
            switch kind {
            case "ScaledObject", "TriggerAuthentication", "ClusterTriggerAuthentication": continue
            case "Secret": try readSecret(r)
            default:
                throw MessageDecodingError(.invalidValue, field: r.childPath("kind"),
                                           reason: "'\(kind)' is not taken here: ScaledObject, TriggerAuthentication, ClusterTriggerAuthentication or Secret")
            }
            documents.append(d)
        }
        for (i, d) in docs.enumerated() {
            let r = try FieldReader(d, path: docs.count > 1 ? "[\(i)]" : "")
            let kind = try r.string("kind")
            guard kind == "TriggerAuthentication" || kind == "ClusterTriggerAuthentication" else { continue }
            try readAuthentication(r, kind: kind)
            documents.append(d)
        }
    }

    static let objectMetaFields: Set<String> = [
        "name", "namespace", "labels", "annotations", "uid", "resourceVersion", "generation", "creationTimestamp",
        "managedFields", "finalizers", "ownerReferences", "generateName", "deletionTimestamp", "deletionGracePeriodSeconds",
    ]

    static func checkMetadata(_ meta: FieldReader) throws(MessageDecodingError) {
        for key in meta.fields.keys.sorted() where !objectMetaFields.contains(key) {
            throw MessageDecodingError(.unknownField, field: meta.childPath(key), reason: "'\(key)' is not a field of ObjectMeta")
        }
    }

    mutating func readSecret(_ r: FieldReader) throws(MessageDecodingError) {
        try ScaledObject.refuseUnknown(r, allowed: ["apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"])
        guard try r.string("apiVersion") == "v1" else {
            throw MessageDecodingError(.invalidValue, field: r.childPath("apiVersion"), reason: "a Secret is v1")
        }
        guard let meta = try r.optionalObject("metadata") else { throw MessageDecodingError(.missingField, field: r.childPath("metadata"), reason: "required: name") }
        try Self.checkMetadata(meta)
        let key = "\(try meta.optionalString("namespace") ?? "default")/\(try meta.string("name"))"
        var values: [String: String] = [:]
        if let data = try r.optionalObject("data") {
            for (k, v) in data.fields {
                guard case .string(let b64) = v, let bytes = Data(base64Encoded: b64), let s = String(data: bytes, encoding: .utf8) else {
                    throw MessageDecodingError(.invalidValue, field: data.childPath(k), reason: "Secret data values are base64 of UTF-8 text")
                }
                values[k] = s
            }
        }
        // stringData wins over data, as the API server merges them.
        if let plain = try r.optionalStringMap("stringData") { values.merge(plain) { _, new in new } }
        secrets[key] = values
    }

    static let authSpecFields: Set<String> = ["secretTargetRef", "env"]
    static let authUnsupported: [String: String] = [
        "podIdentity": "pod identity", "hashiCorpVault": "HashiCorp Vault", "azureKeyVault": "Azure Key Vault",
        "awsSecretManager": "AWS Secrets Manager", "gcpSecretManager": "GCP Secret Manager", "configMapTargetRef": "ConfigMap references",
        "boundServiceAccountToken": "bound service account tokens",
    ]
    /// The parameters KEDA's rabbitmq scaler takes from an authentication.
    static let parameters: Set<String> = ["host", "username", "password", "vhostName", "protocol"]
    static let parametersUnsupported: Set<String> = ["tls", "ca", "cert", "key", "keyPassword", "workloadIdentityResource", "clientID", "clientSecret", "tokenUrl", "scopes"]

    mutating func readAuthentication(_ r: FieldReader, kind: String) throws(MessageDecodingError) {
        try ScaledObject.refuseUnknown(r, allowed: ["apiVersion", "kind", "metadata", "spec", "status"])
        guard try r.string("apiVersion") == "keda.sh/v1alpha1" else {
            throw MessageDecodingError(.invalidValue, field: r.childPath("apiVersion"), reason: "a \(kind) is keda.sh/v1alpha1")
        }
        guard let meta = try r.optionalObject("metadata") else { throw MessageDecodingError(.missingField, field: r.childPath("metadata"), reason: "required: name") }
        try Self.checkMetadata(meta)
        let name = try meta.string("name")
        let namespace = kind == "ClusterTriggerAuthentication" ? "" : (try meta.optionalString("namespace") ?? "default")
        let secretNamespace = kind == "ClusterTriggerAuthentication" ? Self.clusterObjectNamespace : namespace
        guard let spec = try r.optionalObject("spec") else { throw MessageDecodingError(.missingField, field: r.childPath("spec"), reason: "required") }
        for key in spec.fields.keys.sorted() where !Self.authSpecFields.contains(key) {
            if let what = Self.authUnsupported[key] {
                throw MessageDecodingError(.unknownField, field: spec.childPath(key), reason: "KEDA's \(what) (spec.\(key)) is not supported here; secretTargetRef and env are")
            }
            throw MessageDecodingError(.unknownField, field: spec.childPath(key), reason: "'\(key)' is not a field of a \(kind)'s spec")
        }
        var out: [String: (ScaledObject.Parameter, String)] = [:]
        func parameter(_ e: FieldReader) throws(MessageDecodingError) -> String {
            let p = try e.string("parameter")
            if Self.parametersUnsupported.contains(p) {
                throw MessageDecodingError(.invalidValue, field: e.childPath("parameter"), reason: "KEDA's rabbitmq parameter '\(p)' is not supported here (TLS client certificates, workload identity, OAuth2)")
            }
            guard Self.parameters.contains(p) else {
                throw MessageDecodingError(.invalidValue, field: e.childPath("parameter"), reason: "'\(p)' is not a parameter of the rabbitmq scaler: \(Self.parameters.sorted().joined(separator: ", "))")
            }
            guard out[p] == nil else { throw MessageDecodingError(.invalidValue, field: e.childPath("parameter"), reason: "'\(p)' is given twice") }
            return p
        }
        for (i, item) in (try spec.optionalList("secretTargetRef") ?? []).enumerated() {
            let e = try FieldReader(item, path: "\(spec.childPath("secretTargetRef"))[\(i)]")
            try ScaledObject.refuseUnknown(e, allowed: ["parameter", "name", "key"])
            let p = try parameter(e)
            let secretName = try e.string("name"), key = try e.string("key")
            guard let secret = secrets["\(secretNamespace)/\(secretName)"] else {
                throw MessageDecodingError(.invalidValue, field: e.childPath("name"), reason: "no Secret '\(secretName)' in namespace '\(secretNamespace)' among the documents")
            }
            guard let v = secret[key] else {
                throw MessageDecodingError(.invalidValue, field: e.childPath("key"), reason: "Secret '\(secretName)' has no key '\(key)'")
            }
            out[p] = (.literal(v), e.childPath("key"))
        }
        for (i, item) in (try spec.optionalList("env") ?? []).enumerated() {
            let e = try FieldReader(item, path: "\(spec.childPath("env"))[\(i)]")
            try ScaledObject.refuseUnknown(e, allowed: ["parameter", "name", "containerName"])
            let p = try parameter(e)
            out[p] = (.environment(try e.string("name")), e.childPath("name"))
        }
        authentications["\(kind)/\(namespace)/\(name)"] = out
    }

    /// A ScaledObject's `authenticationRef`: its parameters, or an error naming the field.
    func parameters(kind: String, name: String, namespace: String, field: String) throws(MessageDecodingError) -> [String: (ScaledObject.Parameter, String)] {
        guard kind == "TriggerAuthentication" || kind == "ClusterTriggerAuthentication" else {
            throw MessageDecodingError(.invalidValue, field: field, reason: "authenticationRef kind '\(kind)' is not TriggerAuthentication or ClusterTriggerAuthentication")
        }
        let key = "\(kind)/\(kind == "ClusterTriggerAuthentication" ? "" : namespace)/\(name)"
        guard let found = authentications[key] else {
            throw MessageDecodingError(.invalidValue, field: field, reason: "no \(kind) '\(name)'\(kind == "TriggerAuthentication" ? " in namespace '\(namespace)'" : "") among the documents")
        }
        return found
    }
}
