import Foundation
import GEdgeCore
import GEdgeKafka
import GEdgePostgres
import GEdgeScheduler
import Logging

// The demo's producer and reporter. Against the GS-Scheduler seed's topology (a cloud
// cluster; edge1, 4 workers ~5 ms from the source; edge2, 2 workers ~1 ms away, with GPUs),
// it publishes schedule requests under each policy to Kafka as a producer would, plus one
// malformed message, follows each request in PostgreSQL to its end, and prints where it
// landed and its lifecycle.
//
// Keys: docs/configuration.md ("gedge-demo").

func deployment(_ name: String, cpu: String = "500m", memory: String = "512Mi", replicas: Int = 1, gpu: Int = 0) -> String {
    """
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: \(name)
    spec:
      replicas: \(replicas)
      selector: {matchLabels: {app: \(name)}}
      template:
        metadata: {labels: {app: \(name)}}
        spec:
          containers:
          - name: \(name)
            image: registry.example/gedge/\(name):1.0
            resources:
              requests: {cpu: \(cpu), memory: \(memory)}
    \(gpu > 0 ? "          limits: {nvidia.com/gpu: \(gpu)}" : "")
    """
}

struct DemoRequest {
    var request: ScheduleRequest
    var note: String
}

/// `--demo-load NS/NAME=MILLICORES --demo-load-clusters c1,c2`: offers that much CPU to a
/// workload of the simulated clusters (hcode 790) and exits.
func offerLoad(_ config: ConfigReader, spec: String, logger: Logger) async throws {
    let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
    let names = parts.first?.split(separator: "/").map(String.init) ?? []
    guard parts.count == 2, names.count == 2, let cpu = Double(parts[1]), cpu >= 0 else {
        throw ConfigurationError(key: "demo.load", reason: "'\(spec)' is not NAMESPACE/NAME=MILLICORES")
    }
    let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: KafkaConfiguration(config, clientID: "gedge-demo")), logger: logger)
    let codec = EnvelopeCodec()
    for cluster in config.list("demo.load.clusters", default: ["cloud", "edge1", "edge2"]) {
        let msg: JSONValue = .object(["namespace": .string(names[0]), "name": .string(names[1]), "cpu_milli": .number(cpu)])
        let env = Envelope(source: .cluster("gedge-demo"), target: .cluster(cluster), hcode: .simulateLoad, lcode: .request, msg: msg)
        _ = try await producer.send(KafkaRecord(topic: Topics.agentCommands(cluster: cluster), key: "load-\(names[0])-\(names[1])", value: codec.encode(env)))
    }
    await producer.shutdown()
}

