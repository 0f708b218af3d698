import GEdgeCore

/// What a project may deploy: the namespaces it owns, the kinds it may create, and the Pod
/// Security Standard its pods must meet. Checked at the gateway (403) and again by the
/// scheduler for requests from Kafka (rejected), before anything reaches an agent.
public struct ProjectPolicy: Sendable, Hashable {
    public enum PodSecurity: String, Sendable, CaseIterable {
        case baseline, restricted
    }

    /// Namespaces bound to the project (besides its own, `KubeNames.namespace(forProject:)`).
    public var namespaces: Set<String>
    public var kinds: Set<String>
    public var podSecurity: PodSecurity

    /// Kinds a project may create unless an admin sets its own list. `Pod` is here because
    /// GS-Scheduler's own requests place bare Pods.
    public static let defaultKinds: Set<String> = [
        "Pod", "Deployment", "StatefulSet", "Job", "CronJob", "Service", "ConfigMap", "Secret",
        "PersistentVolumeClaim", "HorizontalPodAutoscaler", "ServiceMonitor", "NetworkPolicy", "NetworkAttachmentDefinition",
    ]

    public init(namespaces: Set<String> = [], kinds: Set<String> = ProjectPolicy.defaultKinds, podSecurity: PodSecurity = .baseline) {
        self.namespaces = namespaces
        self.kinds = kinds
        self.podSecurity = podSecurity
    }
}

extension ProjectPolicy {
    /// The wire form of `/v1/projects/{p}/policy`.
    public func json(project: String) -> JSONValue {
        .object([
            "project_name": .string(project), "pod_security": .string(podSecurity.rawValue),
            "kinds": .array(kinds.sorted().map(JSONValue.string)),
        ])
    }
}

/// Why a workload may not be deployed.
public struct AdmissionError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Rule: String, Sendable {
        case systemNamespace = "system_namespace"
        case foreignNamespace = "foreign_namespace"
        case kind
        case podSecurity = "pod_security"
    }

    public var rule: Rule
    public var field: String
    public var reason: String
    public var description: String { reason }
}

public enum Admission {
    /// Namespaces no project may use: Kubernetes' own and the suite's.
    public static func isSystemNamespace(_ ns: String) -> Bool {
        ns.hasPrefix("kube-") || ns == "gedge" || ns.hasPrefix("gedge-system") || ns == "default"
    }

    /// Whether `project` may deploy into `namespace`.
    public static func checkNamespace(_ namespace: String, project: String, policy: ProjectPolicy) throws(AdmissionError) {
        if isSystemNamespace(namespace) {
            throw AdmissionError(rule: .systemNamespace, field: "namespace", reason: "namespace '\(namespace)' is a system namespace; no project deploys there")
        }
        guard namespace == KubeNames.namespace(forProject: project) || policy.namespaces.contains(namespace) else {
            throw AdmissionError(rule: .foreignNamespace, field: "namespace", reason: "namespace '\(namespace)' is not bound to project '\(project)'")
        }
    }

    /// The whole check: the namespace, then each manifest's kind and pods.
    public static func check(workload: JSONValue, namespace: String, project: String, policy: ProjectPolicy) throws(AdmissionError) {
        try checkNamespace(namespace, project: project, policy: policy)
        let manifests: [JSONValue]
        if case .array(let list) = workload { manifests = list } else { manifests = [workload] }
        for (i, m) in manifests.enumerated() {
            let at = manifests.count == 1 ? "workload" : "workload[\(i)]"
            let kind = m["kind"]?.stringValue ?? ""
            if kind == "List", case .array(let items)? = m["items"] {
                try check(workload: .array(items), namespace: namespace, project: project, policy: policy)
                continue
            }
            guard policy.kinds.contains(kind) else {
                throw AdmissionError(rule: .kind, field: at + ".kind", reason: "kind '\(kind)' may not be deployed by project '\(project)' (allowed: \(policy.kinds.sorted().joined(separator: ", ")))")
            }
            if let ns = m["metadata"]?["namespace"]?.stringValue, ns != namespace {
                // The agent puts every object in the request's namespace; a manifest naming
                // another one says something else was meant.
                throw AdmissionError(rule: .foreignNamespace, field: at + ".metadata.namespace", reason: "the manifest names namespace '\(ns)', but the request deploys to '\(namespace)'")
            }
            if let (spec, path) = podSpec(m, kind: kind, at: at) {
                try PodSecurityStandards.check(spec, path: path, level: policy.podSecurity, annotations: podAnnotations(m, kind: kind))
            }
        }
    }

