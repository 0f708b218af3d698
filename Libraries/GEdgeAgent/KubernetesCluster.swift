import Foundation
import GEdgeAccelerators
import GEdgeCore
import GEdgeHTTPClient
import GEdgePlacement

/// Drives a real cluster through the Kubernetes REST API (libcurl): reads nodes and pods,
/// server-side applies workloads (`application/apply-patch+yaml`, field manager
/// `gedge-agent`), waits for their pods to run, and removes them by the request-ID label.
public struct KubernetesCluster: ClusterDriver {
    public static let requestLabel = "gedge.io/request-id"
    public static let attemptLabel = "gedge.io/attempt"
    public static let fieldManager = "gedge-agent"

    /// The label an operator puts on a namespace the suite may deploy into.
    public static let managedLabel = "gedge.io/managed"

    /// How the agent treats namespaces: it applies only into existing namespaces labelled
    /// `gedge.io/managed=true` (`requireManaged`, the default: its role may not create
    /// namespaces), or creates them itself, labelled so (`create`: a role that may).
    public enum NamespacePolicy: String, Sendable {
        case requireManaged = "require-managed"
        case create
    }

    let client: HTTPClient
    let configuration: KubernetesAPIConfiguration
    let pollInterval: Duration
    let applyTimeout: Duration
    let namespaces: NamespacePolicy

    public init(client: HTTPClient, configuration: KubernetesAPIConfiguration, applyTimeout: Duration = .seconds(120), pollInterval: Duration = .seconds(1),
                namespaces: NamespacePolicy = .requireManaged) {
        self.namespaces = namespaces
        self.client = client
        self.configuration = configuration
        self.applyTimeout = applyTimeout
        self.pollInterval = pollInterval
    }

    func call(_ method: String, _ path: String, body: JSONValue? = nil, contentType: String = "application/json", allow404: Bool = false) async throws -> JSONValue? {
        var headers = [("Accept", "application/json")]
        if body != nil { headers.append(("Content-Type", contentType)) }
        let request = HTTPRequest(method: method, url: configuration.url + path, headers: headers, body: body?.serialized(), bearerToken: configuration.token())
        let response = try await client.execute(request)
        if response.status == 404 && allow404 { return nil }
        guard response.isSuccess else {
            let message = (try? response.json())?["message"]?.stringValue ?? response.bodyString
            throw KubernetesAPIError(status: response.status, message: "\(method) \(path): \(message)")
        }
        return response.body.isEmpty ? .null : try response.json()
    }

    static func query(_ s: String) -> String {
        s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s
    }

    // MARK: state

