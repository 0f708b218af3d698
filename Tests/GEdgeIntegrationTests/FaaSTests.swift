import Foundation
import GEdgeAMQP
import GEdgeAgent
import GEdgeCore
import GEdgeSecurity
import GEdgeFaaS
import GEdgeHTTPClient
import GEdgeKafka
import GEdgeOutbox
import GEdgePlacement
import GEdgePostgres
import ServiceLifecycle
import Testing

/// faas-trigger and notifier against the real RabbitMQ (queues of their own per test),
/// with a simulated cluster agent over the mock Kafka and a PostgreSQL schema per test.
@Suite("FaaS", .enabled(if: TestEnv.integration), .timeLimit(.minutes(3)))
struct FaaSTests {
    func amqp() async throws -> AMQPClient {
        let c = AMQPClient(configuration: try AMQPConfiguration(url: TestEnv.amqpURL), logger: TestEnv.logger)
        try await c.waitUntilConnected()
        return c
    }

    func scaledObject(queue: String, name: String, value: Int = 10, polling: Int = 1, cooldown: Int = 2, max: Int = 5) -> String {
        """
        apiVersion: keda.sh/v1alpha1
        kind: ScaledObject
        metadata: {name: \(name), namespace: fn}
        spec:
          scaleTargetRef: {name: \(name)-worker}
          pollingInterval: \(polling)
          cooldownPeriod: \(cooldown)
          maxReplicaCount: \(max)
          triggers:
          - type: rabbitmq
            metadata: {host: "\(TestEnv.amqpURL)", protocol: auto, queueName: \(queue), mode: QueueLength, value: "\(value)"}
        """
    }

