import FakeKubernetes
import Foundation
import GEdgeAccelerators
import GEdgeAgent
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKubernetes
import GEdgePlacement
import Testing

/// The suite's k8s/ directory: the fake API server grants what its ClusterRoles grant.
let manifestsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../k8s").standardized.path

/// One fake API server with a client for a token.
struct KubeFixture {
    let server: FakeKubernetesServer
    let http: HTTPClient
    let tokenFile: String

    init(token: String = FakeKubernetesServer.agentToken, bookmarkInterval: Duration = .seconds(1)) async throws {
        server = try await FakeKubernetesServer(manifests: manifestsDirectory, bookmarkInterval: bookmarkInterval, logger: TestEnv.logger)
        tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("token")).path
        try "\(token)\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        http = HTTPClient(logger: TestEnv.logger)
    }

    var configuration: KubernetesAPIConfiguration { KubernetesAPIConfiguration(url: server.url, tokenFile: tokenFile) }
    var client: KubernetesClient { KubernetesClient(http: http, configuration: configuration) }

    func driver(applyTimeout: Duration = .seconds(20), podFailureGrace: Duration = .seconds(1),
                namespaces: KubernetesCluster.NamespacePolicy = .requireManaged) -> KubernetesCluster {
        KubernetesCluster(client: http, configuration: configuration, applyTimeout: applyTimeout, podFailureGrace: podFailureGrace,
                          recheck: .milliseconds(500), namespaces: namespaces, logger: TestEnv.logger)
    }

    /// A client acting as the cluster's administrator (kubectl), for what an operator does.
    func admin() throws -> KubernetesClient {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("admin")).path
        try "\(FakeKubernetesServer.adminToken)\n".write(toFile: file, atomically: true, encoding: .utf8)
        return KubernetesClient(http: http, configuration: KubernetesAPIConfiguration(url: server.url, tokenFile: file))
    }

    func close() async {
        await http.shutdown()
        server.stop()
    }
}

func deployment(_ name: String, image: String = "example/web:1", cpu: String = "250m", replicas: Int = 2, progressDeadline: Int? = nil) -> JSONValue {
    var spec: [String: JSONValue] = [
        "replicas": .number(Double(replicas)), "selector": .object(["matchLabels": .object(["app": .string(name)])]),
        "template": .object([
            "metadata": .object(["labels": .object(["app": .string(name)])]),
            "spec": .object(["containers": .array([.object(["name": .string(name), "image": .string(image),
                                                            "resources": .object(["requests": .object(["cpu": .string(cpu), "memory": "128Mi"])])])])]),
        ]),
    ]
    if let progressDeadline { spec["progressDeadlineSeconds"] = .number(Double(progressDeadline)) }
    return .object(["apiVersion": "apps/v1", "kind": "Deployment", "metadata": .object(["name": .string(name)]), "spec": .object(spec)])
}

