import FakeKubernetes
import Foundation
import GEdgeAccelerators
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
import GEdgeKubernetes
import ServiceLifecycle
import Testing

/// Node labelling against the fake Kubernetes API server (Tests/FakeKubernetes), with the
/// monitor's own service account: what k8s/ grants it (get and patch on nodes) and no more.
@Suite("Accelerator monitor", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(1)))
struct AcceleratorMonitorTests {
    let logger = TestEnv.logger

    func setUp(_ initialLabels: [String: String]) async throws -> (KubeFixture, NodeLabeler, KubernetesNodes) {
        let k = try await KubeFixture(token: FakeKubernetesServer.monitorToken)
        k.server.addNode("edge-n1", labels: initialLabels)
        let nodes = KubernetesNodes(client: k.client)
        return (k, NodeLabeler(nodes: nodes), nodes)
    }

    func patchCount(_ k: KubeFixture) -> Int { k.server.calls.filter { $0.hasSuffix(" patch nodes") }.count }

    @Test func labelsAreAddedChangedAndRemovedAndOthersNeverTouched() async throws {
        let others = ["kubernetes.io/hostname": "edge-n1", "team": "vision", "gpu.vendor": "set-by-someone"]
        let (k, labeler, nodes) = try await setUp(others)

        // Two V100s appear.
        let t = NodeFiles()
        t.pci("0000:3b:00.0", device: "1db4")
        t.pci("0000:d8:00.0", device: "1db4")
        let first = AcceleratorScanner(hostRoot: t.root, imagePCIIDs: []).scan(node: "edge-n1")
        #expect(try await labeler.apply(first) == .patched(set: AcceleratorLabels.labels(for: first).count, removed: 0))
        var labels = try await nodes.metadata(node: "edge-n1").labels
        #expect(labels["accelerator.gedge.io/nvidia-gpu.count"] == "2")
        #expect(labels["nvidia.com/gpu.count"] == "2")
        // reActor's NVIDIA labels come from nvidia-smi, which this node does not have.
        #expect(labels["gpu.model"] == nil && labels["gpu.product.id"] == nil)

        // Nothing changed: nothing is sent.
        #expect(try await labeler.apply(first) == .unchanged)
        #expect(patchCount(k) == 1)

        // One GPU is gone and the other is a different model: counts and ids change.
        let t2 = NodeFiles()
        t2.pci("0000:3b:00.0", device: "2204")
        let second = AcceleratorScanner(hostRoot: t2.root, imagePCIIDs: []).scan(node: "edge-n1")
        guard case .patched = try await labeler.apply(second) else { Issue.record("expected a patch"); return }
        labels = try await nodes.metadata(node: "edge-n1").labels
        #expect(labels["accelerator.gedge.io/nvidia-gpu.count"] == "1")
        #expect(labels["nvidia.com/gpu.count"] == "1")

        // The hardware is gone: every label this monitor set goes; no one else's does.
        let empty = AcceleratorInventory(node: "edge-n1", accelerators: [])
        let removed = try await labeler.apply(empty)
        guard case .patched(0, let n) = removed, n > 0 else { Issue.record("expected removals, got \(removed)"); return }
        let (finalLabels, annotations) = try await nodes.metadata(node: "edge-n1")
        #expect(finalLabels == others)
        #expect(annotations[AcceleratorLabels.managedAnnotation] == nil)
        #expect(try await labeler.apply(empty) == .unchanged)
        #expect(k.server.denied == [])
        await k.close()
    }

    @Test func apiErrorsAreClear() async throws {
        let (k, _, nodes) = try await setUp([:])
        try "wrong-token\n".write(toFile: k.tokenFile, atomically: true, encoding: .utf8)
        let wrong = await #expect(throws: KubernetesAPIError.self) { try await nodes.metadata(node: "edge-n1") }
        #expect(wrong?.status == 401 && wrong?.isRetriable == false)
        try "\(FakeKubernetesServer.monitorToken)\n".write(toFile: k.tokenFile, atomically: true, encoding: .utf8)
        let unknown = await #expect(throws: KubernetesAPIError.self) { try await nodes.metadata(node: "other-node") }
        #expect(unknown?.status == 404 && unknown?.reason == "NotFound")
        await k.close()
    }

