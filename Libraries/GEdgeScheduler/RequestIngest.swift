import Foundation
import GEdgeCore
import GEdgeKafka
import GEdgePostgres
import Logging
import Metrics
import ServiceLifecycle

/// The scheduler's first stage: consumes schedule requests from Kafka, records each in
/// PostgreSQL (received, enqueued), and only then marks its offset done. Undecodable
/// messages go to the dead-letter topic with the reason. A database outage pauses the
/// stage (retrying with backoff) rather than skipping anything.
public struct RequestIngest: Service {
    let consumer: KafkaConsumer
    let store: RequestStore
    let deadLetters: KafkaDeadLetterPublisher
    let codec: EnvelopeCodec
    let logger: Logger
    let received = Counter(label: "gedge_scheduler_requests_received_total")
    let duplicates = Counter(label: "gedge_scheduler_requests_duplicate_total")
    let deadLettered = Counter(label: "gedge_scheduler_messages_dead_lettered_total")
    let ingestTimer = Metrics.Timer(label: "gedge_scheduler_ingest_seconds")

    public init(consumer: KafkaConsumer, store: RequestStore, deadLetters: KafkaDeadLetterPublisher, codec: EnvelopeCodec = EnvelopeCodec(), logger: Logger) {
        self.consumer = consumer
        self.store = store
        self.deadLetters = deadLetters
        self.codec = codec
        self.logger = logger
    }

    public func run() async throws {
        try await withGracefulShutdownHandler {
            for await message in consumer {
                await handle(message)
            }
        } onGracefulShutdown: {
            consumer.stopPolling()
        }
        try await consumer.close()
        logger.info("request ingest stopped; offsets committed")
    }

    /// Handles one message until it is stored or dead-lettered, then stores its offset.
    func handle(_ message: KafkaMessage) async {
        let start = ContinuousClock.now
        var attempt = 0
        while true {
            do {
                try await process(message)
                break
            } catch {
                attempt += 1
                let delay = Duration.milliseconds(min(5000, 100 << min(attempt, 6)))
                logger.error(
                    "request not recorded; retrying",
                    metadata: [
                        LogKeys.kafkaPartition: "\(message.partition)", LogKeys.kafkaOffset: "\(message.offset)",
                        LogKeys.error: "\(error)", "retry.in": "\(delay)",
                    ])
                try? await Task.sleep(for: delay)
            }
        }
        do {
            try consumer.storeOffset(message)
        } catch {
            // The partition moved to another member, which will process the message again;
            // the store keeps that idempotent.
            logger.warning("offset not stored", metadata: [LogKeys.error: "\(error)"])
        }
        ingestTimer.recordNanoseconds(Int64((ContinuousClock.now - start).milliseconds * 1_000_000))
    }

    func process(_ message: KafkaMessage) async throws {
        let envelope: Envelope
        let request: ScheduleRequest
        do {
            envelope = try codec.decode(message.value)
            guard envelope.hcode == .scheduleRequest, envelope.lcode == .request else {
                throw MessageDecodingError(
                    .unknownCode, field: "hcode",
                    reason: "the requests topic takes hcode \(HCode.scheduleRequest.rawValue) lcode 1, got \(envelope.hcode.rawValue) lcode \(envelope.lcode.rawValue)")
            }
            request = try ScheduleRequest.decode(msg: envelope.msg, key: message.keyString)
        } catch let error as MessageDecodingError {
            try await deadLetters.deadLetter(message, error: error, code: error.code.description, field: error.field)
            deadLettered.increment()
            return
        }
        let origin = MessageOrigin(topic: message.topic, partition: message.partition, offset: message.offset)
        let isNew = try await store.recordReceived(request, source: envelope.source, origin: origin)
        if isNew {
            received.increment()
            logger.info(
                "request enqueued",
                metadata: [LogKeys.requestID: .string(request.requestID), "policy": .string(request.policy.rawValue), LogKeys.state: "enqueued"])
        } else {
            duplicates.increment()
            logger.debug("duplicate request ignored", metadata: [LogKeys.requestID: .string(request.requestID)])
        }
    }
}
