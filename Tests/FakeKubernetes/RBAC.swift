import Foundation
import GEdgeCore

/// Role-based access as the API server judges it, from the ClusterRoles and
/// ClusterRoleBindings of manifest files (the suite's k8s/ directory): a user is allowed a
/// verb on a resource (`pods`, `pods/log`, `deployments/scale`) of an API group when a
/// rule of a role bound to it names all three (or `*`). Discovery paths are open to every
/// authenticated user, as the `system:discovery` role makes them.
struct RBAC: Sendable {
    struct Rule: Sendable {
        let groups: [String]
        let resources: [String]
        let verbs: [String]
        let names: [String]
    }

    var roles: [String: [Rule]] = [:]
    var bindings: [String: [String]] = [:]
    /// Users allowed everything (system:masters).
    var admins: Set<String> = []

    /// Reads every `*.yaml` under `directory` (recursively).
    static func load(directory: String) throws -> RBAC {
        var rbac = RBAC()
        let files = FileManager.default.enumerator(atPath: directory)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".yaml") } ?? []
        for file in files.sorted() {
            let text = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            for doc in try YAMLText.documents(text, path: file) {
                switch doc["kind"]?.stringValue {
                case "ClusterRole":
                    let name = doc["metadata"]?["name"]?.stringValue ?? ""
                    rbac.roles[name] = (doc["rules"]?.arrayValue ?? []).map { r in
                        func list(_ k: String) -> [String] { (r[k]?.arrayValue ?? []).compactMap(\.stringValue) }
                        return Rule(groups: list("apiGroups"), resources: list("resources"), verbs: list("verbs"), names: list("resourceNames"))
                    }
                case "ClusterRoleBinding":
                    guard let role = doc["roleRef"]?["name"]?.stringValue else { continue }
                    for s in doc["subjects"]?.arrayValue ?? [] {
                        guard s["kind"]?.stringValue == "ServiceAccount", let n = s["name"]?.stringValue, let ns = s["namespace"]?.stringValue else { continue }
                        rbac.bindings["system:serviceaccount:\(ns):\(n)", default: []].append(role)
                    }
                default: continue
                }
            }
        }
        return rbac
    }

    func allows(user: String, verb: String, group: String, resource: String, name: String?) -> Bool {
        if admins.contains(user) { return true }
        for role in bindings[user] ?? [] {
            for rule in roles[role] ?? [] {
                guard rule.groups.contains(group) || rule.groups.contains("*"),
                      rule.resources.contains(resource) || rule.resources.contains("*"),
                      rule.verbs.contains(verb) || rule.verbs.contains("*") else { continue }
                if !rule.names.isEmpty, !(name.map(rule.names.contains) ?? false) { continue }
                return true
            }
        }
        return false
    }
}
