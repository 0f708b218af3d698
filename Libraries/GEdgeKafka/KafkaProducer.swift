import CRdKafka
import Foundation
import GEdgeCore
import Logging
import Metrics
import Synchronization

/// Producer settings. `idempotent` (the default) turns on librdkafka's idempotent producer,
/// which implies `acks=all` and keeps order per partition across retries.
public struct KafkaProducerConfiguration: Sendable {
    public var client: KafkaConfiguration
    public var idempotent = true
    /// How long a message may wait for delivery, retries included, before it fails.
    public var messageTimeout: Duration = .seconds(30)
    public var lingerMs = 5

    public init(client: KafkaConfiguration) { self.client = client }

    func properties() -> KafkaConfiguration {
        var c = client
        if idempotent {
            c["enable.idempotence"] = "true"
            c["acks"] = "all"
        }
        if c["message.timeout.ms"] == nil {
            c["message.timeout.ms"] = String(messageTimeout.components.seconds * 1000 + messageTimeout.components.attoseconds / 1_000_000_000_000_000)
        }
        if c["linger.ms"] == nil { c["linger.ms"] = String(lingerMs) }
        // Set, not left to the default, so that dead letters (capped below it) always fit.
        if c["message.max.bytes"] == nil { c["message.max.bytes"] = "1000000" }
        return c
    }
}

/// One waiting `send`: resumed once, by the delivery report or by cancellation, whichever
/// comes first (a cancellation before the continuation exists resumes it as it is installed).
final class DeliveryWaiter: Sendable {
    private let state = Mutex<(cont: CheckedContinuation<KafkaDeliveryReport, any Error>?, done: Result<KafkaDeliveryReport, any Error>?, resumed: Bool)>((nil, nil, false))

    /// False when a result came first (the continuation was resumed with it).
    func install(_ cont: CheckedContinuation<KafkaDeliveryReport, any Error>) -> Bool {
        let early: Result<KafkaDeliveryReport, any Error>? = state.withLock { s in
            if let r = s.done, !s.resumed {
                s.resumed = true
                return r
            }
            s.cont = cont
            return nil
        }
        if let early {
            cont.resume(with: early)
            return false
        }
        return true
    }

    func resume(with result: Result<KafkaDeliveryReport, any Error>) {
        let cont: CheckedContinuation<KafkaDeliveryReport, any Error>? = state.withLock { s in
            guard !s.resumed else { return nil }
            guard let c = s.cont else {
                if s.done == nil { s.done = result }
                return nil
            }
            s.resumed = true
            s.cont = nil
            return c
        }
        cont?.resume(with: result)
    }
}

/// Holds the completion of one produced message until its delivery report arrives.
final class DeliveryCompletion {
    let topic: String
    let onDelivery: @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void
    let sent: Counter
    let failed: Counter
    init(topic: String, _ onDelivery: @escaping @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void, sent: Counter, failed: Counter) {
        self.topic = topic
        self.onDelivery = onDelivery
        self.sent = sent
        self.failed = failed
    }
    func complete(_ result: Result<KafkaDeliveryReport, KafkaError>) {
        switch result {
        case .success: sent.increment()
        case .failure: failed.increment()
        }
        onDelivery(result)
    }
}

private let deliveryReportCallback: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = {
    _, message, _ in
    guard let message, let opaque = message.pointee._private else { return }
    let completion = Unmanaged<DeliveryCompletion>.fromOpaque(opaque).takeRetainedValue()
    let m = message.pointee
    if m.err == RD_KAFKA_RESP_ERR_NO_ERROR {
        completion.complete(.success(KafkaDeliveryReport(topic: completion.topic, partition: m.partition, offset: m.offset)))
    } else {
        completion.complete(.failure(KafkaError(m.err, context: "delivery failed")))
    }
}