    /// The functions' cluster: one simulated node and its agent.
    func edge1Agent(_ h: SchedulerHarness) throws -> SimulatedCluster {
        let sim = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 1))
        try h.cluster.createTopic(Topics.agentCommands(cluster: "edge1"), partitions: 1)
        try h.startAgent("edge1", driver: sim)
        return sim
    }

    func startTrigger(_ h: SchedulerHarness, http: HTTPClient) throws -> ServiceGroup {
        var s = FaaSSettings()
        s.cluster = "edge1"
        s.activationInterval = .milliseconds(100)
        s.reloadInterval = .milliseconds(300)
        s.managementURL = "http://guest:guest@127.0.0.1:\(ProcessInfo.processInfo.environment["GEDGE_AMQP_MGMT_PORT"] ?? "15672")"
        return h.run([FaaSTrigger(settings: s, store: FunctionStore(pool: h.pool), readers: QueueReaders(http: http, settings: s, logger: h.logger), producer: h.producer, logger: h.logger)])
    }

    /// KEDA's HTTP reading against RabbitMQ's management API: credentials from a Secret
    /// through a TriggerAuthentication, `useRegex` over two queues with each `operation`, and
    /// `excludeUnacknowledged` once a consumer holds messages.
    @Test func kedaHTTPReadingsAsKEDAReadsThem() async throws {
        let c = try await amqp()
        let tag = "keda-" + UUID().uuidString.prefix(8).lowercased()
        for q in ["a", "b"] { _ = try await c.declareQueue(AMQPQueueSpec(name: "\(tag)-\(q)", autoDelete: false)) }
        for _ in 0..<3 { try await c.publish(routingKey: "\(tag)-a", message: AMQPMessage(body: Array("{}".utf8))) }
        for _ in 0..<5 { try await c.publish(routingKey: "\(tag)-b", message: AMQPMessage(body: Array("{}".utf8))) }
        let port = ProcessInfo.processInfo.environment["GEDGE_AMQP_MGMT_PORT"] ?? "15672"
        func trigger(_ extra: String) throws -> ScaledObject.Trigger {
            let file = """
                apiVersion: v1
                kind: Secret
                metadata: {name: rmq, namespace: fn}
                data: {host: \(Data("http://guest:guest@127.0.0.1:\(port)/".utf8).base64EncodedString())}
                ---
                apiVersion: keda.sh/v1alpha1
                kind: TriggerAuthentication
                metadata: {name: rmq, namespace: fn}
                spec: {secretTargetRef: [{parameter: host, name: rmq, key: host}]}
                ---
                apiVersion: keda.sh/v1alpha1
                kind: ScaledObject
                metadata: {name: f, namespace: fn}
                spec:
                  scaleTargetRef: {name: w}
                  triggers:
                  - type: rabbitmq
                    metadata: {queueName: '^\(tag)-.*', useRegex: 'true', mode: QueueLength, value: '5'\(extra)}
                    authenticationRef: {name: rmq}
                """
            return try #require(try ScaledObject.parseAll(file).first?.triggers.first)
        }
        let http = HTTPClient(logger: TestEnv.logger)
        let readers = QueueReaders(http: http, settings: FaaSSettings(), logger: TestEnv.logger)
        // The management API's counts catch up within its statistics interval.
        try await eventually("sum over both queues", timeout: .seconds(20)) { await readers.read(try trigger(""))?.messages == 8 }
        #expect(await readers.read(try trigger(", operation: max"))?.messages == 5)
        #expect(await readers.read(try trigger(", operation: avg"))?.messages == 4)
        // A consumer holds two of a's messages unacknowledged: 8 in all, 6 ready.
        let held = try await c.consume(queue: "\(tag)-a", prefetch: 2)
        var got = 0
        for await _ in held {
            got += 1
            if got == 2 { break }
        }
        try await eventually("two unacknowledged", timeout: .seconds(20)) { await readers.read(try trigger(", excludeUnacknowledged: 'true'"))?.messages == 6 }
        #expect(await readers.read(try trigger(""))?.messages == 8)
        // A regex that matches nothing reads 0; a wrong password is a failed reading, not 0.
        var none = try trigger("")
        none.queueName = "^nothing-\(tag)$"
        #expect(await readers.read(none)?.messages == 0)
        var wrong = try trigger("")
        wrong.host = .literal("http://guest:wrong@127.0.0.1:\(port)/")
        #expect(await readers.read(wrong) == nil)
        await c.close()
        let cleanup = try await amqp()
        for q in ["a", "b"] { _ = try? await cleanup.deleteQueue("\(tag)-\(q)") }
        await cleanup.close()
        await readers.close()
        await http.shutdown()
    }

    /// 0 → 1 within a second of the first message, 1 → ceil(queue / value), back to 0 after
    /// the cooldown once the queue is drained; a restart of the trigger loses nothing.
    @Test func scalesFromZeroOutAndBackAcrossARestart() async throws {
        let h = try await SchedulerHarness()
        let sim = try edge1Agent(h)
        let http = HTTPClient(logger: h.logger)
        let queue = TestEnv.unique("jobs")
        let c = try await amqp()
        _ = try await c.declareQueue(AMQPQueueSpec(name: queue))
        let text = scaledObject(queue: queue, name: "f1")
        let object = try #require(try ScaledObject.parseAll(text).first)
        let doc = try YAMLDocuments.read(text)[0]
        try await FunctionStore(pool: h.pool).upsert(object, definition: doc, cluster: "edge1")
        var trigger = try startTrigger(h, http: http)
        try await Task.sleep(for: .seconds(1))
        #expect(await sim.replicas(namespace: "fn", name: "f1-worker") == 0)

        let published = Date()
        for i in 0..<35 { try await c.publish(routingKey: queue, message: AMQPMessage(body: Array("{\"n\":\(i)}".utf8))) }
        try await eventually("activated", timeout: .seconds(10)) { await sim.replicas(namespace: "fn", name: "f1-worker") >= 1 }
        // Activation: from the first publish to the scale command, recorded as it is sent.
        let first = try await h.pool.query(
            "SELECT at FROM function_scale_events WHERE name = 'f1' AND from_replicas = 0 ORDER BY id LIMIT 1").first?.decode("at", as: Date.self)
        let activation = try #require(first).timeIntervalSince(published)
        // Within one polling interval (1 s) and a scale command's way, with room for a busy
        // 2-core machine: the figure itself is gedge-bench-faas's to measure, not a test's.
        #expect(activation < 2.5, "activation took \(activation) s")
        // ceil(35 / 10) = 4 once the management API's counts catch up (it refreshes every few seconds).
        do {
            try await eventually("scaled out to 4", timeout: .seconds(30)) { await sim.replicas(namespace: "fn", name: "f1-worker") == 4 }
        } catch {
            let events = try await FunctionStore(pool: h.pool).events(namespace: "fn", name: "f1")
            Issue.record("replicas \(await sim.replicas(namespace: "fn", name: "f1-worker")); scale events, newest first: \(events)")
            throw error
        }

        // The trigger restarts; the queue keeps its messages and the function its replicas.
        await h.stop(trigger)
        trigger = try startTrigger(h, http: http)
        try await Task.sleep(for: .seconds(2))
        #expect(await sim.replicas(namespace: "fn", name: "f1-worker") == 4)
        #expect(try await c.queueInfo(queue).messageCount == 35)

        // Drained: back to zero after the cooldown.
        _ = try await c.purgeQueue(queue)
        // The command reaches the agent before the trigger records it: wait for both.
        try await eventually("back to zero", timeout: .seconds(30)) { await sim.replicas(namespace: "fn", name: "f1-worker") == 0 }
        try await eventually("scale-in recorded", timeout: .seconds(10)) {
            (try? await FunctionStore(pool: h.pool).events(namespace: "fn", name: "f1").first?["to"]?.numberValue) == 0
        }
        let events = try await FunctionStore(pool: h.pool).events(namespace: "fn", name: "f1")
        let steps = events.reversed().compactMap { e -> String? in
            guard let f = e["from"]?.numberValue, let t = e["to"]?.numberValue else { return nil }
            return "\(Int(f))->\(Int(t))"
        }
        #expect(steps.first == "0->1" && steps.last?.hasSuffix("->0") == true, "\(steps)")
        #expect(events.first?["reason"]?.stringValue?.contains("cooldownPeriod") == true)
        await h.stop(trigger)
        _ = try await c.deleteQueue(queue)
        await c.close()
        await http.shutdown()
        await h.shutdown()
    }

    /// Without RabbitMQ's management API the replicas' in-flight reports are the count of
    /// unacknowledged messages: a function whose only message is being worked on (held longer
    /// than its cooldown) is not scaled to zero mid-work. Beside it, a function whose consumer
    /// does not report goes to zero while its message is still held: what KEDA does.
    @Test func workInProgressKeepsAFunctionUpWithoutTheManagementAPI() async throws {
        let h = try await SchedulerHarness()
        let sim = try edge1Agent(h)
        let http = HTTPClient(logger: h.logger)
        let c = try await amqp()
        let store = FunctionStore(pool: h.pool)
        var queues: [String: String] = [:]
        for name in ["tracked", "untracked"] {
            let q = TestEnv.unique(name)
            queues[name] = q
            _ = try await c.declareQueue(AMQPQueueSpec(name: q))
            let text = """
                apiVersion: keda.sh/v1alpha1
                kind: ScaledObject
                metadata: {name: \(name), namespace: fn}
                spec:
                  scaleTargetRef: {name: \(name)-worker}
                  pollingInterval: 1
                  cooldownPeriod: 3
                  triggers:
                  - type: rabbitmq
                    metadata: {host: "\(TestEnv.amqpURL)", protocol: amqp, queueName: \(q), mode: QueueLength, value: "1"}
                """
            try await store.upsert(try #require(try ScaledObject.parseAll(text).first), definition: try YAMLDocuments.read(text)[0], cluster: "edge1")
        }
        var s = FaaSSettings()
        s.cluster = "edge1"
        s.activationInterval = .milliseconds(100)
        s.reloadInterval = .milliseconds(300)
        let tracker = InFlightTracker(client: AMQPClient(configuration: try AMQPConfiguration(url: TestEnv.amqpURL), logger: h.logger), ttl: .seconds(3), logger: h.logger)
        _ = h.run([tracker, FaaSTrigger(settings: s, store: store, readers: QueueReaders(http: http, settings: s, inFlight: tracker, logger: h.logger),
                                        producer: h.producer, logger: h.logger)])
        try await Task.sleep(for: .milliseconds(500))

        // A message each: both functions activate; then their replicas (slow consumers, one
        // reporting what it holds) take the message.
        for name in ["tracked", "untracked"] { try await c.publish(routingKey: queues[name]!, message: AMQPMessage(body: Array("{}".utf8))) }
        try await eventually("both activated", timeout: .seconds(10)) {
            let a = await sim.replicas(namespace: "fn", name: "tracked-worker")
            let b = await sim.replicas(namespace: "fn", name: "untracked-worker")
            return a == 1 && b == 1
        }
        let worker = try await amqp()
        let reporter = InFlightReporter(client: worker, queue: queues["tracked"]!, replica: "w1", ip: "10.1.0.7", heartbeat: .milliseconds(500), logger: h.logger)
        try await reporter.prepare()
        let tracked = try await worker.consume(queue: queues["tracked"]!, prefetch: 1)
        let worker2 = try await amqp()  // one consumer per client
        let untracked = try await worker2.consume(queue: queues["untracked"]!, prefetch: 1)
        var it1 = tracked.makeAsyncIterator(), it2 = untracked.makeAsyncIterator()
        let d1 = try #require(await it1.next())
        await reporter.started()
        let d2 = try #require(await it2.next())
        try await eventually("the report arrived") { tracker.unacknowledged(queues["tracked"]!) == 1 }
        #expect(tracker.busyIPs(queues["tracked"]!) == ["10.1.0.7"])
        // Held for 6 s: twice the cooldown. (The cooldown leaves room for the gap between a
        // delivery and its replica's first report, which is seconds on a loaded machine.)
        var trackedLow = false
        let until = ContinuousClock.now + .seconds(6)
        while ContinuousClock.now < until {
            if await sim.replicas(namespace: "fn", name: "tracked-worker") == 0 { trackedLow = true }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(!trackedLow, "the function was scaled to zero while its message was in progress")
        try await eventually("the untracked function at zero with its message held", timeout: .seconds(10)) {
            await sim.replicas(namespace: "fn", name: "untracked-worker") == 0
        }
        // Done: acked and reported; back to zero after the cooldown.
        try await worker.ack(d1)
        await reporter.finished()
        try await worker2.ack(d2)
        try await eventually("back to zero", timeout: .seconds(15)) { await sim.replicas(namespace: "fn", name: "tracked-worker") == 0 }
        for q in queues.values { _ = try await c.deleteQueue(q) }
        await worker.close()
        await worker2.close()
        await c.close()
        await http.shutdown()
        await h.shutdown()
    }

    func notifierSettings(_ queues: [String], hook: String?) -> NotifierSettings {
        var s = NotifierSettings()
        s.queues = queues
        s.webhooks = hook.map { [$0] } ?? []
        return s
    }

    /// Each event stored once, acked after; a receiver down then up gets each exactly once,
    /// signed; malformed events go to the dead-letter queue with the reason.
    @Test func notificationsStoredOnceDeliveredOnceAndBadOnesDeadLettered() async throws {
        let h = try await SchedulerHarness()
        let queue = TestEnv.unique("fire")
        let receiver = try WebhookReceiver()
        let port = receiver.port  // down at first: nothing listens there yet
        let c = try await amqp()
        try await NotificationConsumer.declare(c, queue: queue)
        for i in 0..<20 {
            let e = #"{"event_id":"fire-\#(i)","type":"fire","camera":"cam-1"}"#
            try await c.publish(routingKey: queue, message: AMQPMessage(body: Array(e.utf8)))
            if i % 5 == 0 { try await c.publish(routingKey: queue, message: AMQPMessage(body: Array(e.utf8))) }  // duplicates
        }
        try await c.publish(routingKey: queue, message: AMQPMessage(body: Array("{not json".utf8), messageID: "bad-1"))
        try await c.publish(routingKey: queue, message: AMQPMessage(body: Array(#"{"type":"fire"}"#.utf8), messageID: "bad-2"))
        // Poison: nesting far past the limit, and a NUL the database cannot hold.
        let deep = #"{"event_id":"deep-1","x":"# + String(repeating: "[", count: 50_000) + String(repeating: "]", count: 50_000) + "}"
        try await c.publish(routingKey: queue, message: AMQPMessage(body: Array(deep.utf8), messageID: "bad-3"))
        try await c.publish(routingKey: queue, message: AMQPMessage(body: Array(#"{"event_id":"nul-1","note":"a\u0000b"}"#.utf8), messageID: "bad-4"))
        // ...and a good one after them.
        try await c.publish(routingKey: queue, message: AMQPMessage(body: Array(#"{"event_id":"fire-after","type":"fire"}"#.utf8)))

        let consumerClient = try await amqp()
        let http = HTTPClient(logger: h.logger)
        var webhook = WebhookSettings()
        webhook.firstBackoff = .milliseconds(200)
        webhook.maxBackoff = .seconds(1)
        webhook.pollInterval = .milliseconds(50)
        webhook.signingKey = "k"
        let wake = Wakeup()
        _ = h.run([
            NotificationConsumer(queue: queue, client: consumerClient, pool: h.pool, settings: notifierSettings([queue], hook: "http://127.0.0.1:\(port)/hook"), wake: wake, logger: h.logger),
            WebhookDeliverer(pool: h.pool, http: http, settings: webhook, wake: wake, table: "notification_deliveries", key: "id", metric: "test_notifier_deliveries", logger: h.logger),
        ])
        try await eventually("stored") {
            try await h.pool.query("SELECT count(*) AS n FROM notifications WHERE queue = $1", [.text(queue)]).first?.decode("n", as: Int.self) == 21
        }
        try await eventually("all acked") { try await c.queueInfo(queue).messageCount == 0 }
        try await eventually("failed attempts while down") {
            try await h.pool.query("SELECT min(attempts) AS n FROM notification_deliveries").first?.decode("n", as: Int.self) ?? 0 >= 1
        }
        try await receiver.start()
        try await eventually("delivered") { receiver.received.count >= 21 }
        try await Task.sleep(for: .seconds(1))
        #expect(receiver.received.count == 21)
        #expect(Set(receiver.received.compactMap { $0.body["event_id"]?.stringValue }).count == 21)
        #expect(receiver.received.allSatisfy { $0.signature == "sha256=" + Digests.hmacSHA256Hex(key: Array("k".utf8), message: $0.raw) })
        let status = try await NotificationStore(pool: h.pool).get(eventID: "fire-3")
        #expect(status?["deliveries"]?.arrayValue?.first?["state"] == "delivered")

        // The two bad ones, with the reason.
        let dlq = try await amqp()
        var it = try await dlq.consume(queue: queue + ".dlq", prefetch: 10).makeAsyncIterator()
        var reasons: [String: String] = [:]
        for _ in 0..<4 {
            let d = try #require(await it.next())
            reasons[d.message.messageID ?? ""] = "\(d.message.headers["x-gedge-error-code"] ?? "") \(d.message.headers["x-gedge-error-field"] ?? "")"
            try await dlq.ack(d)
        }
        #expect(reasons == ["bad-1": "malformed_json ", "bad-2": "missing_field event_id", "bad-3": "too_large ", "bad-4": "invalid_value note"])
        await dlq.close()
        await receiver.stop()
        _ = try await c.deleteQueue(queue)
        _ = try await c.deleteQueue(queue + ".dlq")
        await c.close()
        await http.shutdown()
        await h.shutdown()
    }

    /// An event of 20 MiB (RabbitMQ takes up to 128 MiB) is not read into memory whole: its
    /// consumer, limited to the event size as the notifier is, keeps a prefix, dead-letters it
    /// with the original's size and digest, and stores the next event.
    @Test func anEventPastTheLimitIsDeadLetteredWithoutBeingHeld() async throws {
        let h = try await SchedulerHarness()
        let queue = TestEnv.unique("huge")
        let c = try await amqp()
        try await NotificationConsumer.declare(c, queue: queue)
        let huge = Array(#"{"event_id":"huge-1","pad":""#.utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 20 << 20) + Array(#""}"#.utf8)
        try await c.publish(routingKey: queue, message: AMQPMessage(body: huge, messageID: "huge"))
        try await c.publish(routingKey: queue, message: AMQPMessage(body: Array(#"{"event_id":"after-huge","type":"fire"}"#.utf8)))
        let settings = notifierSettings([queue], hook: nil)
        var configuration = try AMQPConfiguration(url: TestEnv.amqpURL)
        configuration.maxBodyBytes = settings.maxEventBytes
        let consumerClient = AMQPClient(configuration: configuration, logger: TestEnv.logger)
        _ = h.run([NotificationConsumer(queue: queue, client: consumerClient, pool: h.pool, settings: settings, wake: Wakeup(), logger: h.logger)])
        try await eventually("the next event stored") { try await NotificationStore(pool: h.pool).get(eventID: "after-huge") != nil }
        #expect(try await NotificationStore(pool: h.pool).get(eventID: "huge-1") == nil)

        let dlq = try await amqp()
        var it = try await dlq.consume(queue: queue + ".dlq", prefetch: 1).makeAsyncIterator()
        let d = try #require(await it.next())
        #expect(d.message.messageID == "huge")
        #expect(d.message.headers["x-gedge-error-code"] == "too_large")
        #expect(d.message.headers["x-gedge-error"]?.contains("\(huge.count) bytes exceeds the limit of \(settings.maxEventBytes)") == true)
        #expect(d.message.headers["x-gedge-truncated"] == "true" && d.message.headers["x-gedge-original-bytes"] == String(huge.count))
        #expect(d.message.headers["x-gedge-original-sha256"] == Digests.sha256Hex(huge))
        #expect(d.message.body.count == AMQPDelivery.Oversize.prefixBytes && huge.starts(with: d.message.body))
        try await dlq.ack(d)
        await dlq.close()
        _ = try await c.deleteQueue(queue)
        _ = try await c.deleteQueue(queue + ".dlq")
        await c.close()
        await h.shutdown()
    }

    /// The notifier process killed (SIGKILL) mid-stream and started again: every event is
    /// stored exactly once and the queue ends empty.
    @Test func notifierCrashLosesNothingAndStoresOnce() async throws {
        let h = try await SchedulerHarness()
        let queue = TestEnv.unique("accident")
        let c = try await amqp()
        try await NotificationConsumer.declare(c, queue: queue)
        let n = 20000
        for i in 0..<n {
            try await c.publish(routingKey: queue, message: AMQPMessage(body: Array(#"{"event_id":"acc-\#(i)","type":"accident"}"#.utf8)))
        }
        let args = ["--postgres-url", h.schemaURL, "--amqp-url", TestEnv.amqpURL, "--notifier-queues", queue,
                    "--http-port", "0", "--log-level", "warning"]
        // The first one stores an event per transaction, so that the kill lands mid-stream
        // however late a loaded machine lets this test see the first one stored.
        let first = try ChildProcess("notifier", args + ["--notifier-batch", "1", "--notifier-prefetch", "1"])
        try await eventually("some stored") {
            (try await h.pool.query("SELECT count(*) AS n FROM notifications").first?.decode("n", as: Int.self) ?? 0) > 0
        }
        first.kill(SIGKILL)
        try await first.waitForExit()
        let before = try await h.pool.query("SELECT count(*) AS n FROM notifications").first?.decode("n", as: Int.self) ?? 0
        #expect(before < n, "the crash came too late to test anything")
        let second = try ChildProcess("notifier", args + ["--notifier-batch", "50"])
        try await eventually("all stored", timeout: .seconds(90)) {
            try await h.pool.query("SELECT count(*) AS n FROM notifications").first?.decode("n", as: Int.self) == n
        }
        try await eventually("queue empty") { try await c.queueInfo(queue).messageCount == 0 }
        // Past its start-up, so that SIGTERM meets its signal handler.
        try await Task.sleep(for: .seconds(2))
        second.kill(SIGTERM)
        try await second.waitForExit()
        #expect(second.exitStatus == 0)
        let distinct = try await h.pool.query("SELECT count(DISTINCT event_id) AS n FROM notifications").first?.decode("n", as: Int.self)
        #expect(distinct == n)
        _ = try await c.deleteQueue(queue)
        _ = try await c.deleteQueue(queue + ".dlq")
        await c.close()
        await h.shutdown()
    }
}