    static func podSpec(_ m: JSONValue, kind: String, at: String) -> (JSONValue, String)? {
        switch kind {
        case "Pod": return m["spec"].map { ($0, at + ".spec") }
        case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController":
            return m["spec"]?["template"]?["spec"].map { ($0, at + ".spec.template.spec") }
        case "CronJob": return m["spec"]?["jobTemplate"]?["spec"]?["template"]?["spec"].map { ($0, at + ".spec.jobTemplate.spec.template.spec") }
        default: return nil
        }
    }

    static func podAnnotations(_ m: JSONValue, kind: String) -> JSONValue? {
        switch kind {
        case "Pod": m["metadata"]?["annotations"]
        case "CronJob": m["spec"]?["jobTemplate"]?["spec"]?["template"]?["metadata"]?["annotations"]
        default: m["spec"]?["template"]?["metadata"]?["annotations"]
        }
    }
}

/// Kubernetes' Pod Security Standards (the `baseline` and `restricted` profiles, as the
/// PodSecurity admission controller checks them), applied to a pod spec. The error names
/// the control and the field, as the API server's answer does.
public enum PodSecurityStandards {
    static let baselineCapabilities: Set<String> = [
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
        "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    ]
    static let safeSysctls: Set<String> = [
        "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
    ]
    static let seLinuxTypes: Set<String> = ["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"]
    static let restrictedVolumes: Set<String> = [
        "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
    ]

    public static func check(_ spec: JSONValue, path: String, level: ProjectPolicy.PodSecurity, annotations: JSONValue? = nil) throws(AdmissionError) {
        func fail(_ control: String, _ field: String, _ what: String) -> AdmissionError {
            AdmissionError(rule: .podSecurity, field: field, reason: "violates PodSecurity \"\(level.rawValue):latest\": \(control) (\(what))")
        }
        let podSC = spec["securityContext"]
        var containers: [(JSONValue, String)] = []
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            if case .array(let items)? = spec[list] {
                for (i, c) in items.enumerated() { containers.append((c, "\(path).\(list)[\(i)]")) }
            }
        }
        func name(_ c: JSONValue) -> String { c["name"]?.stringValue ?? "?" }

        // Baseline.
        if podSC?["windowsOptions"]?["hostProcess"] == .bool(true) {
            throw fail("hostProcess", "\(path).securityContext.windowsOptions.hostProcess", "pod must not set securityContext.windowsOptions.hostProcess=true")
        }
        for ns in ["hostNetwork", "hostPID", "hostIPC"] where spec[ns] == .bool(true) {
            throw fail("host namespaces", "\(path).\(ns)", "\(ns)=true")
        }
        if case .array(let volumes)? = spec["volumes"] {
            for (i, v) in volumes.enumerated() {
                if v["hostPath"] != nil {
                    throw fail("hostPath volumes", "\(path).volumes[\(i)].hostPath", "volume \"\(v["name"]?.stringValue ?? "?")\" uses hostPath")
                }
                if level == .restricted, case .object(let fields) = v {
                    for key in fields.keys.sorted() where key != "name" && !restrictedVolumes.contains(key) {
                        throw fail("restricted volume types", "\(path).volumes[\(i)].\(key)", "volume \"\(v["name"]?.stringValue ?? "?")\" uses restricted volume type \"\(key)\"")
                    }
                }
            }
        }
        if case .array(let sysctls)? = podSC?["sysctls"] {
            for (i, s) in sysctls.enumerated() where !safeSysctls.contains(s["name"]?.stringValue ?? "") {
                throw fail("forbidden sysctls", "\(path).securityContext.sysctls[\(i)]", "\(s["name"]?.stringValue ?? "?")")
            }
        }
        if case .object(let notes)? = annotations {
            for (k, v) in notes where k.hasPrefix("container.apparmor.security.beta.kubernetes.io/") {
                let value = v.stringValue ?? ""
                if value != "runtime/default" && !value.hasPrefix("localhost/") {
                    throw fail("appArmorProfile", "metadata.annotations.\(k)", "annotation \(k)=\"\(value)\"")
                }
            }
        }
        func checkCommon(_ sc: JSONValue?, _ field: String, _ who: String) throws(AdmissionError) {
            if let type = sc?["appArmorProfile"]?["type"]?.stringValue, type != "RuntimeDefault", type != "Localhost" {
                throw fail("appArmorProfile", "\(field).appArmorProfile.type", "\(who) must not set appArmorProfile.type=\"\(type)\"")
            }
            if let se = sc?["seLinuxOptions"] {
                if !seLinuxTypes.contains(se["type"]?.stringValue ?? "") {
                    throw fail("seLinuxOptions", "\(field).seLinuxOptions.type", "\(who) set forbidden securityContext.seLinuxOptions: type \"\(se["type"]?.stringValue ?? "")\"")
                }
                for k in ["user", "role"] where se[k] != nil && se[k] != .string("") {
                    throw fail("seLinuxOptions", "\(field).seLinuxOptions.\(k)", "\(who) set forbidden securityContext.seLinuxOptions: \(k)")
                }
            }
            if sc?["seccompProfile"]?["type"]?.stringValue == "Unconfined" {
                throw fail("seccompProfile", "\(field).seccompProfile.type", "\(who) must not set securityContext.seccompProfile.type to \"Unconfined\"")
            }
            if sc?["windowsOptions"]?["hostProcess"] == .bool(true) {
                throw fail("hostProcess", "\(field).windowsOptions.hostProcess", "\(who) must not set securityContext.windowsOptions.hostProcess=true")
            }
        }
        try checkCommon(podSC, "\(path).securityContext", "pod")
        for (c, at) in containers {
            let sc = c["securityContext"]
            let who = "container \"\(name(c))\""
            if sc?["privileged"] == .bool(true) {
                throw fail("privileged", "\(at).securityContext.privileged", "\(who) must not set securityContext.privileged=true")
            }
            if case .array(let add)? = sc?["capabilities"]?["add"] {
                for cap in add.compactMap(\.stringValue) where !baselineCapabilities.contains(cap) {
                    throw fail("non-default capabilities", "\(at).securityContext.capabilities.add", "\(who) must not include \"\(cap)\" in securityContext.capabilities.add")
                }
            }
            if case .array(let ports)? = c["ports"] {
                for (i, p) in ports.enumerated() {
                    if case .number(let hp)? = p["hostPort"], hp != 0 {
                        throw fail("hostPort", "\(at).ports[\(i)].hostPort", "\(who) uses hostPort \(Int(hp))")
                    }
                }
            }
            if let pm = sc?["procMount"]?.stringValue, pm != "Default" {
                throw fail("procMount", "\(at).securityContext.procMount", "\(who) must not set securityContext.procMount=\"\(pm)\"")
            }
            try checkCommon(sc, "\(at).securityContext", who)
        }
        guard level == .restricted else { return }

        // Restricted.
        let podNonRoot = podSC?["runAsNonRoot"] == .bool(true)
        let podSeccomp = podSC?["seccompProfile"]?["type"]?.stringValue
        if case .number(let uid)? = podSC?["runAsUser"], uid == 0 {
            throw fail("runAsUser=0", "\(path).securityContext.runAsUser", "pod must not set runAsUser=0")
        }
        for (c, at) in containers {
            let sc = c["securityContext"]
            let who = "container \"\(name(c))\""
            if sc?["allowPrivilegeEscalation"] != .bool(false) {
                throw fail("allowPrivilegeEscalation != false", "\(at).securityContext.allowPrivilegeEscalation", "\(who) must set securityContext.allowPrivilegeEscalation=false")
            }
            let nonRoot = sc?["runAsNonRoot"].map { $0 == .bool(true) } ?? podNonRoot
            if !nonRoot {
                throw fail("runAsNonRoot != true", "\(at).securityContext.runAsNonRoot", "pod or \(who) must set securityContext.runAsNonRoot=true")
            }
            if case .number(let uid)? = sc?["runAsUser"], uid == 0 {
                throw fail("runAsUser=0", "\(at).securityContext.runAsUser", "\(who) must not set runAsUser=0")
            }
            let seccomp = sc?["seccompProfile"]?["type"]?.stringValue ?? podSeccomp
            if seccomp != "RuntimeDefault" && seccomp != "Localhost" {
                throw fail("seccompProfile", "\(at).securityContext.seccompProfile.type", "pod or \(who) must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"")
            }
            let drop = (sc?["capabilities"]?["drop"]).flatMap { v -> [String]? in
                guard case .array(let list) = v else { return nil }
                return list.compactMap(\.stringValue)
            } ?? []
            if !drop.contains("ALL") {
                throw fail("unrestricted capabilities", "\(at).securityContext.capabilities.drop", "\(who) must set securityContext.capabilities.drop=[\"ALL\"]")
            }
            if case .array(let add)? = sc?["capabilities"]?["add"] {
                for cap in add.compactMap(\.stringValue) where cap != "NET_BIND_SERVICE" {
                    throw fail("unrestricted capabilities", "\(at).securityContext.capabilities.add", "\(who) must not include \"\(cap)\" in securityContext.capabilities.add")
                }
            }
        }
    }
}
