import Foundation
import GEdgeAMQP
import GEdgeCore
import GEdgeSecurity
import Hummingbird
import Logging
import ServiceLifecycle

// The FaaS seed's chained workflow, played locally:
//   motion  --count N [--queue motion]     a motion detector publishing N motion events
//   detect  [--work-ms 50]                 the detection function (one replica): consumes
//                                          motion, publishes to accident / fire / knife
//   sink    --port P [--key K]             a webhook receiver printing what it gets

let args = Array(CommandLine.arguments.dropFirst())
func option(_ name: String, _ def: String) -> String {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return def }
    return args[i + 1]
}
var logger = Logger(label: "gedge-faas-demo")
logger.logLevel = .warning
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

switch args.first {
case "motion":
    let client = AMQPClient(configuration: try AMQPConfiguration(url: amqpURL), logger: logger)
    let queue = option("--queue", "motion")
    _ = try await client.declareQueue(AMQPQueueSpec(name: queue))
    let count = Int(option("--count", "10")) ?? 10
    let run = option("--run", String(Int(Date().timeIntervalSince1970)))
    for i in 0..<count {
        let event: JSONValue = .object([
            "event_id": .string("motion-\(run)-\(i)"), "camera": .string("cam-\(i % 3 + 1)"),
            "at": .timestamp(Date()),
        ])
        try await client.publish(routingKey: queue, message: AMQPMessage(body: event.serialized(), messageID: "motion-\(run)-\(i)"))
    }
    print("published \(count) motion events to \(queue)")
    await client.close()
case "detect":
    let client = AMQPClient(configuration: try AMQPConfiguration(url: amqpURL), logger: logger, name: "detector")
    let group = ServiceGroup(
        configuration: .init(services: [.init(service: Detector(client: client, work: .milliseconds(Int64(option("--work-ms", "50")) ?? 50), logger: logger))],
                             gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    try await group.run()
case "sink":
    let key = option("--key", "")
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
    let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: Int(option("--port", "9180")) ?? 9180)), logger: logger)
    try await ServiceGroup(configuration: .init(services: [.init(service: app)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
default:
    FileHandle.standardError.write(Data("usage: gedge-faas-demo motion|detect|sink [options]\n".utf8))
    exit(2)
}
