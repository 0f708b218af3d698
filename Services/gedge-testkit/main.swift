import Foundation
import GEdgeAMQP
import GEdgeCore
import GEdgeKafka
import Logging

// Helper processes for the integration tests, which start, watch and kill them:
//
//   gedge-testkit kafka-consume --brokers B --group G --topic T [--store true|false]
//       prints "ASSIGNED <partitions>" on each assignment and "MSG <partition> <offset> <key>"
//       per message; stores offsets after each message when --store is true; stops
//       gracefully (commit, leave) on SIGTERM: "CLOSED", or "CLOSE-FAILED <error>" and exit
//       status 1 when the close did not finish within --close.timeout (20 s).
//   gedge-testkit amqp-consume --url U --queue Q [--prefetch N]
//       prints "MSG <redelivered> <body>" per delivery and never acks.
//   gedge-testkit decode-peak --file F --format json|yaml
//       decodes the file with the process's default limits and prints
//       "PEAK <KiB above the start> <parsed|refused: reason>": the decoder's peak memory,
//       measured alone in a process of its own (VmHWM, reset just before).
//
// Diagnosing: --log.level debug (GEDGE_LOG_LEVEL) shows librdkafka's debug lines, and
// --kafka.debug cgrp (GEDGE_KAFKA_DEBUG) turns its group-protocol contexts on.

let config = try ConfigReader()
GEdgeLogging.bootstrapConsole(level: config.string("log.level").flatMap { Logger.Level(rawValue: $0) } ?? .warning)
let logger = Logger(label: "gedge-testkit")
signal(SIGTERM, SIG_IGN)
let term = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())

switch config.arguments.first {
case "kafka-consume":
    var consumerConfig = KafkaConsumerConfiguration(
        client: KafkaConfiguration(brokers: config.string("brokers", default: "127.0.0.1:9092"), clientID: "gedge-testkit"),
        groupID: config.string("group", default: "gedge-testkit"), topics: [config.string("topic", default: "test")])
    consumerConfig.sessionTimeout = try config.duration("session.timeout", default: .seconds(6))
    consumerConfig.closeTimeout = try config.duration("close.timeout", default: .seconds(20))
    // A rebalance waits at most this long for members to rejoin (librdkafka's default is
    // 5 minutes): a member leaving in the middle of one is not held for minutes.
    var client = consumerConfig.client
    client["max.poll.interval.ms"] = String(try config.duration("max.poll.interval", default: .seconds(10)).milliseconds)
    if let debug = config.string("kafka.debug") { client["debug"] = debug }
    consumerConfig.client = client
    let store = try config.bool("store", default: true)
    let consumer = try KafkaConsumer(configuration: consumerConfig, logger: logger) { event in
        if case .assigned(let parts) = event {
            Console.line("ASSIGNED " + parts.map { "\($0.partition)" }.joined(separator: ","))
        }
    }
    term.setEventHandler { consumer.stopPolling() }
    term.resume()
    for await m in consumer {
        Console.line("MSG \(m.partition) \(m.offset) \(m.keyString ?? "")")
        if store { try consumer.storeOffset(m) }
    }
    do {
        try await consumer.close()
        Console.line("CLOSED")
    } catch {
        Console.line("CLOSE-FAILED \(error)")
        exit(1)
    }
case "amqp-consume":
    let client = AMQPClient(configuration: try AMQPConfiguration(url: config.string("url", default: "amqp://guest:guest@127.0.0.1:5672/")), logger: logger)
    try await client.waitUntilConnected()
    let deliveries = try await client.consume(queue: config.string("queue", default: "test"), prefetch: UInt16(try config.int("prefetch", default: 100)))
    Console.line("CONSUMING")
    term.setEventHandler { Task { await client.close() } }
    term.resume()
    for await d in deliveries {
        Console.line("MSG \(d.redelivered) \(String(decoding: d.message.body, as: UTF8.self))")
    }
case "decode-peak":
    func peakKiB() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
    var bytes = Array(FileManager.default.contents(atPath: config.string("file", default: "")) ?? Data())
    let yaml = config.string("format", default: "json") == "yaml"
    try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    let before = peakKiB()
    var outcome = "parsed"
    do {
        if yaml { _ = try YAMLText.documents(bytes: &bytes, path: "") } else { _ = try JSONValue.parse(bytes) }
    } catch {
        outcome = "refused: \(error.reason)"
    }
    Console.line("PEAK \(peakKiB() - before) \(outcome)")
default:
    FileHandle.standardError.write(Data("usage: gedge-testkit kafka-consume|amqp-consume|decode-peak [--key value ...]\n".utf8))
    exit(2)
}
