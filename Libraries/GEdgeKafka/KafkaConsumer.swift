import CRdKafka
import Foundation
import GEdgeCore
import Logging
import Metrics

/// Consumer-group settings.
///
/// Offsets are at-least-once: nothing is marked done until the application calls
/// `storeOffset` after processing; stored offsets are committed every
/// `autoCommitInterval`, on rebalance and on `close()`.
public struct KafkaConsumerConfiguration: Sendable {
    public var client: KafkaConfiguration
    public var groupID: String
    public var topics: [String]
    /// Where a group with no committed offset starts: `earliest` (the default) or `latest`.
    public var autoOffsetReset = "earliest"
    public var sessionTimeout: Duration = .seconds(10)
    public var autoCommitInterval: Duration = .seconds(1)
    /// `range,roundrobin` (eager) or `cooperative-sticky` (incremental).
    public var assignmentStrategy = "range,roundrobin"
    /// Messages buffered between the poll thread and the application.
    public var bufferCapacity = 512
    /// What is copied of each message: past these, only a prefix for its dead letter.
    public var messageLimits = KafkaMessageLimits()
    /// How long `close()` waits for the final commit and the group's leave. A coordinator
    /// that does not answer (gone, or stuck in a rebalance) cannot hold a shutdown longer:
    /// the group then reassigns this member's partitions after its session timeout.
    public var closeTimeout: Duration = .seconds(20)

    public init(client: KafkaConfiguration, groupID: String, topics: [String]) {
        self.client = client
        self.groupID = groupID
        self.topics = topics
    }

    func properties() -> KafkaConfiguration {
        var c = client
        c["group.id"] = groupID
        c["enable.auto.commit"] = "true"
        c["enable.auto.offset.store"] = "false"
        c["auto.commit.interval.ms"] = String(autoCommitInterval.milliseconds)
        c["session.timeout.ms"] = c["session.timeout.ms"] ?? String(sessionTimeout.milliseconds)
        c["heartbeat.interval.ms"] = c["heartbeat.interval.ms"] ?? String(max(100, sessionTimeout.milliseconds / 5))
        c["auto.offset.reset"] = c["auto.offset.reset"] ?? autoOffsetReset
        c["partition.assignment.strategy"] = c["partition.assignment.strategy"] ?? assignmentStrategy
        c["enable.partition.eof"] = "false"
        return c
    }
}


private let rebalanceCallback: @convention(c) (OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?) -> Void = {
    rk, err, partitions, _ in
    guard let rk, let context = KafkaClientContext.from(rk) else { return }
    serveRebalance(rk, context, err, partitions)
}

/// Takes or gives back partitions as the group asks: from the rebalance callback while
/// polling, and from the close queue's rebalance events while closing.
private func serveRebalance(
    _ rk: OpaquePointer, _ context: KafkaClientContext, _ err: rd_kafka_resp_err_t,
    _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
) {
    let list = [KafkaTopicPartition](list: partitions)
    // The protocol comes from the configuration: rd_kafka_rebalance_protocol() asks the group
    // thread, which may already be gone while close() is being served.
    let cooperative = context.cooperative
    if err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
        if cooperative {
            if let e = rd_kafka_incremental_assign(rk, partitions) { _ = KafkaError(taking: e) }
        } else {
            rd_kafka_assign(rk, partitions)
        }
        context.logger.info("partitions assigned", metadata: ["kafka.partitions": "\(list)"])
        context.rebalanceHandler?(.assigned(list))
    } else {
        // Offsets stored for these partitions are committed by librdkafka as they are
        // removed (auto-commit is on), before they go to another member.
        // Closing, an empty revoke (a "lost" one after the leave) has nothing to give back,
        // and the group thread that would answer the unassign may already have ended.
        if !(list.isEmpty && context.closing.isSet) {
            if cooperative {
                if let e = rd_kafka_incremental_unassign(rk, partitions) { _ = KafkaError(taking: e) }
            } else {
                rd_kafka_assign(rk, nil)
            }
        }
        context.logger.info("partitions revoked", metadata: ["kafka.partitions": "\(list)"])
        context.rebalanceHandler?(.revoked(list))
    }
}

