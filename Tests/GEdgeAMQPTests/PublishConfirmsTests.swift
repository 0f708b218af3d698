@testable import GEdgeAMQP
import Synchronization
import Testing

/// Publisher confirms without a broker: the state machine the connection thread drives.
@Suite struct PublishConfirmsTests {
    final class Results: Sendable {
        let value = Mutex<[String: String]>([:])
        func set(_ k: String, _ v: String) { value.withLock { $0[k] = v } }
        subscript(_ k: String) -> String? { value.withLock { $0[k] } }
        var count: Int { value.withLock { $0.count } }
    }

    func publish(_ id: String, _ results: Results, exchange: String = "", key: String = "q") -> PendingPublish {
        PendingPublish(exchange: exchange, routingKey: key, message: AMQPMessage(body: Array(id.utf8), messageID: id), mandatory: true) { r in
            switch r {
            case .success: results.set(id, "ok")
            case .failure(let e): results.set(id, "\(e.code)")
            }
        }
    }

    func settle(_ c: inout PublishConfirms, tag: UInt64, multiple: Bool, ack: Bool) {
        for (p, o) in c.confirmed(tag: tag, multiple: multiple, ack: ack) { PublishConfirms.complete(p, o) }
    }

    @Test func acksAndNacksOneByOneAndSeveralAtOnce() {
        let r = Results()
        var c = PublishConfirms()
        #expect(["a", "b", "c", "d", "e"].map { c.publishing(publish($0, r)) } == [1, 2, 3, 4, 5])
        settle(&c, tag: 2, multiple: false, ack: true)
        #expect(r["b"] == "ok" && r["a"] == nil)
        settle(&c, tag: 4, multiple: true, ack: true)  // a, c, d
        #expect(r["a"] == "ok" && r["c"] == "ok" && r["d"] == "ok")
        settle(&c, tag: 5, multiple: false, ack: false)
        #expect(r["e"] == "\(AMQPError.Code.nacked)")
        #expect(c.count == 0)
        // A confirm for a tag no longer pending changes nothing.
        #expect(c.confirmed(tag: 3, multiple: false, ack: true).isEmpty)
    }

    /// A return carries no tag: matched to its publish, it fails that one only, even when
    /// one ack settles several.
    @Test func aReturnFailsOnlyItsOwnPublishUnderOneAckForSeveral() {
        let r = Results()
        var c = PublishConfirms()
        _ = c.publishing(publish("a", r, key: "jobs"))
        _ = c.publishing(publish("b", r, key: "nowhere"))
        _ = c.publishing(publish("c", r, key: "jobs"))
        _ = c.publishing(publish("d", r, key: "nowhere"))
        let matched = c.returned(exchange: "", routingKey: "nowhere", messageID: "d")
        let unmatched = c.returned(exchange: "", routingKey: "elsewhere", messageID: nil)
        #expect(matched && !unmatched)
        settle(&c, tag: 4, multiple: true, ack: true)
        #expect(r["a"] == "ok" && r["b"] == "ok" && r["c"] == "ok")
        #expect(r["d"] == "\(AMQPError.Code.unroutable)")
        // Without a message ID, the oldest unconfirmed match is the one returned.
        _ = c.publishing(publish("e", r, key: "nowhere"))
        _ = c.publishing(publish("f", r, key: "nowhere"))
        c.returned(exchange: "", routingKey: "nowhere", messageID: nil)
        settle(&c, tag: 6, multiple: true, ack: true)
        #expect(r["e"] == "\(AMQPError.Code.unroutable)" && r["f"] == "ok")
    }

    /// A lost connection: the unconfirmed publishes come back in order to be sent again
    /// with new tags from 1; a return seen on the old connection is forgotten.
    @Test func reconnectPublishesTheUnconfirmedAgainInOrder() {
        let r = Results()
        var c = PublishConfirms()
        for id in ["a", "b", "c"] { _ = c.publishing(publish(id, r)) }
        c.returned(exchange: "", routingKey: "q", messageID: "b")
        settle(&c, tag: 1, multiple: false, ack: true)
        let again = c.reconnected()
        #expect(again.map { String(decoding: $0.message.body, as: UTF8.self) } == ["b", "c"])
        #expect(c.count == 0 && c.nextTag == 1)
        for p in again { _ = c.publishing(p) }
        #expect(c.tags == [1, 2])
        settle(&c, tag: 2, multiple: true, ack: true)
        #expect(r["b"] == "ok" && r["c"] == "ok")
    }

    /// Close (or a channel the broker closed): every caller still waiting fails.
    @Test func closeFailsEveryWaitingCaller() {
        let r = Results()
        var c = PublishConfirms()
        for id in ["a", "b"] { _ = c.publishing(publish(id, r)) }
        let closed = AMQPError(.closed, message: "client is closed")
        c.failAll().forEach { $0.completion(.failure(closed)) }
        #expect(r["a"] == "\(AMQPError.Code.closed)" && r["b"] == "\(AMQPError.Code.closed)")
        #expect(c.count == 0)
    }

    /// A client that is closed refuses calls at once; closing twice, or a call racing the
    /// close, leaves no caller waiting (no broker: the connection never comes up).
    @Test func callsRacingCloseAreAnsweredWithoutABroker() async throws {
        var config = try AMQPConfiguration(url: "amqp://guest:guest@127.0.0.1:1/")
        config.reconnectDelay = .milliseconds(50)
        let client = AMQPClient(configuration: config, logger: .init(label: "test"))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<20 {
                group.addTask {
                    do {
                        try await client.publish(routingKey: "q", message: AMQPMessage(body: [UInt8(i)]))
                        Issue.record("a publish without a broker cannot be confirmed")
                    } catch let e as AMQPError {
                        #expect(e.code == .closed)
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(20))
                await client.close()
            }
            group.addTask { await client.close() }
            try await group.waitForAll()
        }
        await #expect(throws: AMQPError.self) { try await client.declareQueue(AMQPQueueSpec(name: "q")) }
        await client.close()
    }
}
