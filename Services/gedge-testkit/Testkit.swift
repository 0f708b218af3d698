import ArgumentParser
import Foundation
import GEdgeAMQP
import GEdgeCore
import GEdgeKafka
import Logging

// Helper processes for the integration tests, which start, watch and kill them. Each
// subcommand's --help says what it prints. Diagnosing: --log-level debug shows librdkafka's
// debug lines, and --kafka-debug cgrp turns its group-protocol contexts on.

/// A duration as the suite's configuration writes one (`500ms`, `3s`, `1m`).
struct DurationArgument: ExpressibleByArgument {
    let value: Duration
    init?(argument: String) {
        guard let d = ConfigReader.parseDuration(argument) else { return nil }
        value = d
    }
    init(_ value: Duration) { self.value = value }
    var defaultValueDescription: String { "\(value)" }
}

struct LogOptions: ParsableArguments {
    @Option(help: "trace, debug, info, notice, warning, error or critical (stderr)")
    var logLevel: String = "warning"

    func logger() throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level: '\(logLevel)' is not trace, debug, info, notice, warning, error or critical")
        }
        GEdgeLogging.bootstrapConsole(level: level)
        return Logger(label: "gedge-testkit")
    }
}

/// SIGTERM, handled on a queue of the process's (the default action ignored).
func onTerm(_ body: @escaping @Sendable () -> Void) -> any DispatchSourceSignal {
    signal(SIGTERM, SIG_IGN)
    let term = DispatchSource.makeSignalSource(signal: SIGTERM, queue: .global())
    term.setEventHandler(handler: body)
    term.resume()
    return term
}

struct KafkaConsume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka-consume",
        abstract: "A consumer-group member.",
        discussion: """
            Prints "ASSIGNED <partitions>" on each assignment and "MSG <partition> <offset> <key>" per \
            message; stores each message's offset after printing it unless --store false. On SIGTERM \
            it stops gracefully (commit, leave) and prints "CLOSED", or "CLOSE-FAILED <error>" and exits \
            1 when the close did not finish within --close-timeout.
            """)

    @Option(help: "bootstrap servers") var brokers = "127.0.0.1:9092"
    @Option(help: "consumer group") var group = "gedge-testkit"
    @Option(help: "the topic read") var topic = "test"
    @Option(help: "store each offset after its message (true or false)") var store = true
    @Option(help: "the group's session timeout") var sessionTimeout = DurationArgument(.seconds(6))
    @Option(help: "how long a close may take") var closeTimeout = DurationArgument(.seconds(20))
    @Option(help: "how long a rebalance waits for members to rejoin (librdkafka's max.poll.interval.ms)")
    var maxPollInterval = DurationArgument(.seconds(10))
    @Option(help: "librdkafka debug contexts (cgrp, fetch, ...)") var kafkaDebug: String?
    @OptionGroup var log: LogOptions

    func run() async throws {
        let logger = try log.logger()
        var config = KafkaConsumerConfiguration(client: KafkaConfiguration(brokers: brokers, clientID: "gedge-testkit"), groupID: group, topics: [topic])
        config.sessionTimeout = sessionTimeout.value
        config.closeTimeout = closeTimeout.value
        config.client["max.poll.interval.ms"] = String(maxPollInterval.value.milliseconds)
        if let kafkaDebug { config.client["debug"] = kafkaDebug }
        let consumer = try KafkaConsumer(configuration: config, logger: logger) { event in
            if case .assigned(let parts) = event {
                Console.line("ASSIGNED " + parts.map { "\($0.partition)" }.joined(separator: ","))
            }
        }
        let term = onTerm { consumer.stopPolling() }
        defer { term.cancel() }
        for await m in consumer {
            Console.line("MSG \(m.partition) \(m.offset) \(m.keyString ?? "")")
            if store { try consumer.storeOffset(m) }
        }
        do {
            try await consumer.close()
            Console.line("CLOSED")
        } catch {
            Console.line("CLOSE-FAILED \(error)")
            throw ExitCode(1)
        }
    }
}

struct AMQPConsume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "amqp-consume",
        abstract: "A RabbitMQ consumer that never acks.",
        discussion: #"Prints "CONSUMING" once it consumes, then "MSG <redelivered> <body>" per delivery; ends on SIGTERM."#)

    @Option(help: "AMQP URL") var url = "amqp://guest:guest@127.0.0.1:5672/"
    @Option(help: "the queue consumed") var queue = "test"
    @Option(help: "unacked deliveries at most (1 to 65535)") var prefetch: UInt16 = 100
    @OptionGroup var log: LogOptions

    func run() async throws {
        let logger = try log.logger()
        let client = AMQPClient(configuration: try AMQPConfiguration(url: url), logger: logger)
        try await client.waitUntilConnected()
        let deliveries = try await client.consume(queue: queue, prefetch: prefetch)
        Console.line("CONSUMING")
        let term = onTerm { Task { await client.close() } }
        defer { term.cancel() }
        for await d in deliveries {
            Console.line("MSG \(d.redelivered) \(String(decoding: d.message.body, as: UTF8.self))")
        }
    }
}

struct DecodePeak: ParsableCommand {
    enum Format: String, ExpressibleByArgument, CaseIterable { case json, yaml }

    static let configuration = CommandConfiguration(
        commandName: "decode-peak",
        abstract: "The decoder's peak memory on one file, measured alone in a process of its own.",
        discussion: #"Decodes the file with the process's default limits and prints "PEAK <KiB above the start> <parsed|refused: reason>" (VmHWM, reset just before)."#)

    @Option(help: "the file decoded") var file: String
    @Option(help: "json or yaml") var format: Format = .json

    func run() throws {
        func peakKiB() -> Int {
            let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
            let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("--file: cannot read \(file)") }
        var bytes = Array(data)
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
        let before = peakKiB()
        var outcome = "parsed"
        do {
            if format == .yaml { _ = try YAMLText.documents(bytes: &bytes, path: "") } else { _ = try JSONValue.parse(bytes) }
        } catch {
            outcome = "refused: \(error.reason)"
        }
        Console.line("PEAK \(peakKiB() - before) \(outcome)")
    }
}

@main
struct Testkit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gedge-testkit",
        abstract: "Helper processes for the integration tests, which start, watch and kill them.",
        subcommands: [KafkaConsume.self, AMQPConsume.self, DecodePeak.self])
}

