/// A publish waiting for the broker's confirm, with whoever waits for it.
struct PendingPublish {
    var exchange: String
    var routingKey: String
    var message: AMQPMessage
    var mandatory: Bool
    var completion: (Result<Void, AMQPError>) -> Void
}

/// Publisher confirms on one channel (RabbitMQ's extension to AMQP 0-9-1), as one value
/// whose transitions return what to complete; it does no I/O.
///
/// Every publish gets the next delivery tag (1, 2, ... per connection). The broker answers
/// `basic.ack` or `basic.nack` for a tag, or with `multiple` for every tag up to it. A
/// mandatory message no queue takes comes back first as `basic.return` (which carries no
/// tag), then is acked: the return is matched to the oldest unconfirmed publish with its
/// exchange, routing key and message ID, so that one ack for several tags fails only the
/// returned one. After a lost connection, what was not confirmed is published again in
/// order with new tags; on close, it fails.
struct PublishConfirms {
    enum Outcome: Equatable {
        case confirmed
        case nacked
        case unroutable
    }

    private(set) var nextTag: UInt64 = 1
    private var pending: [(tag: UInt64, publish: PendingPublish, returned: Bool)] = []

    var count: Int { pending.count }
    var tags: [UInt64] { pending.map(\.tag) }

    /// Records a publish about to be sent; returns its delivery tag.
    mutating func publishing(_ p: PendingPublish) -> UInt64 {
        let tag = nextTag
        nextTag += 1
        pending.append((tag, p, false))
        return tag
    }

    /// A `basic.return`: marks the oldest unconfirmed, not yet returned publish that matches.
    /// False when none does (a return for something already confirmed: ignored).
    @discardableResult
    mutating func returned(exchange: String, routingKey: String, messageID: String?) -> Bool {
        guard let i = pending.firstIndex(where: { entry in
            !entry.returned && entry.publish.exchange == exchange && entry.publish.routingKey == routingKey
                && (messageID == nil || entry.publish.message.messageID == messageID)
        }) else { return false }
        pending[i].returned = true
        return true
    }

    /// A `basic.ack` or `basic.nack`: the publishes it settles, each with its outcome, in
    /// order, for their callers to be completed.
    mutating func confirmed(tag: UInt64, multiple: Bool, ack: Bool) -> [(PendingPublish, Outcome)] {
        let settled = pending.filter { multiple ? $0.tag <= tag : $0.tag == tag }
        pending.removeAll { multiple ? $0.tag <= tag : $0.tag == tag }
        return settled.map { entry in (entry.publish, !ack ? .nacked : entry.returned ? .unroutable : .confirmed) }
    }

    /// A new connection: every unconfirmed publish, in order, to be published again (each
    /// gets a new tag as it is); tags start again at 1.
    mutating func reconnected() -> [PendingPublish] {
        defer {
            pending = []
            nextTag = 1
        }
        return pending.map(\.publish)
    }

    /// The channel or client is closed: every unconfirmed publish, to be failed.
    mutating func failAll() -> [PendingPublish] {
        defer { pending = [] }
        return pending.map(\.publish)
    }

    static func complete(_ p: PendingPublish, _ outcome: Outcome) {
        switch outcome {
        case .confirmed: p.completion(.success(()))
        case .nacked: p.completion(.failure(AMQPError(.nacked, message: "the broker refused the message")))
        case .unroutable: p.completion(.failure(AMQPError(.unroutable, replyCode: 312, message: "no queue is bound for '\(p.routingKey)' on '\(p.exchange)'")))
        }
    }
}
