import Foundation
import GEdgeCore
import GEdgeKafka
import GEdgePostgres
import GEdgeScheduler
import Testing

@Suite("Scheduler ingest", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(2)))
struct SchedulerIngestTests {
    let logger = TestEnv.logger

    @Test func recordsEachRequestOnceAndDeadLettersTheRest() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        let topic = TestEnv.unique("requests")
        try cluster.createTopic(topic, partitions: 3)
        try cluster.createTopic(Topics.deadLetter(for: topic), partitions: 1)
        let schema = TestEnv.unique("s").replacingOccurrences(of: "-", with: "_")
        let admin = PostgresPool(configuration: PostgresConfiguration(url: TestEnv.postgresURL, poolSize: 1), logger: logger)
        try await admin.execute("CREATE SCHEMA \(schema)")
        admin.shutdown()
        let pool = PostgresPool(configuration: PostgresConfiguration(url: TestEnv.postgresURL + "?options=-csearch_path%3D\(schema)"), logger: logger)
        try await PostgresMigrator(pool: pool, logger: logger).migrate(try RequestStore.migrations())
        let store = RequestStore(pool: pool)

        let kafka = KafkaConfiguration(brokers: cluster.bootstrapServers, clientID: "test")
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: kafka), logger: logger)
        let codec = EnvelopeCodec()
        let request = ScheduleRequest(
            requestID: "req-1", policy: .mostRequested, userName: "u", workspaceName: "w", projectName: "p", fast: true,
            workload: .string("kind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n"))
        let bytes = codec.encode(request.envelope())
        // The same request twice (a producer retry), then two that cannot be scheduled.
        for _ in 0..<2 { _ = try await producer.send(KafkaRecord(topic: topic, key: "req-1", value: bytes)) }
        _ = try await producer.send(KafkaRecord(topic: topic, key: "bad-json", value: Array("{\"source\":".utf8)))
        let wrongCode = Envelope(source: .cluster("c1"), target: .cluster("c2"), hcode: .clusterLatency, lcode: .request, msg: .null)
        _ = try await producer.send(KafkaRecord(topic: topic, key: "wrong-code", value: codec.encode(wrongCode)))

        var config = KafkaConsumerConfiguration(client: kafka, groupID: TestEnv.unique("scheduler"), topics: [topic])
        config.sessionTimeout = .seconds(6)
        let consumer = try KafkaConsumer(configuration: config, logger: logger)
        let context = SchedulerContext(
            settings: SchedulerSettings(instance: "test"), queue: RequestQueue(pool: pool, policy: QueuePolicy()), view: ClusterView(),
            producer: producer, logger: logger)
        let ingest = RequestIngest(consumer: consumer, context: context, deadLetters: KafkaDeadLetterPublisher(producer: producer, logger: logger))
        let running = Task { try await ingest.run() }

        try await eventually("request recorded") { try await store.request(id: "req-1")?.state == .enqueued }
        let dlqConfig = KafkaConsumerConfiguration(client: kafka, groupID: TestEnv.unique("dlq"), topics: [Topics.deadLetter(for: topic)])
        let dlq = try KafkaConsumer(configuration: dlqConfig, logger: logger)
        var dead: [String: String] = [:]
        for await m in dlq {
            dead[m.keyString ?? ""] = m.header(MessageHeaders.errorField).map { String(decoding: $0, as: UTF8.self) }
            if dead.count == 2 { break }
        }
        #expect(dead == ["bad-json": "", "wrong-code": "hcode"])
        try await dlq.close()

        // Give the duplicate time to be processed, then check it changed nothing.
        try await Task.sleep(for: .milliseconds(500))
        let events = try await store.lifecycle(id: "req-1")
        #expect(events.map(\.state) == [.received, .enqueued])
        #expect(events.last?.reason == "fast queue")
        let count = try await pool.query("SELECT count(*) AS n FROM schedule_requests").first?.decode("n", as: Int.self)
        #expect(count == 1)

        consumer.stopPolling()
        try await running.value
        // Offsets were committed on the way out: the group has nothing left to read.
        let again = try KafkaConsumer(configuration: config, logger: logger)
        let watchdog = Task {
            try await Task.sleep(for: .seconds(8))
            again.stopPolling()
        }
        var leftover = 0
        for await _ in again { leftover += 1 }
        watchdog.cancel()
        #expect(leftover == 0)
        try await again.close()
        await producer.shutdown()
        pool.shutdown()
    }
}
