import Foundation
import GEdgeCore
import GEdgeKafka
import GEdgePostgres
import GEdgeScheduler
import Logging

// The demo's main job: publish schedule requests to Kafka as a producer would (one per
// policy, one fast), plus one malformed message; then follow each request's lifecycle in
// PostgreSQL as the scheduler records it, print it, and show the malformed message on the
// dead-letter topic with its reason.
//
// Keys: kafka.brokers, postgres.url, scheduler.topic, demo.timeout (30s).

let config = try ConfigReader()
GEdgeLogging.bootstrapConsole(level: .warning)
let logger = Logger(label: "gedge-demo")
let topic = config.string("scheduler.topic", default: Topics.scheduleRequests)
let timeout = try config.duration("demo.timeout", default: .seconds(30))
let kafka = KafkaConfiguration(config, clientID: "gedge-demo")
let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: kafka), logger: logger)
let pool = PostgresPool(configuration: try PostgresConfiguration(config, applicationName: "gedge-demo"), logger: logger)
let store = RequestStore(pool: pool)
let codec = EnvelopeCodec()

let run = String(RequestID.make().prefix(8))
let requests: [ScheduleRequest] = [
    ScheduleRequest(
        requestID: "demo-\(run)-low", policy: .lowLatency, userName: "user1", workspaceName: "w1", projectName: "p1",
        workload: .string("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: yolo-pre}\n"),
        parameters: .object(["source_cluster": .string("edge1")])),
    ScheduleRequest(
        requestID: "demo-\(run)-most", policy: .mostRequested, userName: "user1", workspaceName: "w1", projectName: "p1",
        fast: true, workload: .string("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: yolo-infer}\n")),
    ScheduleRequest(
        requestID: "demo-\(run)-select", policy: .selectedCluster, userName: "user1", workspaceName: "w1", projectName: "p1",
        workload: .string("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: yolo-post}\n"),
        parameters: .object(["mode": .string("cluster"), "select_clusters": .array([.string("edge1"), .array([.string("edge2"), .string("cloud")])])])),
]

Console.line("== publishing \(requests.count) schedule requests to \(topic) (key = request ID)")
for r in requests {
    let report = try await producer.send(KafkaRecord(topic: topic, key: r.requestID, value: codec.encode(r.envelope(sourceCluster: "edge1"))))
    Console.line("   \(r.requestID)  policy=\(r.policy.rawValue)  fast=\(r.fast)  -> partition \(report.partition) offset \(report.offset)")
}
let badKey = "demo-\(run)-bad"
_ = try await producer.send(KafkaRecord(topic: topic, key: badKey, value: Array(#"{"source":{"type":"cluster","object":"edge1"},"target":{"type":"cluster","object":"scheduler"},"hcode":"0x0064","lcode":1,"msg":{"policy":"GLowLatencyPriority","user_name":7}}"#.utf8)))
Console.line("   \(badKey)  (malformed: msg.user_name is a number)")

Console.line("== waiting for the scheduler to record them in PostgreSQL")
let deadline = ContinuousClock.now + timeout
var pendingIDs = Set(requests.map(\.requestID))
while !pendingIDs.isEmpty && ContinuousClock.now < deadline {
    for id in pendingIDs {
        if let r = try await store.request(id: id), r.state != .received { pendingIDs.remove(id) }
    }
    if !pendingIDs.isEmpty { try await Task.sleep(for: .milliseconds(100)) }
}
guard pendingIDs.isEmpty else {
    Console.line("!! not recorded within \(timeout): \(pendingIDs.sorted()). Is the scheduler running?")
    exit(1)
}
let stamp = DateFormatter()
stamp.dateFormat = "HH:mm:ss.SSS"
stamp.timeZone = TimeZone(identifier: "UTC")
for r in requests {
    let stored = try await store.request(id: r.requestID)!
    Console.line("-- \(r.requestID)  state=\(stored.state.rawValue)  fails=\(stored.failCount)  project=\(stored.projectName)")
    for e in try await store.lifecycle(id: r.requestID) {
        Console.line("     \(stamp.string(from: e.at))  \(e.state.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0))  \(e.reason ?? "")")
    }
}

Console.line("== dead-letter topic \(Topics.deadLetter(for: topic))")
let dlq = try KafkaConsumer(
    configuration: KafkaConsumerConfiguration(client: kafka, groupID: "gedge-demo-\(run)", topics: [Topics.deadLetter(for: topic)]),
    logger: logger)
var found = false
let watchdog = Task {
    try await Task.sleep(for: timeout)
    dlq.stopPolling()
}
for await m in dlq where m.keyString == badKey {
    let reason = m.header(MessageHeaders.error).map { String(decoding: $0, as: UTF8.self) } ?? "?"
    Console.line("   \(badKey): \(reason)")
    found = true
    break
}
watchdog.cancel()
if !found { Console.line("!! the malformed message did not reach the dead-letter topic") }
dlq.stopPolling()
try? await dlq.close()
await producer.shutdown()
pool.shutdown()
exit(found ? 0 : 1)

