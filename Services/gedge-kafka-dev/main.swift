import Dispatch
import Foundation
import GEdgeCore
import GEdgeKafka
import Logging

// The local and test Kafka endpoint: librdkafka's mock cluster of several brokers, with a
// fixed bootstrap port on loopback and the suite's topics created with their partitions.
//
// Keys: kafka.dev.brokers (3), kafka.dev.host (127.0.0.1), kafka.dev.port (9092),
// kafka.dev.topics ("name:partitions,..."), kafka.dev.topics.file (more, one a line),
// kafka.dev.bootstrap.file (a file to write the
// bootstrap address to once ready).

// Runs on the main thread throughout (no async code): the stop signals are blocked before the
// mock cluster starts its threads, and taken here with sigwait.
func runBroker() throws {
    let config = try ConfigReader()
    try config.check(program: "gedge-kafka-dev")
    try GEdgeLogging.bootstrap(config)
    let logger = Logger(label: "gedge-kafka-dev")

    let defaultTopics = [
        "\(Topics.scheduleRequests):8", "\(Topics.deadLetter(for: Topics.scheduleRequests)):1", "\(Topics.schedulerReplies):8",
        "\(Topics.deadLetter(for: Topics.schedulerReplies)):1", "\(Topics.scheduleResults):4", "\(Topics.clusterStatus):1",
    ].joined(separator: ",")
    let brokerCount = try config.int("kafka.dev.brokers", default: 3)
    guard (1...32).contains(brokerCount) else { throw ConfigurationError(key: "kafka.dev.brokers", reason: "\(brokerCount) is not 1 to 32") }
    let host = config.string("kafka.dev.host", default: "127.0.0.1")
    let port = try config.port("kafka.dev.port", default: 9092)
    // The topics, read before anything starts: a bad entry ends the program with its key.
    var lists = [try TopicList(config.list("kafka.dev.topics", default: defaultTopics.split(separator: ",").map(String.init)).map { Substring($0) }, key: "kafka.dev.topics")]
    if let file = config.string("kafka.dev.topics.file") { lists.append(try TopicList(file: file, key: "kafka.dev.topics.file")) }
    var topics: [KafkaTopicSpec] = []
    var seen = Set<String>()
    for entry in lists.flatMap(\.entries) where seen.insert(entry.name).inserted {
        topics.append(KafkaTopicSpec(name: entry.name, partitions: entry.partitions, replicationFactor: Int32(min(brokerCount, 3))))
    }

    // Block SIGTERM and SIGINT in every thread (the mock cluster's threads inherit the mask and
    // must not see EINTR); the main thread takes them with sigwait.
    var stopSignals = sigset_t()
    sigemptyset(&stopSignals)
    sigaddset(&stopSignals, SIGTERM)
    sigaddset(&stopSignals, SIGINT)
    pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

    let cluster = try KafkaMockCluster(brokers: brokerCount, logger: logger)
    try cluster.createTopics(topics)
    let firstBroker = cluster.bootstrapServers.split(separator: ",")[0]
    guard let brokerPort = UInt16(firstBroker.split(separator: ":").last ?? "") else {
        throw ConfigurationError(key: "kafka.dev", reason: "unexpected bootstrap address \(firstBroker)")
    }
    let forwarder = try TCPForwarder(host: host, port: UInt16(port), targetPort: brokerPort, logger: logger)
    let bootstrap = "\(host):\(forwarder.port)"
    if let file = config.string("kafka.dev.bootstrap.file") {
        try bootstrap.write(toFile: file, atomically: true, encoding: .utf8)
    }
    logger.info(
        "mock Kafka cluster ready",
        metadata: ["bootstrap": .string(bootstrap), "brokers": .string(cluster.bootstrapServers), "broker.count": "\(brokerCount)"])
    Console.line("gedge-kafka-dev: bootstrap \(bootstrap) (brokers \(cluster.bootstrapServers))")

    var received: Int32 = 0
    sigwait(&stopSignals, &received)
    logger.info("shutting down", metadata: ["signal": "\(received)"])
    forwarder.stop()
    withExtendedLifetime(cluster) {}  // the brokers serve until here
}

Console.runMainSync("gedge-kafka-dev") { try runBroker() }
