import Foundation
import GEdgeCore

/// An error from the broker or from rabbitmq-c.
public struct AMQPError: Error, Sendable, CustomStringConvertible, TransientError {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let raw: String
        public static let connection = Code(raw: "connection")
        public static let channel = Code(raw: "channel")
        public static let notFound = Code(raw: "not_found")
        public static let nacked = Code(raw: "nacked")
        public static let unroutable = Code(raw: "unroutable")
        public static let timeout = Code(raw: "timeout")
        public static let closed = Code(raw: "closed")
        public static let invalid = Code(raw: "invalid")
        public var description: String { raw }
    }

    public let code: Code
    /// The AMQP reply code for server errors (404, 406...) or rabbitmq-c's status.
    public let replyCode: Int
    public let message: String

    public init(_ code: Code, replyCode: Int = 0, message: String) {
        self.code = code
        self.replyCode = replyCode
        self.message = message
    }

    public var isRetriable: Bool {
        code == .connection || code == .timeout || code == .nacked
    }

    public var description: String { "AMQPError(\(code)\(replyCode != 0 ? ", \(replyCode)" : "")): \(message)" }
}

/// Connection settings. Keys: `amqp.url` (default `amqp://guest:guest@127.0.0.1:5672/`),
/// `amqp.password` (secret, overrides the URL's), `amqp.heartbeat` (default 10s),
/// `amqp.connect.timeout` (default 5s).
public struct AMQPConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var vhost: String
    public var user: String
    public var password: String
    public var heartbeat: Duration
    public var connectTimeout: Duration
    public var rpcTimeout: Duration = .seconds(10)
    public var reconnectDelay: Duration = .milliseconds(200)
    public var maxReconnectDelay: Duration = .seconds(5)
    /// A delivered body past this is not held: only its prefix, with its size and digest
    /// (`AMQPDelivery.oversize`). RabbitMQ itself accepts up to 128 MiB a message.
    public var maxBodyBytes = 1 << 20

    public init(url: String = "amqp://guest:guest@127.0.0.1:5672/", heartbeat: Duration = .seconds(10), connectTimeout: Duration = .seconds(5)) throws {
        guard let u = URLComponents(string: url), u.scheme == "amqp" else {
            throw AMQPError(.invalid, message: "'\(url)' is not an amqp:// URL")
        }
        host = u.host ?? "127.0.0.1"
        port = u.port ?? 5672
        user = u.user ?? "guest"
        password = u.password ?? "guest"
        let path = u.percentEncodedPath
        vhost = path.isEmpty || path == "/" ? "/" : String(path.dropFirst()).removingPercentEncoding ?? "/"
        self.heartbeat = heartbeat
        self.connectTimeout = connectTimeout
    }

    public init(_ reader: ConfigReader) throws {
        try self.init(
            url: reader.string("amqp.url", default: "amqp://guest:guest@127.0.0.1:5672/"),
            heartbeat: try reader.duration("amqp.heartbeat", default: .seconds(10)),
            connectTimeout: try reader.duration("amqp.connect.timeout", default: .seconds(5)))
        if let p = try reader.secret("amqp.password") { password = p }
    }
}

public enum AMQPExchangeType: String, Sendable {
    case direct, fanout, topic, headers
}

/// A message to publish, or the content of a delivery.
public struct AMQPMessage: Sendable, Hashable {
    public var body: [UInt8]
    public var headers: [String: String]
    public var messageID: String?
    public var contentType: String?
    /// Persistent messages (delivery mode 2) survive a broker restart on durable queues.
    public var persistent: Bool

    public init(body: [UInt8], headers: [String: String] = [:], messageID: String? = nil, contentType: String? = "application/json", persistent: Bool = true) {
        self.body = body
        self.headers = headers
        self.messageID = messageID
        self.contentType = contentType
        self.persistent = persistent
    }
}

/// A message delivered to a consumer, to be acked or nacked.
public struct AMQPDelivery: Sendable {
    public var message: AMQPMessage
    public var deliveryTag: UInt64
    public var redelivered: Bool
    public var exchange: String
    public var routingKey: String
    /// Which connection the delivery came on; an ack for an older one is moot (the broker
    /// has requeued the message already).
    let generation: Int
    /// Set when the body was past the client's `maxBodyBytes`: `message.body` is then only
    /// its first `Oversize.prefixBytes`, and the delivery is to be refused (dead-lettered).
    public var oversize: Oversize?

    /// What an oversized body held, as it was read.
    public struct Oversize: Sendable, Hashable {
        public static let prefixBytes = 64 << 10
        public var bodyBytes: Int
        /// SHA-256 of the whole body, hex.
        public var bodySHA256: String
        public var error: MessageDecodingError
    }
}

/// A queue's depth, from a passive declare.
public struct AMQPQueueInfo: Sendable, Hashable {
    public var name: String
    /// Messages ready for delivery (not counting those delivered and not yet acked).
    public var messageCount: Int
    public var consumerCount: Int
}

/// A queue to declare.
public struct AMQPQueueSpec: Sendable, Hashable {
    public var name: String
    public var durable: Bool
    public var exclusive: Bool
    public var autoDelete: Bool
    /// Where rejected messages go (`x-dead-letter-exchange`).
    public var deadLetterExchange: String?
    public var deadLetterRoutingKey: String?
    /// `quorum` or `classic` (the default).
    public var queueType: String?

    public init(
        name: String, durable: Bool = true, exclusive: Bool = false, autoDelete: Bool = false,
        deadLetterExchange: String? = nil, deadLetterRoutingKey: String? = nil, queueType: String? = nil
    ) {
        self.name = name
        self.durable = durable
        self.exclusive = exclusive
        self.autoDelete = autoDelete
        self.deadLetterExchange = deadLetterExchange
        self.deadLetterRoutingKey = deadLetterRoutingKey
        self.queueType = queueType
    }

    var arguments: [String: String] {
        var a: [String: String] = [:]
        if let deadLetterExchange { a["x-dead-letter-exchange"] = deadLetterExchange }
        if let deadLetterRoutingKey { a["x-dead-letter-routing-key"] = deadLetterRoutingKey }
        if let queueType { a["x-queue-type"] = queueType }
        return a
    }
}