/// The agent's Kubernetes driver against a fake API server that is as strict as the real
/// one where the agent depends on it (Tests/FakeKubernetes), with the agent's own
/// service account: every call it makes must be granted by k8s/'s ClusterRoles.
@Suite("Kubernetes driver", .enabled(if: TestEnv.integration), .timeLimit(.minutes(2)))
struct KubernetesDriverTests {
    /// By default the agent creates no namespace: it applies only into one an operator made
    /// and labelled gedge.io/managed=true.
    @Test func appliesOnlyIntoManagedNamespaces() async throws {
        let k = try await KubeFixture()
        let driver = k.driver()
        let cmd = ApplyCommand(requestID: "m-1", attempt: 1, namespace: "team", workload: deployment("web", replicas: 1), node: nil, replicas: 1, deadline: Date().addingTimeInterval(30))
        let missing = try await driver.apply(cmd)
        #expect(!missing.ok && missing.reason.contains("does not exist"), "\(missing.reason)")
        await #expect(throws: KubernetesAPIError.self) { try await driver.namespace("team", delete: false) }
        // The agent's role may not create namespaces at all.
        let asAgent = await #expect(throws: KubernetesAPIError.self) {
            try await k.client.apply(.object(["apiVersion": "v1", "kind": "Namespace", "metadata": .object(["name": "team"])]), fieldManager: "gedge-agent", force: true)
        }
        #expect(asAgent?.status == 403 && asAgent?.reason == "Forbidden", "\(String(describing: asAgent))")
        // An operator's namespace without the label, then with it.
        let admin = try k.admin()
        try await admin.apply(.object(["apiVersion": "v1", "kind": "Namespace", "metadata": .object(["name": "team"])]), fieldManager: "kubectl", force: false)
        let notManaged = try await driver.apply(cmd)
        #expect(!notManaged.ok && notManaged.reason.contains("not labelled gedge.io/managed=true"), "\(notManaged.reason)")
        try await admin.apply(.object(["apiVersion": "v1", "kind": "Namespace", "metadata": .object(["name": "team", "labels": .object(["gedge.io/managed": "true"])])]),
                              fieldManager: "kubectl", force: false)
        let applied = try await driver.apply(cmd)
        #expect(applied.ok, "\(applied.reason)")
        #expect(k.server.denied.filter { !$0.contains("namespaces") } == [])
        await k.close()
    }

    @Test func readsNodesAppliesWaitsForTheRolloutAndRemoves() async throws {
        let k = try await KubeFixture()
        k.server.addNamespace("p1", labels: ["gedge.io/managed": "true"])
        let driver = k.driver()
        let nodes = try await driver.state()
        #expect(nodes.map(\.name) == ["n1", "n2", "n3", "n4"])
        #expect(nodes.map(\.ready) == [true, true, true, false])
        #expect(nodes[1].allocatable == Resources(cpuMilli: 8000, memory: 16 << 30, gpu: 1, extended: ["pods": 110]))
        #expect(nodes[1].labels["accelerator.gedge.io/nvidia-gpu.count"] == "1")
        #expect(nodes[3].taints == [Taint(key: "node.kubernetes.io/not-ready", effect: .noSchedule)])

        let service = JSONValue.object(["apiVersion": "v1", "kind": "Service", "metadata": .object(["name": "web"]),
                                        "spec": .object(["ports": .array([.object(["port": 80])])])])
        let cmd = ApplyCommand(requestID: "req-9", attempt: 1, namespace: "p1", workload: .array([deployment("web", cpu: "750m"), service]),
                               node: "n2", replicas: 2, deadline: Date().addingTimeInterval(30))
        let result = try await driver.apply(cmd)
        #expect(result.ok, "\(result.reason)")
        #expect(result.reason.contains("successfully rolled out (2/2 available)"), "\(result.reason)")
        #expect(result.pods.count == 2 && result.pods.values.allSatisfy { $0 == "n2" }, "\(result.pods)")

        let dep = try #require(k.server.object("deployments", namespace: "p1", name: "web"))
        #expect(dep["metadata"]?["labels"]?[KubernetesCluster.requestLabel] == "req-9")
        #expect(dep["spec"]?["replicas"] == 2)
        #expect(dep["spec"]?["template"]?["spec"]?["nodeSelector"]?["kubernetes.io/hostname"] == "n2")
        #expect(dep["metadata"]?["managedFields"]?.arrayValue?.contains { $0["manager"] == "gedge-agent" && $0["operation"] == "Apply" } == true)
        #expect(k.server.object("services", namespace: "p1", name: "web") != nil)
        // Pods count against their node.
        let after = try await driver.state()
        #expect(after[1].requested.cpuMilli == 1500)
        let pod = try #require(result.pods.keys.sorted().first)
        #expect(try await driver.nodeOf(pod: pod, namespace: "p1") == "n2")
        #expect(try await driver.nodeOf(pod: pod, namespace: nil) == "n2")
        #expect(try await driver.nodeOf(pod: "nope", namespace: "p1") == nil)
        #expect(try await driver.logs(namespace: "p1", pod: pod, tail: 2) == ["\(pod) log line 1", "\(pod) log line 2"])
        #expect(try await driver.logs(namespace: "p1", pod: "nope", tail: 2) == nil)

        #expect(try await driver.remove(requestID: "req-9", attempt: 2) == 0)
        #expect(try await driver.remove(requestID: "req-9", attempt: 1) == 2)
        #expect(k.server.objects("deployments") == [])
        #expect(k.server.objects("pods", namespace: "p1") == [])
        #expect(try await driver.remove(requestID: "req-9", attempt: nil) == 0)
        #expect(k.server.denied == [])
        await k.close()
    }

    /// A ready Deployment re-applied with a new image is not ready until its new pods are:
    /// the generation moves, the old pods stay until new ones are available.
    @Test func reappliedDeploymentIsNotReadyUntilTheNewPodsAre() async throws {
        let k = try await KubeFixture()
        k.server.addNamespace("p1", labels: ["gedge.io/managed": "true"])
        let driver = k.driver()
        let first = ApplyCommand(requestID: "roll", attempt: 1, namespace: "p1", workload: deployment("api", image: "example/api:1", replicas: 3), node: nil, replicas: 3,
                                 deadline: Date().addingTimeInterval(30))
        #expect(try await driver.apply(first).ok)
        let v1 = try #require(k.server.object("deployments", namespace: "p1", name: "api"))
        #expect(Rollout.judge(v1) == .complete("deployment \"api\" successfully rolled out (3/3 available)"))

        // The same change straight through the API: judged at once, it is not ready.
        var changed = KubernetesCluster.prepare(deployment("api", image: "example/api:2", replicas: 3), first, namespaced: true)
        changed = try await k.client.apply(changed, fieldManager: KubernetesCluster.fieldManager, force: true)
        let judged = Rollout.judge(changed)
        #expect(judged.message.contains("spec update to be observed") || judged.message.contains("new replicas have been updated"), "\(judged)")
        if case .complete = judged { Issue.record("a changed Deployment was judged rolled out from its old pods") }

        // Through the driver: ok only once every pod runs the new image.
        let second = ApplyCommand(requestID: "roll", attempt: 1, namespace: "p1", workload: deployment("api", image: "example/api:3", replicas: 3), node: nil, replicas: 3,
                                  deadline: Date().addingTimeInterval(30))
        let result = try await driver.apply(second)
        #expect(result.ok, "\(result.reason)")
        let pods = k.server.objects("pods", namespace: "p1")
        #expect(pods.count == 3)
        #expect(pods.allSatisfy { $0["spec"]?["containers"]?.arrayValue?.first?["image"] == "example/api:3" }, "\(pods.map { $0["spec"]?["containers"] })")
        let v3 = try #require(k.server.object("deployments", namespace: "p1", name: "api"))
        #expect(v3["metadata"]?["generation"] == 3)
        #expect(k.server.denied == [])
        await k.close()
    }

    /// Rollouts that cannot finish fail with the reason users need, and are removed.
    @Test func stalledRolloutsFailWithTheirReason() async throws {
        let k = try await KubeFixture()
        k.server.addNamespace("p1", labels: ["gedge.io/managed": "true"])
        // The progress deadline passes (the grace for pod problems is longer here).
        let slow = k.driver(podFailureGrace: .seconds(60))
        let stalled = try await slow.apply(ApplyCommand(requestID: "img", attempt: 1, namespace: "p1",
                                                       workload: deployment("img", image: "example/missing:1", replicas: 1, progressDeadline: 1),
                                                       node: nil, replicas: 1, deadline: Date().addingTimeInterval(30)))
        #expect(!stalled.ok)
        #expect(stalled.reason.contains("exceeded its progress deadline"), "\(stalled.reason)")
        #expect(stalled.reason.contains("ImagePullBackOff: container img: Back-off pulling image \"example/missing:1\""), "\(stalled.reason)")
        #expect(stalled.reason.hasSuffix("; removed"))
        #expect(k.server.object("deployments", namespace: "p1", name: "img") == nil)

        // A container that keeps crashing: failed once the problem has stood for the grace.
        let driver = k.driver()
        let crash = try await driver.apply(ApplyCommand(requestID: "crash", attempt: 1, namespace: "p1", workload: deployment("crash", image: "example/crash:1", replicas: 1),
                                                        node: nil, replicas: 1, deadline: Date().addingTimeInterval(30)))
        #expect(!crash.ok)
        #expect(crash.reason.contains("CrashLoopBackOff: container crash: last exit 1 (Error)"), "\(crash.reason)")

        // No node can hold the pod: the scheduler's message.
        let big = try await driver.apply(ApplyCommand(requestID: "big", attempt: 1, namespace: "p1", workload: deployment("big", cpu: "64", replicas: 1),
                                                      node: nil, replicas: 1, deadline: Date().addingTimeInterval(30)))
        #expect(!big.ok)
        #expect(big.reason.contains("Unschedulable: 0/4 nodes are available"), "\(big.reason)")

        // Out of time without a lasting problem: the last thing waited for.
        k.server.setPodStartDelay(30)
        // Long enough to have seen the rollout's status on a loaded machine; the pods take 30 s.
        let short = k.driver(applyTimeout: .seconds(4))
        let late = try await short.apply(ApplyCommand(requestID: "late", attempt: 1, namespace: "p1", workload: deployment("late", replicas: 1),
                                                      node: nil, replicas: 1, deadline: Date().addingTimeInterval(30)))
        #expect(!late.ok)
        #expect(late.reason.hasPrefix("not rolled out in time (") && late.reason.contains("available"), "\(late.reason)")
        let past = ApplyCommand(requestID: "past", attempt: 1, namespace: "p1", workload: deployment("web"), node: nil, replicas: 1, deadline: Date().addingTimeInterval(-1))
        #expect(try await driver.apply(past).reason == "the deadline passed before the apply started")
        #expect(k.server.denied == [])
        await k.close()
    }

    /// Server-side apply: a field someone else set is a conflict without force, and taken
    /// over with it; discovery gives the paths (endpoints, not "endpointses").
    @Test func serverSideApplyConflictsAndDiscovery() async throws {
        let k = try await KubeFixture()
        k.server.addNamespace("p1", labels: ["gedge.io/managed": "true"])
        let admin = try k.admin()
        var d = deployment("web", replicas: 2)
        d = d.settingNamespace("p1")
        try await admin.apply(d, fieldManager: "gedge-agent", force: false)
        k.server.externalPatch("deployments", namespace: "p1", name: "web", .object(["spec": .object(["replicas": 5])]), manager: "kubectl-scale")
        let conflict = await #expect(throws: KubernetesAPIError.self) { try await admin.apply(d, fieldManager: "gedge-agent", force: false) }
        #expect(conflict?.status == 409 && conflict?.reason == "Conflict" && conflict?.isRetriable == false, "\(String(describing: conflict))")
        #expect(conflict?.message.contains("conflict with \"kubectl-scale\": .spec.replicas") == true, "\(String(describing: conflict))")
        try await admin.apply(d, fieldManager: "gedge-agent", force: true)
        #expect(k.server.object("deployments", namespace: "p1", name: "web")?["spec"]?["replicas"] == 2)
        // Nothing conflicts when the values agree.
        try await admin.apply(d, fieldManager: "other", force: false)
        // An apply without a field manager, and force on a merge patch, are refused as the API does.
        let noManager = try await k.http.execute(HTTPRequest(method: "PATCH", url: k.server.url + "/apis/apps/v1/namespaces/p1/deployments/web",
                                                             headers: [("Content-Type", "application/apply-patch+yaml")], body: d.serialized(),
                                                             bearerToken: FakeKubernetesServer.adminToken))
        #expect(noManager.status == 400)
        let forcedMerge = try await k.http.execute(HTTPRequest(method: "PATCH", url: k.server.url + "/apis/apps/v1/namespaces/p1/deployments/web?force=true",
                                                               headers: [("Content-Type", "application/merge-patch+json")], body: Array("{}".utf8),
                                                               bearerToken: FakeKubernetesServer.adminToken))
        #expect(forcedMerge.status == 400)
        // A Deployment without a selector is invalid.
        let invalid = await #expect(throws: KubernetesAPIError.self) {
            try await admin.apply(.object(["apiVersion": "apps/v1", "kind": "Deployment", "metadata": .object(["name": "bad", "namespace": "p1"]),
                                           "spec": .object(["template": .object(["spec": .object(["containers": .array([.object(["name": "c", "image": "x"])])])])])]),
                                  fieldManager: "kubectl", force: false)
        }
        #expect(invalid?.status == 422 && invalid?.message.contains("spec.selector: Required value") == true)

        #expect(try await k.client.path(ObjectReference(apiVersion: "v1", kind: "Endpoints", namespace: "p1", name: "web")) == "/api/v1/namespaces/p1/endpoints/web")
        #expect(try await k.client.path(ObjectReference(apiVersion: "v1", kind: "Node", namespace: "p1", name: "n1")) == "/api/v1/nodes/n1")
        let unknown = await #expect(throws: KubernetesAPIError.self) { try await k.client.resource(apiVersion: "example.io/v1", kind: "Widget") }
        #expect(unknown?.message.contains("does not serve example.io/v1") == true, "\(String(describing: unknown))")
        let missingKind = await #expect(throws: KubernetesAPIError.self) { try await k.client.resource(apiVersion: "apps/v1", kind: "Widget") }
        #expect(missingKind?.message.contains("no resource of kind Widget in apps/v1") == true)
        await k.close()
    }

    /// Watches: events from a resourceVersion, bookmarks, and a 410 Gone answered by
    /// listing again (the watch ends after its timeout; the next one, from a version the
    /// server has compacted away, is refused).
    @Test func watchesFollowBookmarksAndRelistAfterGone() async throws {
        let k = try await KubeFixture(token: FakeKubernetesServer.adminToken, bookmarkInterval: .milliseconds(200))
        let admin = k.client
        let start = try await admin.list(apiVersion: "v1", kind: "Namespace")
        var kinds: [WatchEvent.Kind] = []
        var names: [String] = []
        k.server.addNamespace("w1")
        for try await e in admin.watch(apiVersion: "v1", kind: "Namespace", resourceVersion: start.resourceVersion, timeout: .seconds(1)) {
            kinds.append(e.kind)
            if let n = e.object["metadata"]?["name"]?.stringValue, e.kind != .bookmark { names.append(n) }
            if kinds.contains(.bookmark) && names.contains("w1") { break }
        }
        #expect(names == ["w1"])
        #expect(kinds.contains(.bookmark))
        // A version the server has compacted away: an ERROR event with 410.
        k.server.compactHistory()
        var gone: KubernetesAPIError?
        for try await e in admin.watch(apiVersion: "v1", kind: "Namespace", resourceVersion: start.resourceVersion, timeout: .seconds(1)) where e.kind == .error {
            gone = KubernetesAPIError(status: e.object, context: "watch")
        }
        #expect(gone?.isGone == true && gone?.status == 410, "\(String(describing: gone))")

        // A reflector whose watch expires lists again and sees what changed meanwhile.
        let k2 = try await KubeFixture(token: FakeKubernetesServer.adminToken, bookmarkInterval: .seconds(3600))
        let reflector = Reflector(client: k2.client, apiVersion: "v1", kind: "Namespace", watchTimeout: .seconds(1), logger: TestEnv.logger)
        let run = Task { await reflector.run() }
        try await eventually("the reflector synced") { reflector.synced }
        #expect(reflector.lists == 1)
        k2.server.compactHistory()
        try await eventually("the reflector listed again after 410 Gone", timeout: .seconds(20)) { reflector.lists >= 2 }
        k2.server.addNamespace("after-compaction")
        try await eventually("the reflector holds the new namespace", timeout: .seconds(20)) {
            reflector.objects.contains { $0["metadata"]?["name"] == "after-compaction" }
        }
        run.cancel()
        await k.close()
        await k2.close()
    }

    /// The autoscaler's view and hands: pod usage from the metrics API with readiness and
    /// requests (none without a metrics server), scale-in that keeps the busy pod, a resize
    /// by strategic merge patch, the traffic share as an annotation.
    @Test func usageScaleResizeAndTrafficShare() async throws {
        let k = try await KubeFixture()
        k.server.addNamespace("p1", labels: ["gedge.io/managed": "true"])
        let driver = k.driver()
        let cmd = ApplyCommand(requestID: "as-1", attempt: 1, namespace: "p1", workload: deployment("api", replicas: 3), node: nil, replicas: 3, deadline: Date().addingTimeInterval(30))
        #expect(try await driver.apply(cmd).ok)
        let usage = try await driver.usage()
        #expect(usage.map(\.key) == ["p1/api"])
        let w = try #require(usage.first)
        #expect(w.replicas == 3 && w.pods.count == 3)
        #expect(w.pods.allSatisfy { $0.ready && $0.cpuMilli == 124 && $0.memory == Double(64 << 20) && $0.cpuRequestMilli == 250 && $0.memoryRequest == Double(128 << 20) })
        k.server.serveMetrics(false)
        #expect(try await driver.usage().first?.pods.allSatisfy { $0.cpuMilli == nil } == true)
        k.server.serveMetrics(true)

        let pods = k.server.objects("pods", namespace: "p1")
        let busy = try #require(pods.first)
        let busyIP = try #require(busy["status"]?["podIP"]?.stringValue)
        #expect(try await driver.scale(ScaleCommand(requestID: "s1", namespace: "p1", name: "api", replicas: 1, busyPodIPs: [busyIP], replyTo: "r")) == 3)
        try await eventually("scaled in to the busy pod") {
            k.server.objects("pods", namespace: "p1").map { $0["metadata"]?["name"] } == [busy["metadata"]?["name"]]
        }
        await #expect(throws: KubernetesAPIError.self) {
            try await driver.scale(ScaleCommand(requestID: "s3", namespace: "p1", name: "nothing", replicas: 1, replyTo: "r"))
        }
        #expect(try await driver.resize(ResizeCommand(requestID: "r1", namespace: "p1", name: "api", cpuRequestMilli: 150, cpuLimitMilli: 300,
                                                     memoryRequest: 96 << 20, replyTo: "x")) == 1)
        let resources = k.server.object("deployments", namespace: "p1", name: "api")?["spec"]?["template"]?["spec"]?["containers"]?.arrayValue?.first?["resources"]
        #expect(resources?["requests"]?["cpu"] == "150m" && resources?["limits"]?["cpu"] == "300m")
        #expect(resources?["requests"]?["memory"] == .string(String(96 << 20)))
        _ = try await driver.scale(ScaleCommand(requestID: "s2", namespace: "p1", name: "api", replicas: 2, trafficShare: 0.6, replyTo: "x"))
        let scaled = k.server.object("deployments", namespace: "p1", name: "api")
        #expect(scaled?["metadata"]?["annotations"]?["gedge.io/traffic-share"] == "0.6000")
        #expect(scaled?["spec"]?["replicas"] == 2)
        #expect(k.server.denied == [])
        await k.close()
    }

    /// What the roles in k8s/ do not grant is refused: the agent may not patch nodes, the
    /// accelerator monitor may label nodes and read nothing else; a wrong token is 401.
    @Test func rolesFromTheManifestsAreEnforced() async throws {
        let k = try await KubeFixture()
        let agent = k.client
        let nodePatch = await #expect(throws: KubernetesAPIError.self) {
            try await agent.mergePatch(ObjectReference(apiVersion: "v1", kind: "Node", name: "n1"), .object(["metadata": .object(["labels": .object(["x": "y"])])]))
        }
        #expect(nodePatch?.status == 403)
        #expect(nodePatch?.message.contains("User \"system:serviceaccount:gedge:agent\" cannot patch resource \"nodes\"") == true, "\(String(describing: nodePatch))")

        let monitorToken = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("monitor")).path
        try "\(FakeKubernetesServer.monitorToken)\n".write(toFile: monitorToken, atomically: true, encoding: .utf8)
        let monitor = KubernetesClient(http: k.http, configuration: KubernetesAPIConfiguration(url: k.server.url, tokenFile: monitorToken))
        let labeler = NodeLabeler(nodes: KubernetesNodes(client: monitor))
        let inventory = AcceleratorInventory(node: "n1", accelerators: [Accelerator(kind: .nvidiaGPU, location: "0000:01:00.0")])
        #expect(try await labeler.apply(inventory) != .unchanged)
        #expect(k.server.object("nodes", name: "n1")?["metadata"]?["labels"]?["accelerator.gedge.io/nvidia-gpu.count"] == "1")
        #expect(try await labeler.apply(inventory) == .unchanged)
        await #expect(throws: KubernetesAPIError.self) { try await monitor.list(apiVersion: "v1", kind: "Pod") }
        #expect(k.server.denied.allSatisfy { $0.contains("cannot") == false })

        try "stolen\n".write(toFile: k.tokenFile, atomically: true, encoding: .utf8)
        let wrong = await #expect(throws: KubernetesAPIError.self) { try await k.driver().state() }
        #expect(wrong?.status == 401 && wrong?.isRetriable == false)
        await k.close()
    }

    @Test func kubeconfigGivesServerTokenAndCAAndNamesItsContexts() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("kc"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let ca = Data("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".utf8).base64EncodedString()
        let text = """
            apiVersion: v1
            kind: Config
            current-context: edge1
            clusters:
            - name: edge1-cluster
              cluster: {server: "https://10.0.0.1:6443/", certificate-authority-data: \(ca)}
            - name: other
              cluster: {server: "https://10.9.9.9:6443", certificate-authority: certs/other.crt}
            contexts:
            - name: edge1
              context: {cluster: edge1-cluster, user: agent}
            - name: edge2
              context: {cluster: other, user: cert}
            - name: cloud
              context: {cluster: other, user: sso}
            users:
            - name: agent
              user: {token: s3cret}
            - name: cert
              user: {client-certificate: /etc/gedge/client.crt, client-key: /etc/gedge/client.key}
            - name: sso
              user: {exec: {command: kubelogin}}
            """
        let path = dir.appendingPathComponent("config").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let c = try Kubeconfig.load(path: path)
        #expect(c.url == "https://10.0.0.1:6443")
        #expect(try String(contentsOfFile: c.tokenFile!, encoding: .utf8) == "s3cret")
        #expect(try String(contentsOfFile: c.http.caFile!, encoding: .utf8).hasPrefix("-----BEGIN CERTIFICATE-----"))
        let attributes = try FileManager.default.attributesOfItem(atPath: c.tokenFile!)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let edge2 = try Kubeconfig.load(path: path, context: "edge2")
        #expect(edge2.http.clientCertFile == "/etc/gedge/client.crt" && edge2.http.clientKeyFile == "/etc/gedge/client.key" && edge2.tokenFile == nil)
        #expect(edge2.http.caFile == dir.appendingPathComponent("certs/other.crt").path)
        let missing = #expect(throws: ConfigurationError.self) { try Kubeconfig.load(path: path, context: "missing") }
        #expect("\(String(describing: missing))".contains("contexts: edge1, edge2, cloud"))
        let plugin = #expect(throws: ConfigurationError.self) { try Kubeconfig.load(path: path, context: "cloud") }
        #expect("\(String(describing: plugin))".contains("exec or auth-provider plugin"))
    }
}