    @Test func theLoopLabelsTheNodeAndPublishesTheInventoryToKafka() async throws {
        let (k, labeler, nodes) = try await setUp(["team": "vision"])
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        try cluster.createTopic(AcceleratorMonitor.topic, partitions: 1)
        let kafka = KafkaConfiguration(brokers: cluster.bootstrapServers, clientID: "test")
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: kafka), logger: logger)
        let t = NodeFiles()
        t.pci("0000:3b:00.0", device: "1db4")
        let monitor = AcceleratorMonitor(
            scanner: AcceleratorScanner(hostRoot: t.root, imagePCIIDs: []), labeler: labeler, producer: producer,
            node: "edge-n1", cluster: "edge1", interval: .milliseconds(200), logger: logger)
        // Not ready before its first scan went through; ready after, and not once scans stop.
        #expect(!monitor.health.healthy(within: .seconds(60)))
        let group = ServiceGroup(services: [monitor, Trigger()], logger: logger)
        let running = Task { try await group.run() }

        try await eventually("node labelled") { (try? await nodes.metadata(node: "edge-n1").labels["nvidia.com/gpu.count"]) == "1" }
        try await eventually("ready") { monitor.health.healthy(within: .seconds(60)) }
        #expect(!monitor.health.healthy(within: .seconds(60), now: .now + .seconds(120)))
        var config = KafkaConsumerConfiguration(client: kafka, groupID: TestEnv.unique("sched"), topics: [AcceleratorMonitor.topic])
        config.sessionTimeout = .seconds(6)
        let consumer = try KafkaConsumer(configuration: config, logger: logger)
        var first: KafkaMessage?
        for await m in consumer {
            first = m
            break
        }
        let message = try #require(first)
        #expect(message.keyString == "edge-n1")
        let envelope = try EnvelopeCodec().decode(message.value)
        #expect(envelope.hcode == .nodeAccelerators)
        #expect(envelope.source == .node(cluster: "edge1", node: "edge-n1"))
        try await consumer.close()

        // Rescans with nothing new send no patch and publish nothing more.
        let patchesBefore = patchCount(k)
        try await Task.sleep(for: .milliseconds(700))
        #expect(patchCount(k) == patchesBefore)

        await group.triggerGracefulShutdown()
        try await running.value
        await producer.shutdown()
        #expect(k.server.denied == [])
        await k.close()
    }

    @Test func onceprintsTheInventoryAsJSON() async throws {
        let t = NodeFiles()
        t.pci("0000:3b:00.0", device: "1db4")
        let child = try ChildProcess("accelerator-monitor", ["--once", "--host-root", t.root.path, "--node-name", "edge-n1"])
        try await child.waitForExit()
        let line = try #require(child.lines.first)
        let json = try JSONValue.parse(Array(line.utf8))
        #expect(json["node"] == .string("edge-n1"))
        guard case .array(let items)? = json["accelerators"] else { Issue.record("no accelerators list in \(line)"); return }
        #expect(items.count == 1)
        #expect(items.first?["kind"] == .string("nvidia-gpu"))
        #expect(items.first?["device_id"] == .string("1db4"))
    }
}

/// A minimal node tree for these tests.
final class NodeFiles {
    let root = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("node"))
    deinit { try? FileManager.default.removeItem(at: root) }

    func pci(_ address: String, device: String) {
        let dir = root.appendingPathComponent("sys/bus/pci/devices/\(address)")
        try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try! Data("0x10de\n".utf8).write(to: dir.appendingPathComponent("vendor"))
        try! Data("0x\(device)\n".utf8).write(to: dir.appendingPathComponent("device"))
        try! Data("0x030200\n".utf8).write(to: dir.appendingPathComponent("class"))
    }
}
