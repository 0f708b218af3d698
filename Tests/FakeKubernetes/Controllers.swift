import Foundation
import GEdgePlacement
import GEdgeCore

/// The controllers of the fake: Deployments and StatefulSets roll their pods one at a time
/// (a new pod first, an old one removed when the new one is available), pods start after
/// `podStartDelay` unless their image or the scheduler says otherwise, and a rollout that
/// makes no progress for `spec.progressDeadlineSeconds` is marked ProgressDeadlineExceeded.
extension FakeCluster {
    /// One round of every controller (the server runs it every 30 ms).
    func reconcile() {
        lock.withLock {
            for (key, _) in objects(("pods"), namespace: nil) { startPod(key) }
            for (key, _) in objects("deployments", namespace: nil) { rollDeployment(key) }
            for (key, _) in objects("statefulsets", namespace: nil) { rollDeployment(key) }
        }
    }

    static func int(_ v: JSONValue?) -> Int { v?.numberValue.map { Int($0) } ?? 0 }

    func ownedPods(_ key: Key) -> [(Key, JSONValue)] {
        objects("pods", namespace: key.namespace).filter { _, p in
            p["metadata"]?["ownerReferences"]?.arrayValue?.contains { $0["name"]?.stringValue == key.name && $0["kind"]?.stringValue == kind(of: key) } == true
                && p["metadata"]?["deletionTimestamp"] == nil
        }
    }

    func kind(of key: Key) -> String { key.resource == "deployments" ? "Deployment" : "StatefulSet" }