/// A consumer-group member over librdkafka, read as an `AsyncSequence` of messages.
///
/// A thread of its own polls librdkafka (serving rebalances and errors) and hands messages
/// through a bounded buffer: when the application is slow the poll thread waits, and nothing
/// is dropped. Typical use:
///
/// ```swift
/// for await message in consumer {
///     try await handle(message)
///     try consumer.storeOffset(message)
/// }
/// try await consumer.close()
/// ```
public final class KafkaConsumer: AsyncSequence, Sendable {
    public typealias Element = KafkaMessage

    nonisolated(unsafe) let handle: OpaquePointer
    private let context: KafkaClientContext
    private let channel: BoundedChannel<KafkaMessage>
    private let polling = RunFlag(true)
    private let closed = RunFlag(false)
    /// Set when close() gave up waiting: the handle is then left to the process's end.
    private let closeUnfinished = RunFlag(false)
    private let closeTimeout: Duration
    private let pollThread: DedicatedThread
    private let blocking: DedicatedThread
    private let logger: Logger
    public let groupID: String
    private let consumedCounter: Counter

    public init(
        configuration: KafkaConsumerConfiguration, logger: Logger,
        onRebalance: (@Sendable (KafkaRebalanceEvent) -> Void)? = nil
    ) throws(KafkaError) {
        var logger = logger
        logger[metadataKey: LogKeys.kafkaGroup] = .string(configuration.groupID)
        self.logger = logger
        self.groupID = configuration.groupID
        self.closeTimeout = configuration.closeTimeout
        self.consumedCounter = Counter(label: "gedge_kafka_consumed_total", dimensions: [("group", configuration.groupID)])
        let context = KafkaClientContext(logger: logger)
        context.rebalanceHandler = onRebalance
        context.cooperative = (configuration.client["partition.assignment.strategy"] ?? configuration.assignmentStrategy)
            .split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces) == "cooperative-sticky" }
        self.context = context
        let conf = try configuration.properties().makeConf(for: .consumer)
        rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
        self.handle = try makeKafkaHandle(type: RD_KAFKA_CONSUMER, conf: conf, context: context)
        rd_kafka_poll_set_consumer(handle)
        guard let list = rd_kafka_topic_partition_list_new(Int32(configuration.topics.count)) else {
            rd_kafka_destroy(handle)
            throw .configuration("cannot allocate topic list")
        }
        for topic in configuration.topics {
            rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA)
        }
        let err = rd_kafka_subscribe(handle, list)
        rd_kafka_topic_partition_list_destroy(list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            rd_kafka_destroy(handle)
            throw KafkaError(err, context: "subscribe to \(configuration.topics)")
        }
        self.channel = BoundedChannel(capacity: configuration.bufferCapacity)
        self.pollThread = DedicatedThread(name: "kafka-consumer-poll")
        self.blocking = DedicatedThread(name: "kafka-consumer-blocking")
        nonisolated(unsafe) let rk = handle
        let limits = configuration.messageLimits
        pollThread.submit { [polling, channel, logger, consumedCounter] in
            while polling.isSet {
                guard let m = rd_kafka_consumer_poll(rk, 100) else { continue }
                if m.pointee.err != RD_KAFKA_RESP_ERR_NO_ERROR {
                    let error = KafkaError(m.pointee.err, context: "consume")
                    rd_kafka_message_destroy(m)
                    if error.isFatal {
                        logger.critical("fatal consumer error", metadata: [LogKeys.error: "\(error)"])
                        break
                    }
                    logger.warning("consumer error", metadata: [LogKeys.error: "\(error)"])
                    continue
                }
                let message = KafkaMessage(copying: m, limits: limits)
                rd_kafka_message_destroy(m)
                consumedCounter.increment()
                if !channel.push(message) { break }
            }
            channel.close()
        }
    }

    deinit {
        polling.set(false)
        channel.close()
        pollThread.stop()
        // Dropped without close(): closed here, within the same bound.
        if !closed.exchange(true) {
            context.closing.set(true)
            if !serveClose(handle, context, within: closeTimeout).finished {
                closeUnfinished.set(true)
                logger.error("close did not finish in time: the group reassigns this member's partitions after its session timeout",
                             metadata: ["kafka.close.timeout": "\(closeTimeout)"])
            }
        }
        blocking.stop()
        if closeUnfinished.isSet {
            // rd_kafka_destroy would close again and wait for the group without end. The
            // handle's threads may still call back into the context: it stays too, silent.
            context.silenced.set(true)
            _ = Unmanaged.passRetained(context)
            return
        }
        rd_kafka_destroy(handle)
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let channel: BoundedChannel<KafkaMessage>
        public mutating func next() async -> KafkaMessage? { await channel.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(channel: channel) }

    /// Waits for a message, then returns it with up to `max - 1` more already fetched, so that
    /// work can be done in batches. Empty once polling has stopped and the buffer is drained.
    public func nextBatch(max: Int) async -> [KafkaMessage] { await channel.nextBatch(max: max) }

    /// Marks `message` processed: its offset + 1 is committed with the next commit.
    /// Throws if the partition is no longer assigned to this member (it will be redelivered
    /// to the new owner).
    public func storeOffset(_ message: KafkaMessage) throws(KafkaError) {
        try storeOffsets([KafkaTopicPartition(topic: message.topic, partition: message.partition): message.offset + 1])
    }

    /// Stores the next offsets to commit for several partitions at once.
    public func storeOffsets(_ next: [KafkaTopicPartition: Int64]) throws(KafkaError) {
        guard let list = rd_kafka_topic_partition_list_new(Int32(next.count)) else { return }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for (tp, offset) in next {
            rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition).pointee.offset = offset
        }
        let err = rd_kafka_offsets_store(handle, list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(err, context: "store offsets")
        }
        for i in 0..<Int(list.pointee.cnt) where list.pointee.elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(list.pointee.elems[i].err, context: "store offset of \(String(cString: list.pointee.elems[i].topic))[\(list.pointee.elems[i].partition)]")
        }
    }

    /// Commits the stored offsets now, waiting for the broker at most `timeout`.
    public func commit(timeout: Duration = .seconds(10)) async throws {
        nonisolated(unsafe) let rk = handle
        let err = try await blocking.run { () -> rd_kafka_resp_err_t in
            guard let queue = rd_kafka_queue_new(rk) else { return RD_KAFKA_RESP_ERR__CRIT_SYS_RESOURCE }
            defer { rd_kafka_queue_destroy(queue) }
            let sent = rd_kafka_commit_queue(rk, nil, queue, nil, nil)
            if sent != RD_KAFKA_RESP_ERR_NO_ERROR { return sent }
            var answer: rd_kafka_resp_err_t?
            serveEvents(queue, until: ContinuousClock.now + timeout, finished: { answer != nil }) { event in
                if rd_kafka_event_type(event) == RD_KAFKA_EVENT_OFFSET_COMMIT { answer = rd_kafka_event_error(event) }
            }
            return answer ?? RD_KAFKA_RESP_ERR__TIMED_OUT
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET {
            throw KafkaError(err, context: "commit")
        }
    }

    /// The partitions this member owns now.
    public func assignment() throws(KafkaError) -> [KafkaTopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        let err = rd_kafka_assignment(handle, &list)
        defer { if let list { rd_kafka_topic_partition_list_destroy(list) } }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "assignment") }
        return [KafkaTopicPartition](list: list)
    }

    /// Stops fetching from these partitions (all assigned ones when nil) until `resume`.
    public func pause(_ partitions: [KafkaTopicPartition]? = nil) throws(KafkaError) {
        let list: [KafkaTopicPartition]
        if let partitions { list = partitions } else { list = try assignment() }
        try withPartitionList(list) { rd_kafka_pause_partitions(handle, $0) }
    }

    /// Resumes fetching from paused partitions (all assigned ones when nil).
    public func resume(_ partitions: [KafkaTopicPartition]? = nil) throws(KafkaError) {
        let list: [KafkaTopicPartition]
        if let partitions { list = partitions } else { list = try assignment() }
        try withPartitionList(list) { rd_kafka_resume_partitions(handle, $0) }
    }

    private func withPartitionList(
        _ partitions: [KafkaTopicPartition], _ body: (UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> rd_kafka_resp_err_t
    ) throws(KafkaError) {
        guard let list = rd_kafka_topic_partition_list_new(Int32(partitions.count)) else { return }
        defer { rd_kafka_topic_partition_list_destroy(list) }
        for tp in partitions { rd_kafka_topic_partition_list_add(list, tp.topic, tp.partition) }
        let err = body(list)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "pause/resume") }
    }

    /// Stops fetching. Messages already buffered are still delivered to the iterator, which
    /// then ends. Safe to call from a signal or shutdown handler, more than once.
    public func stopPolling() {
        polling.set(false)
    }

    /// Ends consumption: stops polling, commits the stored offsets, and leaves the group
    /// (its partitions are reassigned at once, not after the session timeout). Waits at most
    /// `closeTimeout`; past it, throws `timedOut` and the group reassigns the partitions
    /// after the session timeout (the stored offsets are committed if the commit got
    /// through).
    public func close() async throws {
        stopPolling()
        guard !closed.exchange(true) else { return }
        context.closing.set(true)
        pollThread.stop()
        channel.close()
        nonisolated(unsafe) let rk = handle
        let (context, limit) = (self.context, closeTimeout)
        let outcome = try await blocking.run { serveClose(rk, context, within: limit) }
        if let commit = outcome.commit, commit != RD_KAFKA_RESP_ERR_NO_ERROR, commit != RD_KAFKA_RESP_ERR__NO_OFFSET {
            logger.warning("final commit failed", metadata: [LogKeys.error: "\(KafkaError(commit))"])
        }
        if let error = outcome.error { throw error }
        if !outcome.finished {
            closeUnfinished.set(true)
            logger.error(
                "close did not finish in time: the group reassigns this member's partitions after its session timeout",
                metadata: ["kafka.close.timeout": "\(limit)", "kafka.commit": "\(outcome.commit.map { "\(KafkaError($0))" } ?? "no answer")"])
            throw KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, context: "close within \(limit)")
        }
    }
}

