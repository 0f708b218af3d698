import GEdgeSecurity
import CRdKafka

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
public struct KafkaMessage: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// Milliseconds since the epoch, or nil when the broker gave none.
    public var timestampMs: Int64?

    public var keyString: String? { key.map { String(decoding: $0, as: UTF8.self) } }

    public func header(_ name: String) -> [UInt8]? {
        headers.first { $0.key == name }?.value
    }

    /// Copies a librdkafka message. Does not destroy it.
    init(copying m: UnsafeMutablePointer<rd_kafka_message_t>) {
        let msg = m.pointee
        topic = String(cString: rd_kafka_topic_name(msg.rkt))
        partition = msg.partition
        offset = msg.offset
        if let payload = msg.payload, msg.len > 0 {
            value = Array(UnsafeRawBufferPointer(start: payload, count: msg.len))
        } else {
            value = []
        }
        if let k = msg.key {
            key = Array(UnsafeRawBufferPointer(start: k, count: msg.key_len))
        } else {
            key = nil
        }
        var tsType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let ts = rd_kafka_message_timestamp(m, &tsType)
        timestampMs = tsType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : ts
        var hdrs: OpaquePointer?
        var headers: [KafkaHeader] = []
        if rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR, let hdrs {
            var idx = 0
            var name: UnsafePointer<CChar>?
            var val: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(hdrs, idx, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let bytes = val.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
                headers.append(KafkaHeader(key: name.map { String(cString: $0) } ?? "", value: bytes))
                idx += 1
            }
        }
        self.headers = headers
    }
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

extension KafkaMessage {
    /// The project that signed this message (`ProducerSigning`).
    public func signer(_ signing: ProducerSigning) throws(ProducerSigning.Failure) -> String {
        try signing.verify(headers: headers.map { ($0.key, $0.value.map { String(decoding: $0, as: UTF8.self) }) }, key: key, value: value)
    }
}
