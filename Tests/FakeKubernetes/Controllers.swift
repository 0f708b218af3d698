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
        var status: [String: JSONValue] = [
            "observedGeneration": .number(Double(generation)), "replicas": .number(Double(after.count)),
            "updatedReplicas": .number(Double(updated.count)), "readyReplicas": .number(Double(ready)),
            "availableReplicas": .number(Double(ready)), "conditions": .array([condition]),
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
            guard let node = pickNode(for: pod) else {
                let message = "0/\(objects("nodes", namespace: nil).count) nodes are available: insufficient cpu or no node matches the pod's node selector."
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

    func pickNode(for pod: JSONValue) -> String? {
        let selector = pod["spec"]?["nodeSelector"]?.objectValue ?? [:]
        let want = (try? WorkloadRequirements.extract(workload: pod, parameters: .null))?.perReplica.cpuMilli ?? 0
        var used: [String: Int64] = [:]
        for (_, p) in objects("pods", namespace: nil) {
            guard let n = p["spec"]?["nodeName"]?.stringValue else { continue }
            used[n, default: 0] += (try? WorkloadRequirements.extract(workload: p, parameters: .null))?.perReplica.cpuMilli ?? 0
        }
        for (_, node) in objects("nodes", namespace: nil) {
            let name = node["metadata"]?["name"]?.stringValue ?? ""
            let labels = node["metadata"]?["labels"]?.objectValue ?? [:]
            guard selector.allSatisfy({ labels[$0.key] == $0.value }) else { continue }
            guard node["status"]?["conditions"]?.arrayValue?.contains(where: { $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True" }) == true else { continue }
            let cpu = node["status"]?["allocatable"]?["cpu"]?.stringValue.flatMap(Quantity.milli) ?? 0
            if used[name, default: 0] + want <= cpu { return name }
        }
        return nil
    }
}