    func rollDeployment(_ key: Key) {
        guard var d = objects[key] else { return }
        let generation = Self.int(d["metadata"]?["generation"])
        let want = d["spec"]?["replicas"].map { Self.int($0) } ?? 1
        guard let template = d["spec"]?["template"] else { return }
        let hash = template.stableHash
        let pods = ownedPods(key)
        let current = pods.filter { $0.1["metadata"]?["labels"]?["pod-template-hash"]?.stringValue == hash }
        let old = pods.filter { $0.1["metadata"]?["labels"]?["pod-template-hash"]?.stringValue != hash }
        func available(_ p: JSONValue) -> Bool {
            p["status"]?["conditions"]?.arrayValue?.contains { $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True" } == true
        }
        let currentAvailable = current.filter { available($0.1) }
        var changed = false
        if current.count < want {
            createPod(for: key, template: template, hash: hash, index: pods.count)
            changed = true
        } else if current.count > want {
            // Scale-in: the lowest deletion cost goes first, as the ReplicaSet controller does.
            let cost = { (p: JSONValue) in Int(p["metadata"]?["annotations"]?["controller.kubernetes.io/pod-deletion-cost"]?.stringValue ?? "0") ?? 0 }
            for (k, _) in current.sorted(by: { cost($0.1) < cost($1.1) }).prefix(current.count - want) { remove(k) }
            changed = true
        }
        // An old pod goes once a new one is available in its place (maxUnavailable 0).
        if !old.isEmpty, currentAvailable.count > 0, currentAvailable.count + old.count > want {
            remove(old[0].0)
            changed = true
        } else if !old.isEmpty, want == 0 {
            old.forEach { remove($0.0) }
            changed = true
        }
        let after = ownedPods(key)
        let updated = after.filter { $0.1["metadata"]?["labels"]?["pod-template-hash"]?.stringValue == hash }
        let ready = after.filter { available($0.1) }.count
        let updatedAvailable = updated.filter { available($0.1) }.count
        let complete = updated.count == want && after.count == want && updatedAvailable == want
        let progressKey = Key(resource: key.resource + "#" + hash, namespace: key.namespace, name: key.name)
        if changed || progressSince[progressKey] == nil { progressSince[progressKey] = Date() }
        let deadline = Double(Self.int(d["spec"]?["progressDeadlineSeconds"] ?? .number(600)))
        var condition: JSONValue
        if complete {
            condition = .object(["type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                                 "message": .string("ReplicaSet \"\(key.name)-\(hash)\" has successfully progressed.")])
        } else if Date().timeIntervalSince(progressSince[progressKey]!) > deadline {
            condition = .object(["type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                 "message": .string("ReplicaSet \"\(key.name)-\(hash)\" has timed out progressing.")])
        } else {
            condition = .object(["type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                                 "message": .string("ReplicaSet \"\(key.name)-\(hash)\" is progressing.")])
        }
        // Available, as the deployment controller sets it: at least replicas - maxUnavailable
        // (25% of replicas, rounded down) available.
        let minimum = want - want / 4
        let availableCondition: JSONValue = ready >= minimum
            ? .object(["type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."])
            : .object(["type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."])
        var status: [String: JSONValue] = [
            "observedGeneration": .number(Double(generation)), "replicas": .number(Double(after.count)),
            "updatedReplicas": .number(Double(updated.count)), "readyReplicas": .number(Double(ready)),
            "availableReplicas": .number(Double(ready)), "conditions": .array([availableCondition, condition]),
        ]
        if key.resource == "statefulsets" {
            status["availableReplicas"] = nil
            status["currentRevision"] = .string(updated.count == after.count ? "\(key.name)-\(hash)" : "\(key.name)-old")
            status["updateRevision"] = .string("\(key.name)-\(hash)")
            status["conditions"] = nil
        }
        if key.resource == "deployments" {
            status["selector"] = nil
        }
        let newStatus = JSONValue.object(status)
        if d["status"] != newStatus {
            d = d.setting(["status"], newStatus)
            put(key, d, type: "MODIFIED")
        }
    }

    func createPod(for owner: Key, template: JSONValue, hash: String, index: Int) {
        podSerial += 1
        let name = owner.resource == "statefulsets" ? "\(owner.name)-\(index)" : "\(owner.name)-\(hash.prefix(5))-\(String(podSerial, radix: 36))"
        var labels = template["metadata"]?["labels"]?.objectValue ?? [:]
        labels["pod-template-hash"] = .string(hash)
        let pod = JSONValue.object([
            "apiVersion": "v1", "kind": "Pod",
            "metadata": .object([
                "name": .string(name), "labels": .object(labels),
                "ownerReferences": .array([.object(["kind": .string(kind(of: owner)), "name": .string(owner.name), "controller": true])]),
            ]),
            "spec": template["spec"] ?? .object([:]),
            "status": .object(["phase": "Pending"]),
        ])
        let key = Key(resource: "pods", namespace: owner.namespace, name: name)
        podCreated[key] = Date()
        put(key, pod, type: "ADDED")
    }

    /// Schedules and starts a pending pod, as the scheduler and the kubelet would.
    func startPod(_ key: Key) {
        guard let pod = objects[key], pod["status"]?["containerStatuses"] == nil else { return }
        let created = podCreated[key] ?? .distantPast
        var p = pod
        if p["spec"]?["nodeName"] == nil {
            let node: String
            switch pickNode(for: pod) {
            case .success(let n): node = n
            case .failure(let why):
                let message = why.message
                let cond = JSONValue.array([.object(["type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": .string(message)])])
                if p["status"]?["conditions"] != cond {
                    put(key, p.setting(["status", "conditions"], cond), type: "MODIFIED")
                }
                return
            }
            p = p.setting(["spec", "nodeName"], .string(node))
            p = p.setting(["status", "conditions"], .array([.object(["type": "PodScheduled", "status": "True"])]))
            put(key, p, type: "MODIFIED")
            return
        }
        guard Date().timeIntervalSince(created) >= podStartDelay else { return }
        let containers = p["spec"]?["containers"]?.arrayValue ?? []
        var statuses: [JSONValue] = []
        var running = true
        for c in containers {
            let image = c["image"]?.stringValue ?? ""
            let name = JSONValue.string(c["name"]?.stringValue ?? "c")
            if image.contains("missing") {
                running = false
                statuses.append(.object(["name": name, "ready": false, "state": .object(["waiting": .object([
                    "reason": "ImagePullBackOff", "message": .string("Back-off pulling image \"\(image)\""),
                ])])]))
            } else if image.contains("crash") {
                running = false
                statuses.append(.object(["name": name, "ready": false, "restartCount": 3,
                                         "state": .object(["waiting": .object(["reason": "CrashLoopBackOff", "message": .string("back-off 40s restarting failed container")])]),
                                         "lastState": .object(["terminated": .object(["exitCode": 1, "reason": "Error"])])]))
            } else {
                statuses.append(.object(["name": name, "ready": true, "state": .object(["running": .object([:])])]))
            }
        }
        podSerial += 1
        p = p.setting(["status", "containerStatuses"], .array(statuses))
        p = p.setting(["status", "phase"], running ? "Running" : (p["status"]?["phase"] ?? "Pending"))
        if running { p = p.setting(["status", "podIP"], .string("10.1.\(podSerial / 250).\(podSerial % 250 + 1)")) }
        p = p.setting(["status", "conditions"], .array([
            .object(["type": "PodScheduled", "status": "True"]),
            .object(["type": "Ready", "status": running ? "True" : "False"]),
        ]))
        put(key, p, type: "MODIFIED")
    }

    /// What the scheduler would say of each node for the pod: nil when it fits (node
    /// selector, required node affinity, readiness, CPU and extended resources).
    func whyNot(_ pod: JSONValue, on node: JSONValue, used: [String: [String: Int64]]) -> String? {
        let name = node["metadata"]?["name"]?.stringValue ?? ""
        let labels = node["metadata"]?["labels"]?.objectValue ?? [:]
        guard node["status"]?["conditions"]?.arrayValue?.contains(where: { $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True" }) == true else {
            return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
        }
        let selector = pod["spec"]?["nodeSelector"]?.objectValue ?? [:]
        let terms = pod["spec"]?["affinity"]?["nodeAffinity"]?["requiredDuringSchedulingIgnoredDuringExecution"]?["nodeSelectorTerms"]?.arrayValue
        func matches(_ e: JSONValue) -> Bool {
            let key = e["key"]?.stringValue ?? "", values = (e["values"]?.arrayValue ?? []).compactMap(\.stringValue)
            let v = labels[key]?.stringValue
            switch e["operator"]?.stringValue {
            case "In": return v.map(values.contains) ?? false
            case "NotIn": return !(v.map(values.contains) ?? false)
            case "Exists": return v != nil
            case "DoesNotExist": return v == nil
            case "Gt": return (v.flatMap { Int($0) } ?? .min) > (values.first.flatMap { Int($0) } ?? .max)
            case "Lt": return (v.flatMap { Int($0) } ?? .max) < (values.first.flatMap { Int($0) } ?? .min)
            default: return false
            }
        }
        let affinityOK = terms.map { $0.contains { ($0["matchExpressions"]?.arrayValue ?? []).allSatisfy(matches) } } ?? true
        guard selector.allSatisfy({ labels[$0.key] == $0.value }), affinityOK else { return "node(s) didn't match Pod's node affinity/selector" }
        let alloc = node["status"]?["allocatable"]?.objectValue ?? [:]
        for (resource, want) in Self.requests(pod) where want > 0 {
            let have = alloc[resource]?.stringValue.flatMap { resource == "cpu" ? Quantity.milli($0) : Quantity.value($0) } ?? 0
            let inUse = used[name]?[resource] ?? 0
            if inUse + want > have { return "Insufficient \(resource)" }
        }
        return nil
    }

    /// A pod's requests by resource (CPU in millicores, the rest as counts or bytes).
    static func requests(_ pod: JSONValue) -> [String: Int64] {
        var out: [String: Int64] = [:]
        for c in pod["spec"]?["containers"]?.arrayValue ?? [] {
            let requests = c["resources"]?["requests"]?.objectValue ?? c["resources"]?["limits"]?.objectValue ?? [:]
            for (k, v) in requests {
                guard let s = v.stringValue ?? v.numberValue.map({ String(Int64($0)) }) else { continue }
                out[k, default: 0] += (k == "cpu" ? Quantity.milli(s) : Quantity.value(s)) ?? 0
            }
        }
        out["memory"] = nil  // the fake's nodes are not short of memory
        return out
    }

    /// A node for the pod, or kube-scheduler's summary of why none fits.
    func pickNode(for pod: JSONValue) -> Result<String, Unschedulable> {
        var used: [String: [String: Int64]] = [:]
        for (_, p) in objects("pods", namespace: nil) {
            guard let n = p["spec"]?["nodeName"]?.stringValue else { continue }
            for (k, v) in Self.requests(p) { used[n, default: [:]][k, default: 0] += v }
        }
        var reasons: [String: Int] = [:]
        let nodes = objects("nodes", namespace: nil)
        for (_, node) in nodes {
            guard let why = whyNot(pod, on: node, used: used) else { return .success(node["metadata"]?["name"]?.stringValue ?? "") }
            reasons[why, default: 0] += 1
        }
        let parts = reasons.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        return .failure(Unschedulable(message: "0/\(nodes.count) nodes are available: \(parts)."))
    }

    struct Unschedulable: Error { let message: String }
}
