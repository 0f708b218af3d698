import GEdgeCore

/// Where a workload's rollout stands, judged as `kubectl rollout status` judges it
/// (kubectl's polymorphichelpers/rollout_status.go), with Jobs and Pods besides.
public enum RolloutState: Sendable, Equatable {
    /// Every replica is of the current spec and available.
    case complete(String)
    /// Still on its way; the message says what it waits for.
    case progressing(String)
    /// It will not get there by itself (ProgressDeadlineExceeded, a failed Job).
    case failed(String)

    public var message: String {
        switch self {
        case .complete(let m), .progressing(let m), .failed(let m): m
        }
    }
}

public enum Rollout {
    static func int(_ v: JSONValue?) -> Int { v?.numberValue.map { Int($0) } ?? 0 }

    /// The kinds whose readiness is judged here.
    public static let kinds: Set<String> = ["Deployment", "StatefulSet", "DaemonSet", "Job", "Pod", "ReplicaSet"]

    public static func judge(_ object: JSONValue) -> RolloutState {
        let kind = object["kind"]?.stringValue ?? ""
        let name = object["metadata"]?["name"]?.stringValue ?? ""
        let generation = int(object["metadata"]?["generation"])
        let spec = object["spec"], status = object["status"]
        let observed = int(status?["observedGeneration"])
        func condition(_ type: String) -> JSONValue? {
            status?["conditions"]?.arrayValue?.first { $0["type"]?.stringValue == type }
        }
        switch kind {
        case "Deployment":
            guard generation <= observed else { return .progressing("waiting for deployment \"\(name)\" spec update to be observed") }
            if let c = condition("Progressing"), c["reason"]?.stringValue == "ProgressDeadlineExceeded" {
                return .failed("deployment \"\(name)\" exceeded its progress deadline: \(c["message"]?.stringValue ?? "")")
            }
            // spec.replicas defaults to 1 on the server.
            let want = spec?["replicas"].map { int($0) } ?? 1
            let updated = int(status?["updatedReplicas"]), replicas = int(status?["replicas"]), available = int(status?["availableReplicas"])
            if updated < want { return .progressing("\(updated) out of \(want) new replicas have been updated") }
            if replicas > updated { return .progressing("\(replicas - updated) old replicas are pending termination") }
            if available < updated { return .progressing("\(available) of \(updated) updated replicas are available") }
            return .complete("deployment \"\(name)\" successfully rolled out (\(available)/\(want) available)")
        case "StatefulSet":
            let strategy = spec?["updateStrategy"]?["type"]?.stringValue ?? "RollingUpdate"
            guard strategy == "RollingUpdate" else { return .complete("statefulset \"\(name)\" uses \(strategy): rollout status is only available for RollingUpdate") }
            guard observed > 0, generation <= observed else { return .progressing("waiting for statefulset \"\(name)\" spec update to be observed") }
            let want = spec?["replicas"].map { int($0) } ?? 1
            let ready = int(status?["readyReplicas"])
            if ready < want { return .progressing("waiting for \(want - ready) pods to be ready") }
            if let partition = spec?["updateStrategy"]?["rollingUpdate"]?["partition"] {
                let updated = int(status?["updatedReplicas"]), p = int(partition)
                if updated < want - p { return .progressing("waiting for partitioned roll out to finish: \(updated) out of \(want - p) new pods have been updated") }
                return .complete("partitioned roll out complete: \(updated) new pods have been updated")
            }
            let update = status?["updateRevision"]?.stringValue ?? "", current = status?["currentRevision"]?.stringValue ?? ""
            if update != current { return .progressing("waiting for statefulset rolling update to complete \(int(status?["updatedReplicas"])) pods at revision \(update)") }
            return .complete("statefulset rolling update complete \(ready) pods at revision \(current)")
        case "DaemonSet":
            let strategy = spec?["updateStrategy"]?["type"]?.stringValue ?? "RollingUpdate"
            guard strategy == "RollingUpdate" else { return .complete("daemon set \"\(name)\" uses \(strategy): rollout status is only available for RollingUpdate") }
            guard generation <= observed else { return .progressing("waiting for daemon set \"\(name)\" spec update to be observed") }
            let desired = int(status?["desiredNumberScheduled"]), updated = int(status?["updatedNumberScheduled"]), available = int(status?["numberAvailable"])
            if updated < desired { return .progressing("\(updated) out of \(desired) new pods have been updated") }
            if available < desired { return .progressing("\(available) of \(desired) updated pods are available") }
            return .complete("daemon set \"\(name)\" successfully rolled out")
        case "Job":
            if let c = condition("Failed"), c["status"]?.stringValue == "True" {
                return .failed("job \"\(name)\" failed: \(c["reason"]?.stringValue ?? "") \(c["message"]?.stringValue ?? "")")
            }
            if let c = condition("Complete"), c["status"]?.stringValue == "True" { return .complete("job \"\(name)\" completed") }
            let want = spec?["completions"].map { int($0) } ?? 1
            return .progressing("\(int(status?["succeeded"])) of \(want) completions, \(int(status?["active"])) active")
        case "ReplicaSet":
            guard generation <= observed else { return .progressing("waiting for replica set \"\(name)\" spec update to be observed") }
            let want = spec?["replicas"].map { int($0) } ?? 1
            let available = int(status?["availableReplicas"])
            return available >= want ? .complete("\(available)/\(want) replicas available") : .progressing("\(available) of \(want) replicas available")
        case "Pod":
            let phase = status?["phase"]?.stringValue ?? "Pending"
            if phase == "Failed" { return .failed("pod \"\(name)\" failed: \(status?["reason"]?.stringValue ?? "") \(status?["message"]?.stringValue ?? "")") }
            if phase == "Succeeded" { return .complete("pod \"\(name)\" succeeded") }
            if let c = condition("Ready"), c["status"]?.stringValue == "True" { return .complete("pod \"\(name)\" ready") }
            return .progressing("pod \"\(name)\" \(phase)")
        default:
            return .complete("\(kind.lowercased()) \"\(name)\" has no rollout")
        }
    }