/// A Kafka producer over librdkafka. Thread-safe: share one per process.
///
/// `send` resolves with the delivery report once the broker has the message (acks=all).
/// `enqueue` hands the report to a callback instead, for throughput. Delivery reports are
/// served by a thread of the producer's own, never by Swift's cooperative pool.
public final class KafkaProducer: Sendable {
    nonisolated(unsafe) let handle: OpaquePointer
    private let context: KafkaClientContext
    private let running = RunFlag(true)
    private let accepting = RunFlag(true)
    private let pollThread: DedicatedThread
    private let blocking: DedicatedThread
    private let logger: Logger
    private let topics = TopicHandles()
    private let sentCounter = Counter(label: "gedge_kafka_produced_total")
    private let failedCounter = Counter(label: "gedge_kafka_delivery_failures_total")

    public init(configuration: KafkaProducerConfiguration, logger: Logger) throws(KafkaError) {
        self.logger = logger
        self.context = KafkaClientContext(logger: logger)
        let conf = try configuration.properties().makeConf(for: .producer)
        rd_kafka_conf_set_dr_msg_cb(conf, deliveryReportCallback)
        self.handle = try makeKafkaHandle(type: RD_KAFKA_PRODUCER, conf: conf, context: context)
        self.pollThread = DedicatedThread(name: "kafka-producer-poll")
        self.blocking = DedicatedThread(name: "kafka-producer-blocking")
        nonisolated(unsafe) let rk = handle
        pollThread.submit { [running] in
            while running.isSet {
                rd_kafka_poll(rk, 100)
            }
        }
    }

    deinit {
        if running.isSet {
            running.set(false)
            pollThread.stop()
            rd_kafka_purge(handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            rd_kafka_poll(handle, 0)
        }
        blocking.stop()
        topics.destroyAll()
        rd_kafka_destroy(handle)
    }

    /// Hands a message to librdkafka; `onDelivery` is called with the delivery report.
    /// Throws a retriable `KafkaError` (`isQueueFull`) when the local queue is full.
    public func enqueue(
        _ record: KafkaRecord,
        onDelivery: @escaping @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void
    ) throws(KafkaError) {
        guard accepting.isSet else { throw .shutDown("producer") }
        let completion = Unmanaged.passRetained(DeliveryCompletion(topic: record.topic, onDelivery, sent: sentCounter, failed: failedCounter))
        let rkt = topics.handle(record.topic, client: handle)
        let error: OpaquePointer? = record.value.withUnsafeBytes { value in
                withOptionalBytes(record.key) { key in
                    withUnsafeTemporaryAllocation(of: rd_kafka_vu_t.self, capacity: 6) { vus in
                        var n = 0
                        vus[n] = rd_kafka_vu_t(vtype: RD_KAFKA_VTYPE_RKT, u: .init(rkt: rkt)); n += 1
                        vus[n] = rd_kafka_vu_t(vtype: RD_KAFKA_VTYPE_VALUE, u: .init(mem: .init(ptr: UnsafeMutableRawPointer(mutating: value.baseAddress), size: value.count))); n += 1
                        if let key {
                            vus[n] = rd_kafka_vu_t(vtype: RD_KAFKA_VTYPE_KEY, u: .init(mem: .init(ptr: UnsafeMutableRawPointer(mutating: key.baseAddress), size: key.count))); n += 1
                        }
                        if let partition = record.partition {
                            vus[n] = rd_kafka_vu_t(vtype: RD_KAFKA_VTYPE_PARTITION, u: .init(i32: partition)); n += 1
                        }
                        vus[n] = rd_kafka_vu_t(vtype: RD_KAFKA_VTYPE_MSGFLAGS, u: .init(i: RD_KAFKA_MSG_F_COPY)); n += 1
                        vus[n] = rd_kafka_vu_t(vtype: RD_KAFKA_VTYPE_OPAQUE, u: .init(ptr: completion.toOpaque())); n += 1
                        if record.headers.isEmpty {
                            return rd_kafka_produceva(handle, vus.baseAddress, n)
                        }
                        return withHeaders(record.headers) { headerVUs in
                            rd_kafka_produceva(handle, Array(vus[0..<n]) + headerVUs, n + headerVUs.count)
                        }
                    }
                }
        }
        if let error {
            completion.release()
            throw KafkaError(taking: error)
        }
    }

    /// Produces a message and waits for its delivery report. When librdkafka's queue is full
    /// it waits for room rather than failing. A cancelled task stops waiting (CancellationError)
    /// while the message stays queued: it is delivered, or flushed at shutdown, all the same.
    public func send(_ record: KafkaRecord) async throws -> KafkaDeliveryReport {
        while true {
            try Task.checkCancellation()
            let waiter = DeliveryWaiter()
            do {
                return try await withTaskCancellationHandler {
                    try await withCheckedThrowingContinuation { (cont: CheckedContinuation<KafkaDeliveryReport, any Error>) in
                        guard waiter.install(cont) else { return }
                        do {
                            try enqueue(record) { result in waiter.resume(with: result.mapError { $0 as any Error }) }
                        } catch {
                            waiter.resume(with: .failure(error))
                        }
                    }
                } onCancel: {
                    waiter.resume(with: .failure(CancellationError()))
                }
            } catch let error as KafkaError where error.isQueueFull {
                try await Task.sleep(for: .milliseconds(2))
            }
        }
    }

    /// Messages waiting for delivery.
    public var outstanding: Int { Int(rd_kafka_outq_len(handle)) }

    /// Waits up to `timeout` for every queued message to be delivered.
    public func flush(timeout: Duration) async throws {
        nonisolated(unsafe) let rk = handle
        let ms = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        let err = try await blocking.run { rd_kafka_flush(rk, ms) }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(err, context: "flush left \(rd_kafka_outq_len(rk)) message(s) undelivered")
        }
    }

