import Foundation
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKubernetes
import GEdgePlacement
import Logging

/// Drives a real cluster through the Kubernetes REST API (`GEdgeKubernetes`): reads nodes
/// and pods, server-side applies workloads (field manager `gedge-agent`, forcing conflicts
/// as a controller that owns its objects does), watches them until they are rolled out as
/// `kubectl rollout status` judges it, reporting why pods do not run (ImagePullBackOff,
/// CrashLoopBackOff, Unschedulable...), and removes them by the request-ID label.
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

    let api: KubernetesClient
    let applyTimeout: Duration
    /// How long a lasting pod problem (ImagePullBackOff, CrashLoopBackOff, Unschedulable)
    /// may stand before the apply fails with it, rather than wait out the whole timeout.
    let podFailureGrace: Duration
    /// The longest wait between two looks at a rollout when no watch event comes.
    let recheck: Duration
    let namespaces: NamespacePolicy
    let logger: Logger

    public init(client: HTTPClient, configuration: KubernetesAPIConfiguration, applyTimeout: Duration = .seconds(120), podFailureGrace: Duration = .seconds(30),
                recheck: Duration = .seconds(5), namespaces: NamespacePolicy = .requireManaged, logger: Logger = Logger(label: "gedge.agent.kubernetes")) {
        self.namespaces = namespaces
        self.api = KubernetesClient(http: client, configuration: configuration)
        self.applyTimeout = applyTimeout
        self.podFailureGrace = podFailureGrace
        self.recheck = recheck
        self.logger = logger
    }

    static func ref(_ kind: String, _ namespace: String?, _ name: String?) -> ObjectReference {
        let v = ["Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"].contains(kind) ? "apps/v1" : kind == "Job" ? "batch/v1" : "v1"
        return ObjectReference(apiVersion: v, kind: kind, namespace: namespace, name: name)
    }

    // MARK: state

    public func state() async throws -> [NodeState] {
        let items = try await api.list(apiVersion: "v1", kind: "Node").items
        let pods = try await api.list(apiVersion: "v1", kind: "Pod", fieldSelector: "status.phase!=Succeeded,status.phase!=Failed").items
        var used: [String: Resources] = [:]
        for pod in pods {
            guard let node = pod["spec"]?["nodeName"]?.stringValue,
                  let req = try? WorkloadRequirements.extract(workload: pod, parameters: .null) else { continue }
            used[node] = (used[node] ?? .zero) + req.perReplica
        }
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

    static func manifests(_ workload: JSONValue) -> [JSONValue] {
        switch workload {
        case .array(let items): items
        case .object(let f) where f["kind"] == .string("List"): f["items"].flatMap { if case .array(let a) = $0 { a } else { nil } } ?? []
        default: [workload]
        }
    }

    /// The object as applied: namespace set, request label on it and on its pod template,
    /// replicas from the placement, and the node pinned through `kubernetes.io/hostname`.
    public static func prepare(_ m: JSONValue, _ cmd: ApplyCommand, namespaced: Bool) -> JSONValue {
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
        if case .object(var md) = meta, namespaced {
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
        let ref = Self.ref(command.kind, command.namespace, command.name)
        guard let current = try await api.get(ref, subresource: "scale") else {
            throw KubernetesAPIError(status: 404, reason: "NotFound", message: "no \(command.kind) \(command.namespace)/\(command.name)")
        }
        let before = Int(current["spec"]?["replicas"]?.numberValue ?? 0)
        if command.replicas < before, !command.busyPodIPs.isEmpty, let selector = current["status"]?["selector"]?.stringValue {
            let busy = Set(command.busyPodIPs)
            for pod in try await api.list(apiVersion: "v1", kind: "Pod", namespace: command.namespace, labelSelector: selector).items {
                guard let name = pod["metadata"]?["name"]?.stringValue else { continue }
                let cost = pod["status"]?["podIP"]?.stringValue.map { busy.contains($0) } == true ? "1000" : "-1000"
                try await api.mergePatch(Self.ref("Pod", command.namespace, name),
                                         .object(["metadata": .object(["annotations": .object([Self.deletionCost: .string(cost)])])]), fieldManager: Self.fieldManager)
            }
        }
        if let share = command.trafficShare {
            try await api.mergePatch(ref, .object(["metadata": .object(["annotations": .object([Self.trafficShare: .string(String(format: "%.4f", share))])])]),
                                     fieldManager: Self.fieldManager)
        }
        guard try await api.mergePatch(ref, .object(["spec": .object(["replicas": .number(Double(command.replicas))])]), subresource: "scale",
                                       fieldManager: Self.fieldManager) != nil else {
            throw KubernetesAPIError(status: 404, reason: "NotFound", message: "no \(command.kind) \(command.namespace)/\(command.name)")
        }
        return before
    }

    static let trafficShare = "gedge.io/traffic-share"

    /// The pod's log (`/log?tailLines=`), nil for a pod that is not there.
    public func logs(namespace: String, pod: String, tail: Int) async throws -> [String]? {
        let path = try await api.path(Self.ref("Pod", namespace, pod), subresource: "log")
        let response = try await api.raw("GET", path, query: [("tailLines", "\(max(1, tail))")], accept: "text/plain")
        if response.status == 404 { return nil }
        guard response.isSuccess else { throw KubernetesAPIError(response: response, context: "GET \(path)") }
        return response.bodyString.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
    }

    /// Sets every container's requests and limits (a strategic merge patch by container
    /// name); the Deployment rolls its pods to the new values.
    public func resize(_ command: ResizeCommand) async throws -> Int {
        let ref = Self.ref(command.kind, command.namespace, command.name)
        guard let object = try await api.get(ref) else {
            throw KubernetesAPIError(status: 404, reason: "NotFound", message: "no \(command.kind) \(command.namespace)/\(command.name)")
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
        try await api.strategicPatch(ref, .object(["spec": .object(["template": .object(["spec": .object(["containers": .array(containers)])])])]),
                                     fieldManager: Self.fieldManager)
        return Int(object["spec"]?["replicas"]?.numberValue ?? 0)
    }

    /// The Deployments the suite placed (by the request-ID label), their pods' readiness and
    /// requests, and their usage from the metrics API (`metrics.k8s.io`). Without a metrics
    /// server (the group not served, or its APIService unavailable: 404 or 503) the pods are
    /// reported without usage; any other error of the metrics API is the caller's.
    public func usage() async throws -> [WorkloadUsage] {
        let selector = Self.requestLabel
        let deployments = try await api.list(apiVersion: "apps/v1", kind: "Deployment", labelSelector: selector).items
        let pods = try await api.list(apiVersion: "v1", kind: "Pod", labelSelector: selector).items
        var samples: [String: (cpu: Double, memory: Double)] = [:]
        var metrics: [JSONValue] = []
        do {
            metrics = try await api.list(apiVersion: "metrics.k8s.io/v1beta1", kind: "PodMetrics", labelSelector: selector).items
        } catch let e as KubernetesAPIError where e.status == 404 || e.status == 503 {
            logger.debug("no pod metrics", metadata: [LogKeys.error: "\(e)"])
        }
        for m in metrics {
            guard let ns = m["metadata"]?["namespace"]?.stringValue, let name = m["metadata"]?["name"]?.stringValue else { continue }
            var cpu = 0.0, mem = 0.0
            for c in m["containers"]?.arrayValue ?? [] {
                cpu += c["usage"]?["cpu"]?.stringValue.flatMap(Quantity.milli).map(Double.init) ?? 0
                mem += c["usage"]?["memory"]?.stringValue.flatMap(Quantity.value).map(Double.init) ?? 0
            }
            samples["\(ns)/\(name)"] = (cpu, mem)
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

    public func namespace(_ name: String, delete: Bool) async throws {
        guard namespaces == .create else {
            throw KubernetesAPIError(status: 403, reason: "Forbidden", message: "namespaces are the operator's to \(delete ? "delete" : "create") (agent.namespaces=require-managed)")
        }
        if delete {
            try await api.delete(Self.ref("Namespace", nil, name))
        } else {
            try await api.apply(.object([
                "apiVersion": .string("v1"), "kind": .string("Namespace"),
                "metadata": .object(["name": .string(name), "labels": .object([Self.managedLabel: "true"])]),
            ]), fieldManager: Self.fieldManager, force: true)
        }
    }

    public func apply(_ cmd: ApplyCommand) async throws -> ApplyResult {
        if let d = cmd.deadline, d < Date() { return ApplyResult(ok: false, reason: "the deadline passed before the apply started") }
        switch namespaces {
        case .create: try await namespace(cmd.namespace, delete: false)
        case .requireManaged:
            guard let ns = try await api.get(Self.ref("Namespace", nil, cmd.namespace)) else {
                return ApplyResult(ok: false, reason: "namespace \(cmd.namespace) does not exist; an operator creates it labelled \(Self.managedLabel)=true")
            }
            guard ns["metadata"]?["labels"]?[Self.managedLabel] == .string("true") else {
                return ApplyResult(ok: false, reason: "namespace \(cmd.namespace) is not labelled \(Self.managedLabel)=true; the agent applies only in managed namespaces")
            }
        }
        var owners: [ObjectReference] = []
        for m in Self.manifests(cmd.workload) {
            guard let v = m["apiVersion"]?.stringValue, let kind = m["kind"]?.stringValue else {
                return ApplyResult(ok: false, reason: "a manifest without apiVersion or kind")
            }
            let namespaced = try await api.isNamespaced(apiVersion: v, kind: kind)
            let object = Self.prepare(m, cmd, namespaced: namespaced)
            // A controller that owns what it applies takes its fields over from others.
            try await api.apply(object, fieldManager: Self.fieldManager, force: true)
            if Rollout.kinds.contains(kind), let ref = try? ObjectReference(of: object) { owners.append(ref) }
        }
        guard !owners.isEmpty else { return ApplyResult(ok: true, reason: "applied (no pods to wait for)") }
        // Wait for the rollout, within the lease deadline and the agent's own limit.
        var until = ContinuousClock.now + applyTimeout
        if let d = cmd.deadline { until = min(until, ContinuousClock.now + .milliseconds(Int64(max(0, d.timeIntervalSinceNow) * 1000))) }
        let outcome = try await waitForRollout(owners, cmd, until: until)
        if outcome.ok { return ApplyResult(ok: true, reason: outcome.reason, pods: try await podNodes(cmd)) }
        _ = try? await remove(requestID: cmd.requestID, attempt: cmd.attempt)
        return ApplyResult(ok: false, reason: outcome.reason + "; removed")
    }

    /// Watches the owners and their pods until every owner is rolled out, one fails, a
    /// lasting pod problem has stood for `podFailureGrace`, or time runs out.
    func waitForRollout(_ owners: [ObjectReference], _ cmd: ApplyCommand, until: ContinuousClock.Instant) async throws -> (ok: Bool, reason: String) {
        let changed = Wakeup()
        let watched = owners.map {
            Reflector(client: api, apiVersion: $0.apiVersion, kind: $0.kind, namespace: $0.namespace, fieldSelector: "metadata.name=\($0.name ?? "")",
                      onChange: changed, logger: logger)
        }
        let pods = Reflector(client: api, apiVersion: "v1", kind: "Pod", namespace: cmd.namespace,
                             labelSelector: "\(Self.requestLabel)=\(cmd.requestID),\(Self.attemptLabel)=\(cmd.attempt)", onChange: changed, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for r in watched + [pods] { group.addTask { await r.run() } }
            defer { group.cancelAll() }
            var last = "waiting for the rollout"
            var problemSince: [String: ContinuousClock.Instant] = [:]
            while ContinuousClock.now < until {
                try Task.checkCancellation()
                if let denied = (watched + [pods]).compactMap(\.lastError).first(where: { !$0.isRetriable && !$0.isGone }) {
                    return (false, "cannot watch the rollout: \(denied)")
                }
                if watched.allSatisfy(\.synced) && pods.synced {
                    var states: [RolloutState] = []
                    for (ref, r) in zip(owners, watched) {
                        guard let object = r.objects.first else {
                            states.append(.progressing("\(ref) not there yet"))
                            continue
                        }
                        states.append(Rollout.judge(object))
                    }
                    if let failed = states.first(where: { if case .failed = $0 { true } else { false } }) {
                        let problems = Rollout.podProblems(pods.objects)
                        return (false, ([failed.message] + problems).joined(separator: "; "))
                    }
                    let waiting = states.filter { if case .complete = $0 { false } else { true } }
                    if waiting.isEmpty { return (true, states.map(\.message).joined(separator: "; ")) }
                    let problems = Rollout.podProblems(pods.objects)
                    last = (waiting.map(\.message) + problems).joined(separator: "; ")
                    // A lasting problem that has stood long enough fails the apply now.
                    let now = ContinuousClock.now
                    var current: Set<String> = []
                    for p in problems {
                        guard let reason = Rollout.lasting.first(where: { p.contains(": \($0):") }) else { continue }
                        current.insert(reason)
                        let since = problemSince[reason] ?? now
                        problemSince[reason] = since
                        if now - since >= podFailureGrace { return (false, "pods do not run: \(p)") }
                    }
                    problemSince = problemSince.filter { current.contains($0.key) }
                }
                await changed.wait(timeout: min(recheck, max(.milliseconds(10), until - ContinuousClock.now)))
            }
            return (false, "not rolled out in time (\(last))")
        }
    }

    func podNodes(_ cmd: ApplyCommand) async throws -> [String: String] {
        let pods = try await api.list(apiVersion: "v1", kind: "Pod", namespace: cmd.namespace, labelSelector: "\(Self.requestLabel)=\(cmd.requestID)").items
        var out: [String: String] = [:]
        for p in pods where p["metadata"]?["deletionTimestamp"] == nil {
            if let n = p["metadata"]?["name"]?.stringValue { out[n] = p["spec"]?["nodeName"]?.stringValue ?? "" }
        }
        return out
    }

    /// Objects the agent applies that carry pods or expose them, found by the request label.
    static let removable: [(String, String)] = [
        ("apps/v1", "Deployment"), ("apps/v1", "StatefulSet"), ("batch/v1", "Job"), ("v1", "Pod"), ("v1", "Service"),
        ("networking.k8s.io/v1", "NetworkPolicy"), ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition"),
    ]

    public func remove(requestID: String, attempt: Int?) async throws -> Int {
        var n = 0
        // Only the attempt's own objects: a newer attempt re-applied on this cluster relabels them.
        let selector = "\(Self.requestLabel)=\(requestID)" + (attempt.map { ",\(Self.attemptLabel)=\($0)" } ?? "")
        for (v, kind) in Self.removable {
            let found: [JSONValue]
            do {
                found = try await api.list(apiVersion: v, kind: kind, labelSelector: selector).items
            } catch let e as KubernetesAPIError where e.isNotFound {
                continue  // a kind this cluster does not serve (no Multus): nothing of it to remove
            }
            for o in found {
                guard let name = o["metadata"]?["name"]?.stringValue else { continue }
                // Pods a workload owns go with it.
                if kind == "Pod", o["metadata"]?["ownerReferences"]?.arrayValue?.isEmpty == false { continue }
                if try await api.delete(ObjectReference(apiVersion: v, kind: kind, namespace: o["metadata"]?["namespace"]?.stringValue, name: name)) { n += 1 }
            }
        }
        return n
    }

    public func nodeOf(pod: String, namespace: String?) async throws -> String? {
        if let namespace {
            return try await api.get(Self.ref("Pod", namespace, pod))?["spec"]?["nodeName"]?.stringValue
        }
        return try await api.list(apiVersion: "v1", kind: "Pod", fieldSelector: "metadata.name=\(pod)").items.first?["spec"]?["nodeName"]?.stringValue
    }
}