private struct CloseOutcome: Sendable {
    /// The final commit's answer; nil when none came.
    var commit: rd_kafka_resp_err_t?
    var error: KafkaError?
    var finished = false
}

/// Commits the stored offsets and closes the group membership through a queue of this call's
/// own, serving the rebalance (the unassign) the close brings, until librdkafka says the
/// consumer is closed or `limit` has passed. rd_kafka_consumer_close() itself waits without
/// end.
private func serveClose(_ rk: OpaquePointer, _ context: KafkaClientContext, within limit: Duration) -> CloseOutcome {
    var outcome = CloseOutcome()
    guard let queue = rd_kafka_queue_new(rk) else {
        outcome.error = .configuration("cannot allocate a queue to close on")
        return outcome
    }
    defer { rd_kafka_queue_destroy(queue) }
    let commit = rd_kafka_commit_queue(rk, nil, queue, nil, nil)
    if commit != RD_KAFKA_RESP_ERR_NO_ERROR { outcome.commit = commit }
    if let e = rd_kafka_consumer_close_queue(rk, queue) {
        outcome.error = KafkaError(taking: e)
        return outcome
    }
    func serve(_ event: OpaquePointer) {
        switch rd_kafka_event_type(event) {
        case RD_KAFKA_EVENT_REBALANCE:
            serveRebalance(rk, context, rd_kafka_event_error(event), rd_kafka_event_topic_partition_list(event))
        case RD_KAFKA_EVENT_OFFSET_COMMIT:
            outcome.commit = rd_kafka_event_error(event)
        case RD_KAFKA_EVENT_ERROR:
            context.logger.warning("error while closing", metadata: [LogKeys.error: "\(KafkaError(rd_kafka_event_error(event), context: "close"))"])
        default:
            break
        }
    }
    serveEvents(queue, until: ContinuousClock.now + limit, finished: { rd_kafka_consumer_closed(rk) != 0 }, serve)
    outcome.finished = rd_kafka_consumer_closed(rk) != 0
    // The commit's answer comes before the group ends; take what is left on the queue.
    while let event = rd_kafka_queue_poll(queue, 0) {
        serve(event)
        rd_kafka_event_destroy(event)
    }
    return outcome
}

/// Hands each event of `queue` to `body` (and destroys it after) until `finished` holds (asked
/// before each wait, which lasts at most 100 ms) or `deadline` passes.
private func serveEvents(
    _ queue: OpaquePointer, until deadline: ContinuousClock.Instant, finished: () -> Bool, _ body: (OpaquePointer) -> Void
) {
    while !finished(), case let left = deadline - ContinuousClock.now, left > .zero {
        guard let event = rd_kafka_queue_poll(queue, Int32(min(100, max(1, left.milliseconds)))) else { continue }
        body(event)
        rd_kafka_event_destroy(event)
    }
}
