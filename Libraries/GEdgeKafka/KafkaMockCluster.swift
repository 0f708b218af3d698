import CRdKafka
import Foundation
import Synchronization
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
        handle = try makeKafkaHandle(type: RD_KAFKA_PRODUCER, conf: try config.makeConf(for: .producer), context: context)
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

    /// Creates one topic at the mock cluster's own pace (up to about 0.1 s; see
    /// `createTopics`). The test suite's harnesses create theirs this way: its integration
    /// tests start many servers at once on two cores, and are measured at this pace.
    public func createTopic(_ name: String, partitions: Int32, replicationFactor: Int32 = 1) throws(KafkaError) {
        let err = rd_kafka_mock_topic_create(cluster, name, partitions, replicationFactor)
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context: "create topic \(name)") }
    }

    /// Creates topics, from up to `concurrency` threads at once; the first error is thrown
    /// once every creation has been tried.
    ///
    /// Each creation is an operation handed to the mock cluster's thread, which librdkafka 2.0
    /// can fail to wake: it serves its queue before it drains its wake-up pipe, so an operation
    /// queued in between (the next creation, sent as soon as the last is answered) waits for
    /// the thread's next timer, about 0.1 s: 5,000 topics one after another take 8 minutes.
    /// Any socket event wakes the thread as well, so while creations are outstanding a
    /// connection to a broker (each in turn) is opened and closed every millisecond.
    public func createTopics(_ topics: [KafkaTopicSpec], concurrency: Int = 16) throws(KafkaError) {
        guard !topics.isEmpty else { return }
        let failures = Failures()
        let done = DispatchGroup()
        let lanes = max(1, min(concurrency, topics.count))
        for lane in 0..<lanes {
            done.enter()
            let thread = Thread { [self] in
                defer { done.leave() }
                for t in stride(from: lane, to: topics.count, by: lanes).map({ topics[$0] }) {
                    let err = rd_kafka_mock_topic_create(cluster, t.name, t.partitions, t.replicationFactor)
                    if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                        failures.list.withLock { $0.append(KafkaError(err, context: "create topic \(t.name)")) }
                    }
                }
            }
            thread.name = "mock-topics-\(lane)"
            thread.start()
        }
        // Each broker in turn: one that is down (`setBrokerDown`) accepts nothing.
        let ports = bootstrapServers.split(separator: ",").compactMap { $0.split(separator: ":").last.flatMap { UInt16($0) } }
        var turn = 0
        while done.wait(timeout: .now() + .milliseconds(1)) == .timedOut, !ports.isEmpty {
            Self.touch(port: ports[turn % ports.count])
            turn += 1
        }
        done.wait()
        if let first = failures.list.withLock({ $0.first }) { throw first }
    }

    private final class Failures: Sendable {
        let list = Mutex<[KafkaError]>([])
    }

    /// Opens and closes a connection to a loopback port: an event on the listener's socket.
    /// Never blocks: with the listener's backlog full the attempt is dropped.
    private static func touch(port: UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
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
