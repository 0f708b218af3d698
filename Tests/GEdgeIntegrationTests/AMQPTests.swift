import Foundation
import GEdgeAMQP
import GEdgeCore
import Testing

/// Against the local RabbitMQ. Each test declares queues of its own.
@Suite("RabbitMQ", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(2)))
struct AMQPTests {
    let logger = TestEnv.logger

    func client() async throws -> AMQPClient {
        let c = AMQPClient(configuration: try AMQPConfiguration(url: TestEnv.amqpURL), logger: logger)
        try await c.waitUntilConnected()
        return c
    }

    func message(_ s: String) -> AMQPMessage { AMQPMessage(body: Array(s.utf8), headers: ["n": s], messageID: s) }

    @Test func publishesWithConfirmsAndReportsQueueDepth() async throws {
        let c = try await client()
        let q = TestEnv.unique("depth")
        let declared = try await c.declareQueue(AMQPQueueSpec(name: q, autoDelete: false))
        #expect(declared.messageCount == 0)
        for i in 0..<7 { try await c.publish(routingKey: q, message: message("m\(i)")) }
        #expect(try await c.queueInfo(q).messageCount == 7)
        #expect(try await c.queueInfo(q).consumerCount == 0)

        let consumer = try await client()
        let deliveries = try await consumer.consume(queue: q, prefetch: 3)
        var it = deliveries.makeAsyncIterator()
        for i in 0..<3 {
            let d = try #require(await it.next())
            #expect(String(decoding: d.message.body, as: UTF8.self) == "m\(i)")
            #expect(d.message.headers["n"] == "m\(i)")
            #expect(d.message.messageID == "m\(i)")
            #expect(d.message.persistent)
            try await consumer.ack(d)
        }
        // Ready messages exclude the ones delivered but unacked (prefetch 3 keeps 3 in flight).
        try await eventually("depth after acks") {
            let info = try await c.queueInfo(q)
            return info.messageCount == 1 && info.consumerCount == 1
        }
        await consumer.close()
        _ = try await c.deleteQueue(q)
        await c.close()
    }

    @Test func unroutableAndMissingTargetsAreClearErrors() async throws {
        let c = try await client()
        do {
            try await c.publish(routingKey: TestEnv.unique("nobody"), message: message("x"))
            Issue.record("publishing to no queue must fail")
        } catch let e as AMQPError {
            #expect(e.code == .unroutable)
        }
        do {
            _ = try await c.queueInfo(TestEnv.unique("missing"))
            Issue.record("a missing queue must be reported")
        } catch let e as AMQPError {
            #expect(e.code == .notFound)
            #expect(e.replyCode == 404)
        }
        // The connection carries on after both.
        let q = TestEnv.unique("after")
        try await c.declareQueue(AMQPQueueSpec(name: q))
        try await c.publish(routingKey: q, message: message("ok"))
        #expect(try await c.queueInfo(q).messageCount == 1)
        _ = try await c.deleteQueue(q)
        await c.close()
    }

    @Test func aConsumerKilledBeforeAckGetsItsMessagesRedelivered() async throws {
        let c = try await client()
        let q = TestEnv.unique("unacked")
        try await c.declareQueue(AMQPQueueSpec(name: q))
        let child = try ChildProcess("gedge-testkit", ["amqp-consume", "--url", TestEnv.amqpURL, "--queue", q])
        try await eventually("child consuming") { child.lines.contains("CONSUMING") }
        for i in 0..<5 { try await c.publish(routingKey: q, message: message("m\(i)")) }
        try await eventually("child received five") { child.lines(prefix: "MSG ").count == 5 }
        #expect(try await c.queueInfo(q).messageCount == 0, "all five are out, unacked")
        child.kill(SIGKILL)
        try await child.waitForExit()

        let consumer = try await client()
        var it = try await consumer.consume(queue: q, prefetch: 10).makeAsyncIterator()
        var bodies: [String] = []
        for _ in 0..<5 {
            let d = try #require(await it.next())
            #expect(d.redelivered)
            bodies.append(String(decoding: d.message.body, as: UTF8.self))
            try await consumer.ack(d)
        }
        #expect(bodies.sorted() == (0..<5).map { "m\($0)" })
        await consumer.close()
        _ = try await c.deleteQueue(q)
        await c.close()
    }

