import GEdgeCore
import GEdgePlacement
import Testing

/// Namespaces, kinds and the Pod Security Standards' controls, each violated once.
@Suite struct AdmissionTests {
    static func pod(_ spec: [String: JSONValue], annotations: [String: JSONValue]? = nil) -> JSONValue {
        var meta: [String: JSONValue] = ["name": "p"]
        if let annotations { meta["annotations"] = .object(annotations) }
        return .object(["apiVersion": "v1", "kind": "Pod", "metadata": .object(meta), "spec": .object(spec)])
    }
    static func container(_ extra: [String: JSONValue] = [:]) -> JSONValue {
        var c: [String: JSONValue] = ["name": "c", "image": "busybox"]
        for (k, v) in extra { c[k] = v }
        return .object(c)
    }
    static let restrictedContainer = container(["securityContext": .object([
        "allowPrivilegeEscalation": false, "runAsNonRoot": true, "capabilities": .object(["drop": .array(["ALL"])]),
        "seccompProfile": .object(["type": "RuntimeDefault"]),
    ])])

    func refusal(_ workload: JSONValue, level: ProjectPolicy.PodSecurity = .baseline, namespace: String = "p1") -> AdmissionError? {
        do {
            try Admission.check(workload: workload, namespace: namespace, project: "p1", policy: ProjectPolicy(namespaces: ["team"], podSecurity: level))
            return nil
        } catch { return error }
    }

    /// A request that names no namespace goes where its manifests say, as `kubectl apply -f`
    /// without `-n`; one the request names wins (admission then refuses a manifest naming
    /// another); manifests naming several leave it to the project's own, and are refused.
    @Test func theManifestsNamespaceIsTheRequestsWhenItNamesNone() {
        func named(_ ns: String?) -> JSONValue {
            var meta: [String: JSONValue] = ["name": "d"]
            if let ns { meta["namespace"] = .string(ns) }
            return .object(["kind": "Deployment", "metadata": .object(meta)])
        }
        #expect(KubeNames.parameters(.object([:]), namespaceFrom: named("team"))["namespace"] == "team")
        #expect(KubeNames.parameters(.null, namespaceFrom: named("team"))["namespace"] == "team")
        #expect(KubeNames.parameters(.object(["namespace": "p1"]), namespaceFrom: named("team"))["namespace"] == "p1")
        #expect(KubeNames.parameters(.object([:]), namespaceFrom: named(nil))["namespace"] == nil)
        #expect(KubeNames.parameters(.object([:]), namespaceFrom: .array([named("team"), named(nil), named("team")]))["namespace"] == "team")
        #expect(KubeNames.parameters(.object([:]), namespaceFrom: .array([named("team"), named("other")]))["namespace"] == nil)
        let list: JSONValue = .object(["kind": "List", "items": .array([named("team")])])
        #expect(KubeNames.parameters(.object(["x": 1]), namespaceFrom: list) == .object(["x": 1, "namespace": "team"]))
        #expect(KubeNames.namespace(project: "p1", parameters: KubeNames.parameters(.object([:]), namespaceFrom: named("team"))) == "team")
    }

    @Test func namespacesAreTheProjectsOwnOrBound() {
        #expect(refusal(Self.pod(["containers": .array([Self.container()])])) == nil)
        #expect(refusal(Self.pod(["containers": .array([Self.container()])]), namespace: "team") == nil)
        for ns in ["kube-system", "kube-public", "default", "gedge"] {
            #expect(refusal(Self.pod(["containers": .array([Self.container()])]), namespace: ns)?.rule == .systemNamespace)
        }
        #expect(refusal(Self.pod(["containers": .array([Self.container()])]), namespace: "p2")?.rule == .foreignNamespace)
        // A manifest naming another namespace than the request's.
        let elsewhere: JSONValue = .object(["apiVersion": "v1", "kind": "ConfigMap", "metadata": .object(["name": "x", "namespace": "kube-system"])])
        #expect(refusal(elsewhere)?.field == "workload.metadata.namespace")
    }

    @Test func kindsOutsideTheListAreRefused() {
        for kind in ["DaemonSet", "ClusterRole", "ClusterRoleBinding", "Namespace", "MutatingWebhookConfiguration", "", "CustomResourceDefinition"] {
            let m: JSONValue = .object(["apiVersion": "v1", "kind": .string(kind), "metadata": .object(["name": "x"])])
            #expect(refusal(.array([.object(["apiVersion": "v1", "kind": "ConfigMap", "metadata": .object(["name": "ok"])]), m]))?.field == "workload[1].kind")
        }
        // Inside a List too.
        let list: JSONValue = .object(["kind": "List", "items": .array([.object(["kind": "DaemonSet", "metadata": .object(["name": "d"])])])])
        #expect(refusal(list)?.rule == .kind)
    }

    @Test(arguments: [
        (["hostNetwork": true] as [String: JSONValue], "host namespaces"),
        (["hostPID": true], "host namespaces"),
        (["hostIPC": true], "host namespaces"),
        (["volumes": .array([.object(["name": "h", "hostPath": .object(["path": "/"])])])], "hostPath volumes"),
        (["securityContext": .object(["sysctls": .array([.object(["name": "kernel.msgmax", "value": "1"])])])], "forbidden sysctls"),
        (["securityContext": .object(["seccompProfile": .object(["type": "Unconfined"])])], "seccompProfile"),
        (["securityContext": .object(["seLinuxOptions": .object(["type": "spc_t"])])], "seLinuxOptions"),
        (["securityContext": .object(["windowsOptions": .object(["hostProcess": true])])], "hostProcess"),
    ])
    func podLevelBaselineControls(spec: [String: JSONValue], control: String) {
        var s = spec
        s["containers"] = .array([Self.container()])
        let e = refusal(Self.pod(s))
        #expect(e?.rule == .podSecurity && e?.reason.contains(control) == true, "\(String(describing: e))")
    }