extension JSONValue {
    func settingNamespace(_ ns: String) -> JSONValue {
        guard case .object(var o) = self, case .object(var md)? = o["metadata"] else { return self }
        md["namespace"] = .string(ns)
        o["metadata"] = .object(md)
        return .object(o)
    }
}

/// The whole way on a (fake) Kubernetes cluster: requests placed by the scheduler, applied
/// by an agent with its own service account, judged rolled out; a workload whose image
/// cannot be pulled fails with that reason in its lifecycle and leaves nothing behind.
@Suite("Kubernetes end to end", .enabled(if: TestEnv.integration), .timeLimit(.minutes(3)))
struct KubernetesEndToEndTests {
    @Test func requestsRollOutOrFailWithThePodsReason() async throws {
        let k = try await KubeFixture()
        let h = try await SchedulerHarness(partitions: 2)
        let ns = KubeNames.namespace(forProject: "p1")
        k.server.addNamespace(ns, labels: ["gedge.io/managed": "true"])
        try h.startAgent("kube1", driver: k.driver(applyTimeout: .seconds(30), podFailureGrace: .seconds(1)))
        try await h.bind("p1", ["kube1"])
        try h.startScheduler(instance: "s1", staleAfter: .seconds(15))

        var good = request("kube-ok", .mostRequested, cpu: "100m")
        good.workload = deployment("web", cpu: "100m", replicas: 1)
        try await h.submit(good)
        let done = try await h.waitFor("kube-ok", .completed, timeout: .seconds(60))
        #expect(done.state == .completed)
        #expect(k.server.objects("pods", namespace: ns).count == 1)
        #expect(k.server.object("deployments", namespace: ns, name: "web")?["metadata"]?["labels"]?["gedge.io/request-id"] == "kube-ok")

        var bad = request("kube-bad", .mostRequested, cpu: "100m")
        bad.workload = deployment("broken", image: "example/missing:404", cpu: "100m", replicas: 1)
        try await h.submit(bad)
        var events: [String] = []
        do {
            try await eventually("kube-bad failed", timeout: .seconds(90), detail: { events.suffix(8).joined(separator: " | ") }) {
                events = try await h.store.lifecycle(id: "kube-bad").map { "\($0.state) \($0.reason ?? "")" }
                return try await h.store.request(id: "kube-bad")?.state == .failed
            }
        }
        let failed = try #require(try await h.store.request(id: "kube-bad"))
        let reasons = try await h.store.lifecycle(id: "kube-bad").compactMap(\.reason).joined(separator: " | ")
        #expect(reasons.contains("ImagePullBackOff"), "\(failed.reason ?? "") / \(reasons)")
        #expect(k.server.object("deployments", namespace: ns, name: "broken") == nil)
        #expect(k.server.denied == [])
        await h.shutdown()
        await k.close()
    }
}
