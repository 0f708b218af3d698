import Foundation
import GEdgeAMQP
import GEdgeCore
import GEdgeFaaS
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePostgres
import GEdgeScheduler
import Logging
import ServiceLifecycle

// FaaS benchmarks against the local stack (`make bench`, release build), printed side by side:
//   1. Activation latency: a message published to an empty queue until the faas-trigger's
//      scale command (hcode 700) reaches the cluster's command topic; bench.activations
//      rounds (pollingInterval 1 s, so that each round returns to zero quickly; activation
//      does not wait for it). KEDA polls every pollingInterval, 30 s by default.
//   2. notifier throughput: bench.events events stored (once each, in PostgreSQL) and acked,
//      beside a bare consume-and-ack of the same number of messages from the same broker.
// Keys: bench.activations (40), bench.events (50000), postgres.url, amqp.url, kafka.brokers.

func say(_ s: String) { FileHandle.standardOutput.write(Data((s + "\n").utf8)) }
func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
func percentile(_ xs: [Double], _ p: Double) -> Double {
    let s = xs.sorted()
    return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
}

func run() async throws {
    let config = try ConfigReader()
    try config.check(program: "gedge-bench-faas")
    GEdgeLogging.bootstrapConsole(level: .error)
    let logger = Logger(label: "gedge-bench-faas")
    let activations = try config.int("bench.activations", default: 40)
    let eventCount = try config.int("bench.events", default: 50_000)
    let runID = String(RequestID.make().prefix(8))
    let amqpURL = config.string("amqp.url", default: "amqp://guest:guest@127.0.0.1:5672/")

    // A schema of its own.
    let base = try PostgresConfiguration(config, applicationName: "gedge-bench-faas")
    let schema = "bench_faas_\(runID)"
    let admin = PostgresPool(configuration: base, logger: logger)
    try await admin.execute("CREATE SCHEMA \(schema)")
    admin.shutdown()
    var scoped = base
    scoped.url = base.url + (base.url.contains("?") ? "&" : "?") + "options=-csearch_path%3D\(schema)"
    scoped.poolSize = 8
    let pool = PostgresPool(configuration: scoped, logger: logger)
    try await PostgresMigrator(pool: pool, logger: logger).migrate(try RequestStore.migrations())

    let amqp = AMQPClient(configuration: try AMQPConfiguration(url: amqpURL), logger: logger)
    try await amqp.waitUntilConnected()
    say("FaaS benchmarks (release build, loopback; RabbitMQ, dev Kafka and PostgreSQL of the local stack)")

    // 1. Activation.
    let cluster = "bench-\(runID)"
    var kafka = KafkaConfiguration(config, clientID: "gedge-bench-faas")
    kafka["fetch.wait.max.ms"] = "5"
    var pc = KafkaProducerConfiguration(client: kafka)
    pc.lingerMs = 0
    let producer = try KafkaProducer(configuration: pc, logger: logger)
    // The command topic exists before the consumer subscribes (produced to once).
    _ = try await producer.send(KafkaRecord(topic: Topics.agentCommands(cluster: cluster), key: "warm-up", value: Array("{}".utf8)))
    var cc = KafkaConsumerConfiguration(client: kafka, groupID: "bench-\(runID)", topics: [Topics.agentCommands(cluster: cluster)])
    cc.autoOffsetReset = "earliest"
    var ck = cc.client
    ck["allow.auto.create.topics"] = "true"
    cc.client = ck
    let commands = try KafkaConsumer(configuration: cc, logger: logger)
    let queue = "bench-activation-\(runID)"
    _ = try await amqp.declareQueue(AMQPQueueSpec(name: queue, autoDelete: false))
    let object = """
        apiVersion: keda.sh/v1alpha1
        kind: ScaledObject
        metadata: {name: bench, namespace: bench}
        spec:
          scaleTargetRef: {name: bench-worker}
          pollingInterval: 1
          cooldownPeriod: 0
          triggers: [{type: rabbitmq, metadata: {host: "\(amqpURL)", protocol: amqp, queueName: \(queue), mode: QueueLength, value: "10"}}]
        """
    let docs = try YAMLDocuments.read(object)
    let parsed = try ScaledObject.parseSet(docs)[0]
    try await FunctionStore(pool: pool).upsert(parsed.object, definition: parsed.definition, cluster: cluster)
    var settings = FaaSSettings()
    settings.cluster = cluster
    settings.reloadInterval = .milliseconds(200)
    let http = HTTPClient(logger: logger)
    let trigger = FaaSTrigger(settings: settings, store: FunctionStore(pool: pool), readers: QueueReaders(http: http, settings: settings, logger: logger), producer: producer, logger: logger)
    let group = ServiceGroup(services: [trigger], logger: logger)
    let running = Task { try await group.run() }

    say("  (activation: \(activations) rounds)")
    var latencies: [Double] = []
    var iterator = commands.makeAsyncIterator()
    // The first command after start-up may be a scale to 0 of a fresh function: wait for quiet.
    try await Task.sleep(for: .seconds(2))
    // One warm-up round (the consumer group's first assignment), not counted.
    for round in 0..<(activations + 1) {
        let start = ContinuousClock.now
        try await amqp.publish(routingKey: queue, message: AMQPMessage(body: Array("{}".utf8)))
        var activated = false
        while !activated, let m = await iterator.next() {
            guard let env = try? EnvelopeCodec().decode(m), env.hcode == .scaleWorkload else { continue }
            if env.msg["replicas"]?.numberValue == 1 { activated = true }
        }
        if round > 0 { latencies.append(seconds(ContinuousClock.now - start) * 1000) }
        _ = try await amqp.purgeQueue(queue)
        // Back at zero (cooldownPeriod 0) before the next round.
        var zero = false
        while !zero, let m = await iterator.next() {
            guard let env = try? EnvelopeCodec().decode(m), env.hcode == .scaleWorkload else { continue }
            if env.msg["replicas"]?.numberValue == 0 { zero = true }
        }
        try await Task.sleep(for: .milliseconds(Int64.random(in: 50...300)))
    }
    await group.triggerGracefulShutdown()
    _ = try? await running.value
    say(String(format: "  activation, publish -> scale command   %3d rounds   p50 %6.0f ms   p99 %6.0f ms   max %6.0f ms   (target p99 < 500 ms)",
                 activations, percentile(latencies, 0.5), percentile(latencies, 0.99), latencies.max() ?? 0))
    _ = try await amqp.deleteQueue(queue)

    // 2. notifier throughput, beside a bare consume-and-ack.
    func fill(_ q: String) async throws {
        _ = try await amqp.declareQueue(AMQPQueueSpec(name: q, autoDelete: false))
        for i in 0..<eventCount {
            try await amqp.publish(routingKey: q, message: AMQPMessage(
                body: Array(#"{"event_id":"\#(q)-\#(i)","type":"fire","camera":"cam-\#(i % 16)","confidence":0.93}"#.utf8)))
        }
    }
    let bare = "bench-bare-\(runID)"
    try await fill(bare)
    let bareClient = AMQPClient(configuration: try AMQPConfiguration(url: amqpURL), logger: logger)
    let t0 = ContinuousClock.now
    let deliveries = try await bareClient.consume(queue: bare, prefetch: 1000)
    var got = 0
    while got < eventCount {
        let batch = await deliveries.nextBatch(max: 500)
        got += batch.count
        if let last = batch.last { try await bareClient.ackThrough(last) }
    }
    let bareTime = seconds(ContinuousClock.now - t0)
    await bareClient.close()
    _ = try await amqp.deleteQueue(bare)

    let fire = "bench-fire-\(runID)"
    try await fill(fire)
    let consumerClient = AMQPClient(configuration: try AMQPConfiguration(url: amqpURL), logger: logger)
    var ns = NotifierSettings()
    ns.queues = [fire]
    let notifier = ServiceGroup(services: [NotificationConsumer(queue: fire, client: consumerClient, pool: pool, settings: ns, wake: Wakeup(), logger: logger)], logger: logger)
    let t1 = ContinuousClock.now
    let nrun = Task { try await notifier.run() }
    while true {
        let stored = try await pool.query("SELECT count(*) AS n FROM notifications").first?.decode("n", as: Int.self) ?? 0
        if stored >= eventCount, try await amqp.queueInfo(fire).messageCount == 0 { break }
        try await Task.sleep(for: .milliseconds(20))
    }
    let notifierTime = seconds(ContinuousClock.now - t1)
    await notifier.triggerGracefulShutdown()
    _ = try? await nrun.value
    _ = try await amqp.deleteQueue(fire)
    _ = try? await amqp.deleteQueue(fire + ".dlq")
    say(String(format: "  bare consume + ack (ceiling)           %6d events in %6.2f s   %8.0f /s", eventCount, bareTime, Double(eventCount) / bareTime))
    say(String(format: "  notifier: stored once + acked          %6d events in %6.2f s   %8.0f /s   (target >= 5000 /s)", eventCount, notifierTime, Double(eventCount) / notifierTime))

    await amqp.close()
    await producer.shutdown()
    await http.shutdown()
    try await pool.execute("DROP SCHEMA \(schema) CASCADE")
    pool.shutdown()
}

await Console.runMain("gedge-bench-faas") { try await run() }