    @Test(arguments: [
        (["securityContext": .object(["privileged": true])] as [String: JSONValue], "privileged", "containers[0].securityContext.privileged"),
        (["securityContext": .object(["capabilities": .object(["add": .array(["SYS_ADMIN"])])])], "non-default capabilities", "containers[0].securityContext.capabilities.add"),
        (["ports": .array([.object(["containerPort": 80, "hostPort": 80])])], "hostPort", "containers[0].ports[0].hostPort"),
        (["securityContext": .object(["procMount": "Unmasked"])], "procMount", "containers[0].securityContext.procMount"),
        (["securityContext": .object(["appArmorProfile": .object(["type": "Unconfined"])])], "appArmorProfile", "containers[0].securityContext.appArmorProfile.type"),
    ])
    func containerLevelBaselineControls(extra: [String: JSONValue], control: String, field: String) {
        let e = refusal(Self.pod(["containers": .array([Self.container(extra)])]))
        #expect(e?.rule == .podSecurity && e?.reason.contains(control) == true && e?.field == "workload.spec." + field, "\(String(describing: e))")
        // Init and ephemeral containers are held to the same.
        let i = refusal(Self.pod(["containers": .array([Self.container()]), "initContainers": .array([Self.container(extra)])]))
        #expect(i?.field.contains("initContainers[0]") == true)
    }

    @Test func baselineAllowsWhatItAllows() {
        let ok = Self.container(["securityContext": .object(["capabilities": .object(["add": .array(["NET_BIND_SERVICE", "CHOWN"])]), "privileged": false]),
                                 "ports": .array([.object(["containerPort": 80, "hostPort": 0])])])
        #expect(refusal(Self.pod(["containers": .array([ok]), "securityContext": .object(["sysctls": .array([.object(["name": "net.ipv4.tcp_syncookies", "value": "1"])])])])) == nil)
        #expect(refusal(Self.pod(["containers": .array([Self.container()])], annotations: ["container.apparmor.security.beta.kubernetes.io/c": "unconfined"]))?.rule == .podSecurity)
    }

    @Test func restrictedAddsItsControls() {
        #expect(refusal(Self.pod(["containers": .array([Self.restrictedContainer])]), level: .restricted) == nil)
        let plain = refusal(Self.pod(["containers": .array([Self.container()])]), level: .restricted)
        #expect(plain?.reason.contains("allowPrivilegeEscalation") == true)
        // Each part of the restricted container's context, taken away.
        for (key, control) in [("runAsNonRoot", "runAsNonRoot"), ("seccompProfile", "seccompProfile"), ("capabilities", "unrestricted capabilities")] {
            guard case .object(var c) = Self.restrictedContainer, case .object(var sc)? = c["securityContext"] else { return }
            sc.removeValue(forKey: key)
            c["securityContext"] = .object(sc)
            #expect(refusal(Self.pod(["containers": .array([.object(c)])]), level: .restricted)?.reason.contains(control) == true, "\(key)")
        }
        // Pod-level non-root and seccomp satisfy every container.
        guard case .object(var c) = Self.restrictedContainer, case .object(var sc)? = c["securityContext"] else { return }
        sc.removeValue(forKey: "runAsNonRoot")
        sc.removeValue(forKey: "seccompProfile")
        c["securityContext"] = .object(sc)
        let podLevel: [String: JSONValue] = ["containers": .array([.object(c)]), "securityContext": .object(["runAsNonRoot": true, "seccompProfile": .object(["type": "RuntimeDefault"])])]
        #expect(refusal(Self.pod(podLevel), level: .restricted) == nil)
        // Volume types and root.
        var withHostVolume = podLevel
        withHostVolume["volumes"] = .array([.object(["name": "n", "nfs": .object(["server": "s", "path": "/"])])])
        #expect(refusal(Self.pod(withHostVolume), level: .restricted)?.reason.contains("restricted volume types") == true)
        var root = podLevel
        root["securityContext"] = .object(["runAsNonRoot": true, "runAsUser": 0, "seccompProfile": .object(["type": "RuntimeDefault"])])
        #expect(refusal(Self.pod(root), level: .restricted)?.reason.contains("runAsUser=0") == true)
    }

    @Test func podsInsideControllersAreFound() {
        let priv = Self.container(["securityContext": .object(["privileged": true])])
        let template: JSONValue = .object(["spec": .object(["containers": .array([priv])])])
        for (kind, spec, path) in [
            ("Deployment", JSONValue.object(["template": template]), "workload.spec.template.spec"),
            ("StatefulSet", .object(["template": template]), "workload.spec.template.spec"),
            ("Job", .object(["template": template]), "workload.spec.template.spec"),
            ("CronJob", .object(["jobTemplate": .object(["spec": .object(["template": template])])]), "workload.spec.jobTemplate.spec.template.spec"),
        ] {
            let m: JSONValue = .object(["apiVersion": "apps/v1", "kind": .string(kind), "metadata": .object(["name": "x"]), "spec": spec])
            #expect(refusal(m)?.field == path + ".containers[0].securityContext.privileged", "\(kind)")
        }
    }
}
