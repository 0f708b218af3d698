import GEdgeCore
import GEdgeHTTPClient
@testable import GEdgeKubernetes
import Testing

func object(_ text: String) -> JSONValue { try! JSONValue.parse(Array(text.utf8)) }

/// Readiness as `kubectl rollout status` judges it (kubectl's rollout_status.go), kind by kind.
@Suite struct RolloutTests {
    @Test func deploymentWaitsForItsSpecToBeObservedAndEveryReplicaToBeNewAndAvailable() {
        func d(_ generation: Int, _ observed: Int, replicas: Int = 3, updated: Int, total: Int, available: Int, condition: String = "") -> JSONValue {
            object(#"{"kind": "Deployment", "metadata": {"name": "web", "generation": \#(generation)}, "spec": {"replicas": \#(replicas)},"#
                + #""status": {"observedGeneration": \#(observed), "updatedReplicas": \#(updated), "replicas": \#(total), "availableReplicas": \#(available),"#
                + #""readyReplicas": \#(available), "conditions": [\#(condition)]}}"#)
        }
        // The old pods are all ready, but the new spec has not been seen yet.
        #expect(Rollout.judge(d(2, 1, updated: 3, total: 3, available: 3)) == .progressing("waiting for deployment \"web\" spec update to be observed"))
        #expect(Rollout.judge(d(2, 2, updated: 1, total: 4, available: 3)) == .progressing("1 out of 3 new replicas have been updated"))
        #expect(Rollout.judge(d(2, 2, updated: 3, total: 4, available: 3)) == .progressing("1 old replicas are pending termination"))
        #expect(Rollout.judge(d(2, 2, updated: 3, total: 3, available: 2)) == .progressing("2 of 3 updated replicas are available"))
        #expect(Rollout.judge(d(2, 2, updated: 3, total: 3, available: 3)) == .complete("deployment \"web\" successfully rolled out (3/3 available)"))
        let stalled = d(2, 2, updated: 1, total: 4, available: 3,
                        condition: #"{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-5d\" has timed out progressing."}"#)
        #expect(Rollout.judge(stalled) == .failed("deployment \"web\" exceeded its progress deadline: ReplicaSet \"web-5d\" has timed out progressing."))
        // readyReplicas alone is never enough: no updatedReplicas, not rolled out.
        #expect(Rollout.judge(object(#"{"kind": "Deployment", "metadata": {"name": "w", "generation": 1}, "spec": {"replicas": 2}, "status": {"observedGeneration": 1, "readyReplicas": 2}}"#))
                == .progressing("0 out of 2 new replicas have been updated"))
    }

    @Test func statefulSetsDaemonSetsJobsAndPodsByTheirOwnFields() {
        let sts = #"{"kind": "StatefulSet", "metadata": {"name": "db", "generation": 2}, "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate"}}, "status": {"observedGeneration": 2, "readyReplicas": %R, "updatedReplicas": 3, "currentRevision": "%C", "updateRevision": "db-2"}}"#
        func s(_ ready: Int, _ current: String) -> JSONValue { object(sts.replacingOccurrences(of: "%R", with: "\(ready)").replacingOccurrences(of: "%C", with: current)) }
        #expect(Rollout.judge(s(2, "db-2")) == .progressing("waiting for 1 pods to be ready"))
        #expect(Rollout.judge(s(3, "db-1")) == .progressing("waiting for statefulset rolling update to complete 3 pods at revision db-2"))
        #expect(Rollout.judge(s(3, "db-2")) == .complete("statefulset rolling update complete 3 pods at revision db-2"))
        #expect(Rollout.judge(object(#"{"kind": "StatefulSet", "metadata": {"name": "db", "generation": 1}, "spec": {"replicas": 1}, "status": {}}"#))
                == .progressing("waiting for statefulset \"db\" spec update to be observed"))
        let partitioned = object(#"{"kind": "StatefulSet", "metadata": {"name": "db", "generation": 1}, "spec": {"replicas": 4, "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}, "status": {"observedGeneration": 1, "readyReplicas": 4, "updatedReplicas": 1}}"#)
        #expect(Rollout.judge(partitioned) == .progressing("waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated"))

        let ds = object(#"{"kind": "DaemonSet", "metadata": {"name": "mon", "generation": 3}, "spec": {}, "status": {"observedGeneration": 3, "desiredNumberScheduled": 4, "updatedNumberScheduled": 4, "numberAvailable": 3}}"#)
        #expect(Rollout.judge(ds) == .progressing("3 of 4 updated pods are available"))
        let onDelete = object(#"{"kind": "DaemonSet", "metadata": {"name": "mon"}, "spec": {"updateStrategy": {"type": "OnDelete"}}}"#)
        if case .complete = Rollout.judge(onDelete) {} else { Issue.record("OnDelete has no rollout to wait for") }

        #expect(Rollout.judge(object(#"{"kind": "Job", "metadata": {"name": "j"}, "spec": {"completions": 2}, "status": {"succeeded": 1, "active": 1}}"#)) == .progressing("1 of 2 completions, 1 active"))
        #expect(Rollout.judge(object(#"{"kind": "Job", "metadata": {"name": "j"}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}"#)) == .complete("job \"j\" completed"))
        #expect(Rollout.judge(object(#"{"kind": "Job", "metadata": {"name": "j"}, "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}}"#))
                == .failed("job \"j\" failed: BackoffLimitExceeded Job has reached the specified backoff limit"))
        #expect(Rollout.judge(object(#"{"kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}}"#)) == .progressing("pod \"p\" Running"))
    }

    @Test func podProblemsInTheWordsUsersLookFor() {
        let pods = [
            object(#"{"metadata": {"name": "a"}, "status": {"containerStatuses": [{"name": "web", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nginx:nope\""}}}]}}"#),
            object(#"{"metadata": {"name": "b"}, "status": {"containerStatuses": [{"name": "web", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "again"}}}]}}"#),
            object(#"{"metadata": {"name": "c"}, "status": {"containerStatuses": [{"name": "w", "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m"}}, "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}}"#),
            object(#"{"metadata": {"name": "d"}, "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient cpu."}]}}"#),
            object(#"{"metadata": {"name": "e"}, "status": {"containerStatuses": [{"name": "w", "state": {"waiting": {"reason": "ContainerCreating"}}}]}}"#),
            object(#"{"metadata": {"name": "f", "deletionTimestamp": "now"}, "status": {"containerStatuses": [{"name": "w", "state": {"waiting": {"reason": "ErrImagePull"}}}]}}"#),
        ]
        #expect(Rollout.podProblems(pods) == [
            "pod a: ImagePullBackOff: container web: Back-off pulling image \"nginx:nope\"",
            "pod c: CrashLoopBackOff: container w: last exit 137 (OOMKilled); back-off 5m",
            "pod d: Unschedulable: 0/3 nodes are available: 3 Insufficient cpu.",
        ])
    }
}

@Suite struct KubernetesErrorTests {
    @Test func statusAnswersAreReadWithTheirReasonAndRetriability() {
        let conflict = KubernetesAPIError(response: HTTPResponse(status: 409, headers: [], body: Array(#"{"kind": "Status", "code": 409, "reason": "Conflict", "message": "Apply failed with 1 conflict"}"#.utf8)), context: "PATCH /x")
        #expect(conflict.reason == "Conflict" && !conflict.isRetriable && conflict.message == "PATCH /x: Apply failed with 1 conflict")
        let busy = KubernetesAPIError(response: HTTPResponse(status: 429, headers: [("Retry-After", "3")], body: Array(#"{"kind": "Status", "code": 429, "reason": "TooManyRequests", "message": "slow down", "details": {"retryAfterSeconds": 2}}"#.utf8)), context: "GET /y")
        #expect(busy.isRetriable && busy.retryAfterSeconds == 2)
        let proxy = KubernetesAPIError(response: HTTPResponse(status: 502, headers: [], body: Array("<html>bad gateway</html>".utf8)), context: "GET /z")
        #expect(proxy.isRetriable && proxy.reason == "Unknown" && proxy.message.contains("bad gateway"))
        let timeout = KubernetesAPIError(status: 504, message: "x")
        #expect(timeout.reason == "Timeout" && timeout.isRetriable)
        let gone = KubernetesAPIError(status: object(#"{"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version: 5 (9)"}"#), context: "watch")
        #expect(gone.isGone && !gone.isRetriable)
        for (code, retriable) in [(400, false), (401, false), (403, false), (404, false), (422, false), (500, true), (503, true)] {
            #expect(KubernetesAPIError(status: code, message: "").isRetriable == retriable, "\(code)")
        }
    }

    @Test func watchLinesAreSplitAcrossChunksAndBounded() throws {
        var lines = EventLines(maxLine: 64)
        #expect(try lines.feed(Array(#"{"type":"ADDED","object":{"a":1}}"#.utf8) + [10] + Array(#"{"type":"BOOK"#.utf8)).count == 1)
        let rest = try lines.feed(Array(#"MARK","object":{"metadata":{"resourceVersion":"7"}}}"#.utf8) + [10])
        #expect(rest.count == 1)
        let e = try EventLines.decode(rest[0])
        #expect(e.kind == .bookmark && e.resourceVersion == "7")
        #expect(throws: KubernetesAPIError.self) { try lines.feed(Array(repeating: UInt8(ascii: "x"), count: 100)) }
        #expect(throws: KubernetesAPIError.self) { try EventLines.decode(Array(#"{"type":"SURPRISE","object":{}}"#.utf8)) }
        #expect(throws: (any Error).self) { try EventLines.decode(Array("not json".utf8)) }
    }
}
