import GEdgeCore
import GEdgeSecurity
import Logging
import Metrics

/// Sends messages that cannot be processed to `<topic>.dlq` with the reason in headers,
/// so that they never block their partition or crash a service.
///
/// Whatever was read can be dead-lettered: a message whose dead letter would pass
/// `maxBytes` (below the producer's `message.max.bytes`) is stored truncated to its first
/// `truncatedBytes`, with its size and SHA-256 in headers beside the pointer to the
/// original (topic, partition, offset), which stays in the source topic for its retention.
public struct KafkaDeadLetterPublisher: Sendable {
    let producer: KafkaProducer
    let logger: Logger
    public var maxBytes: Int
    public var truncatedBytes: Int
    let published = Counter(label: "gedge_dead_letters_total")
    let truncated = Counter(label: "gedge_dead_letters_truncated_total")

    public init(producer: KafkaProducer, logger: Logger, maxBytes: Int = 900_000, truncatedBytes: Int = 64 << 10) {
        self.producer = producer
        self.logger = logger
        self.maxBytes = maxBytes
        self.truncatedBytes = min(truncatedBytes, maxBytes / 2)
    }

    /// The dead letter of `message`: the original bytes, key and headers with the error
    /// added, truncated as above when too large.
    public func record(for message: KafkaMessage, error: any Error, code: String, field: String?, forceTruncation: Bool = false) -> KafkaRecord {
        var reason = "\(error)"
        if reason.utf8.count > 4096 { reason = String(decoding: reason.utf8.prefix(4096), as: UTF8.self) + "…" }
        var headers: [KafkaHeader] = []
        var headerBytes = 0
        // The original's headers, as long as they leave room.
        for h in message.headers {
            let size = h.key.utf8.count + (h.value?.count ?? 0)
            if headerBytes + size > maxBytes / 4 { break }
            headers.append(h)
            headerBytes += size
        }
        headers.append(KafkaHeader(key: MessageHeaders.error, string: reason))
        headers.append(KafkaHeader(key: MessageHeaders.errorCode, string: code))
        if let field { headers.append(KafkaHeader(key: MessageHeaders.errorField, string: String(field.prefix(1024)))) }
        headers.append(KafkaHeader(key: MessageHeaders.originalTopic, string: message.topic))
        headers.append(KafkaHeader(key: MessageHeaders.originalPartition, string: String(message.partition)))
        headers.append(KafkaHeader(key: MessageHeaders.originalOffset, string: String(message.offset)))
        var key = message.key
        if let k = key, k.count > 16 << 10 { key = Array(k.prefix(16 << 10)) }
        let size = (key?.count ?? 0) + message.value.count + headers.reduce(0) { $0 + $1.key.utf8.count + ($1.value?.count ?? 0) + 16 }
        var value = message.value
        // A message its consumer kept only a prefix of is truncated here too: its size and
        // digest were taken as it was read.
        if message.oversize != nil || forceTruncation || size > maxBytes {
            headers.append(KafkaHeader(key: MessageHeaders.truncated, string: "true"))
            headers.append(KafkaHeader(key: MessageHeaders.originalBytes, string: String(message.oversize?.valueBytes ?? message.value.count)))
            headers.append(KafkaHeader(key: MessageHeaders.originalSHA256, string: message.oversize?.valueSHA256 ?? Digests.sha256Hex(message.value)))
            value = Array(message.value.prefix(truncatedBytes))
        }
        return KafkaRecord(topic: Topics.deadLetter(for: message.topic), key: key, value: value, headers: headers)
    }

    /// Publishes the dead letter and waits for its delivery. A dead letter the producer or
    /// broker finds too large is sent again truncated.
    public func deadLetter(_ message: KafkaMessage, error: any Error, code: String, field: String? = nil) async throws {
        var record = record(for: message, error: error, code: code, field: field)
        do {
            _ = try await producer.send(record)
        } catch let e as KafkaError where e.isMessageTooLarge {
            record = self.record(for: message, error: error, code: code, field: field, forceTruncation: true)
            _ = try await producer.send(record)
        }
        published.increment()
        if record.headers.contains(where: { $0.key == MessageHeaders.truncated }) { truncated.increment() }
        logger.warning(
            "message dead-lettered",
            metadata: [
                LogKeys.kafkaTopic: .string(message.topic), LogKeys.kafkaPartition: "\(message.partition)",
                LogKeys.kafkaOffset: "\(message.offset)", LogKeys.errorCode: .string(code),
                LogKeys.errorField: .string(field ?? ""), LogKeys.error: "\(error)",
            ])
    }

    /// Dead-letters `message`, retrying until it is accepted (the consumer marked stalled
    /// meanwhile) or the service stops. True when it was: only then may the offset be stored.
    public func deadLetterRetrying(_ message: KafkaMessage, error: any Error, code: String, field: String? = nil, consumer: String,
        progress: ConsumerProgress = .shared
    ) async -> Bool {
        let outcome = await Retry.run("dead-letter publish", consumer: consumer, logger: logger, progress: progress) {
            // Whatever the producer answers, a dead letter is tried again: none is dropped.
            do { try await deadLetter(message, error: error, code: code, field: field) } catch { throw RetryAnyway(error) }
        }
        if case .done = outcome { return true }
        return false
    }
}