    /// Stops taking messages, delivers what is queued (up to `timeout`), and fails the rest
    /// with a purge error. Call once, on graceful shutdown.
    /// Delivers what is queued, waiting at most `timeout` (an unreachable broker must not hold
    /// a stopping process past its watchdog), then drops the rest.
    public func shutdown(timeout: Duration = .seconds(3)) async {
        guard accepting.exchange(false) else { return }
        do {
            try await flush(timeout: timeout)
        } catch {
            logger.error("producer shutdown: messages left undelivered", metadata: [LogKeys.error: "\(error)"])
        }
        running.set(false)
        nonisolated(unsafe) let rk = handle
        try? await blocking.run {
            rd_kafka_purge(rk, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
        }
        pollThread.stop()
        rd_kafka_poll(rk, 0)
    }
}

func withOptionalBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
    guard let bytes else { return body(nil) }
    return bytes.withUnsafeBytes { body($0) }
}

/// Builds header value-units with C strings and bytes that live for the call.
func withHeaders<R>(_ headers: [KafkaHeader], _ body: ([rd_kafka_vu_t]) -> R) -> R {
    if headers.isEmpty { return body([]) }
    let names = headers.map { strdup($0.key)! }
    let values: [UnsafeMutableRawPointer?] = headers.map { h in
        guard let v = h.value else { return nil }
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(v.count, 1), alignment: 1)
        v.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: v.count) }
        return p
    }
    defer {
        names.forEach { free($0) }
        values.forEach { $0?.deallocate() }
    }
    let vus = headers.indices.map { i in
        rd_kafka_vu_t(
            vtype: RD_KAFKA_VTYPE_HEADER,
            u: .init(header: .init(name: names[i], val: values[i], size: headers[i].value.map { $0.count } ?? -1)))
    }
    return body(vus)
}

/// librdkafka topic handles by name, made once per topic: producing by handle saves a
/// lookup per message.
final class TopicHandles: @unchecked Sendable {
    private let lock = NSLock()
    private var handles: [String: OpaquePointer] = [:]

    func handle(_ name: String, client: OpaquePointer) -> OpaquePointer {
        lock.lock()
        defer { lock.unlock() }
        if let h = handles[name] { return h }
        let h = rd_kafka_topic_new(client, name, nil)!
        handles[name] = h
        return h
    }

    func destroyAll() {
        lock.lock()
        defer { lock.unlock() }
        handles.values.forEach { rd_kafka_topic_destroy($0) }
        handles = [:]
    }
}
