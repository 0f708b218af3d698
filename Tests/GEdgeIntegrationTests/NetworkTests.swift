import FakeKubernetes
import Foundation
import GEdgeAgent
import GEdgeCore
import GEdgePlacement
import GEdgeServiceSpec
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

/// GS-Engine's second data path end to end: the manifests against the Multus and SR-IOV
/// schemas, placement through the scheduler on simulated clusters that report SR-IOV
/// capacity and data-network labels, and the apply on a (fake) Kubernetes API with the
/// agent's role.
@Suite("Service networks", .enabled(if: TestEnv.integration), .timeLimit(.minutes(3)))
struct ServiceNetworkTests {
    /// The dual-path example, in `namespace`.
    func definition(namespace: String = "edge") throws -> ServiceDefinition {
        try ServiceDefinition.parse(text: String(contentsOf: repositoryRoot.appendingPathComponent("config/gse/dual-path.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "namespace: edge", with: "namespace: \(namespace)"))
    }

    /// Every network type's attachment validates against the schemas (schemas/networks); a
    /// broken one does not.
    @Test func attachmentsValidateAgainstTheMultusAndSRIOVSchemas() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("nets"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ipvlan = try ServiceDefinition.parse(text: """
            name: v
            namespace: edge
            containers: [a]
            ports: [80]
            type: ClusterIP
            networks: [{name: l3-net, type: ipvlan, master: eth2, mode: l3, ipam: {subnet: 10.9.0.0/16}}, {name: bare, type: macvlan, master: eth3}]
            """)
        var files: [String] = []
        for (i, def) in [try definition(), ipvlan].enumerated() {
            let path = dir.appendingPathComponent("manifests-\(i).json").path
            FileManager.default.createFile(atPath: path, contents: Data(JSONValue.array(def.manifests().all).serialized()))
            files.append(path)
        }
        let script = repositoryRoot.appendingPathComponent("scripts/validate-networks.py").path
        #expect(await runCommand(["/usr/bin/env", "python3", script] + files) == 0)
        // The validator is not kind: a plugin field no plugin knows fails it.
        var broken = try definition().manifests().networkAttachments[0]
        let config = #"{"cniVersion":"0.3.1","name":"data-net","type":"macvlan","master":"eth1","mode":"bridge","vlan":100,"ipam":{}}"#
        broken = broken.replacing(spec: .object(["config": .string(config)]))
        let bad = dir.appendingPathComponent("broken.json").path
        FileManager.default.createFile(atPath: bad, contents: Data(JSONValue.array([broken]).serialized()))
        #expect(await runCommand(["/usr/bin/env", "python3", script, bad]) == 1)
    }

    /// The scheduler places the dual-path service only on a node that carries the data
    /// network and has virtual functions left; without them the lifecycle says why.
    @Test func placementNeedsTheNetworkAndTheVirtualFunctions() async throws {
        let h = try await SchedulerHarness(partitions: 2)
        var nodes = simNodes("e1", count: 3)
        nodes[1].labels = ["network.gedge.io/data-net": "true", "network.gedge.io/fast-net": "true"]
        nodes[1].allocatable.extended = ["intel.com/sriov_netdevice": 1]
        nodes[2].allocatable.extended = ["intel.com/sriov_netdevice": 8]  // not on the data network
        let edge = SimulatedCluster(name: "edge1", nodes: nodes, podStartDelay: .milliseconds(10))
        try h.startAgent("edge1", driver: edge)
        try await h.bind("p1", ["edge1"])
        try h.startScheduler(instance: "s1", staleAfter: .seconds(15))
        let manifests = try definition(namespace: KubeNames.namespace(forProject: "p1")).manifests().all

        var first = request("net-1", .mostRequested, cpu: "100m")
        first.workload = .array(manifests)
        try await h.submit(first)
        let done = try await h.waitFor("net-1", .completed, timeout: .seconds(60))
        #expect(done.placement.arrayValue?.first?["node"] == "e1-2", "\(done.placement)")

        // The only virtual function is taken: the second waits, with kube-scheduler's words.
        var second = request("net-2", .mostRequested, cpu: "100m")
        second.workload = .array(manifests)
        try await h.submit(second)
        var reasons: [String] = []
        try await eventually("net-2 unschedulable for want of a virtual function", timeout: .seconds(60), detail: { reasons.suffix(3).joined(separator: " | ") }) {
            reasons = try await h.store.lifecycle(id: "net-2").compactMap(\.reason)
            return reasons.contains { $0.contains("Insufficient intel.com/sriov_netdevice") }
        }
        #expect(reasons.contains { $0.contains("0/3 nodes are available") && $0.contains("1 node(s) lacked the data network") }, "\(reasons)")
        await h.shutdown()
    }

    /// The agent applies the attachments before the Deployment and the policy with it, on a
    /// cluster with Multus; its role grants all of it.
    @Test func theAgentAppliesAttachmentsAndPolicyFirst() async throws {
        let k = try await KubeFixture()
        k.server.addNamespace("edge", labels: ["gedge.io/managed": "true"])
        let driver = k.driver(applyTimeout: .seconds(20))
        let cmd = ApplyCommand(requestID: "dual", attempt: 1, namespace: "edge", workload: .array(try definition().manifests().all), node: nil,
                               replicas: 1, deadline: Date().addingTimeInterval(30))
        let result = try await driver.apply(cmd)
        // The fake's nodes carry no data network: the pod is unschedulable, as it would be.
        #expect(!result.ok && result.reason.contains("Unschedulable"), "\(result.reason)")
        let kinds = k.server.calls.filter { $0.contains(" patch ") }.map { $0.split(separator: " ").last.map(String.init) ?? "" }
        #expect(Array(kinds.prefix(5)) == ["network-attachment-definitions", "network-attachment-definitions", "deployments", "services", "networkpolicies"], "\(kinds)")
        #expect(k.server.denied == [])
        // Removed with the rest when the apply failed.
        #expect(k.server.objects("network-attachment-definitions", namespace: "edge") == [])
        #expect(k.server.objects("networkpolicies", namespace: "edge") == [])
        await k.close()
    }
}

extension JSONValue {
    func replacing(spec: JSONValue) -> JSONValue {
        guard case .object(var o) = self else { return self }
        o["spec"] = spec
        return .object(o)
    }
}
