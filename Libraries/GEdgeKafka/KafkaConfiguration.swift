import Foundation
import CRdKafka
import GEdgeCore
import Logging

/// librdkafka properties for a client, with the suite's defaults.
///
/// Configuration keys (see docs/configuration.md): `kafka.brokers` (comma-separated
/// host:port, default `127.0.0.1:9092`), `kafka.client.id`, and any librdkafka property
/// passed through as `kafka.rdkafka.<property>` (`kafka.rdkafka.socket.timeout.ms=5000`).
public struct KafkaConfiguration: Sendable {
    public var properties: [String: String]

    public init(brokers: String, clientID: String = "gedge", properties: [String: String] = [:]) {
        var p: [String: String] = [
            "bootstrap.servers": brokers,
            "client.id": clientID,
            "socket.keepalive.enable": "true",
            "log.connection.close": "false",
        ]
        p.merge(properties) { _, new in new }
        self.properties = p
    }

    public init(_ reader: ConfigReader, clientID: String) {
        var extra: [String: String] = [:]
        let prefix = "kafka.rdkafka."
        for key in Self.passthroughKeys where reader.value(prefix + key) != nil {
            extra[key] = reader.value(prefix + key)
        }
        // Secrets may come from files: kafka.rdkafka.sasl.password.file (compose secrets).
        for key in ["sasl.password", "ssl.key.password"] {
            if let v = try? reader.secret(prefix + key) { extra[key] = v.trimmingCharacters(in: .whitespacesAndNewlines) }
        }
        self.init(
            brokers: reader.string("kafka.brokers", default: "127.0.0.1:9092"),
            clientID: reader.string("kafka.client.id", default: clientID),
            properties: extra)
    }

    /// librdkafka properties that may be set through `kafka.rdkafka.<property>`.
    public static let passthroughKeys = [
        "security.protocol", "sasl.mechanisms", "sasl.username", "sasl.password", "ssl.ca.location",
        "ssl.certificate.location", "ssl.key.location", "socket.timeout.ms", "message.timeout.ms",
        "linger.ms", "batch.num.messages", "compression.type", "session.timeout.ms",
        "heartbeat.interval.ms", "max.poll.interval.ms", "auto.offset.reset", "partition.assignment.strategy",
        "fetch.wait.max.ms", "queue.buffering.max.messages", "statistics.interval.ms", "debug",
    ]

    public subscript(key: String) -> String? {
        get { properties[key] }
        set { properties[key] = newValue }
    }

    /// The kind of librdkafka handle a configuration is for.
    enum Role { case producer, consumer }

    /// Properties librdkafka takes only for a consumer (its CONFIGURATION.md marks them C) or
    /// only for a producer (P). One configuration serves a service's every client; each
    /// handle is given only its own, instead of a CONFWARN at every start.
    static let consumerOnly: Set<String> = [
        "group.id", "group.instance.id", "session.timeout.ms", "heartbeat.interval.ms", "max.poll.interval.ms",
        "auto.offset.reset", "partition.assignment.strategy", "fetch.wait.max.ms", "fetch.min.bytes", "fetch.max.bytes",
        "max.partition.fetch.bytes", "fetch.error.backoff.ms", "enable.auto.commit", "auto.commit.interval.ms",
        "enable.auto.offset.store", "enable.partition.eof", "queued.min.messages", "queued.max.messages.kbytes",
        "isolation.level", "check.crcs",
    ]
    static let producerOnly: Set<String> = [
        "acks", "enable.idempotence", "message.timeout.ms", "linger.ms", "queue.buffering.max.ms", "batch.num.messages",
        "batch.size", "compression.type", "compression.codec", "compression.level", "queue.buffering.max.messages",
        "queue.buffering.max.kbytes", "message.send.max.retries", "retries", "partitioner",
        "request.required.acks", "request.timeout.ms", "delivery.timeout.ms", "transactional.id",
    ]

    /// Builds a librdkafka configuration object for a handle of `role`. The caller owns it
    /// until `rd_kafka_new` takes it.
    func makeConf(for role: Role) throws(KafkaError) -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else { throw .configuration("rd_kafka_conf_new failed") }
        var errbuf = [CChar](repeating: 0, count: 512)
        let other = role == .producer ? Self.consumerOnly : Self.producerOnly
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) where !other.contains(key) {
            if rd_kafka_conf_set(conf, key, value, &errbuf, errbuf.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw .configuration("\(key)=\(value): \(String(cString: errbuf))")
            }
        }
        return conf
    }
}

/// State every client hands librdkafka as its opaque: the logger its logs go to, and the
/// hooks its callbacks call. Kept alive by the client until after `rd_kafka_destroy`.
final class KafkaClientContext: @unchecked Sendable {
    let logger: Logger
    var rebalanceHandler: (@Sendable (KafkaRebalanceEvent) -> Void)?
    /// Set once at creation, from the assignment strategy.
    var cooperative = false
    /// Set when close() begins.
    let closing = RunFlag(false)
    /// Set for a handle left running after a close that did not finish: it logs nothing more.
    let silenced = RunFlag(false)

    init(logger: Logger) { self.logger = logger }

    static func from(_ rk: OpaquePointer?) -> KafkaClientContext? {
        guard let rk, let raw = rd_kafka_opaque(rk) else { return nil }
        return Unmanaged<KafkaClientContext>.fromOpaque(raw).takeUnretainedValue()
    }
}

/// librdkafka's log lines, at their syslog levels, go to swift-log.
let kafkaLogCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = {
    rk, level, facility, buffer in
    guard let context = KafkaClientContext.from(rk), !context.silenced.isSet else { return }
    let fac = facility.map { String(cString: $0) } ?? ""
    let text = buffer.map { String(cString: $0) } ?? ""
    let swiftLevel: Logger.Level =
        switch level {
        case ...2: .critical
        case 3: .error
        case 4: .warning
        case 5: .notice
        case 6: .info
        default: .debug
        }
    context.logger.log(level: swiftLevel, "\(text)", metadata: ["rdkafka.facility": .string(fac)])
}

/// Creates a librdkafka client with the suite's log bridge and `context` as its opaque.
func makeKafkaHandle(
    type: rd_kafka_type_t, conf: OpaquePointer, context: KafkaClientContext
) throws(KafkaError) -> OpaquePointer {
    rd_kafka_conf_set_log_cb(conf, kafkaLogCallback)
    rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
    var errbuf = [CChar](repeating: 0, count: 512)
    guard let rk = rd_kafka_new(type, conf, &errbuf, errbuf.count) else {
        rd_kafka_conf_destroy(conf)
        throw .configuration("rd_kafka_new: \(String(cString: errbuf))")
    }
    return rk
}
