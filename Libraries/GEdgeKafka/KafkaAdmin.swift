import CRdKafka
import GEdgeCore
import Logging

/// A topic to create.
public struct KafkaTopicSpec: Sendable, Hashable {
    public var name: String
    public var partitions: Int32
    public var replicationFactor: Int32
    public var config: [String: String]

    public init(name: String, partitions: Int32, replicationFactor: Int32 = 1, config: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.config = config
    }
}

/// Administrative operations: topic creation and metadata.
public final class KafkaAdmin: Sendable {
    nonisolated(unsafe) let handle: OpaquePointer
    private let context: KafkaClientContext
    private let blocking = DedicatedThread(name: "kafka-admin")

    public init(configuration: KafkaConfiguration, logger: Logger) throws(KafkaError) {
        context = KafkaClientContext(logger: logger)
        handle = try makeKafkaHandle(type: RD_KAFKA_PRODUCER, conf: try configuration.makeConf(for: .producer), context: context)
    }

    deinit {
        blocking.stop()
        rd_kafka_destroy(handle)
    }

    /// Creates topics; a topic that already exists counts as created.
    public func createTopics(_ topics: [KafkaTopicSpec], timeout: Duration = .seconds(10)) async throws {
        nonisolated(unsafe) let rk = handle
        try await blocking.run { () throws -> Void in
            var errbuf = [CChar](repeating: 0, count: 512)
            var newTopics: [OpaquePointer?] = []
            defer { newTopics.forEach { rd_kafka_NewTopic_destroy($0) } }
            for t in topics {
                guard let nt = rd_kafka_NewTopic_new(t.name, t.partitions, t.replicationFactor, &errbuf, errbuf.count) else {
                    throw KafkaError.configuration("topic \(t.name): \(String(cString: errbuf))")
                }
                for (k, v) in t.config { _ = rd_kafka_NewTopic_set_config(nt, k, v) }
                newTopics.append(nt)
            }
            let queue = rd_kafka_queue_new(rk)
            defer { rd_kafka_queue_destroy(queue) }
            let options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS)
            defer { rd_kafka_AdminOptions_destroy(options) }
            _ = rd_kafka_AdminOptions_set_request_timeout(options, Int32(timeout.milliseconds), &errbuf, errbuf.count)
            newTopics.withUnsafeMutableBufferPointer { buf in
                rd_kafka_CreateTopics(rk, buf.baseAddress, buf.count, options, queue)
            }
            guard let event = rd_kafka_queue_poll(queue, Int32(timeout.milliseconds) + 1000) else {
                throw KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, context: "create topics")
            }
            defer { rd_kafka_event_destroy(event) }
            let eventErr = rd_kafka_event_error(event)
            if eventErr != RD_KAFKA_RESP_ERR_NO_ERROR {
                throw KafkaError(eventErr, context: "create topics: \(String(cString: rd_kafka_event_error_string(event)))")
            }
            guard let result = rd_kafka_event_CreateTopics_result(event) else { return }
            var count = 0
            guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return }
            for i in 0..<count {
                let r = results[i]
                let err = rd_kafka_topic_result_error(r)
                if err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS {
                    let name = String(cString: rd_kafka_topic_result_name(r))
                    let msg = rd_kafka_topic_result_error_string(r).map { String(cString: $0) } ?? ""
                    throw KafkaError(err, context: "create topic \(name): \(msg)")
                }
            }
        }
    }

    /// The number of partitions of a topic, from the cluster's metadata.
    public func partitionCount(topic: String, timeout: Duration = .seconds(5)) async throws -> Int {
        nonisolated(unsafe) let rk = handle
        return try await blocking.run { () throws -> Int in
            let rkt = rd_kafka_topic_new(rk, topic, nil)
            defer { rd_kafka_topic_destroy(rkt) }
            var md: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(rk, 0, rkt, &md, Int32(timeout.milliseconds))
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let md else { throw KafkaError(err, context: "metadata of \(topic)") }
            defer { rd_kafka_metadata_destroy(md) }
            guard md.pointee.topic_cnt > 0 else { return 0 }
            let t = md.pointee.topics[0]
            if t.err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(t.err, context: "metadata of \(topic)") }
            return Int(t.partition_cnt)
        }
    }
}
