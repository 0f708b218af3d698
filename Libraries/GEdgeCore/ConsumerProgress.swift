import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Which consumers of this process are stuck: a consumer that cannot make progress (its
/// database down, its dead letters not accepted) says so here while it retries. `/readyz`
/// fails while any is stuck, and `gedge_consumer_stalled{consumer}` is 1 for it;
/// `gedge_consumer_stalls_total{consumer}` counts how often it got stuck.
public final class ConsumerProgress: Sendable {
    public static let shared = ConsumerProgress()

    private let stalled = Mutex<[String: ContinuousClock.Instant]>([:])

    public init() {}

    public func markStalled(_ consumer: String) {
        let new = stalled.withLock { s -> Bool in
            guard s[consumer] == nil else { return false }
            s[consumer] = .now
            return true
        }
        if new {
            Gauge(label: "gedge_consumer_stalled", dimensions: [("consumer", consumer)]).record(1)
            Counter(label: "gedge_consumer_stalls_total", dimensions: [("consumer", consumer)]).increment()
        }
    }

    public func markProgress(_ consumer: String) {
        let was = stalled.withLock { $0.removeValue(forKey: consumer) != nil }
        if was { Gauge(label: "gedge_consumer_stalled", dimensions: [("consumer", consumer)]).record(0) }
    }

    /// The consumers stuck now, with how long.
    public var stuck: [(consumer: String, for: Duration)] {
        let now = ContinuousClock.now
        return stalled.withLock { s in s.map { ($0.key, now - $0.value) }.sorted { $0.0 < $1.0 } }
    }
}

/// Whether an error may go away when the same thing is tried again (a connection lost, a
/// timeout, a serialization failure), or never will (a constraint violated, data that
/// cannot be read): the latter are dead-lettered, not retried.
public protocol TransientError: Error {
    var isRetriable: Bool { get }
}

extension MessageDecodingError: TransientError {}

/// Wraps an error that is to be retried whatever it is (a dead letter is never dropped).
public struct RetryAnyway: TransientError, CustomStringConvertible {
    public let underlying: any Error
    public init(_ underlying: any Error) { self.underlying = underlying }
    public var isRetriable: Bool { true }
    public var description: String { "\(underlying)" }
}

/// One retry policy for consumers: transient errors are retried with backoff (100 ms
/// doubling to 5 s) for as long as it takes, the consumer marked stalled from the third
/// try on; a permanent error is handed back at once; a shutdown or cancellation ends the
/// waiting (nil), so that nothing is acknowledged that was not done.
public enum Retry {
    public enum Outcome<T> {
        case done(T)
        case permanent(any Error)
        case stopped
    }

    public static func isTransient(_ error: any Error) -> Bool {
        if let e = error as? any TransientError { return e.isRetriable }
        return true
    }

    public static var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    public static func run<T>(
        _ what: String, consumer: String, logger: Logger, progress: ConsumerProgress = .shared,
        _ body: () async throws -> T
    ) async -> Outcome<T> {
        var attempt = 0
        while true {
            do {
                let value = try await body()
                if attempt > 0 { progress.markProgress(consumer) }
                return .done(value)
            } catch {
                guard isTransient(error) else {
                    if attempt > 0 { progress.markProgress(consumer) }
                    return .permanent(error)
                }
                attempt += 1
                if attempt >= 3 { progress.markStalled(consumer) }
                if stopping {
                    logger.warning("\(what) failed while stopping; left undone", metadata: [LogKeys.error: "\(error)"])
                    return .stopped
                }
                let delay = Duration.milliseconds(min(5000, 100 << min(attempt, 6)))
                logger.error("\(what) failed; retrying", metadata: [LogKeys.error: "\(error)", "retry.in": "\(delay)", "attempt": "\(attempt)"])
                do { try await Task.sleep(for: delay) } catch { return .stopped }
                if stopping { return .stopped }
            }
        }
    }
}
