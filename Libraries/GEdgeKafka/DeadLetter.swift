import GEdgeCore
import Logging

/// Sends messages that cannot be processed to `<topic>.dlq` with the reason in headers,
/// so that they never block their partition or crash a service.
public struct KafkaDeadLetterPublisher: Sendable {
    let producer: KafkaProducer
    let logger: Logger

    public init(producer: KafkaProducer, logger: Logger) {
        self.producer = producer
        self.logger = logger
    }

    /// Publishes the original bytes, key and headers with the error added; waits for delivery.
    public func deadLetter(_ message: KafkaMessage, error: any Error, code: String, field: String? = nil) async throws {
        var headers = message.headers
        headers.append(KafkaHeader(key: MessageHeaders.error, string: "\(error)"))
        headers.append(KafkaHeader(key: MessageHeaders.errorCode, string: code))
        if let field { headers.append(KafkaHeader(key: MessageHeaders.errorField, string: field)) }
        headers.append(KafkaHeader(key: MessageHeaders.originalTopic, string: message.topic))
        headers.append(KafkaHeader(key: MessageHeaders.originalPartition, string: String(message.partition)))
        headers.append(KafkaHeader(key: MessageHeaders.originalOffset, string: String(message.offset)))
        let dlq = Topics.deadLetter(for: message.topic)
        _ = try await producer.send(KafkaRecord(topic: dlq, key: message.key, value: message.value, headers: headers))
        logger.warning(
            "message dead-lettered",
            metadata: [
                LogKeys.kafkaTopic: .string(message.topic), LogKeys.kafkaPartition: "\(message.partition)",
                LogKeys.kafkaOffset: "\(message.offset)", LogKeys.errorCode: .string(code),
                LogKeys.errorField: .string(field ?? ""), LogKeys.error: "\(error)",
            ])
    }
}