    public func state() async throws -> [NodeState] {
        let nodes = try await call("GET", "/api/v1/nodes")?["items"]
        let pods = try await call("GET", "/api/v1/pods?fieldSelector=" + Self.query("status.phase!=Succeeded,status.phase!=Failed"))?["items"]
        var used: [String: Resources] = [:]
        if case .array(let items)? = pods {
            for pod in items {
                guard let node = pod["spec"]?["nodeName"]?.stringValue,
                      let req = try? WorkloadRequirements.extract(workload: pod, parameters: .null) else { continue }
                used[node] = (used[node] ?? .zero) + req.perReplica
            }
        }
        guard case .array(let items)? = nodes else { return [] }
        return items.compactMap { n in
            guard let name = n["metadata"]?["name"]?.stringValue else { return nil }
            var labels: [String: String] = [:]
            if case .object(let l)? = n["metadata"]?["labels"] { for (k, v) in l { labels[k] = v.stringValue } }
            var taints: [Taint] = []
            if case .array(let ts)? = n["spec"]?["taints"] { taints = ts.compactMap { try? NodeState.decodeTaint($0, path: "taint") } }
            var ready = false
            if case .array(let conds)? = n["status"]?["conditions"] {
                ready = conds.contains { $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True" }
            }
            let alloc = (n["status"]?["allocatable"]).flatMap { try? Resources.decode($0, path: "allocatable") } ?? .zero
            return NodeState(name: name, ready: ready, unschedulable: n["spec"]?["unschedulable"] == .bool(true),
                             allocatable: alloc, requested: used[name] ?? .zero, labels: labels, taints: taints)
        }
    }

    // MARK: apply

    static let clusterScoped: Set<String> = ["Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass", "PriorityClass"]

    /// The REST path of an object: `/api/v1/namespaces/ns/services/name`, `/apis/apps/v1/...`.
    static func path(apiVersion: String, kind: String, namespace: String?, name: String?) -> String {
        let base = apiVersion.contains("/") ? "/apis/\(apiVersion)" : "/api/\(apiVersion)"
        let lower = kind.lowercased()
        let plural = lower.hasSuffix("s") ? lower + "es" : lower.hasSuffix("y") ? String(lower.dropLast()) + "ies" : lower + "s"
        var p = base
        if let namespace, !clusterScoped.contains(kind) { p += "/namespaces/\(namespace)" }
        p += "/\(plural)"
        if let name { p += "/\(name)" }
        return p
    }

    static func manifests(_ workload: JSONValue) -> [JSONValue] {
        switch workload {
        case .array(let items): items
        case .object(let f) where f["kind"] == .string("List"): f["items"].flatMap { if case .array(let a) = $0 { a } else { nil } } ?? []
        default: [workload]
        }
    }

    /// The object as applied: namespace set, request label on it and on its pod template,
    /// replicas from the placement, and the node pinned through `kubernetes.io/hostname`.
    static func prepare(_ m: JSONValue, _ cmd: ApplyCommand) -> JSONValue {
        guard case .object(var o) = m else { return m }
        func labelled(_ meta: JSONValue?) -> JSONValue {
            var md: [String: JSONValue] = if case .object(let x)? = meta { x } else { [:] }
            var labels: [String: JSONValue] = if case .object(let l)? = md["labels"] { l } else { [:] }
            labels[requestLabel] = .string(cmd.requestID)
            labels[attemptLabel] = .string(String(cmd.attempt))
            md["labels"] = .object(labels)
            return .object(md)
        }
        var meta = labelled(o["metadata"])
        if case .object(var md) = meta, !clusterScoped.contains(o["kind"]?.stringValue ?? "") {
            md["namespace"] = .string(cmd.namespace)
            meta = .object(md)
        }
        o["metadata"] = meta
        let kind = o["kind"]?.stringValue ?? ""
        if ["Deployment", "StatefulSet", "ReplicaSet"].contains(kind), case .object(var spec)? = o["spec"] {
            spec["replicas"] = .number(Double(cmd.replicas))
            if case .object(var tpl)? = spec["template"] {
                tpl["metadata"] = labelled(tpl["metadata"])
                if let node = cmd.node, case .object(var ps)? = tpl["spec"] {
                    var sel: [String: JSONValue] = if case .object(let s)? = ps["nodeSelector"] { s } else { [:] }
                    sel["kubernetes.io/hostname"] = .string(node)
                    ps["nodeSelector"] = .object(sel)
                    tpl["spec"] = .object(ps)
                }
                spec["template"] = .object(tpl)
            }
            o["spec"] = .object(spec)
        } else if kind == "Pod", let node = cmd.node, case .object(var ps)? = o["spec"] {
            ps["nodeName"] = .string(node)
            o["spec"] = .object(ps)
        }
        return .object(o)
    }

    /// Scales through the scale subresource. On scale-in with busy pods named, every pod of
    /// the workload is first annotated with a deletion cost (busy 1000, idle -1000), so the
    /// ReplicaSet controller removes idle pods first.
    public func scale(_ command: ScaleCommand) async throws -> Int {
        let base = Self.path(apiVersion: "apps/v1", kind: command.kind, namespace: command.namespace, name: command.name)
        guard let current = try await call("GET", base + "/scale") else { throw KubernetesAPIError(status: 404, message: "no \(command.kind) \(command.namespace)/\(command.name)") }
        let before = Int(current["spec"]?["replicas"]?.numberValue ?? 0)
        if command.replicas < before, !command.busyPodIPs.isEmpty, let selector = current["status"]?["selector"]?.stringValue {
            let busy = Set(command.busyPodIPs)
            let pods = try await call("GET", "/api/v1/namespaces/\(command.namespace)/pods?labelSelector=" + Self.query(selector))?["items"]?.arrayValue ?? []
            for pod in pods {
                guard let name = pod["metadata"]?["name"]?.stringValue else { continue }
                let cost = pod["status"]?["podIP"]?.stringValue.map { busy.contains($0) } == true ? "1000" : "-1000"
                _ = try await call(
                    "PATCH", "/api/v1/namespaces/\(command.namespace)/pods/\(name)",
                    body: .object(["metadata": .object(["annotations": .object([Self.deletionCost: .string(cost)])])]),
                    contentType: "application/merge-patch+json")
            }
        }
        if let share = command.trafficShare {
            _ = try await call("PATCH", base, body: .object(["metadata": .object(["annotations": .object([Self.trafficShare: .string(String(format: "%.4f", share))])])]),
                               contentType: "application/merge-patch+json")
        }
        _ = try await call("PATCH", base + "/scale", body: .object(["spec": .object(["replicas": .number(Double(command.replicas))])]),
                           contentType: "application/merge-patch+json")
        return before
    }

    static let trafficShare = "gedge.io/traffic-share"

    /// The pod's log (`/log?tailLines=`), nil for a pod that is not there.
    public func logs(namespace: String, pod: String, tail: Int) async throws -> [String]? {
        let path = "/api/v1/namespaces/\(Self.query(namespace))/pods/\(Self.query(pod))/log?tailLines=\(max(1, tail))"
        let response = try await client.execute(HTTPRequest(method: "GET", url: configuration.url + path, headers: [("Accept", "text/plain")], bearerToken: configuration.token()))
        if response.status == 404 { return nil }
        guard response.isSuccess else { throw KubernetesAPIError(status: response.status, message: "GET \(path): \(response.bodyString.prefix(200))") }
        return response.bodyString.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
    }

    /// Sets every container's requests and limits (a strategic merge patch by container
    /// name); the Deployment rolls its pods to the new values.
    public func resize(_ command: ResizeCommand) async throws -> Int {
        let base = Self.path(apiVersion: "apps/v1", kind: command.kind, namespace: command.namespace, name: command.name)
        guard let object = try await call("GET", base, allow404: true) else {
            throw KubernetesAPIError(status: 404, message: "no \(command.kind) \(command.namespace)/\(command.name)")
        }
        func amounts(cpu: Int64?, memory: Int64?) -> JSONValue? {
            var o: [String: JSONValue] = [:]
            if let cpu { o["cpu"] = .string("\(cpu)m") }
            if let memory { o["memory"] = .string("\(memory)") }
            return o.isEmpty ? nil : .object(o)
        }
        var resources: [String: JSONValue] = [:]
        resources["requests"] = amounts(cpu: command.cpuRequestMilli, memory: command.memoryRequest)
        resources["limits"] = amounts(cpu: command.cpuLimitMilli, memory: command.memoryLimit)
        let containers = (object["spec"]?["template"]?["spec"]?["containers"]?.arrayValue ?? []).compactMap { c -> JSONValue? in
            c["name"]?.stringValue.map { .object(["name": .string($0), "resources": .object(resources)]) }
        }
        _ = try await call("PATCH", base, body: .object(["spec": .object(["template": .object(["spec": .object(["containers": .array(containers)])])])]),
                           contentType: "application/strategic-merge-patch+json")
        return Int(object["spec"]?["replicas"]?.numberValue ?? 0)
    }

    /// The Deployments the suite placed (by the request-ID label), their pods' readiness and
    /// requests, and their usage from the metrics API (`metrics.k8s.io`; without a metrics
    /// server the pods are reported without usage).
    public func usage() async throws -> [WorkloadUsage] {
        let selector = "?labelSelector=" + Self.query(Self.requestLabel)
        let deployments = try await call("GET", "/apis/apps/v1/deployments" + selector)?["items"]?.arrayValue ?? []
        let pods = try await call("GET", "/api/v1/pods" + selector)?["items"]?.arrayValue ?? []
        var samples: [String: (cpu: Double, memory: Double)] = [:]
        if let items = try? await call("GET", "/apis/metrics.k8s.io/v1beta1/pods" + selector, allow404: true)?["items"]?.arrayValue {
            for m in items {
                guard let ns = m["metadata"]?["namespace"]?.stringValue, let name = m["metadata"]?["name"]?.stringValue else { continue }
                var cpu = 0.0, mem = 0.0
                for c in m["containers"]?.arrayValue ?? [] {
                    cpu += c["usage"]?["cpu"]?.stringValue.flatMap(Quantity.milli).map(Double.init) ?? 0
                    mem += c["usage"]?["memory"]?.stringValue.flatMap(Quantity.value).map(Double.init) ?? 0
                }
                samples["\(ns)/\(name)"] = (cpu, mem)
            }
        }
        return deployments.compactMap { d -> WorkloadUsage? in
            guard let ns = d["metadata"]?["namespace"]?.stringValue, let name = d["metadata"]?["name"]?.stringValue else { return nil }
            let match = d["spec"]?["selector"]?["matchLabels"]?.objectValue ?? [:]
            let mine = pods.filter { p in
                guard p["metadata"]?["namespace"]?.stringValue == ns, p["metadata"]?["deletionTimestamp"] == nil else { return false }
                let labels = p["metadata"]?["labels"]?.objectValue ?? [:]
                return !match.isEmpty && match.allSatisfy { labels[$0.key] == $0.value }
            }
            let usage = mine.compactMap { p -> PodUsage? in
                guard let podName = p["metadata"]?["name"]?.stringValue else { return nil }
                let phase = p["status"]?["phase"]?.stringValue ?? ""
                guard phase != "Succeeded" && phase != "Failed" else { return nil }
                let ready = (p["status"]?["conditions"]?.arrayValue ?? []).contains { $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True" }
                let req = (try? WorkloadRequirements.extract(workload: p, parameters: .null))?.perReplica ?? .zero
                let sample = samples["\(ns)/\(podName)"]
                return PodUsage(name: podName, node: p["spec"]?["nodeName"]?.stringValue, ready: ready, cpuMilli: sample?.cpu, memory: sample?.memory,
                                cpuRequestMilli: Double(req.cpuMilli), memoryRequest: Double(req.memory))
            }
            return WorkloadUsage(namespace: ns, name: name, replicas: Int(d["spec"]?["replicas"]?.numberValue ?? 0), pods: usage)
        }
    }

    static let deletionCost = "controller.kubernetes.io/pod-deletion-cost"

    func serverSideApply(_ object: JSONValue, namespace: String?) async throws {
        guard let apiVersion = object["apiVersion"]?.stringValue, let kind = object["kind"]?.stringValue,
              let name = object["metadata"]?["name"]?.stringValue else {
            throw KubernetesAPIError(status: 422, message: "a manifest without apiVersion, kind or metadata.name")
        }
        let path = Self.path(apiVersion: apiVersion, kind: kind, namespace: namespace, name: name)
        // JSON is YAML: the apply-patch content type takes it as it is.
        _ = try await call("PATCH", path + "?fieldManager=\(Self.fieldManager)&force=true", body: object, contentType: "application/apply-patch+yaml")
    }

    public func namespace(_ name: String, delete: Bool) async throws {
        guard namespaces == .create else {
            throw KubernetesAPIError(status: 403, message: "namespaces are the operator's to \(delete ? "delete" : "create") (agent.namespaces=require-managed)")
        }
        if delete {
            _ = try await call("DELETE", "/api/v1/namespaces/\(name)", allow404: true)
        } else {
            try await serverSideApply(.object([
                "apiVersion": .string("v1"), "kind": .string("Namespace"),
                "metadata": .object(["name": .string(name), "labels": .object([Self.managedLabel: "true"])]),
            ]), namespace: nil)
        }
    }

    public func apply(_ cmd: ApplyCommand) async throws -> ApplyResult {
        if let d = cmd.deadline, d < Date() { return ApplyResult(ok: false, reason: "the deadline passed before the apply started") }
        switch namespaces {
        case .create: try await namespace(cmd.namespace, delete: false)
        case .requireManaged:
            guard let ns = try await call("GET", "/api/v1/namespaces/\(cmd.namespace)", allow404: true) else {
                return ApplyResult(ok: false, reason: "namespace \(cmd.namespace) does not exist; an operator creates it labelled \(Self.managedLabel)=true")
            }
            guard ns["metadata"]?["labels"]?[Self.managedLabel] == .string("true") else {
                return ApplyResult(ok: false, reason: "namespace \(cmd.namespace) is not labelled \(Self.managedLabel)=true; the agent applies only in managed namespaces")
            }
        }
        var owner: (kind: String, path: String)?
        for m in Self.manifests(cmd.workload) {
            let object = Self.prepare(m, cmd)
            try await serverSideApply(object, namespace: cmd.namespace)
            if let kind = object["kind"]?.stringValue, ["Deployment", "StatefulSet", "ReplicaSet", "Pod"].contains(kind),
               let v = object["apiVersion"]?.stringValue, let name = object["metadata"]?["name"]?.stringValue {
                owner = (kind, Self.path(apiVersion: v, kind: kind, namespace: cmd.namespace, name: name))
            }
        }
        guard let owner else { return ApplyResult(ok: true, reason: "applied (no pods to wait for)") }
        // Wait for the pods, within the lease deadline and the agent's own limit.
        var until = ContinuousClock.now + applyTimeout
        if let d = cmd.deadline { until = min(until, ContinuousClock.now + .milliseconds(Int64(max(0, d.timeIntervalSinceNow) * 1000))) }
        var last = "waiting for pods"
        while ContinuousClock.now < until {
            if let obj = try await call("GET", owner.path, allow404: true) {
                if owner.kind == "Pod" {
                    let phase = obj["status"]?["phase"]?.stringValue ?? "Pending"
                    if phase == "Running" { return ApplyResult(ok: true, reason: "pod running", pods: try await podNodes(cmd)) }
                    last = "pod \(phase)"
                } else {
                    var ready = 0
                    if case .number(let d)? = obj["status"]?["readyReplicas"] { ready = Int(d) }
                    if ready >= cmd.replicas { return ApplyResult(ok: true, reason: "\(ready)/\(cmd.replicas) replicas ready", pods: try await podNodes(cmd)) }
                    last = "\(ready)/\(cmd.replicas) replicas ready"
                }
            }
            try await Task.sleep(for: pollInterval)
        }
        _ = try? await remove(requestID: cmd.requestID, attempt: cmd.attempt)
        return ApplyResult(ok: false, reason: "pods not running in time (\(last)); removed")
    }

    func podNodes(_ cmd: ApplyCommand) async throws -> [String: String] {
        let list = try await call("GET", "/api/v1/namespaces/\(cmd.namespace)/pods?labelSelector=" + Self.query("\(Self.requestLabel)=\(cmd.requestID)"))
        var out: [String: String] = [:]
        if case .array(let items)? = list?["items"] {
            for p in items { if let n = p["metadata"]?["name"]?.stringValue { out[n] = p["spec"]?["nodeName"]?.stringValue ?? "" } }
        }
        return out
    }

    /// Objects the agent applies that carry pods or expose them, found by the request label.
    static let removable: [(String, String)] = [("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("apps/v1", "ReplicaSet"), ("v1", "Pod"), ("v1", "Service")]

    public func remove(requestID: String, attempt: Int?) async throws -> Int {
        var n = 0
        // Only the attempt's own objects: a newer attempt re-applied on this cluster relabels them.
        let selector = "\(Self.requestLabel)=\(requestID)" + (attempt.map { ",\(Self.attemptLabel)=\($0)" } ?? "")
        for (v, kind) in Self.removable {
            let list = try await call("GET", Self.path(apiVersion: v, kind: kind, namespace: nil, name: nil) + "?labelSelector=" + Self.query(selector))
            guard case .array(let items)? = list?["items"] else { continue }
            for o in items {
                guard let name = o["metadata"]?["name"]?.stringValue else { continue }
                let ns = o["metadata"]?["namespace"]?.stringValue
                _ = try await call("DELETE", Self.path(apiVersion: v, kind: kind, namespace: ns, name: name), allow404: true)
                n += 1
            }
        }
        return n
    }

    public func nodeOf(pod: String, namespace: String?) async throws -> String? {
        if let namespace {
            return try await call("GET", "/api/v1/namespaces/\(namespace)/pods/\(pod)", allow404: true)?["spec"]?["nodeName"]?.stringValue
        }
        let list = try await call("GET", "/api/v1/pods?fieldSelector=" + Self.query("metadata.name=\(pod)"))
        if case .array(let items)? = list?["items"] { return items.first?["spec"]?["nodeName"]?.stringValue }
        return nil
    }
}

/// Reads a kubeconfig (YAML): the current context's server, CA, and token or client
/// certificate. Inline data (`*-data`) is written to private files for libcurl.
public enum Kubeconfig {
    public static func load(path: String, context: String? = nil) throws -> KubernetesAPIConfiguration {
        guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
            throw ConfigurationError(key: "kubernetes.kubeconfig", reason: "cannot read \(path)")
        }
        let root: JSONValue
        do { root = try YAMLText.document(text, path: "") } catch {
            throw ConfigurationError(key: "kubernetes.kubeconfig", reason: "\(path) is not a kubeconfig: \(error)")
        }
        func named(_ list: String, _ name: String) -> JSONValue? {
            guard case .array(let items)? = root[list] else { return nil }
            return items.first { $0["name"]?.stringValue == name }
        }
        guard let ctxName = context ?? root["current-context"]?.stringValue,
              let ctx = named("contexts", ctxName)?["context"],
              let clusterName = ctx["cluster"]?.stringValue, let cluster = named("clusters", clusterName)?["cluster"],
              let server = cluster["server"]?.stringValue else {
            throw ConfigurationError(key: "kubernetes.kubeconfig", reason: "\(path): no usable current context")
        }
        let user = ctx["user"]?.stringValue.flatMap { named("users", $0)?["user"] } ?? .object([:])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gedge-kubeconfig-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        func file(_ fileKey: String, _ dataKey: String, in m: JSONValue, as name: String) throws -> String? {
            if let f = m[fileKey]?.stringValue { return f }
            guard let b64 = m[dataKey]?.stringValue, let data = Data(base64Encoded: b64) else { return nil }
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
        return KubernetesAPIConfiguration(url: server.hasSuffix("/") ? String(server.dropLast()) : server, tokenFile: tokenFile, http: http)
    }
}
