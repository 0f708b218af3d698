import FakeKubernetes
import Foundation
import GEdgeAgent
import GEdgeCore
import GEdgeKubernetes
import GEdgePlacement
import GEdgeScheduler
import Testing

/// A cluster's inventory (hcode 550): pods, deployments, volumes, claims, storage classes and
/// events, a page at a time, from the Kubernetes driver (against the fake API server, with
/// the agent's own role) and from the simulated one, and through the gateway with a
/// project's scope.
@Suite("Cluster inventory", .enabled(if: TestEnv.integration), .timeLimit(.minutes(3)))
struct InventoryTests {
    @Test func theKubernetesDriverListsPagesAndDescribesWithTheAgentsRole() async throws {
        let k = try await KubeFixture()
        k.server.addNamespace("p1", labels: ["gedge.io/managed": "true"])
        let driver = k.driver()
        let cmd = ApplyCommand(requestID: "inv-1", attempt: 1, namespace: "p1", workload: deployment("web", replicas: 5), node: nil, replicas: 5,
                               deadline: Date().addingTimeInterval(30))
        let applied = try await driver.apply(cmd)
        #expect(applied.ok, "\(applied.reason)")
        // What an operator's cluster has beside the suite's workloads.
        let admin = try k.admin()
        try await admin.apply(.object([
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": .object(["name": "fast", "annotations": .object(["storageclass.kubernetes.io/is-default-class": "true"])]),
            "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer",
        ]), fieldManager: "kubectl", force: false)
        try await admin.apply(.object([
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": .object(["name": "pv-data"]),
            "spec": .object(["capacity": .object(["storage": "10Gi"]), "accessModes": .array(["ReadWriteOnce"]), "persistentVolumeReclaimPolicy": "Retain",
                             "storageClassName": "fast", "claimRef": .object(["namespace": "p1", "name": "data"]), "hostPath": .object(["path": "/data"])]),
        ]), fieldManager: "kubectl", force: false)
        try await admin.apply(.object([
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": .object(["name": "data", "namespace": "p1"]),
            "spec": .object(["accessModes": .array(["ReadWriteOnce"]), "storageClassName": "fast", "volumeName": "pv-data",
                             "resources": .object(["requests": .object(["storage": "10Gi"])])]),
        ]), fieldManager: "kubectl", force: false)
        let pods = k.server.objects("pods", namespace: "p1").compactMap { $0["metadata"]?["name"]?.stringValue }.sorted()
        #expect(pods.count == 5)
        for (i, reason) in ["Scheduled", "Pulled"].enumerated() {
            try await admin.apply(.object([
                "apiVersion": "v1", "kind": "Event", "metadata": .object(["name": .string("\(pods[0]).\(i)"), "namespace": "p1"]),
                "involvedObject": .object(["kind": "Pod", "name": .string(pods[0]), "namespace": "p1"]), "reason": .string(reason),
                "message": .string("\(reason) \(pods[0])"), "type": "Normal", "count": 1,
            ]), fieldManager: "kubectl", force: false)
        }

        // Pods, two at a time: every pod once, in order, the page size held.
        var names: [String] = []
        var token: String?
        var pages = 0
        repeat {
            let page = try await driver.inventory(InventoryQuery(kind: .pods, namespace: "p1", limit: 2, continueToken: token))
            #expect(page.items.count <= 2)
            names += page.items.compactMap { $0["name"]?.stringValue }
            token = page.continueToken
            pages += 1
        } while token != nil && pages < 10
        #expect(names == pods && pages == 3, "\(names)")
        let pod = try #require(try await driver.inventory(InventoryQuery(kind: .pods, namespace: "p1", name: pods[0], limit: 1)).items.first)
        #expect(pod["phase"] == "Running" && pod["ready"] == "1/1" && pod["node"]?.stringValue != nil && pod["owner"]?.stringValue?.contains("web") == true,
                "\(pod)")

        let deployments = try await driver.inventory(InventoryQuery(kind: .deployments, namespace: "p1"))
        let web = try #require(deployments.items.first)
        #expect(web["name"] == "web" && web["replicas"] == 5 && web["available"] == 5 && web["images"] == .array(["example/web:1"]), "\(web)")
        #expect(web["conditions"]?.arrayValue?.contains { $0["type"] == "Available" && $0["status"] == "True" } == true, "\(web)")

