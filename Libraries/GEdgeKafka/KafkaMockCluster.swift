import CRdKafka
import GEdgeCore
import Logging

/// librdkafka's mock cluster: brokers in this process that speak the Kafka protocol over TCP
/// on loopback, consumer groups and idempotent producers included. The local stack's and the
/// tests' broker; production uses Apache Kafka.
public final class KafkaMockCluster: @unchecked Sendable {
    private let handle: OpaquePointer
    private let cluster: OpaquePointer
    private let context: KafkaClientContext
    public let brokerCount: Int

    public init(brokers: Int = 3, logger: Logger) throws(KafkaError) {
        context = KafkaClientContext(logger: logger)
        var config = KafkaConfiguration(brokers: "", clientID: "gedge-mock-cluster")
        config.properties.removeValue(forKey: "bootstrap.servers")
        handle = try makeKafkaHandle(type: RD_KAFKA_PRODUCER, conf: try config.makeConf(), context: context)
        guard let mc = rd_kafka_mock_cluster_new(handle, Int32(brokers)) else {
            rd_kafka_destroy(handle)
            throw .configuration("rd_kafka_mock_cluster_new failed")
        }
        cluster = mc
        brokerCount = brokers
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
        rd_kafka_destroy(handle)
    }

    /// `host:port,...` of every broker, for `bootstrap.servers`.
    public var bootstrapServers: String { String(cString: rd_kafka_mock_cluster_bootstraps(cluster)) }

    public func createTopic(_ name: String, partitions: Int32, replicationFactor: Int32 = 1) throws(KafkaError) {
        let err = rd_kafka_mock_topic_create(cluster, name, partitions, replicationFactor)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "create topic \(name)") }
    }

    /// Takes a broker down: its connections close and it accepts no new ones until `setBrokerUp`.
    public func setBrokerDown(_ brokerID: Int32) throws(KafkaError) {
        let err = rd_kafka_mock_broker_set_down(cluster, brokerID)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "broker \(brokerID) down") }
    }

    public func setBrokerUp(_ brokerID: Int32) throws(KafkaError) {
        let err = rd_kafka_mock_broker_set_up(cluster, brokerID)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "broker \(brokerID) up") }
    }

    /// Adds a round-trip time to every response of a broker.
    public func setBrokerRTT(_ brokerID: Int32, milliseconds: Int32) throws(KafkaError) {
        let err = rd_kafka_mock_broker_set_rtt(cluster, brokerID, milliseconds)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "broker \(brokerID) rtt") }
    }

    /// Moves a partition's leadership to a broker.
    public func setPartitionLeader(topic: String, partition: Int32, brokerID: Int32) throws(KafkaError) {
        let err = rd_kafka_mock_partition_set_leader(cluster, topic, partition, brokerID)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "leader of \(topic)[\(partition)]") }
    }
}