func runDemo() async throws {
    let config = try ConfigReader()
    try config.check(program: "gedge-demo")
    GEdgeLogging.bootstrapConsole(level: .warning)
    let logger = Logger(label: "gedge-demo")
    if let spec = config.string("demo.load") {
        try await offerLoad(config, spec: spec, logger: logger)
        return
    }
    let topic = config.string("scheduler.topic", default: Topics.scheduleRequests)
    let timeout = try config.duration("demo.timeout", default: .seconds(60))
    let kafka = KafkaConfiguration(config, clientID: "gedge-demo")
    let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: kafka), logger: logger)
    let pool = PostgresPool(configuration: try PostgresConfiguration(config, applicationName: "gedge-demo"), logger: logger)
    try await PostgresMigrator(pool: pool, logger: logger).migrate(try RequestStore.migrations())
    let store = RequestStore(pool: pool)
    let queue = RequestQueue(pool: pool, policy: QueuePolicy())
    let codec = EnvelopeCodec()

    Console.line("== project p1 may use cloud, edge1 and edge2; project p2 only edge1")
    try await queue.bind(project: "p1", clusters: ["cloud", "edge1", "edge2"])
    try await queue.bind(project: "p2", clusters: ["edge1"])

    let run = String(RequestID.make().prefix(6))
    func req(_ tag: String, _ policy: SchedulingPolicy, project: String = "p1", fast: Bool = false, workload: String, _ params: [String: JSONValue] = [:]) -> ScheduleRequest {
        ScheduleRequest(requestID: "demo-\(run)-\(tag)", policy: policy, userName: "user1", workspaceName: "w1", projectName: project,
                        fast: fast, workload: .string(workload), parameters: .object(params))
    }
    let first: [DemoRequest] = [
        DemoRequest(request: req("low", .lowLatency, workload: deployment("yolo-pre"), ["source_cluster": .string("cloud"), "source_node": .string("cloud-master"), "preferred": .string("neighbor")]),
                    note: "GLowLatencyPriority from the cloud master, preferring a neighbour: edge2 (~1 ms) beats edge1 (~5 ms)"),
        DemoRequest(request: req("most", .mostRequested, fast: true, workload: deployment("yolo-infer", cpu: "2", memory: "4Gi")),
                    note: "GMostRequestedPriority, fast queue: the node with the most free capacity"),
        DemoRequest(request: req("binpack", .mostAllocated, workload: deployment("redis", cpu: "1", memory: "1Gi")),
                    note: "GMostAllocated (kube-scheduler's bin-packing): the fullest node that fits"),
        DemoRequest(request: req("gpu", .mostRequested, workload: deployment("yolo-gpu", cpu: "4", memory: "8Gi", gpu: 1), ["accelerator": .object(["kind": .string("nvidia-gpu"), "model": .string("V100")])]),
                    note: "a V100 GPU workload: only edge2-w2 carries the accelerator labels"),
        DemoRequest(request: req("select", .selectedCluster, workload: deployment("yolo-post"), ["mode": .string("cluster"), "select_clusters": .string("[edge1,[edge2,cloud]]")]),
                    note: "GSelectedCluster [edge1,[edge2,cloud]]: the first level that fits wins"),
        DemoRequest(request: req("node", .selectedCluster, workload: deployment("dashboard"), ["mode": .string("node"), "select_cluster": .string("edge1"), "select_node": .string("edge1-w3")]),
                    note: "GSelectedCluster node mode: pinned to edge1/edge1-w3"),
        DemoRequest(request: req("set", .setClusters, workload: deployment("media-server", replicas: 3), ["clusters": .array([.string("edge1"), .string("edge2")]), "mode": .string("weighted"), "weights": .object(["edge1": .number(2), "edge2": .number(1)])]),
                    note: "GSetClusters weighted 2:1 over edge1 and edge2, 3 replicas"),
        DemoRequest(request: req("foreign", .selectedCluster, project: "p2", workload: deployment("intruder"), ["select_clusters": .array([.string("edge2")])]),
                    note: "project p2 asks for edge2, which is not its cluster: rejected"),
        DemoRequest(request: req("huge", .mostRequested, workload: deployment("too-big", cpu: "64")),
                    note: "64 CPUs fit nowhere: retried with backoff, then failed after 5 failures"),
    ]
    Console.line("== publishing \(first.count) schedule requests to \(topic) (key = request ID)")
    for d in first {
        let report = try await producer.send(KafkaRecord(topic: topic, key: d.request.requestID, value: codec.encode(d.request.envelope(sourceCluster: "cloud"))))
        Console.line("   \(d.request.requestID.padding(toLength: 20, withPad: " ", startingAt: 0)) \(d.request.policy.rawValue.padding(toLength: 22, withPad: " ", startingAt: 0)) -> partition \(report.partition) offset \(report.offset)")
    }
    let badKey = "demo-\(run)-bad"
    _ = try await producer.send(KafkaRecord(topic: topic, key: badKey, value: Array(#"{"source":{"type":"cluster","object":"cloud"},"target":{"type":"cluster","object":"scheduler"},"hcode":"0x0064","lcode":1,"msg":{"policy":"GLowLatencyPriority","user_name":7}}"#.utf8)))
    Console.line("   \(badKey.padding(toLength: 20, withPad: " ", startingAt: 0)) (malformed: msg.user_name is a number)")

    let terminal: Set<RequestState> = [.completed, .failed, .rejected, .canceled]
    func waitAll(_ ids: [String]) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        var pending = Set(ids)
        while !pending.isEmpty && ContinuousClock.now < deadline {
            for id in pending { if let r = try await store.request(id: id), terminal.contains(r.state) { pending.remove(id) } }
            if !pending.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
        }
        if !pending.isEmpty { Console.line("!! not finished within \(timeout): \(pending.sorted())") }
        return pending.isEmpty
    }
    // The pod-source request needs yolo-pre running first: GLowLatencyPriority from a pod
    // asks its cluster's agent (hcode 530) which node runs it.
    var ok = try await waitAll([first[0].request.requestID])
    let pod = DemoRequest(
        request: req("from-pod", .lowLatency, workload: deployment("tracker"), ["source_cluster": .string("edge2"), "pod_name": .string("yolo-pre-0"), "preferred": .string("local")]),
        note: "GLowLatencyPriority from pod yolo-pre-0: its node is asked of edge2's agent (530), then the pod's own node wins")
    _ = try await producer.send(KafkaRecord(topic: topic, key: pod.request.requestID, value: codec.encode(pod.request.envelope(sourceCluster: "edge2"))))
    let all = first + [pod]
    Console.line("== waiting for every request to end (the 64-CPU one takes a few seconds of retries)")
    ok = try await waitAll(all.map(\.request.requestID)) && ok

    let stamp = DateFormatter()
    stamp.dateFormat = "HH:mm:ss.SSS"
    stamp.timeZone = TimeZone(identifier: "UTC")
    for d in all {
        guard let stored = try await store.request(id: d.request.requestID) else { continue }
        var landed = ""
        if case .array(let parts) = stored.placement, stored.state == .completed {
            landed = parts.map { p in (p["cluster"]?.stringValue ?? "?") + (p["node"]?.stringValue.map { "/\($0)" } ?? "") + ((p["replicas"].flatMap { if case .number(let n) = $0, n != 1 { "×\(Int(n))" } else { nil } }) ?? "") }.joined(separator: ", ")
        }
        Console.line("")
        Console.line("-- \(d.request.requestID): \(d.note)")
        Console.line("   state=\(stored.state.rawValue)  fails=\(stored.failCount)" + (landed.isEmpty ? "" : "  landed on \(landed)") + (stored.state != .completed ? "  reason: \(stored.reason ?? "")" : ""))
        for e in try await store.lifecycle(id: d.request.requestID) {
            Console.line("     \(stamp.string(from: e.at))  \(e.state.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0))  \(e.reason ?? "")")
        }
    }

    Console.line("")
    Console.line("== dead-letter topic \(Topics.deadLetter(for: topic))")
    let dlq = try KafkaConsumer(
        configuration: KafkaConsumerConfiguration(client: kafka, groupID: "gedge-demo-\(run)", topics: [Topics.deadLetter(for: topic)]), logger: logger)
    var found = false
    let watchdog = Task {
        try await Task.sleep(for: timeout)
        dlq.stopPolling()
    }
    for await m in dlq where m.keyString == badKey {
        Console.line("   \(badKey): \(m.header(MessageHeaders.error).map { String(decoding: $0, as: UTF8.self) } ?? "?")")
        found = true
        break
    }
    watchdog.cancel()
    if !found { Console.line("!! the malformed message did not reach the dead-letter topic") }
    dlq.stopPolling()
    try? await dlq.close()
    await producer.shutdown()
    pool.shutdown()
    exit(found && ok ? 0 : 1)
}

await Console.runMain("gedge-demo") { try await runDemo() }
