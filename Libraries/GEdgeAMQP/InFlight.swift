import CGEdgeShims
import Foundation
import GEdgeCore
import Logging

/// What one consumer holds unacknowledged from a queue, reported by function replicas on the
/// fanout exchange `gedge.faas.inflight`, so that a scaler without RabbitMQ's management API
/// still sees work in progress (and which consumers are busy). Wire form
/// `{"queue","replica","ip","in_flight","at"}`.
public struct InFlightReport: Sendable, Hashable {
    public static let exchange = "gedge.faas.inflight"

    public var queue: String
    public var replica: String
    public var ip: String?
    public var inFlight: Int
    public var at: Date

    public init(queue: String, replica: String, ip: String?, inFlight: Int, at: Date = Date()) {
        self.queue = queue
        self.replica = replica
        self.ip = ip
        self.inFlight = inFlight
        self.at = at
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "queue": .string(queue), "replica": .string(replica), "in_flight": .number(Double(inFlight)), "at": .timestamp(at),
        ]
        if let ip { o["ip"] = .string(ip) }
        return .object(o)
    }

    public static func decode(_ bytes: [UInt8]) throws -> InFlightReport {
        let r = try FieldReader(try JSONValue.parse(bytes), path: "")
        guard let n = try r.optionalInt("in_flight"), n >= 0 else {
            throw MessageDecodingError(.invalidValue, field: "in_flight", reason: "a count, 0 or more")
        }
        return InFlightReport(queue: try r.string("queue"), replica: try r.string("replica"), ip: try r.optionalString("ip"), inFlight: n)
    }
}

/// A function replica's side: call `started()` when a delivery is taken and `finished()`
/// after its ack. The count is published at once when it leaves or reaches zero, and every
/// `heartbeat` while it is above zero (a report older than a few heartbeats is dropped by
/// the scaler: a replica that died has had its messages requeued by the broker).
public actor InFlightReporter {
    let client: AMQPClient
    let queue: String
    let replica: String
    let ip: String?
    let heartbeat: Duration
    let logger: Logger
    private var count = 0
    private var beating: Task<Void, Never>?

    public init(client: AMQPClient, queue: String, replica: String, ip: String? = InFlightReporter.localIP(), heartbeat: Duration = .seconds(2), logger: Logger) {
        self.client = client
        self.queue = queue
        self.replica = replica
        self.ip = ip
        self.heartbeat = heartbeat
        self.logger = logger
    }

    public func prepare() async throws {
        try await client.declareExchange(InFlightReport.exchange, type: .fanout, durable: true)
    }

    public func started() async {
        count += 1
        if count == 1 {
            await publish()
            startBeating()
        }
    }

    public func finished() async {
        count = max(0, count - 1)
        if count == 0 {
            beating?.cancel()
            beating = nil
            await publish()
        }
    }

    private func startBeating() {
        guard beating == nil else { return }
        let period = heartbeat
        beating = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: period)
                guard !Task.isCancelled, let self else { return }
                await self.publish()
            }
        }
    }

    private func publish() async {
        let report = InFlightReport(queue: queue, replica: replica, ip: ip, inFlight: count)
        do {
            try await client.publish(exchange: InFlightReport.exchange, routingKey: "", message: AMQPMessage(body: report.json.serialized(), persistent: false), mandatory: false)
        } catch {
            logger.warning("in-flight report not published", metadata: ["queue": .string(queue), "error": "\(error)"])
        }
    }

    /// This host's first non-loopback IPv4 address (a pod's IP), if any.
    public static func localIP() -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return nil }
        defer { freeifaddrs(list) }
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let a = p {
            defer { p = a.pointee.ifa_next }
            guard let addr = a.pointee.ifa_addr, addr.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            guard getnameinfo(addr, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            let s = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !s.hasPrefix("127.") { return s }
        }
        return nil
    }
}
