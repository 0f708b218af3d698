import Foundation
import GEdgeCore
import GEdgeKafka
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// When the monitor last labelled its node and published what changed: its readiness. A
/// monitor is ready once a scan went through and stays ready while scans keep going through.
public final class MonitorHealth: Sendable {
    private let lastSuccess = Mutex<ContinuousClock.Instant?>(nil)

    public init() {}

    func succeeded(at instant: ContinuousClock.Instant = .now) { lastSuccess.withLock { $0 = instant } }

    /// True when a scan went through within `window`.
    public func healthy(within window: Duration, now: ContinuousClock.Instant = .now) -> Bool {
        lastSuccess.withLock { last in last.map { now - $0 <= window } ?? false }
    }
}

/// The monitor's loop: scan, label the node, publish the inventory when it changed; again
/// every `interval` until shutdown.
public struct AcceleratorMonitor: Service {
    public static let topic = "gedge.node.accelerators"

    let scanner: AcceleratorScanner
    let labeler: NodeLabeler
    let producer: KafkaProducer?
    let node: String
    let cluster: String
    public let interval: Duration
    let logger: Logger
    /// Readiness: a scan went through (labelled, and published if changed) lately.
    public let health = MonitorHealth()
    let scans = Counter(label: "gedge_accelerator_scans_total")
    let patches = Counter(label: "gedge_accelerator_label_patches_total")
    let failures = Counter(label: "gedge_accelerator_failures_total")

    public init(scanner: AcceleratorScanner, labeler: NodeLabeler, producer: KafkaProducer?, node: String, cluster: String, interval: Duration, logger: Logger) {
        self.scanner = scanner
        self.labeler = labeler
        self.producer = producer
        self.node = node
        self.cluster = cluster
        self.interval = interval
        self.logger = logger
    }

    /// The envelope announcing a node's accelerators (hcode 610).
    public static func envelope(_ inventory: AcceleratorInventory, cluster: String) -> Envelope {
        Envelope(
            source: .node(cluster: cluster, node: inventory.node), target: .cluster("scheduler"),
            hcode: .nodeAccelerators, lcode: .request, msg: inventory.json)
    }

    public func run() async throws {
        var published: AcceleratorInventory?
        while !Task.isShuttingDownGracefully {
            let inventory = scanner.scan(node: node)
            scans.increment()
            do {
                // An unreachable API server or broker does not hold a shutdown: the next
                // monitor labels and publishes again.
                let last = published
                if try await cancelWhenGracefulShutdown({ try await publishOnce(inventory, published: last) }) { published = inventory }
                health.succeeded()
            } catch is CancellationError {
                break
            } catch {
                failures.increment()
                logger.error("labelling failed; retrying next scan", metadata: [LogKeys.node: .string(node), LogKeys.error: "\(error)"])
            }
            await Task.sleepUnlessShuttingDown(for: interval)
        }
    }

    /// Labels the node, and publishes the inventory if it changed; true when it was published.
    func publishOnce(_ inventory: AcceleratorInventory, published: AcceleratorInventory?) async throws -> Bool {
        do {
                switch try await labeler.apply(inventory) {
                case .unchanged:
                    logger.debug("labels up to date", metadata: [LogKeys.node: .string(node)])
                case .patched(let set, let removed):
                    patches.increment()
                    logger.info("node labels updated", metadata: [LogKeys.node: .string(node), "labels.set": "\(set)", "labels.removed": "\(removed)"])
                }
                if let producer, inventory != published {
                    let codec = EnvelopeCodec()
                    _ = try await producer.send(KafkaRecord(topic: Self.topic, key: node, value: codec.encode(Self.envelope(inventory, cluster: cluster))))
                    return true
                }
                return false
        }
    }
}
