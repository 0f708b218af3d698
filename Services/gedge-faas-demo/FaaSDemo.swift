import ArgumentParser
import Foundation
import GEdgeAMQP
import GEdgeCore
import GEdgeSecurity
import Hummingbird
import Logging
import ServiceLifecycle

// The FaaS seed's chained workflow, played locally: a motion detector publishing motion
// events, the detection function (one replica a process, which faas-trigger starts and
// stops) and a webhook receiver. RabbitMQ at GEDGE_AMQP_URL (the local stack's by default).

let logger: Logger = {
    var logger = Logger(label: "gedge-faas-demo")
    logger.logLevel = .warning
    return logger
}()
let amqpURL = ProcessInfo.processInfo.environment["GEDGE_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/"

/// The detection function: one replica, graceful on SIGTERM (finishes its message).
struct Detector: Service {
    let client: AMQPClient
    let work: Duration
    let logger: Logger

    func run() async throws {
        for q in ["motion", "accident", "fire", "knife"] { _ = try await client.declareQueue(AMQPQueueSpec(name: q)) }
        // What this replica holds, for a faas-trigger without RabbitMQ's management API.
        let inFlight = InFlightReporter(client: client, queue: "motion", replica: "detect-\(ProcessInfo.processInfo.processIdentifier)@\(ProcessInfo.processInfo.hostName)", logger: logger)
        try await inFlight.prepare()
        let deliveries = try await client.consume(queue: "motion", prefetch: 1)
        let kinds = ["accident", "fire", "knife"]
        try await withTaskCancellationOrGracefulShutdownHandler {
            for await d in deliveries {
                await inFlight.started()
                guard let event = try? JSONValue.parse(d.message.body), let id = event["event_id"]?.stringValue else {
                    try await client.ack(d)
                    await inFlight.finished()
                    continue
                }
                try await Task.sleep(for: work)  // looking closer at the frame
                let kind = kinds[Int(Digests.sha256(Array(id.utf8))[0]) % kinds.count]
                let detection: JSONValue = .object([
                    "event_id": .string("det-\(id)"), "type": .string(kind), "camera": event["camera"] ?? "cam-1",
                    "motion_event": .string(id), "confidence": 0.9,
                    "detected_at": .timestamp(Date()),
                ])
                try await client.publish(routingKey: kind, message: AMQPMessage(body: detection.serialized(), messageID: "det-\(id)"))
                try await client.ack(d)
                await inFlight.finished()
            }
        } onCancelOrGracefulShutdown: {
            Task { await client.close() }
        }
    }
}

struct Motion: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A motion detector: publishes --count motion events to --queue.")

    @Option(help: "motion events published") var count = 10
    @Option(help: "the queue") var queue = "motion"
    @Option(name: .customLong("run"), help: "a name for this run, in the events' IDs (by default the time)") var runName = String(Int(Date().timeIntervalSince1970))

    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count: \(count) is not 0 or more") }
    }

    func run() async throws {
        let client = AMQPClient(configuration: try AMQPConfiguration(url: amqpURL), logger: logger)
        _ = try await client.declareQueue(AMQPQueueSpec(name: queue))
        for i in 0..<count {
            let event: JSONValue = .object([
                "event_id": .string("motion-\(runName)-\(i)"), "camera": .string("cam-\(i % 3 + 1)"),
                "at": .timestamp(Date()),
            ])
            try await client.publish(routingKey: queue, message: AMQPMessage(body: event.serialized(), messageID: "motion-\(runName)-\(i)"))
        }
        print("published \(count) motion events to \(queue)")
        await client.close()
    }
}

struct Detect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The detection function, one replica: consumes motion, publishes to accident, fire or knife; finishes its message on SIGTERM.")

    @Option(name: .customLong("work-ms"), help: "milliseconds spent on each frame") var workMs = 50

    func validate() throws {
        guard workMs >= 0 else { throw ValidationError("--work-ms: \(workMs) is not 0 or more") }
    }

    func run() async throws {
        let client = AMQPClient(configuration: try AMQPConfiguration(url: amqpURL), logger: logger, name: "detector")
        let group = ServiceGroup(
            configuration: .init(services: [.init(service: Detector(client: client, work: .milliseconds(Int64(workMs)), logger: logger))],
                                 gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

struct Sink: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A webhook receiver on 127.0.0.1: prints each POST /hook and whether its X-GEdge-Signature is valid for --key.")

    @Option(help: "the TCP port on 127.0.0.1") var port = 9180
    @Option(help: "the signing key (HMAC-SHA256); empty: every signature is taken") var key = ""

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port: \(port) is not a TCP port (1 to 65535)") }
    }

    func run() async throws {
        let key = self.key
        let router = Router()
        router.post("/hook") { request, _ in
            let body = Array(try await request.body.collect(upTo: 1 << 20).readableBytesView)
            let sig = request.headers.first { $0.name.canonicalName == "x-gedge-signature" }?.value ?? "-"
            let ok = key.isEmpty || (sig.hasPrefix("sha256=") && Digests.isValidHMACSHA256(signatureHex: String(sig.dropFirst(7)), key: Array(key.utf8), message: body))
            let event = (try? JSONValue.parse(body)) ?? .null
            let line = "webhook: \(event["queue"]?.stringValue ?? "?") \(event["event_id"]?.stringValue ?? "?") signature \(ok ? "valid" : "INVALID")\n"
            FileHandle.standardOutput.write(Data(line.utf8))
            return Response(status: ok ? .ok : .unauthorized)
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)), logger: logger)
        try await ServiceGroup(configuration: .init(services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
    }
}

@main
struct FaaSDemo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gedge-faas-demo",
        abstract: "The FaaS seed's chained workflow, played locally: motion -> detection function -> webhook.",
        subcommands: [Motion.self, Detect.self, Sink.self])
}