    /// Why pods do not run, in the words users look for: a container waiting with
    /// ImagePullBackOff, ErrImagePull, CrashLoopBackOff (with its last exit),
    /// CreateContainerConfigError..., or the pod unschedulable with the scheduler's
    /// message. One line per distinct problem, naming one pod.
    public static func podProblems(_ pods: [JSONValue]) -> [String] {
        var seen: Set<String> = []
        var out: [String] = []
        for pod in pods {
            guard pod["metadata"]?["deletionTimestamp"] == nil else { continue }
            let name = pod["metadata"]?["name"]?.stringValue ?? "?"
            var problems: [(String, String)] = []
            for c in pod["status"]?["conditions"]?.arrayValue ?? [] where c["type"]?.stringValue == "PodScheduled" && c["status"]?.stringValue == "False" {
                problems.append((c["reason"]?.stringValue ?? "Unschedulable", c["message"]?.stringValue ?? ""))
            }
            let statuses = (pod["status"]?["initContainerStatuses"]?.arrayValue ?? []) + (pod["status"]?["containerStatuses"]?.arrayValue ?? [])
            for cs in statuses {
                guard let waiting = cs["state"]?["waiting"], let reason = waiting["reason"]?.stringValue,
                      reason != "ContainerCreating", reason != "PodInitializing" else { continue }
                var message = waiting["message"]?.stringValue ?? ""
                if reason == "CrashLoopBackOff", let term = cs["lastState"]?["terminated"] {
                    message = "last exit \(int(term["exitCode"]))\(term["reason"]?.stringValue.map { " (\($0))" } ?? ""); " + message
                }
                problems.append((reason, "container \(cs["name"]?.stringValue ?? "?"): \(message)"))
            }
            for (reason, message) in problems where seen.insert(reason).inserted {
                out.append("pod \(name): \(reason): \(message)".trimmingCharacters(in: .whitespaces))
            }
        }
        return out
    }

    /// The problems that do not go away by waiting a little (an image that cannot be
    /// pulled, a container that keeps crashing, a bad configuration, no node that fits).
    public static let lasting: Set<String> = [
        "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull", "CrashLoopBackOff",
        "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "Unschedulable",
    ]
}
