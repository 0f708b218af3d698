import Foundation
import GEdgeCore
import GEdgeKafka
import GEdgeScheduler
import Logging
import Synchronization
import Testing

/// Each test runs its own librdkafka mock cluster: real Kafka protocol over TCP on loopback,
/// with fault injection.
@Suite("Kafka", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(3)))
struct KafkaTests {
    let logger = TestEnv.logger

    func consumerConfig(_ cluster: KafkaMockCluster, group: String, topic: String) -> KafkaConsumerConfiguration {
        var c = KafkaConsumerConfiguration(client: KafkaConfiguration(brokers: cluster.bootstrapServers, clientID: "test"), groupID: group, topics: [topic])
        c.sessionTimeout = .seconds(6)
        return c
    }

    func producer(_ cluster: KafkaMockCluster) throws -> KafkaProducer {
        try KafkaProducer(configuration: KafkaProducerConfiguration(client: KafkaConfiguration(brokers: cluster.bootstrapServers, clientID: "test")), logger: logger)
    }

    /// Reads messages until `count` have arrived or the time is up.
    func collect(_ consumer: KafkaConsumer, count: Int, timeout: Duration = .seconds(30), store: Bool = true) async throws -> [KafkaMessage] {
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            consumer.stopPolling()
        }
        defer { watchdog.cancel() }
        var out: [KafkaMessage] = []
        for await m in consumer {
            out.append(m)
            if store { try consumer.storeOffset(m) }
            if out.count >= count { break }
        }
        return out
    }

    /// A log handler that keeps what it is given.
    final class Lines: Sendable {
        let held = Mutex<[String]>([])
    }

    struct Recording: LogHandler {
        let lines: Lines
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
            let all = self.metadata.merging(metadata ?? [:]) { $1 }
            lines.held.withLock { $0.append("\(level) \(message) \(all)") }
        }
    }

    /// One configuration serves a service's producer, consumers and admin (as every service
    /// builds them): each librdkafka handle is given only its own properties, so that a start
    /// logs no "is a consumer property and will be ignored" warning.
    @Test func eachClientTakesOnlyItsOwnProperties() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        let lines = Lines()
        let recording = Logger(label: "test") { _ in Recording(lines: lines) }
        let shared = KafkaConfiguration(brokers: cluster.bootstrapServers, clientID: "test", properties: [
            "fetch.wait.max.ms": "10", "session.timeout.ms": "6000", "max.poll.interval.ms": "60000", "auto.offset.reset": "latest",
            "linger.ms": "2", "compression.type": "lz4", "message.timeout.ms": "20000", "batch.num.messages": "100",
        ])
        let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: shared), logger: recording)
        let consumer = try KafkaConsumer(configuration: KafkaConsumerConfiguration(client: shared, groupID: TestEnv.unique("g"), topics: ["t"]), logger: recording)
        let admin = try KafkaAdmin(configuration: shared, logger: recording)
        try await Task.sleep(for: .milliseconds(500))
        let warnings = lines.held.withLock { $0 }.filter { $0.contains("CONFWARN") || $0.contains("will be ignored") }
        #expect(warnings.isEmpty, "\(warnings)")
        consumer.stopPolling()
        try await consumer.close()
        await producer.shutdown()
        _ = admin
    }

    @Test func producesAndConsumesWithKeysHeadersAndDeliveryReports() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: logger)
        let topic = TestEnv.unique("roundtrip")
        try cluster.createTopic(topic, partitions: 4)
        let p = try producer(cluster)
        var reports: [KafkaDeliveryReport] = []
        for i in 0..<20 {
            reports.append(try await p.send(KafkaRecord(topic: topic, key: "key-\(i % 5)", value: Array("value-\(i)".utf8), headers: [KafkaHeader(key: "h", string: "\(i)")])))
        }
        #expect(reports.allSatisfy { $0.topic == topic && $0.offset >= 0 })
        // One key, one partition: order per key holds.
        let byKey = Dictionary(grouping: zip(0..<20, reports), by: { $0.0 % 5 })
        for (_, entries) in byKey { #expect(Set(entries.map { $0.1.partition }).count == 1) }

        let consumer = try KafkaConsumer(configuration: consumerConfig(cluster, group: TestEnv.unique("g"), topic: topic), logger: logger)
        let got = try await collect(consumer, count: 20)
        #expect(Set(got.map { String(decoding: $0.value, as: UTF8.self) }) == Set((0..<20).map { "value-\($0)" }))
        for m in got {
            let i = Int(String(decoding: m.value, as: UTF8.self).dropFirst(6))!
            #expect(m.keyString == "key-\(i % 5)")
            #expect(m.header("h") == Array("\(i)".utf8))
        }
        try await consumer.close()
        await p.shutdown()
    }

    @Test func twoConsumerProcessesInOneGroupSharePartitions() async throws {
        // How long each step took, printed at the end: on a loaded machine the steps' bounds
        // are what a failure is read against.
        var steps: [(String, Duration)] = []
        var mark = ContinuousClock.now
        func step(_ name: String) {
            let now = ContinuousClock.now
            steps.append((name, now - mark))
            mark = now
        }
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        let topic = TestEnv.unique("shared")
        try cluster.createTopic(topic, partitions: 6)
        step("mock cluster and topic")
        let group = TestEnv.unique("group")
        // Group-protocol debug lines go to each child's own error log: a close that does not
        // end shows there what the group was waiting for.
        let args = ["kafka-consume", "--brokers", cluster.bootstrapServers, "--group", group, "--topic", topic,
                    "--log-level", "debug", "--kafka-debug", "cgrp"]
        let a = try ChildProcess("gedge-testkit", args, errorLog: true)
        let b = try ChildProcess("gedge-testkit", args, errorLog: true)
        step("children started")
        // Wait for the group to settle with both members holding partitions.
        try await eventually("both members assigned", timeout: .seconds(40)) {
            func owned(_ p: ChildProcess) -> Set<String> {
                Set(p.lines(prefix: "ASSIGNED ").last.map { $0.dropFirst(9).split(separator: ",").map(String.init) } ?? [])
            }
            let (pa, pb) = (owned(a), owned(b))
            return !pa.isEmpty && !pb.isEmpty && pa.isDisjoint(with: pb) && pa.union(pb).count == 6
        }
        step("settle")
        let settled = (a.lines(prefix: "ASSIGNED ").count, b.lines(prefix: "ASSIGNED ").count)
        let p = try producer(cluster)
        for i in 0..<120 {
            _ = try await p.send(KafkaRecord(topic: topic, key: "k\(i)", value: Array("\(i)".utf8)))
        }
        func keys(_ c: ChildProcess) -> Set<Substring> { Set(c.lines(prefix: "MSG ").map { $0.split(separator: " ")[3] }) }
        try await eventually("all 120 consumed", timeout: .seconds(60)) { keys(a).union(keys(b)).count >= 120 }
        step("produce and consume")
        let (keysA, keysB) = (keys(a), keys(b))
        let partsA = Set(a.lines(prefix: "MSG ").map { $0.split(separator: " ")[1] })
        let partsB = Set(b.lines(prefix: "MSG ").map { $0.split(separator: " ")[1] })
        #expect(!keysA.isEmpty && !keysB.isEmpty, "both members consumed")
        #expect(keysA.union(keysB).count == 120)
        if a.lines(prefix: "ASSIGNED ").count == settled.0 && b.lines(prefix: "ASSIGNED ").count == settled.1 {
            #expect(keysA.isDisjoint(with: keysB), "no message went to both")
            #expect(partsA.isDisjoint(with: partsB), "no partition was read by both")
        } else {
            // A rebalance during the run (a member missed the rebalance timeout on a loaded
            // machine): Kafka redelivers from the last commit, so a message may reach both,
            // but only on a partition that moved, one that both members were assigned.
            func everAssigned(_ c: ChildProcess) -> Set<Substring> {
                Set(c.lines(prefix: "ASSIGNED ").flatMap { $0.dropFirst(9).split(separator: ",") })
            }
            let moved = everAssigned(a).intersection(everAssigned(b))
            let twice = a.lines(prefix: "MSG ").filter { keysB.contains($0.split(separator: " ")[3]) }.map { $0.split(separator: " ")[1] }
            #expect(Set(twice).isSubset(of: moved), "a message went to both on a partition that never moved: \(Set(twice)) vs \(moved)")
        }
        // One after the other, as a rolling restart stops them: the second once the group
        // has settled again, all six partitions its own. (Stopped in the middle of the
        // rebalance the first one's leaving started, a member's close can wait on the mock
        // broker's coordinator.) A close waits for the group (the final commit, the
        // unassign, the leave) at most its close timeout, 20 s here, so each ends well
        // within 40 s.
        a.kill(SIGTERM)
        try await a.waitForExit(timeout: .seconds(40))
        step("first close")
        try await eventually("the other member holding all six", timeout: .seconds(40)) {
            b.lines(prefix: "ASSIGNED ").last.map { $0.dropFirst(9).split(separator: ",").count } == 6
        }
        step("group settled again")
        b.kill(SIGTERM)
        try await b.waitForExit(timeout: .seconds(40))
        step("second close")
        for c in [a, b] {
            #expect(c.lines.contains("CLOSED"), "graceful close on SIGTERM: \(c.lines.suffix(1))\n\(c.errorLogTail())")
        }
        await p.shutdown()
        step("producer shutdown")
        print("twoConsumerProcessesInOneGroupSharePartitions steps: " + steps.map { "\($0.0) \($0.1)" }.joined(separator: ", "))
    }

    @Test func aConsumerKilledBeforeCommitLeavesItsMessagesToBeRedelivered() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        let topic = TestEnv.unique("redeliver")
        try cluster.createTopic(topic, partitions: 2)
        let group = TestEnv.unique("group")
        let p = try producer(cluster)
        for i in 0..<10 { _ = try await p.send(KafkaRecord(topic: topic, key: "k\(i)", value: Array("m\(i)".utf8))) }

        // The child reads all ten but never stores an offset, then dies hard.
        let child = try ChildProcess("gedge-testkit", ["kafka-consume", "--brokers", cluster.bootstrapServers, "--group", group, "--topic", topic, "--store", "false", "--session-timeout", "3s"])
        try await eventually("child read all ten") { child.lines(prefix: "MSG ").count >= 10 }
        try await Task.sleep(for: .milliseconds(1500))  // past an auto-commit interval: nothing was stored, nothing commits
        child.kill(SIGKILL)
        try await child.waitForExit()

        let consumer = try KafkaConsumer(configuration: consumerConfig(cluster, group: group, topic: topic), logger: logger)
        let again = try await collect(consumer, count: 10, timeout: .seconds(40))
        #expect(Set(again.map { $0.keyString ?? "" }) == Set((0..<10).map { "k\($0)" }))
        try await consumer.close()

        // Those were stored and committed on close: a new member of the group sees none of them.
        for i in 10..<12 { _ = try await p.send(KafkaRecord(topic: topic, key: "k\(i)", value: Array("m\(i)".utf8))) }
        let next = try KafkaConsumer(configuration: consumerConfig(cluster, group: group, topic: topic), logger: logger)
        let rest = try await collect(next, count: 2)
        #expect(Set(rest.map { $0.keyString ?? "" }) == ["k10", "k11"])
        try await next.close()
        await p.shutdown()
    }

    @Test func aCloseTheCoordinatorDoesNotAnswerEndsAtItsTimeout() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        let topic = TestEnv.unique("close")
        try cluster.createTopic(topic, partitions: 2)
        let p = try producer(cluster)
        for i in 0..<3 { _ = try await p.send(KafkaRecord(topic: topic, key: "k\(i)", value: Array("m\(i)".utf8))) }
        await p.shutdown()
        var config = consumerConfig(cluster, group: TestEnv.unique("group"), topic: topic)
        config.closeTimeout = .seconds(3)
        let consumer = try KafkaConsumer(configuration: config, logger: logger)
        // Each joins and reads all three; then the broker goes: the leave gets no answer.
        _ = try await collect(consumer, count: 3)
        // A second member, of a group of its own, is dropped without close(): its deinit
        // closes, within the same bound.
        final class Holder: @unchecked Sendable { var consumer: KafkaConsumer? }
        let holder = Holder()
        do {
            config.groupID = TestEnv.unique("group")
            let second = try KafkaConsumer(configuration: config, logger: logger)
            _ = try await collect(second, count: 3)
            holder.consumer = second
        }
        try cluster.setBrokerDown(1)
        let started = ContinuousClock.now
        var failure: KafkaError?
        do { try await consumer.close() } catch let e as KafkaError { failure = e }
        let took = ContinuousClock.now - started
        #expect(failure?.isTimedOut == true, "close gives up with timedOut: \(String(describing: failure))")
        #expect(took >= .seconds(3) && took < .seconds(15), "close took \(took)")
        // The last reference goes on a thread of its own: the deinit blocks while it waits.
        let dropped: Duration = await withCheckedContinuation { done in
            Thread {
                let start = ContinuousClock.now
                holder.consumer = nil
                done.resume(returning: ContinuousClock.now - start)
            }.start()
        }
        #expect(dropped < .seconds(15), "a dropped consumer's close took \(dropped)")
        try cluster.setBrokerUp(1)
    }

    /// librdkafka's mock broker keeps about 5 MB of a partition and drops its oldest batch
    /// at every append past that. A consumer that starts at the log's start asks for a batch
    /// that an append has dropped by the time its fetch arrives (here every answer is 100 ms
    /// late), is reset to the new start after `fetch.error.backoff.ms` (500 ms), and is out
    /// of range again: it reads nothing while the topic is written. The cluster views'
    /// consumers (`ClusterStatusListener.consumerConfiguration`, as the services make them)
    /// start at the end and read such a topic at once.
    @Test func aViewConsumerReadsATopicWhoseOldestBatchesAreDroppedAsItStarts() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        let topic = TestEnv.unique("front")
        try cluster.createTopic(topic, partitions: 1)
        // One message a batch, as a fleet's reports come, past the mock's 5 MB.
        var config = KafkaProducerConfiguration(client: KafkaConfiguration(brokers: cluster.bootstrapServers, clientID: "test"))
        config.client.properties["batch.num.messages"] = "1"
        let p = try KafkaProducer(configuration: config, logger: logger)
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: 1024)
        for i in 0..<5_600 {
            while true {
                do { try p.enqueue(KafkaRecord(topic: topic, key: "old-\(i)", value: value)) { _ in }; break } catch { try await Task.sleep(for: .milliseconds(5)) }
            }
        }
        try await p.flush(timeout: .seconds(30))
        try cluster.setBrokerRTT(1, milliseconds: 100)
        // The topic goes on being written: each append drops the oldest batch.
        let writer = Task {
            var i = 0
            while !Task.isCancelled {
                try? p.enqueue(KafkaRecord(topic: topic, key: "new-\(i)", value: value)) { _ in }
                i += 1
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        defer { writer.cancel() }
        var c = ClusterStatusListener.consumerConfiguration(client: KafkaConfiguration(brokers: cluster.bootstrapServers, clientID: "test"), group: TestEnv.unique("view"), topic: topic)
        c.sessionTimeout = .seconds(6)
        let consumer = try KafkaConsumer(configuration: c, logger: logger)
        let started = ContinuousClock.now
        let got = try await collect(consumer, count: 20, timeout: .seconds(20), store: false)
        #expect(got.count == 20, "read \(got.count) in \(ContinuousClock.now - started)")
        #expect(got.allSatisfy { $0.keyString?.hasPrefix("new-") == true }, "only what was written after it started: \(got.prefix(3).map { $0.keyString ?? "" })")
        try await consumer.close()
        writer.cancel()
        try cluster.setBrokerRTT(1, milliseconds: 0)
        await p.shutdown()
    }

    @Test func aBrokerTakenDownAndUpLosesNothing() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: logger)
        let topic = TestEnv.unique("faults")
        try cluster.createTopic(topic, partitions: 6, replicationFactor: 3)
        let p = try producer(cluster)
        let total = 300
        let failed = RunFlag(false)
        // Sends run while broker 1 (leader of some partitions) goes down and comes back.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                try await Task.sleep(for: .milliseconds(100))
                try cluster.setBrokerDown(1)
                try await Task.sleep(for: .seconds(2))
                try cluster.setBrokerUp(1)
            }
            for i in 0..<total {
                group.addTask {
                    do {
                        _ = try await p.send(KafkaRecord(topic: topic, key: "k\(i)", value: Array("\(i)".utf8)))
                    } catch {
                        failed.set(true)
                    }
                }
                if i % 50 == 0 { try await Task.sleep(for: .milliseconds(100)) }
            }
            try await group.waitForAll()
        }
        #expect(!failed.isSet, "every send was delivered")
        let consumer = try KafkaConsumer(configuration: consumerConfig(cluster, group: TestEnv.unique("g"), topic: topic), logger: logger)
        let got = try await collect(consumer, count: total, timeout: .seconds(60))
        let values = got.map { String(decoding: $0.value, as: UTF8.self) }
        #expect(Set(values) == Set((0..<total).map(String.init)), "every message arrived")
        #expect(values.count == total, "no duplicates (idempotent producer)")
        try await consumer.close()
        await p.shutdown()
    }

    @Test func pausedPartitionsResumeInTheSameMember() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        let topic = TestEnv.unique("resume")
        try cluster.createTopic(topic, partitions: 1)
        let assigned = Mutex(false)
        let consumer = try KafkaConsumer(configuration: consumerConfig(cluster, group: TestEnv.unique("g"), topic: topic), logger: logger) { event in
            if case .assigned(let parts) = event, !parts.isEmpty { assigned.withLock { $0 = true } }
        }
        try await eventually("assignment") { assigned.withLock { $0 } }
        try consumer.pause()
        let p = try producer(cluster)
        for i in 0..<3 { _ = try await p.send(KafkaRecord(topic: topic, key: "k\(i)", value: [UInt8(i)])) }
        let received = Mutex(0)
        let reader = Task {
            for await m in consumer {
                try consumer.storeOffset(m)
                let n = received.withLock { $0 += 1; return $0 }
                if n == 3 { break }
            }
        }
        try await Task.sleep(for: .seconds(1))
        #expect(received.withLock { $0 } == 0, "nothing while paused")
        try consumer.resume()
        try await eventually("delivery after resume") { received.withLock { $0 } == 3 }
        try await reader.value
        try await consumer.close()
        await p.shutdown()
    }

    @Test func rebalanceMovesPartitionsWhenAMemberLeaves() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        let topic = TestEnv.unique("rebalance")
        try cluster.createTopic(topic, partitions: 4)
        let group = TestEnv.unique("g")
        let eventsA = Mutex<[KafkaRebalanceEvent]>([])
        let a = try KafkaConsumer(configuration: consumerConfig(cluster, group: group, topic: topic), logger: logger) { e in eventsA.withLock { $0.append(e) } }
        try await eventually("a owns all four") { (try? a.assignment().count) == 4 }
        let b = try KafkaConsumer(configuration: consumerConfig(cluster, group: group, topic: topic), logger: logger)
        try await eventually("partitions split", timeout: .seconds(40)) {
            let (na, nb) = ((try? a.assignment().count) ?? 0, (try? b.assignment().count) ?? 0)
            return na > 0 && nb > 0 && na + nb == 4
        }
        #expect(eventsA.withLock { $0.contains { if case .revoked = $0 { true } else { false } } }, "a saw its partitions revoked")
        try await b.close()
        try await eventually("a owns all four again", timeout: .seconds(40)) { (try? a.assignment().count) == 4 }
        try await a.close()
    }

    @Test func undecodableMessagesGoToTheDeadLetterTopic() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        let topic = TestEnv.unique("in")
        try cluster.createTopic(topic, partitions: 1)
        try cluster.createTopic(Topics.deadLetter(for: topic), partitions: 1)
        let p = try producer(cluster)
        _ = try await p.send(KafkaRecord(topic: topic, key: "bad", value: Array("{not json".utf8)))
        let consumer = try KafkaConsumer(configuration: consumerConfig(cluster, group: TestEnv.unique("g"), topic: topic), logger: logger)
        let dlq = KafkaDeadLetterPublisher(producer: p, logger: logger)
        let codec = EnvelopeCodec()
        for m in try await collect(consumer, count: 1, store: false) {
            do {
                _ = try codec.decode(m.value)
                Issue.record("decoded garbage")
            } catch {
                try await dlq.deadLetter(m, error: error, code: error.code.description, field: error.field)
            }
            try consumer.storeOffset(m)
        }
        try await consumer.close()
        let reader = try KafkaConsumer(configuration: consumerConfig(cluster, group: TestEnv.unique("g"), topic: Topics.deadLetter(for: topic)), logger: logger)
        let dead = try await collect(reader, count: 1)
        #expect(dead.first?.keyString == "bad")
        #expect(dead.first?.value == Array("{not json".utf8))
        #expect(dead.first?.header(MessageHeaders.errorCode) == Array("malformed_json".utf8))
        #expect(dead.first?.header(MessageHeaders.originalTopic) == Array(topic.utf8))
        try await reader.close()
        await p.shutdown()
    }

    @Test func producerShutdownFlushesQueuedMessages() async throws {
        let cluster = try KafkaMockCluster(brokers: 1, logger: logger)
        let topic = TestEnv.unique("flush")
        try cluster.createTopic(topic, partitions: 1)
        let p = try producer(cluster)
        let delivered = Mutex(0)
        for i in 0..<500 {
            try p.enqueue(KafkaRecord(topic: topic, key: nil, value: Array("\(i)".utf8))) { result in
                if case .success = result { delivered.withLock { $0 += 1 } }
            }
        }
        await p.shutdown()
        #expect(delivered.withLock { $0 } == 500)
        #expect(throws: KafkaError.self) { try p.enqueue(KafkaRecord(topic: topic, key: nil, value: [1])) { _ in } }
    }

    /// librdkafka 2.0.2's mock cluster answers metadata but has no controller, so the
    /// CreateTopics admin call cannot run against it; the dev broker creates its topics
    /// through the mock's own API. Here: partitions as the cluster reports them.
    @Test func adminReadsPartitionCounts() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: logger)
        let topic = TestEnv.unique("created")
        try cluster.createTopic(topic, partitions: 5, replicationFactor: 3)
        let admin = try KafkaAdmin(configuration: KafkaConfiguration(brokers: cluster.bootstrapServers, clientID: "test"), logger: logger)
        #expect(try await admin.partitionCount(topic: topic) == 5)
    }

    /// Many topics at once, each with its own partitions, and with a broker down (the
    /// creations are served whichever broker wakes the mock cluster).
    @Test func manyTopicsAreCreatedTogether() async throws {
        let cluster = try KafkaMockCluster(brokers: 3, logger: logger)
        let prefix = TestEnv.unique("many")
        let specs = (0..<300).map { KafkaTopicSpec(name: "\(prefix)-\($0)", partitions: Int32($0 % 4 + 1), replicationFactor: 3) }
        try cluster.createTopics(specs)
        try cluster.setBrokerDown(1)
        try cluster.createTopics([KafkaTopicSpec(name: "\(prefix)-late", partitions: 2)])
        try cluster.setBrokerUp(1)
        let admin = try KafkaAdmin(configuration: KafkaConfiguration(brokers: cluster.bootstrapServers, clientID: "test"), logger: logger)
        for i in [0, 1, 2, 3, 150, 299] {
            #expect(try await admin.partitionCount(topic: "\(prefix)-\(i)") == i % 4 + 1)
        }
        #expect(try await admin.partitionCount(topic: "\(prefix)-late") == 2)
        // A topic named twice is refused by the mock cluster, after the others are made.
        #expect(throws: KafkaError.self) {
            try cluster.createTopics([KafkaTopicSpec(name: "\(prefix)-0", partitions: 1), KafkaTopicSpec(name: "\(prefix)-new", partitions: 1)])
        }
    }
}
