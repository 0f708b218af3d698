import CRdKafka
import GEdgeCore
import Logging

/// A consumer group's lag on a topic: for each partition, the high watermark less the
/// group's committed offset (the low watermark when the group has committed nothing), summed.
/// Reads the group's offsets through the group coordinator without joining the group.
public final class KafkaLagReader: Sendable {
    nonisolated(unsafe) let handle: OpaquePointer
    private let context: KafkaClientContext
    private let blocking = DedicatedThread(name: "kafka-lag")
    public let group: String

    public init(configuration: KafkaConfiguration, group: String, logger: Logger) throws(KafkaError) {
        var c = configuration
        c.properties["group.id"] = group
        c.properties["enable.auto.commit"] = "false"
        self.group = group
        context = KafkaClientContext(logger: logger)
        handle = try makeKafkaHandle(type: RD_KAFKA_CONSUMER, conf: try c.makeConf(for: .consumer), context: context)
    }

    deinit {
        blocking.stop()
        rd_kafka_destroy(handle)
    }

    /// The total lag of the group on `topic`, over every partition.
    public func lag(topic: String, timeout: Duration = .seconds(5)) async throws -> Int64 {
        nonisolated(unsafe) let rk = handle
        let ms = Int32(timeout.milliseconds)
        return try await blocking.run { () throws -> Int64 in
            let rkt = rd_kafka_topic_new(rk, topic, nil)
            defer { rd_kafka_topic_destroy(rkt) }
            var md: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(rk, 0, rkt, &md, ms)
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md else { throw KafkaError(err, context: "metadata of \(topic)") }
            defer { rd_kafka_metadata_destroy(md) }
            guard md.pointee.topic_cnt > 0 else { return 0 }
            let t = md.pointee.topics[0]
            if t.err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(t.err, context: "metadata of \(topic)") }
            let count = Int(t.partition_cnt)
            guard count > 0, let list = rd_kafka_topic_partition_list_new(Int32(count)) else { return 0 }
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for i in 0..<count { rd_kafka_topic_partition_list_add(list, topic, t.partitions[i].id) }
            let cerr = rd_kafka_committed(rk, list, ms)
            guard cerr == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(cerr, context: "committed offsets of group \(self.group)") }
            var total: Int64 = 0
            for i in 0..<Int(list.pointee.cnt) {
                let p = list.pointee.elems[i]
                var low: Int64 = 0, high: Int64 = 0
                let werr = rd_kafka_query_watermark_offsets(rk, topic, p.partition, &low, &high, ms)
                guard werr == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError(werr, context: "watermarks of \(topic)[\(p.partition)]") }
                let committed = p.offset >= 0 ? p.offset : low
                total += max(0, high - committed)
            }
            return total
        }
    }
}
