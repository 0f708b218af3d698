import Foundation
import GEdgeAMQP
import GEdgeCore
import Logging
import ServiceLifecycle
import Synchronization

/// Unacknowledged messages as the function replicas report them (`InFlightReport` on the
/// `gedge.faas.inflight` exchange): the faas-trigger's count of work in progress when
/// RabbitMQ's management API is not used. A replica's report counts until it is older than
/// `ttl` (its heartbeats stop when it dies, and the broker requeues what it held).
public final class InFlightTracker: Service, Sendable {
    let client: AMQPClient
    let ttl: Duration
    let logger: Logger
    private let reports = Mutex<[String: [String: (report: InFlightReport, at: ContinuousClock.Instant)]]>([:])

    public init(client: AMQPClient, ttl: Duration = .seconds(7), logger: Logger) {
        self.client = client
        self.ttl = ttl
        self.logger = logger
    }

    public func record(_ r: InFlightReport) {
        reports.withLock { d in d[r.queue, default: [:]][r.replica] = (r, .now) }
    }

    func live(_ queue: String) -> [InFlightReport] {
        let now = ContinuousClock.now
        return reports.withLock { d in
            d[queue] = d[queue]?.filter { now - $0.value.at <= ttl }
            return d[queue]?.values.map(\.report) ?? []
        }
    }

    /// Messages the queue's consumers hold unacknowledged.
    public func unacknowledged(_ queue: String) -> Double { Double(live(queue).reduce(0) { $0 + $1.inFlight }) }

    /// IPs of the replicas holding messages of the queue.
    public func busyIPs(_ queue: String) -> [String] { live(queue).filter { $0.inFlight > 0 }.compactMap(\.ip).sorted() }

    public func run() async throws {
        let queue = "gedge.faas.inflight.\(UUID().uuidString.prefix(8).lowercased())"
        try await withTaskCancellationOrGracefulShutdownHandler {
            // Under the shutdown handler: a SIGTERM while the broker is away closes the client,
            // which ends these waits.
            let deliveries: AMQPDeliveries
            do {
                try await client.declareExchange(InFlightReport.exchange, type: .fanout, durable: true)
                try await client.declareQueue(AMQPQueueSpec(name: queue, durable: false, exclusive: true, autoDelete: true))
                try await client.bindQueue(queue, exchange: InFlightReport.exchange, routingKey: "")
                deliveries = try await client.consume(queue: queue, prefetch: 256)
            } catch let e as AMQPError where e.code == .closed {
                return
            }
            for await d in deliveries {
                do { record(try InFlightReport.decode(d.message.body)) } catch {
                    logger.warning("in-flight report not understood", metadata: [LogKeys.error: "\(error)"])
                }
                try? await client.ack(d)
            }
        } onCancelOrGracefulShutdown: {
            Task { await self.client.close() }
        }
    }
}
