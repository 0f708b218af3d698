import Foundation
import GEdgeAccelerators
import GEdgeAgent
import GEdgeCore
import GEdgeHTTPClient
import GEdgePlacement
import Testing

@Suite("Kubernetes driver", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(2)))
struct KubernetesDriverTests {
    func setUp(token: String = "test-token", namespaces: KubernetesCluster.NamespacePolicy = .create) throws -> (EchoServer, HTTPClient, KubernetesCluster) {
        let api = try EchoServer(script: "fake_kube_cluster.py", arguments: [])
        let tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("token"))
        try "\(token)\n".write(to: tokenFile, atomically: true, encoding: .utf8)
        let client = HTTPClient(logger: TestEnv.logger)
        let driver = KubernetesCluster(
            client: client, configuration: KubernetesAPIConfiguration(url: api.base, tokenFile: tokenFile.path),
            applyTimeout: .seconds(2), pollInterval: .milliseconds(50), namespaces: namespaces)
        return (api, client, driver)
    }

    func debugState(_ api: EchoServer, _ client: HTTPClient) async throws -> JSONValue {
        try await client.execute(HTTPRequest(url: api.base + "/debug/state")).json()
    }

    /// By default the agent creates no namespace: it applies only into one an operator made
    /// and labelled gedge.io/managed=true.
    @Test func appliesOnlyIntoManagedNamespaces() async throws {
        let (api, client, driver) = try setUp(namespaces: .requireManaged)
        let cmd = ApplyCommand(requestID: "m-1", attempt: 1, namespace: "team", workload: workload("web"), node: nil, replicas: 1, deadline: Date().addingTimeInterval(30))
        let missing = try await driver.apply(cmd)
        #expect(!missing.ok && missing.reason.contains("does not exist"), "\(missing.reason)")
        await #expect(throws: KubernetesAPIError.self) { try await driver.namespace("team", delete: false) }
        // An operator's namespace without the label, then with it.
        let unlabelled = try await client.execute(HTTPRequest(
            method: "PATCH", url: api.base + "/api/v1/namespaces/team?fieldManager=operator",
            headers: [("Content-Type", "application/apply-patch+yaml")],
            body: JSONValue.object(["apiVersion": "v1", "kind": "Namespace", "metadata": .object(["name": "team"])]).serialized(), bearerToken: "test-token"))
        #expect(unlabelled.status == 200)
        let notManaged = try await driver.apply(cmd)
        #expect(!notManaged.ok && notManaged.reason.contains("not labelled gedge.io/managed=true"), "\(notManaged.reason)")
        let labelled = try await client.execute(HTTPRequest(
            method: "PATCH", url: api.base + "/api/v1/namespaces/team?fieldManager=operator",
            headers: [("Content-Type", "application/apply-patch+yaml")],
            body: JSONValue.object(["apiVersion": "v1", "kind": "Namespace", "metadata": .object(["name": "team", "labels": .object(["gedge.io/managed": "true"])])]).serialized(),
            bearerToken: "test-token"))
        #expect(labelled.status == 200)
        #expect(try await driver.apply(cmd).ok)
        await client.shutdown()
        withExtendedLifetime(api) {}
    }

    @Test func readsNodesAppliesWaitsAndRemoves() async throws {
        let (api, client, driver) = try setUp()
        let nodes = try await driver.state()
        #expect(nodes.map(\.name) == ["n1", "n2", "n3"])
        #expect(nodes.map(\.ready) == [true, true, false])
        #expect(nodes[1].allocatable == Resources(cpuMilli: 8000, memory: 16 << 30, gpu: 1, extended: ["pods": 110]))
        #expect(nodes[1].labels["accelerator.gedge.io/nvidia-gpu.count"] == "1")
        #expect(nodes[2].taints == [Taint(key: "node.kubernetes.io/not-ready", effect: .noSchedule)])

        var manifests = workload("web", cpu: "750m", replicas: 1)
        manifests = .array([manifests, .object(["apiVersion": .string("v1"), "kind": .string("Service"), "metadata": .object(["name": .string("web")]),
                                               "spec": .object(["ports": .array([.object(["port": .number(80)])])])])])
        let cmd = ApplyCommand(requestID: "req-9", attempt: 1, namespace: "p1", workload: manifests, node: "n2", replicas: 2, deadline: Date().addingTimeInterval(30))
        let result = try await driver.apply(cmd)
        #expect(result.ok, "\(result.reason)")
        #expect(result.reason == "2/2 replicas ready")
        #expect(result.pods == ["web-0": "n2", "web-1": "n2"])

        let state = try await debugState(api, client)
        #expect(state["namespaces"] == .array([.string("default"), .string("p1")]))
        let dep = state["deployments"]?["p1/web"]
        #expect(dep?["metadata"]?["labels"]?[KubernetesCluster.requestLabel] == .string("req-9"))
        #expect(dep?["metadata"]?["namespace"] == .string("p1"))
        #expect(dep?["spec"]?["replicas"] == .number(2))
        #expect(dep?["spec"]?["template"]?["spec"]?["nodeSelector"]?["kubernetes.io/hostname"] == .string("n2"))
        #expect(dep?["spec"]?["template"]?["metadata"]?["labels"]?[KubernetesCluster.requestLabel] == .string("req-9"))
        // Pods count against their node.
        let after = try await driver.state()
        #expect(after[1].requested.cpuMilli == 1500)
        #expect(try await driver.nodeOf(pod: "web-1", namespace: "p1") == "n2")
        #expect(try await driver.nodeOf(pod: "web-1", namespace: nil) == "n2")
        #expect(try await driver.nodeOf(pod: "nope", namespace: "p1") == nil)

        #expect(try await driver.remove(requestID: "req-9", attempt: 2) == 0)
        #expect(dep?["metadata"]?["labels"]?[KubernetesCluster.attemptLabel] == .string("1"))
        #expect(try await driver.remove(requestID: "req-9", attempt: 1) == 2)
        let gone = try await debugState(api, client)
        #expect(gone["deployments"] == .object([:]))
        #expect(gone["pods"] == .object([:]))
        #expect(try await driver.remove(requestID: "req-9", attempt: nil) == 0)
        try await driver.namespace("p1", delete: true)
        #expect(try await debugState(api, client)["namespaces"] == .array([.string("default")]))
        await client.shutdown()
    }

    /// The scale subresource; on scale-in the busy pod (by IP) is kept and the idle ones go.
    @Test func scaleInRemovesIdlePodsFirst() async throws {
        let (api, client, driver) = try setUp()
        let cmd = ApplyCommand(requestID: "fn-1", attempt: 1, namespace: "default", workload: workload("detector", cpu: "100m"),
                               node: nil, replicas: 3, deadline: Date().addingTimeInterval(30))
        #expect(try await driver.apply(cmd).ok)
        #expect(try await debugState(api, client)["pods"]?["default/detector-1"] != nil)
        let before = try await driver.scale(ScaleCommand(requestID: "s1", namespace: "default", name: "detector", replicas: 1,
                                                         busyPodIPs: ["10.0.0.2"], replyTo: "r"))
        #expect(before == 3)
        let pods = try await debugState(api, client)["pods"]
        #expect(pods == .object(["default/detector-1": "n1"]))
        #expect(try await debugState(api, client)["deployments"]?["default/detector"]?["spec"]?["replicas"] == 1)
        #expect(try await driver.scale(ScaleCommand(requestID: "s2", namespace: "default", name: "detector", replicas: 4, replyTo: "r")) == 1)
        await #expect(throws: (any Error).self) {
            try await driver.scale(ScaleCommand(requestID: "s3", namespace: "default", name: "nothing", replicas: 1, replyTo: "r"))
        }
        await client.shutdown()
    }

    /// The autoscaler's view and hands: pod usage from the metrics API with readiness and
    /// requests, a resize by strategic merge patch, the traffic share as an annotation.
    @Test func usageResizeAndTrafficShare() async throws {
        let (api, client, driver) = try setUp()
        let manifest = try JSONValue.parse(Array(#"""
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
             "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "api"}},
                      "template": {"metadata": {"labels": {"app": "api"}},
                                   "spec": {"containers": [{"name": "api", "image": "example/api:1",
                                                            "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}}}]}}}}
            """#.utf8))
        let cmd = ApplyCommand(requestID: "as-1", attempt: 1, namespace: "p1", workload: manifest, node: nil, replicas: 2, deadline: Date().addingTimeInterval(30))
        #expect(try await driver.apply(cmd).ok)
        let usage = try await driver.usage()
        #expect(usage.map(\.key) == ["p1/api"])
        let w = try #require(usage.first)
        #expect(w.replicas == 2)
        #expect(w.pods.count == 2)
        #expect(w.pods.allSatisfy { $0.ready && $0.cpuMilli == 124 && $0.memory == Double(64 << 20) && $0.cpuRequestMilli == 250 && $0.memoryRequest == Double(128 << 20) })

        #expect(try await driver.resize(ResizeCommand(requestID: "r1", namespace: "p1", name: "api", cpuRequestMilli: 150, cpuLimitMilli: 300,
                                                     memoryRequest: 96 << 20, replyTo: "x")) == 2)
        let dep = try await debugState(api, client)["deployments"]?["p1/api"]
        let resources = dep?["spec"]?["template"]?["spec"]?["containers"]?.arrayValue?.first?["resources"]
        #expect(resources?["requests"]?["cpu"] == "150m" && resources?["limits"]?["cpu"] == "300m")
        #expect(resources?["requests"]?["memory"] == .string(String(96 << 20)))
        #expect(try await driver.usage().first?.pods.first?.cpuRequestMilli == 150)
        await #expect(throws: (any Error).self) {
            try await driver.resize(ResizeCommand(requestID: "r2", namespace: "p1", name: "nothing", cpuRequestMilli: 100, replyTo: "x"))
        }

        _ = try await driver.scale(ScaleCommand(requestID: "s1", namespace: "p1", name: "api", replicas: 3, trafficShare: 0.6, replyTo: "x"))
        let scaled = try await debugState(api, client)["deployments"]?["p1/api"]
        #expect(scaled?["metadata"]?["annotations"]?["gedge.io/traffic-share"] == "0.6000")
        #expect(scaled?["spec"]?["replicas"] == 3)
        await client.shutdown()
    }

    @Test func podsThatNeverRunFailTheApplyAndAreRemoved() async throws {
        let (api, client, driver) = try setUp()
        let cmd = ApplyCommand(requestID: "slow", attempt: 3, namespace: "p1", workload: workload("never-ready"), node: nil, replicas: 1, deadline: Date().addingTimeInterval(30))
        let result = try await driver.apply(cmd)
        #expect(!result.ok)
        #expect(result.reason == "pods not running in time (0/1 replicas ready); removed")
        #expect(try await debugState(api, client)["deployments"] == .object([:]))
        let late = ApplyCommand(requestID: "late", attempt: 1, namespace: "p1", workload: workload("web"), node: nil, replicas: 1, deadline: Date().addingTimeInterval(-1))
        #expect(try await driver.apply(late).reason == "the deadline passed before the apply started")
        await client.shutdown()
    }

    @Test func wrongTokenIsRefused() async throws {
        let (api, client, driver) = try setUp(token: "stolen")
        do {
            _ = try await driver.state()
            Issue.record("a wrong token must be refused")
        } catch let e as KubernetesAPIError {
            #expect(e.status == 401)
        }
        withExtendedLifetime(api) {}
        await client.shutdown()
    }

    @Test func kubeconfigGivesServerTokenAndCA() throws {
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
              cluster: {server: "https://10.9.9.9:6443"}
            contexts:
            - name: edge1
              context: {cluster: edge1-cluster, user: agent}
            users:
            - name: agent
              user: {token: s3cret}
            """
        let path = dir.appendingPathComponent("config").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let c = try Kubeconfig.load(path: path)
        #expect(c.url == "https://10.0.0.1:6443")
        #expect(try String(contentsOfFile: c.tokenFile!, encoding: .utf8) == "s3cret")
        #expect(try String(contentsOfFile: c.http.caFile!, encoding: .utf8).hasPrefix("-----BEGIN CERTIFICATE-----"))
        let attributes = try FileManager.default.attributesOfItem(atPath: c.tokenFile!)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        #expect(throws: ConfigurationError.self) { try Kubeconfig.load(path: path, context: "missing") }
    }
}
