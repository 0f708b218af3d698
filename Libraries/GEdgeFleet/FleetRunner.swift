import Foundation
import GEdgeCore
import GEdgeKafka
import Logging
import ServiceLifecycle

/// Runs a `Fleet` against a real broker: every cluster's status reports on the status topic
/// (each at its own phase of the interval, and soon after a change), its probes every
/// latency interval, and the commands on every cluster's topic (`gedge.agent.<name>`), read
/// by consumers of a few hundred topics each, answered on their reply topics. One process
/// and one producer, whatever the number of clusters.
public final class FleetRunner: Service, Sendable {
    public let fleet: Fleet
    let kafka: KafkaConfiguration
    let logger: Logger
    let group: String
    let statsInterval: Duration
    public let topicsPerConsumer: Int
    let thread = DedicatedThread(name: "fleet-probes")
    /// Set once the fleet's topics exist and its consumer has its partitions.
    public let ready = RunFlag(false)

    public init(fleet: Fleet, kafka: KafkaConfiguration, group: String? = nil, statsInterval: Duration = .seconds(10),
                topicsPerConsumer: Int = FleetRunner.defaultTopicsPerConsumer, logger: Logger) {
        self.fleet = fleet
        self.topicsPerConsumer = max(1, topicsPerConsumer)
        self.kafka = kafka
        self.group = group ?? "gedge-fleet-\(fleet.settings.prefix)"
        self.statsInterval = statsInterval
        self.logger = logger
    }

    public func run() async throws {
        defer { thread.stop() }
        var producerConfig = KafkaProducerConfiguration(client: kafka)
        producerConfig.lingerMs = 5
        let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
        // Every cluster's command topic, named: the consumers' metadata requests create those
        // that do not exist yet where the broker allows it (the dev broker does; on a broker
        // that does not, create them first: one partition each is enough). The topics are
        // shared among several consumers (`topicsPerConsumer` each): librdkafka finds a topic
        // by name in a list, and one consumer of thousands of topics spends its time there.
        var client = kafka
        if client["allow.auto.create.topics"] == nil { client["allow.auto.create.topics"] = "true" }
        let topics = (0..<fleet.count).map { Topics.agentCommands(cluster: fleet.name($0)) }
        var shards: [KafkaConsumer] = []
        for start in stride(from: 0, to: topics.count, by: topicsPerConsumer) {
            var c = KafkaConsumerConfiguration(client: client, groupID: group, topics: Array(topics[start..<min(topics.count, start + topicsPerConsumer)]))
            c.autoOffsetReset = "latest"
            c.bufferCapacity = 1024
            shards.append(try KafkaConsumer(configuration: c, logger: logger))
        }
        let consumers = shards
        let running = RunFlag(true)
        logger.info("fleet starting", metadata: ["clusters": "\(fleet.count)", "nodes": "\(fleet.settings.nodesPerCluster)"])

        await withTaskCancellationOrGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.watchAssignment(consumers, running) }
                group.addTask { await self.report(producer, running) }
                group.addTask { await self.probe(running) }
                for consumer in consumers { group.addTask { await self.commands(consumer, producer) } }
                group.addTask { await self.logStats(running) }
                // On shutdown the loops asleep (reports, probes, the stats line) are woken
                // by cancellation rather than waited for.
                while running.isSet { try? await Task.sleep(for: .milliseconds(50)) }
                group.cancelAll()
            }
        } onCancelOrGracefulShutdown: {
            running.set(false)
            for consumer in consumers { consumer.stopPolling() }
        }
        // Each leaves its group: all at once, not one after another.
        await withTaskGroup(of: Void.self) { group in
            for consumer in consumers { group.addTask { try? await consumer.close() } }
        }
        await producer.shutdown()
        logger.info("fleet stopped", metadata: ["stats": "\(fleet.stats.current)"])
    }

    /// Topics read by one consumer.
    public static let defaultTopicsPerConsumer = 100

    func watchAssignment(_ consumers: [KafkaConsumer], _ running: RunFlag) async {
        while running.isSet {
            let assigned = consumers.map { Set(((try? $0.assignment()) ?? []).map(\.topic)).count }.reduce(0, +)
            if assigned >= fleet.count {
                ready.set(true)
                logger.info("fleet ready", metadata: ["topics": "\(assigned)", "consumers": "\(consumers.count)"])
                return
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    func publish(_ producer: KafkaProducer, topic: String, key: String, value: [UInt8]) async {
        while true {
            do {
                try producer.enqueue(KafkaRecord(topic: topic, key: key, value: value)) { [fleet] result in
                    if case .failure = result { fleet.stats.add { $0.publishFailures += 1 } }
                }
                return
            } catch let e where e.isQueueFull {
                try? await Task.sleep(for: .milliseconds(1))
            } catch {
                fleet.stats.add { $0.publishFailures += 1 }
                return
            }
        }
    }

    /// Each cluster reports when due; the loop looks every 20 ms.
    func report(_ producer: KafkaProducer, _ running: RunFlag) async {
        while running.isSet {
            let now = ContinuousClock.now
            for i in 0..<fleet.count where fleet.due(i, now: now) {
                let (bytes, _) = await fleet.report(i, now: now)
                await publish(producer, topic: fleet.settings.statusTopic, key: fleet.name(i), value: bytes)
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// A probe period for every cluster each latency interval, on its own thread (CPU work).
    func probe(_ running: RunFlag) async {
        while running.isSet {
            let fleet = fleet
            _ = try? await thread.run { fleet.probeRound() }
            try? await Task.sleep(for: fleet.settings.latencyInterval)
        }
    }

    func commands(_ consumer: KafkaConsumer, _ producer: KafkaProducer) async {
        let prefix = Topics.agentCommands(cluster: "")
        while true {
            let batch = await consumer.nextBatch(max: 500)
            if batch.isEmpty { break }
            await withTaskGroup(of: (topic: String, key: String, bytes: [UInt8])?.self) { group in
                for m in batch {
                    guard m.topic.hasPrefix(prefix), let i = fleet.index(of: String(m.topic.dropFirst(prefix.count))) else { continue }
                    let key = m.keyString ?? ""
                    let value = m.value
                    group.addTask { await self.fleet.handle(cluster: i, key: key, value: value) }
                }
                for await reply in group {
                    if let reply { await publish(producer, topic: reply.topic, key: reply.key, value: reply.bytes) }
                }
            }
        }
    }

    func logStats(_ running: RunFlag) async {
        guard statsInterval > .zero else { return }
        var before = fleet.stats.current
        while running.isSet {
            try? await Task.sleep(for: statsInterval)
            let now = fleet.stats.current
            logger.info("fleet", metadata: [
                "reports": "\(now.reports - before.reports)", "snapshots": "\(now.snapshots - before.snapshots)",
                "status_bytes": "\(now.statusBytes - before.statusBytes)", "applies": "\(now.applies - before.applies)",
                "refused": "\(now.refused - before.refused)", "snapshot_asks": "\(now.snapshotAsks - before.snapshotAsks)",
                "publish_failures": "\(now.publishFailures - before.publishFailures)",
            ])
            before = now
        }
    }
}
