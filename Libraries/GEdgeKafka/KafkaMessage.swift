import CRdKafka
import Foundation
import GEdgeCore
import GEdgeSecurity

/// A Kafka header: a name and optional bytes.
public struct KafkaHeader: Sendable, Hashable {
    public var key: String
    public var value: [UInt8]?
    public init(key: String, value: [UInt8]?) {
        self.key = key
        self.value = value
    }
    public init(key: String, string: String) {
        self.init(key: key, value: Array(string.utf8))
    }
}

/// A message to produce.
public struct KafkaRecord: Sendable {
    public var topic: String
    /// A fixed partition, or nil for the partitioner to choose by key.
    public var partition: Int32?
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]

    public init(topic: String, partition: Int32? = nil, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = []) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
    }

    public init(topic: String, key: String?, value: [UInt8], headers: [KafkaHeader] = []) {
        self.init(topic: topic, key: key.map { Array($0.utf8) }, value: value, headers: headers)
    }
}

/// Where a produced message was written.
public struct KafkaDeliveryReport: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
}

/// A consumed message.
///
/// What arrives is hostile until checked: a message larger than its consumer copies
/// (`KafkaMessageLimits`) is not copied whole. It keeps a prefix of its value, key and
/// headers and says what it held in `oversize`; decoding it is `too_large` at once, and
/// its dead letter carries the prefix with the original's size and digest.
public struct KafkaMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// Milliseconds since the epoch, or nil when the broker gave none.
    public var timestampMs: Int64?
    /// Set when the message was past its consumer's limits: only a prefix was copied.
    public var oversize: Oversize?

    /// What an oversized message held, as read from librdkafka's buffer.
    public struct Oversize: Sendable, Hashable {
        public var keyBytes: Int
        public var valueBytes: Int
        public var headerBytes: Int
        /// SHA-256 of the whole value, hex.
        public var valueSHA256: String
        /// Which limit it passed, as a decoding error names it.
        public var error: MessageDecodingError
    }

    public var keyString: String? { key.map { String(decoding: $0, as: UTF8.self) } }

    public func header(_ name: String) -> [UInt8]? {
        headers.first { $0.key == name }?.value
    }

    /// Copies a librdkafka message within `limits`. Does not destroy it.
    init(copying m: UnsafeMutablePointer<rd_kafka_message_t>, limits: KafkaMessageLimits) {
        let msg = m.pointee
        topic = String(cString: rd_kafka_topic_name(msg.rkt))
        partition = msg.partition
        offset = msg.offset
        let valueBuffer = UnsafeRawBufferPointer(start: msg.payload, count: msg.payload == nil ? 0 : msg.len)
        let keyBuffer = msg.key.map { UnsafeRawBufferPointer(start: $0, count: msg.key_len) }
        var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(m, &tsType)
        timestampMs = tsType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : ts
        var headers: [KafkaHeader] = []
        var headerBytes = 0
        var hdrs: OpaquePointer?
        if rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var idx = 0
            var name: UnsafePointer<CChar>?
            var val: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(hdrs, idx, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let nameBytes = name.map { strlen($0) } ?? 0
                headerBytes += nameBytes + (val == nil ? 0 : size)
                // Past the limit the rest is only counted.
                if headerBytes <= limits.headerBytes {
                    let bytes = val.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
                    headers.append(KafkaHeader(key: name.map { String(cString: $0) } ?? "", value: bytes))
                }
                idx += 1
            }
        }
        self.headers = headers
        let keyBytes = keyBuffer?.count ?? 0
        let error: MessageDecodingError? =
            if valueBuffer.count > limits.valueBytes {
                MessageDecodingError(.tooLarge, field: "", reason: "message of \(valueBuffer.count) bytes exceeds the limit of \(limits.valueBytes)")
            } else if keyBytes > limits.keyBytes {
                MessageDecodingError(.tooLarge, field: "key", reason: "a key of \(keyBytes) bytes exceeds the limit of \(limits.keyBytes)")
            } else if headerBytes > limits.headerBytes {
                MessageDecodingError(.tooLarge, field: "headers", reason: "headers of \(headerBytes) bytes exceed the limit of \(limits.headerBytes)")
            } else {
                nil
            }
        if let error {
            key = keyBuffer.map { Array($0.prefix(limits.prefixBytes)) }
            value = Array(valueBuffer.prefix(limits.prefixBytes))
            oversize = Oversize(keyBytes: keyBytes, valueBytes: valueBuffer.count, headerBytes: headerBytes, valueSHA256: Digests.sha256Hex(valueBuffer), error: error)
        } else {
            key = keyBuffer.map { Array($0) }
            value = Array(valueBuffer)
            oversize = nil
        }
    }
}

/// What a consumer copies of a message out of librdkafka. A message past any limit is
/// refused whole (`KafkaMessage.oversize`); only a prefix of it is kept, for its dead letter.
/// librdkafka holds the message itself until it is copied: a compressed batch is inflated
/// there, bounded by the broker's and the topic's limits, not by these.
public struct KafkaMessageLimits: Sendable, Hashable {
    /// The value's bytes: the envelope codec's limit, which no service raises.
    public var valueBytes = 1 << 20
    public var keyBytes = 16 << 10
    /// Header names and values together.
    public var headerBytes = 64 << 10
    /// What an oversized message keeps of its value and key.
    public var prefixBytes = 64 << 10
    public init() {}
}

/// A topic partition.
public struct KafkaTopicPartition: Sendable, Hashable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public var description: String { "\(topic)[\(partition)]" }
}

/// A change of the partitions this consumer owns.
public enum KafkaRebalanceEvent: Sendable, Hashable {
    case assigned([KafkaTopicPartition])
    case revoked([KafkaTopicPartition])
}

extension Array where Element == KafkaTopicPartition {
    init(list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?) {
        guard let list else {
            self = []
            return
        }
        self = (0..<Int(list.pointee.cnt)).map { i in
            let e = list.pointee.elems[i]
            return KafkaTopicPartition(topic: String(cString: e.topic), partition: e.partition)
        }
    }
}

extension KafkaRecord {
    /// The record with `ProducerSigning`'s headers for `project` added.
    public func signed(project: String, signing: ProducerSigning) -> KafkaRecord {
        var r = self
        for (k, v) in ProducerSigning.headers(project: project, projectKey: signing.key(project: project), key: key, value: value) {
            r.headers.append(KafkaHeader(key: k, string: v))
        }
        return r
    }
}

extension EnvelopeCodec {
    /// Decodes a consumed message: one past its consumer's limits is `too_large` at once.
    public func decode(_ message: KafkaMessage) throws(MessageDecodingError) -> Envelope {
        if let o = message.oversize { throw o.error }
        return try decode(message.value)
    }
}

extension KafkaMessage {
    /// The project that signed this message (`ProducerSigning`).
    public func signer(_ signing: ProducerSigning) throws(ProducerSigning.Failure) -> String {
        try signing.verify(headers: headers.map { ($0.key, $0.value.map { String(decoding: $0, as: UTF8.self) }) }, key: key, value: value)
    }
}