    @Test func nackWithoutRequeueDeadLetters() async throws {
        let c = try await client()
        let dlx = TestEnv.unique("dlx")
        let q = TestEnv.unique("work")
        let dead = TestEnv.unique("dead")
        try await c.declareExchange(dlx, type: .fanout)
        try await c.declareQueue(AMQPQueueSpec(name: dead))
        try await c.bindQueue(dead, exchange: dlx, routingKey: "")
        try await c.declareQueue(AMQPQueueSpec(name: q, deadLetterExchange: dlx))
        try await c.publish(routingKey: q, message: message("poison"))
        let consumer = try await client()
        var it = try await consumer.consume(queue: q).makeAsyncIterator()
        let d = try #require(await it.next())
        try await consumer.nack(d, requeue: false)
        try await eventually("dead-lettered") { try await c.queueInfo(dead).messageCount == 1 }
        #expect(try await c.queueInfo(q).messageCount == 0)
        await consumer.close()
        for name in [q, dead] { _ = try await c.deleteQueue(name) }
        await c.close()
    }

    @Test func reconnectsRedeclaresAndResumesConsuming() async throws {
        let publisher = try await client()
        let consumer = try await client()
        let q = TestEnv.unique("reconnect")
        // Auto-delete: the queue vanishes with its consumer, so resuming needs the redeclare.
        try await consumer.declareQueue(AMQPQueueSpec(name: q, durable: false, autoDelete: true))
        var it = try await consumer.consume(queue: q).makeAsyncIterator()
        try await publisher.publish(routingKey: q, message: message("before"))
        let first = try #require(await it.next())
        try await consumer.ack(first)

        try await consumer.dropConnectionForTesting()
        try await publisher.dropConnectionForTesting()
        // The auto-delete queue went with the old connection: it is back only if the client
        // declared it again and resumed consuming on its own. (The publisher's call waits for
        // its own reconnect.)
        try await eventually("queue redeclared with its consumer") {
            (try? await publisher.queueInfo(q))?.consumerCount == 1
        }
        try await publisher.publish(routingKey: q, message: message("after"))
        let second = try #require(await it.next())
        #expect(String(decoding: second.message.body, as: UTF8.self) == "after")
        try await consumer.ack(second)
        await consumer.close()
        await publisher.close()
    }

    @Test func aStaleAckAfterReconnectIsHarmlessAndTheMessageComesBack() async throws {
        let c = try await client()
        let q = TestEnv.unique("stale")
        try await c.declareQueue(AMQPQueueSpec(name: q))
        try await c.publish(routingKey: q, message: message("once"))
        let consumer = try await client()
        var it = try await consumer.consume(queue: q).makeAsyncIterator()
        let d = try #require(await it.next())
        try await consumer.dropConnectionForTesting()
        _ = try await consumer.queueInfo(q)  // runs on the new connection, once there is one
        try await consumer.ack(d)  // for the old connection: dropped
        let again = try #require(await it.next())
        #expect(again.redelivered)
        try await consumer.ack(again)
        try await eventually("drained") { try await c.queueInfo(q).messageCount == 0 }
        await consumer.close()
        _ = try await c.deleteQueue(q)
        await c.close()
    }

    @Test func aBrokerThatIsNotThereIsAClearError() async throws {
        let c = AMQPClient(configuration: try AMQPConfiguration(url: "amqp://guest:guest@127.0.0.1:1/"), logger: logger)
        await #expect(throws: AMQPError.self) { try await c.waitUntilConnected(timeout: .milliseconds(500)) }
        await c.close()
        #expect(throws: AMQPError.self) { try AMQPConfiguration(url: "http://nope") }
    }

    /// A queue's depth is a reading: with the broker away it fails after the connect
    /// timeout (the scalers read again at their next turn) instead of waiting for it; and a
    /// declare waiting for the broker ends when the client is closed (a SIGTERM meanwhile).
    @Test func readingsFailAndWaitsEndWhileTheBrokerIsAway() async throws {
        var configuration = try AMQPConfiguration(url: "amqp://guest:guest@127.0.0.1:1/", connectTimeout: .seconds(1))
        configuration.maxReconnectDelay = .milliseconds(200)
        let c = AMQPClient(configuration: configuration, logger: logger)
        let started = ContinuousClock.now
        await #expect(throws: AMQPError.self) { _ = try await c.queueInfo("depth") }
        #expect(ContinuousClock.now - started < .seconds(5))
        let declare = Task { try await c.declareQueue(AMQPQueueSpec(name: "waits")) }
        try await Task.sleep(for: .milliseconds(300))
        let closing = ContinuousClock.now
        await c.close()
        await #expect(throws: AMQPError.self) { _ = try await declare.value }
        #expect(ContinuousClock.now - closing < .seconds(3))
    }
}