        let pvs = try await driver.inventory(InventoryQuery(kind: .persistentvolumes)).items
        #expect(pvs == [.object(["name": "pv-data", "capacity": "10Gi", "access_modes": .array(["ReadWriteOnce"]), "reclaim_policy": "Retain",
                                 "claim": "p1/data", "storage_class": "fast"])], "\(pvs)")
        let pvcs = try await driver.inventory(InventoryQuery(kind: .persistentvolumeclaims, namespace: "p1")).items
        #expect(pvcs.first?["volume"] == "pv-data" && pvcs.first?["storage_class"] == "fast", "\(pvcs)")
        let classes = try await driver.inventory(InventoryQuery(kind: .storageclasses)).items
        #expect(classes.first?["default"] == true && classes.first?["provisioner"] == "rancher.io/local-path" && classes.first?["volume_binding_mode"] == "WaitForFirstConsumer")

        // One pod's events, by the field selectors events support.
        let events = try await driver.inventory(InventoryQuery(kind: .events, namespace: "p1", objectKind: "Pod", objectName: pods[0])).items
        #expect(events.compactMap { $0["reason"]?.stringValue } == ["Scheduled", "Pulled"], "\(events)")
        #expect(try await driver.inventory(InventoryQuery(kind: .events, namespace: "p1", objectKind: "Pod", objectName: pods[1])).items.isEmpty)
        #expect(try await driver.inventory(InventoryQuery(kind: .pods, namespace: "p1", name: "nope", limit: 1)).items.isEmpty)

        // A continue token older than the server's history: 410 Expired, as kubectl sees it.
        let first = try await driver.inventory(InventoryQuery(kind: .pods, namespace: "p1", limit: 2))
        k.server.compactHistory()
        let expired = await #expect(throws: KubernetesAPIError.self) {
            _ = try await driver.inventory(InventoryQuery(kind: .pods, namespace: "p1", limit: 2, continueToken: first.continueToken))
        }
        #expect(expired?.status == 410 && expired?.reason == "Expired", "\(String(describing: expired))")
        // Everything above with the agent's own token, granted by k8s/'s role (read only).
        #expect(k.server.denied == [])
        let role = try String(contentsOfFile: manifestsDirectory + "/components/member-cluster/agent.yaml", encoding: .utf8)
        #expect(role.contains("resources: [\"persistentvolumes\", \"persistentvolumeclaims\", \"events\"]\n    verbs: [\"get\", \"list\", \"watch\"]"))
        await k.close()
    }

    @Test func theSimulatedDriverAnswersInTheSameShapes() async throws {
        let sim = SimulatedCluster(name: "edge1", nodes: [SimulatedNode(name: "n1", allocatable: Resources(cpuMilli: 4000, memory: 8 << 30))], podStartDelay: .zero)
        let r = try await sim.apply(ApplyCommand(requestID: "s-1", attempt: 1, namespace: "p1", workload: workload("web", replicas: 3), node: nil, replicas: 3, deadline: nil))
        #expect(r.ok)
        let pods = await sim.inventory(InventoryQuery(kind: .pods, namespace: "p1", limit: 2))
        #expect(pods.items.count == 2 && pods.continueToken != nil && pods.items.allSatisfy { $0["node"] == "n1" && $0["phase"] == "Running" })
        let rest = await sim.inventory(InventoryQuery(kind: .pods, namespace: "p1", limit: 2, continueToken: pods.continueToken))
        #expect(rest.items.count == 1 && rest.continueToken == nil)
        let deps = await sim.inventory(InventoryQuery(kind: .deployments))
        #expect(deps.items.first?["replicas"] == 3 && deps.items.first?["ready"] == 3)
        #expect(await sim.inventory(InventoryQuery(kind: .pods, namespace: "other")).items.isEmpty)
        #expect(await sim.inventory(InventoryQuery(kind: .storageclasses)).items.first?["name"] == "standard")
        let events = await sim.inventory(InventoryQuery(kind: .events, namespace: "p1", objectKind: "Pod", objectName: "web-0")).items
        #expect(events.map { $0["reason"] } == ["Scheduled", "Started"], "\(events)")
    }

    /// Through the gateway and the agent over Kafka: an admin sees every namespace; a project
    /// its own (the default without `namespace`) and none other, volumes only where its claims
    /// are; bad input is a 400 naming the field.
    @Test func theGatewayServesPagesWithAProjectsScope() async throws {
        let (g, edge) = try await gatewayWithOneCluster()
        for project in ["p1", "p2"] {
            _ = try await g.json("PUT", "/v1/projects/\(project)/clusters", token: g.adminToken, .object(["clusters": .array(["edge1"])]))
        }
        let token = try await g.token(project: "p1")
        for (id, project) in [("inv-a", "p1"), ("inv-b", "p2")] {
            try await g.world.submit(request(id, .selectedCluster, project: project, ["select_clusters": .array(["edge1"])]))
            _ = try await g.world.waitFor(id, .completed)
        }
        try await eventually("the gateway sees edge1") { try await g.call("GET", "/v1/clusters/edge1", token: token).0 == 200 }

        let (s1, mine) = try await g.call("GET", "/v1/clusters/edge1/pods", token: token)
        #expect(s1 == 200 && mine["namespace"] == "p1", "\(mine)")
        #expect(mine["items"]?.arrayValue?.map { $0["name"] } == ["w-inv-a-0"], "\(mine)")
        #expect(try await g.call("GET", "/v1/clusters/edge1/pods?namespace=p2", token: token).0 == 404)
        let (s2, all) = try await g.call("GET", "/v1/clusters/edge1/deployments?namespace=p2", token: g.adminToken)
        #expect(s2 == 200 && all["items"]?.arrayValue?.count == 1, "\(all)")
        let (s3, described) = try await g.call("GET", "/v1/clusters/edge1/pods/p1/w-inv-a-0", token: token)
        #expect(s3 == 200 && described["item"]?["name"] == "w-inv-a-0", "\(described)")
        #expect(described["events"]?.arrayValue?.contains { $0["reason"] == "Scheduled" } == true, "\(described)")
        #expect(try await g.call("GET", "/v1/clusters/edge1/pods/p2/w-inv-b-0", token: token).0 == 404)
        #expect(try await g.call("GET", "/v1/clusters/edge1/pods/p1/nope", token: token).0 == 404)
        #expect(try await g.call("GET", "/v1/clusters/edge1/storageclasses", token: token).1["items"]?.arrayValue?.count == 1)
        #expect(try await g.call("GET", "/v1/clusters/edge1/persistentvolumes", token: token).1["items"] == .array([]))
        // A cluster not bound to the project does not exist for it.
        #expect(try await g.call("GET", "/v1/clusters/edge9/pods", token: token).0 == 404)
        for (path, field) in [("/v1/clusters/edge1/pods?limit=0", "limit"), ("/v1/clusters/edge1/pods?limit=abc", "limit"),
                              ("/v1/clusters/edge1/pods?namespace=Bad_NS", "namespace"), ("/v1/clusters/edge1/storageclasses?namespace=p1", "namespace"),
                              ("/v1/clusters/edge1/pods/p1/Bad..Name", "object")] {
            let (status, problem) = try await g.call("GET", path, token: g.adminToken)
            #expect(status == 400 && problem["field"]?.stringValue == field, "\(path): \(problem)")
        }
        await g.shutdown()
    }
}

