import Foundation
import GEdgeAccelerators
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
import ServiceLifecycle
import Testing

/// Node labelling against a fake Kubernetes API that follows the real one's paths, verbs,
/// content types and status codes (Tests/Fixtures/fake_kube.py).
@Suite("Accelerator monitor", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(1)))
struct AcceleratorMonitorTests {
    let logger = TestEnv.logger

    func setUp(_ initialLabels: [String: String]) throws -> (EchoServer, HTTPClient, NodeLabeler, KubernetesNodes, URL) {
        let json = String(decoding: JSONValue.object(initialLabels.mapValues(JSONValue.string)).serialized(), as: UTF8.self)
        let api = try EchoServer(script: "fake_kube.py", arguments: ["edge-n1", json])
        let tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("token"))
        try "test-token\n".write(to: tokenFile, atomically: true, encoding: .utf8)
        let client = HTTPClient(logger: logger)
        let nodes = KubernetesNodes(client: client, configuration: KubernetesAPIConfiguration(url: api.base, tokenFile: tokenFile.path))
        return (api, client, NodeLabeler(nodes: nodes), nodes, tokenFile)
    }

    func patchCount(_ api: EchoServer, _ client: HTTPClient) async throws -> Int {
        let r = try await client.execute(HTTPRequest(url: api.base + "/debug/patches"))
        guard case .number(let n)? = try r.json()["patches"] else { return -1 }
        return Int(n)
    }

    @Test func labelsAreAddedChangedAndRemovedAndOthersNeverTouched() async throws {
        let others = ["kubernetes.io/hostname": "edge-n1", "team": "vision", "gpu.vendor": "set-by-someone"]
        let (api, client, labeler, nodes, _) = try setUp(others)

        // Two V100s appear.
        let t = NodeFiles()
        t.pci("0000:3b:00.0", device: "1db4")
        t.pci("0000:d8:00.0", device: "1db4")
        let first = AcceleratorScanner(hostRoot: t.root).scan(node: "edge-n1")
        #expect(try await labeler.apply(first) == .patched(set: AcceleratorLabels.labels(for: first).count, removed: 0))
        var labels = try await nodes.metadata(node: "edge-n1").labels
        #expect(labels["accelerator.gedge.io/nvidia-gpu.count"] == "2")
        #expect(labels["nvidia.com/gpu.count"] == "2")
        // reActor's NVIDIA labels come from nvidia-smi, which this node does not have.
        #expect(labels["gpu.model"] == nil && labels["gpu.product.id"] == nil)

        // Nothing changed: nothing is sent.
        #expect(try await labeler.apply(first) == .unchanged)
        #expect(try await patchCount(api, client) == 1)

        // One GPU is gone and the other is a different model: counts and ids change.
        let t2 = NodeFiles()
        t2.pci("0000:3b:00.0", device: "2204")
        let second = AcceleratorScanner(hostRoot: t2.root).scan(node: "edge-n1")
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
        await client.shutdown()
    }

    @Test func apiErrorsAreClear() async throws {
        let (_, client, _, _, tokenFile) = try setUp([:])
        try "wrong-token\n".write(to: tokenFile, atomically: true, encoding: .utf8)
        let api2 = try EchoServer(script: "fake_kube.py", arguments: ["edge-n1", "{}"])
        let nodes = KubernetesNodes(client: client, configuration: KubernetesAPIConfiguration(url: api2.base, tokenFile: tokenFile.path))
        do {
            _ = try await nodes.metadata(node: "edge-n1")
            Issue.record("a wrong token must be refused")
        } catch let e as KubernetesAPIError {
            #expect(e.status == 401)
            #expect(!e.isRetriable)
        }
        try "test-token\n".write(to: tokenFile, atomically: true, encoding: .utf8)
        do {
            _ = try await nodes.metadata(node: "other-node")
            Issue.record("an unknown node must be 404")
        } catch let e as KubernetesAPIError {
            #expect(e.status == 404)
        }
        await client.shutdown()
    }

    @Test func theLoopLabelsTheNodeAndPublishesTheInventoryToKafka() async throws {
        let (api, client, labeler, nodes, _) = try setUp(["team": "vision"])
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        try cluster.createTopic(AcceleratorMonitor.topic, partitions: 1)
        let kafka = KafkaConfiguration(brokers: cluster.bootstrapServers, clientID: "test")
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: kafka), logger: logger)
        let t = NodeFiles()
        t.pci("0000:3b:00.0", device: "1db4")
        let monitor = AcceleratorMonitor(
            scanner: AcceleratorScanner(hostRoot: t.root), labeler: labeler, producer: producer,
            node: "edge-n1", cluster: "edge1", interval: .milliseconds(200), logger: logger)
        let group = ServiceGroup(services: [monitor, Trigger()], logger: logger)
        let running = Task { try await group.run() }

        try await eventually("node labelled") { (try? await nodes.metadata(node: "edge-n1").labels["nvidia.com/gpu.count"]) == "1" }
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
        let patchesBefore = try await patchCount(api, client)
        try await Task.sleep(for: .milliseconds(700))
        #expect(try await patchCount(api, client) == patchesBefore)

        await group.triggerGracefulShutdown()
        try await running.value
        await producer.shutdown()
        await client.shutdown()
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