/// A gateway, a scheduler and the simulated cluster edge1 (one large node) in view.
func gatewayWithOneCluster() async throws -> (GatewayHarness, SimulatedCluster) {
    let g = try await GatewayHarness()
    let edge = SimulatedCluster(name: "edge1", nodes: [SimulatedNode(name: "n1", allocatable: Resources(cpuMilli: 16000, memory: 32 << 30))],
                                podStartDelay: .milliseconds(10))
    try g.world.startAgent("edge1", driver: edge)
    let ctx = try g.world.startScheduler(instance: "s1")
    try await eventually("edge1 in view") { !ctx.view.fresh().isEmpty }
    return (g, edge)
}

/// gedgectl get, describe and logs against a gateway and a simulated agent, as an operator
/// types them.
@Suite("gedgectl inventory", .enabled(if: TestEnv.integration), .timeLimit(.minutes(3)))
struct GedgectlInventoryTests {
    @Test func getDescribeAndFollowLogs() async throws {
        let (g, edge) = try await gatewayWithOneCluster()
        _ = try await g.json("PUT", "/v1/projects/p1/clusters", token: g.adminToken, .object(["clusters": .array(["edge1"])]))
        let token = try await g.token(project: "p1")
        try await g.world.submit(request("ctl-inv", .selectedCluster, cpu: "100m", ["select_clusters": .array(["edge1"]), "replicas": 3]))
        _ = try await g.world.waitFor("ctl-inv", .completed)
        try await eventually("the gateway sees edge1") { try await g.call("GET", "/v1/clusters/edge1", token: token).0 == 200 }

        func ctl(_ args: [String], as who: String? = nil) async throws -> (Int32, [String]) {
            let p = try ChildProcess("gedgectl", ["--server", g.base, "--token", who ?? token] + args)
            try await p.waitForExit(timeout: .seconds(60))
            try await Task.sleep(for: .milliseconds(100))
            return (p.exitStatus, p.lines)
        }
        // The only cluster the token sees is the default; the project's namespace too.
        let (s1, pods) = try await ctl(["get", "pods"])
        #expect(s1 == 0 && pods.first?.hasPrefix("NAMESPACE") == true && pods.count == 4, "\(pods)")
        #expect(pods.dropFirst().allSatisfy { $0.hasPrefix("p1") && $0.contains("1/1") && $0.contains("Running") }, "\(pods)")
        // kubectl's -A: every namespace the token reads, whatever -n says.
        let (sA, allPods) = try await ctl(["get", "pods", "-A", "-n", "kube-system"])
        func names(_ table: [String]) -> [String] { table.map { $0.split(separator: " ").prefix(2).joined(separator: " ") } }
        #expect(sA == 0 && names(allPods) == names(pods), "\(allPods)")
        let (s2, wide) = try await ctl(["get", "po", "-c", "edge1", "-n", "p1", "-o", "wide"])
        #expect(s2 == 0 && wide.first?.hasSuffix("NODE") == true && wide.dropFirst().allSatisfy { $0.hasSuffix("n1") }, "\(wide)")
        let (s3, paged) = try await ctl(["get", "pods", "--limit", "2", "--all", "-o", "json"])
        let pagedItems = try JSONValue.parse(Array(paged.joined(separator: "\n").utf8)).arrayValue
        #expect(s3 == 0 && pagedItems?.count == 3, "\(paged)")
        let (s4, deploys) = try await ctl(["get", "deploy"])
        #expect(s4 == 0 && deploys.count == 2 && deploys[1].contains("3/3"), "\(deploys)")
        let (s5, classes) = try await ctl(["get", "sc"])
        #expect(s5 == 0 && classes.contains { $0.hasPrefix("standard (default)") }, "\(classes)")
        let (s6, described) = try await ctl(["describe", "pod", "w-ctl-inv-0", "-n", "p1"])
        #expect(s6 == 0 && described.contains { $0.hasPrefix("Node:") && $0.hasSuffix("n1") } && described.contains { $0.contains("Scheduled") && $0.contains("Successfully assigned") },
                "\(described)")
        // Refusals: another project's namespace is not there; a kind that is not one; no namespace for a name.
        #expect(try await ctl(["get", "pods", "-n", "kube-system"]).0 == 1)
        #expect(try await ctl(["get", "secrets", "x"]).0 == 64)
        #expect(try await ctl(["describe", "pod", "w-ctl-inv-0"]).0 == 64)

        // Logs, then following: the first lines once, nothing doubled while the pod is quiet.
        let (s7, logs) = try await ctl(["logs", "w-ctl-inv-0"])
        #expect(s7 == 0 && logs.contains { $0.contains("scheduled on node n1") }, "\(logs)")
        let follow = try ChildProcess("gedgectl", ["--server", g.base, "--token", token, "logs", "w-ctl-inv-0", "-f", "--interval", "0.3"])
        try await eventually("the first lines") { follow.lines.contains { $0.contains("container started") } }
        let before = follow.lines
        try await Task.sleep(for: .seconds(1.5))
        #expect(follow.lines == before, "\(follow.lines)")
        // Offered load adds a line, which follow prints once.
        await edge.setLoad(SimulatedLoad(namespace: "p1", name: "w-ctl-inv", cpuMilli: 300, memory: 0))
        try await eventually("the new line") { follow.lines.contains { $0.contains("serving its share") } }
        try await Task.sleep(for: .seconds(1))
        #expect(follow.lines.filter { $0.contains("serving its share") }.count == 1, "\(follow.lines)")
        follow.kill(SIGTERM)
        await g.shutdown()
    }
}
