import CGEdgeShims
import CRabbitMQ
import Foundation
import GEdgeCore
import Logging
import Metrics
import Synchronization

/// An AMQP 0-9-1 client over rabbitmq-c. rabbitmq-c is not thread-safe, so each client owns
/// one connection confined to one thread of its own; calls are handed to that thread and
/// awaited. The thread waits on the socket and on a wake-up descriptor together (poll(2)),
/// keeps heartbeats, and reconnects with backoff after a lost connection, declaring the
/// recorded topology again, resuming consumption and publishing again every message the
/// broker had not confirmed.
///
/// Channel 1 carries publishes (with publisher confirms) and the consumer; channel 2 carries
/// declarations and passive checks, so that a refused declaration never disturbs them.
/// Use one client to publish and another to consume when both are busy.
public final class AMQPClient: Sendable {
    public var configuration: AMQPConfiguration { connection.configuration }
    let connection: Connection

    public init(configuration: AMQPConfiguration, logger: Logger, name: String = "amqp") {
        let connection = Connection(configuration: configuration, logger: logger)
        self.connection = connection
        // The thread holds the connection, never the client.
        let thread = Thread { connection.loop() }
        thread.name = name
        thread.start()
    }

    deinit {
        // Dropped without close: the thread ends on its own, failing what is in flight.
        connection.stop()
    }

    /// Waits until the client is connected (the first connection is made in the background).
    public func waitUntilConnected(timeout: Duration = .seconds(10)) async throws { try await connection.waitUntilConnected(timeout: timeout) }
    public var isConnected: Bool { connection.isConnected }
    /// Declares a durable exchange (again after every reconnect).
    public func declareExchange(_ name: String, type: AMQPExchangeType = .direct, durable: Bool = true) async throws {
        try await connection.declareExchange(name, type: type, durable: durable)
    }
    /// Declares a queue (again after every reconnect) and returns its depth.
    @discardableResult
    public func declareQueue(_ spec: AMQPQueueSpec) async throws -> AMQPQueueInfo { try await connection.declareQueue(spec) }
    /// Binds a queue to an exchange (again after every reconnect).
    public func bindQueue(_ queue: String, exchange: String, routingKey: String) async throws {
        try await connection.bindQueue(queue, exchange: exchange, routingKey: routingKey)
    }
    /// A passive declare: the queue's ready-message and consumer counts. Throws `.notFound`
    /// if the queue does not exist.
    public func queueInfo(_ name: String) async throws -> AMQPQueueInfo { try await connection.queueInfo(name) }
    /// Deletes a queue; returns the number of messages it held.
    @discardableResult
    public func deleteQueue(_ name: String) async throws -> Int { try await connection.deleteQueue(name) }
    /// Removes every ready message from a queue; returns how many.
    @discardableResult
    public func purgeQueue(_ name: String) async throws -> Int { try await connection.purgeQueue(name) }
    /// Publishes and waits for the broker's confirm. Unconfirmed messages are published
    /// again after a reconnect (at-least-once). With `mandatory`, a message no queue takes
    /// fails with `.unroutable`.
    public func publish(exchange: String = "", routingKey: String, message: AMQPMessage, mandatory: Bool = true) async throws {
        try await connection.publish(exchange: exchange, routingKey: routingKey, message: message, mandatory: mandatory)
    }
    /// Starts consuming a queue with manual acknowledgement. At most `prefetch` messages are
    /// delivered and not yet acked at any time. One consumer per client.
    public func consume(queue: String, prefetch: UInt16 = 32) async throws -> AMQPDeliveries { try await connection.consume(queue: queue, prefetch: prefetch) }
    /// Acknowledges a delivery. An ack for a delivery from a connection since lost is
    /// dropped, as is one that fails because the connection is failing now: either way the
    /// broker requeues that message itself.
    public func ack(_ delivery: AMQPDelivery) async throws { try await connection.ack(delivery) }
    /// Acknowledges `delivery` and every earlier delivery of its connection not yet settled
    /// (AMQP's `multiple`): one frame for a whole batch.
    public func ackThrough(_ delivery: AMQPDelivery) async throws { try await connection.ackThrough(delivery) }
    /// Rejects a delivery: requeued, or (without `requeue`) dead-lettered if the queue has a
    /// dead-letter exchange, else dropped. Lost connections are handled as for `ack`.
    public func nack(_ delivery: AMQPDelivery, requeue: Bool) async throws { try await connection.nack(delivery, requeue: requeue) }
    /// Closes the connection. Publishes not yet confirmed fail with `.closed`; the consumer's
    /// sequence ends. Every caller returns once the connection thread has ended.
    public func close() async { await connection.close() }
    /// Kills the socket without a close handshake, as a crash would (for fault tests).
    public func dropConnectionForTesting() async throws { try await connection.dropConnectionForTesting() }
}

/// The connection thread's side of a client. Its AMQP state (the rabbitmq-c connection,
/// topology, consumer, confirms) is confined to the thread; callers reach it only through
/// `inbox`, a `WorkQueue` of jobs behind a lock: a call after `close()` is refused at once,
/// and the jobs left when the thread ends are refused too, so no caller is left waiting.
final class Connection: @unchecked Sendable {
    let configuration: AMQPConfiguration
    private let logger: Logger
    /// A pipe: callers write a byte to wake the connection thread from poll(2).
    private let wakeFD: Int32
    private let wakeWriteFD: Int32
    let inbox = Mutex(WorkQueue<Job>())
    private let connected = Atomic<Bool>(false)
    let ended = ThreadEnd()

    // Confined to the connection thread.
    private var conn: OpaquePointer?
    private var generation = 0
    private var channel2Open = false
    private var topology: [TopologyOp] = []
    private var consumerState: ConsumerState?
    private var confirms = PublishConfirms()

    private let publishedCounter = Counter(label: "gedge_amqp_published_total")
    private let reconnectCounter = Counter(label: "gedge_amqp_reconnects_total")

    /// Handed from a caller to the connection thread once, and run or cancelled there (or
    /// cancelled by the caller when refused).
    struct Job: @unchecked Sendable {
        /// Runs on the connection thread; returns false if the connection broke.
        let run: (Connection, OpaquePointer) -> Bool
        /// Called instead when the client shuts down first.
        let cancel: (AMQPError) -> Void
        /// Whether to run again after a reconnect if the connection broke during it.
        let retryAfterReconnect: Bool
    }

    private enum TopologyOp: Equatable {
        case exchange(String, AMQPExchangeType, durable: Bool)
        case queue(AMQPQueueSpec)
        case bind(queue: String, exchange: String, routingKey: String)
    }

    private struct ConsumerState {
        var queue: String
        var prefetch: UInt16
        var channel: BoundedChannel<AMQPDelivery>
    }

    init(configuration: AMQPConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        self.wakeFD = fds[0]
        self.wakeWriteFD = fds[1]
    }

    deinit {
        Glibc.close(wakeFD)
        Glibc.close(wakeWriteFD)
    }

    /// Asks the thread to end, without waiting.
    func stop() {
        if inbox.withLock({ $0.stop() }) == .wakeAndWait { wake() }
    }

    // MARK: Public API

    func waitUntilConnected(timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !isConnected {
            guard inbox.withLock({ $0.isRunning }) else { throw AMQPError(.closed, message: "client is closed") }
            guard ContinuousClock.now < deadline else {
                throw AMQPError(.timeout, message: "not connected to \(configuration.host):\(configuration.port) after \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    var isConnected: Bool { connected.load(ordering: .acquiring) }

    /// Declares a durable exchange (again after every reconnect).
    func declareExchange(_ name: String, type: AMQPExchangeType = .direct, durable: Bool = true) async throws {
        try await topologyCall(.exchange(name, type, durable: durable)) { client, c in
            try client.onChannel2(c, "declare exchange \(name)") { cs in
                amqp_exchange_declare(c, 2, cs.bytes(name), cs.bytes(type.rawValue), 0, durable ? 1 : 0, 0, 0, amqp_table_t(num_entries: 0, entries: nil))
                return ()
            }
        }
    }

    /// Declares a queue (again after every reconnect) and returns its depth.
    @discardableResult
    func declareQueue(_ spec: AMQPQueueSpec) async throws -> AMQPQueueInfo {
        try await topologyCall(.queue(spec)) { client, c in
            try client.declareQueueOnThread(c, spec, passive: false)
        }
    }

    /// Binds a queue to an exchange (again after every reconnect).
    func bindQueue(_ queue: String, exchange: String, routingKey: String) async throws {
        try await topologyCall(.bind(queue: queue, exchange: exchange, routingKey: routingKey)) { client, c in
            try client.onChannel2(c, "bind \(queue) to \(exchange)") { cs in
                amqp_queue_bind(c, 2, cs.bytes(queue), cs.bytes(exchange), cs.bytes(routingKey), amqp_table_t(num_entries: 0, entries: nil))
                return ()
            }
        }
    }

    /// A passive declare: the queue's ready-message and consumer counts. Throws `.notFound`
    /// if the queue does not exist. A reading, not a change: with the broker away it fails
    /// after `connectTimeout` (a poller reads again at its next turn) instead of waiting for
    /// the connection to come back.
    func queueInfo(_ name: String) async throws -> AMQPQueueInfo {
        try await waitUntilConnected(timeout: configuration.connectTimeout)
        return try await call(retry: false) { client, c in
            try client.declareQueueOnThread(c, AMQPQueueSpec(name: name), passive: true)
        }
    }

    /// Deletes a queue; returns the number of messages it held.
    @discardableResult
    func deleteQueue(_ name: String) async throws -> Int {
        try await call(retry: true) { client, c in
            client.topology.removeAll { op in
                if case .queue(let s) = op { return s.name == name }
                if case .bind(let q, _, _) = op { return q == name }
                return false
            }
            return try client.onChannel2(c, "delete queue \(name)") { cs in
                Int(amqp_queue_delete(c, 2, cs.bytes(name), 0, 0)?.pointee.message_count ?? 0)
            }
        }
    }

    /// Removes every ready message from a queue; returns how many.
    @discardableResult
    func purgeQueue(_ name: String) async throws -> Int {
        try await call(retry: true) { client, c in
            try client.onChannel2(c, "purge queue \(name)") { cs in
                Int(amqp_queue_purge(c, 2, cs.bytes(name))?.pointee.message_count ?? 0)
            }
        }
    }

    /// Publishes and waits for the broker's confirm. Unconfirmed messages are published
    /// again after a reconnect (at-least-once). With `mandatory`, a message no queue takes
    /// fails with `.unroutable`.
    func publish(exchange: String = "", routingKey: String, message: AMQPMessage, mandatory: Bool = true) async throws {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, any Error>) in
            let p = PendingPublish(
                exchange: exchange, routingKey: routingKey, message: message, mandatory: mandatory,
                completion: { cont.resume(with: $0.mapError { $0 as any Error }) })
            enqueue(Job(
                run: { client, c in client.publishOnThread(c, p) },
                cancel: { cont.resume(throwing: $0) },
                retryAfterReconnect: false))
        }
        publishedCounter.increment()
    }

    /// Starts consuming a queue with manual acknowledgement. At most `prefetch` messages are
    /// delivered and not yet acked at any time. One consumer per client.
    func consume(queue: String, prefetch: UInt16 = 32) async throws -> AMQPDeliveries {
        let channel = BoundedChannel<AMQPDelivery>(capacity: Int(prefetch) * 2 + 16)
        try await call(retry: true) { client, c in
            precondition(client.consumerState == nil, "one consumer per AMQPClient")
            client.consumerState = ConsumerState(queue: queue, prefetch: prefetch, channel: channel)
            do {
                try client.startConsumerOnThread(c)
            } catch {
                client.consumerState = nil
                throw error
            }
        }
        return AMQPDeliveries(channel: channel)
    }

    /// Acknowledges a delivery. An ack for a delivery from a connection since lost is
    /// dropped, as is one that fails because the connection is failing now: either way the
    /// broker requeues that message itself.
    func ack(_ delivery: AMQPDelivery) async throws {
        try await settle(delivery, "ack") { c in amqp_basic_ack(c, 1, delivery.deliveryTag, 0) }
    }

    /// Acknowledges `delivery` and every earlier delivery of its connection not yet settled
    /// (AMQP's `multiple`): one frame for a whole batch.
    func ackThrough(_ delivery: AMQPDelivery) async throws {
        try await settle(delivery, "ack") { c in amqp_basic_ack(c, 1, delivery.deliveryTag, 1) }
    }

    /// Rejects a delivery: requeued, or (without `requeue`) dead-lettered if the queue has a
    /// dead-letter exchange, else dropped. Lost connections are handled as for `ack`.
    func nack(_ delivery: AMQPDelivery, requeue: Bool) async throws {
        try await settle(delivery, "nack") { c in amqp_basic_nack(c, 1, delivery.deliveryTag, 0, requeue ? 1 : 0) }
    }

    private func settle(_ delivery: AMQPDelivery, _ what: String, _ send: @escaping (OpaquePointer) -> Int32) async throws {
        do {
            try await call(retry: false) { client, c in
                guard delivery.generation == client.generation else { return }
                let status = send(c)
                if status != 0 {
                    throw AMQPError(.connection, replyCode: Int(status), message: "\(what): \(String(cString: amqp_error_string2(status)))")
                }
            }
        } catch let e as AMQPError where e.code == .connection {
            logger.debug("\(what) dropped with the connection; the broker requeues the message", metadata: [LogKeys.error: "\(e)"])
        }
    }

    /// Closes the connection. Publishes not yet confirmed fail with `.closed`; the consumer's
    /// sequence ends.
    func close() async {
        stop()
        await ended.wait()
    }

    /// Kills the socket without a close handshake, as a crash would (for fault tests).
    func dropConnectionForTesting() async throws {
        try await call(retry: false) { _, c in
            shutdown(amqp_get_sockfd(c), Int32(SHUT_RDWR))
        }
    }

    // MARK: Calls onto the connection thread

    private func enqueue(_ job: Job) {
        switch inbox.withLock({ $0.submit(job) }) {
        case .queued: wake()
        case .refused(let j): j.cancel(AMQPError(.closed, message: "client is closed"))
        }
    }

    private func wake() {
        var one: UInt8 = 1
        _ = write(wakeWriteFD, &one, 1)
    }

    /// Runs `body` on the connection thread. A connection error inside fails the call, or
    /// (with `retry`) runs it again once reconnected.
    private func call<T: Sendable>(retry: Bool, _ body: @escaping (Connection, OpaquePointer) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
            enqueue(Job(
                run: { client, c in
                    do {
                        cont.resume(returning: try body(client, c))
                        return true
                    } catch let e as AMQPError where e.code == .connection || e.code == .timeout {
                        if !retry { cont.resume(throwing: e) }
                        return false
                    } catch {
                        cont.resume(throwing: error)
                        return true
                    }
                },
                cancel: { cont.resume(throwing: $0) },
                retryAfterReconnect: retry))
        }
    }

    private func topologyCall<T: Sendable>(_ op: TopologyOp, _ body: @escaping (Connection, OpaquePointer) throws -> T) async throws -> T {
        try await call(retry: true) { client, c in
            let result = try body(client, c)
            if !client.topology.contains(op) { client.topology.append(op) }
            return result
        }
    }

    // MARK: Connection thread

    func loop() {
        var delay = configuration.reconnectDelay
        while inbox.withLock({ $0.isRunning }) {
            if conn == nil {
                do {
                    try connectOnThread()
                    delay = configuration.reconnectDelay
                    setConnected(true)
                } catch {
                    logger.warning(
                        "AMQP connect failed; retrying",
                        metadata: [LogKeys.error: "\(error)", "retry.in": "\(delay)"])
                    waitForWake(timeoutMs: Int32(delay.milliseconds))
                    delay = min(delay * 2, configuration.maxReconnectDelay)
                    continue
                }
            }
            guard let c = conn else { continue }
            var healthy = true
            var batch = inbox.withLock { $0.take() }
            while !batch.isEmpty {
                let job = batch.removeFirst()
                if !job.run(self, c) {
                    healthy = false
                    let retry = job.retryAfterReconnect ? [job] : []
                    inbox.withLock { $0.putBack(retry + batch) }
                    break
                }
            }
            if healthy { healthy = readFrames(c) }
            if !healthy {
                teardown(graceful: false)
                continue
            }
            let idle = inbox.withLock { $0.isEmpty }
            if idle && amqp_frames_enqueued(c) == 0 && amqp_data_in_buffer(c) == 0 {
                var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0), pollfd(fd: amqp_get_sockfd(c), events: Int16(POLLIN), revents: 0)]
                _ = poll(&fds, 2, 1000)
            }
            drainWake()
        }
        teardown(graceful: true)
        let closedError = AMQPError(.closed, message: "client is closed")
        inbox.withLock { $0.finish() }.forEach { $0.cancel(closedError) }
        confirms.failAll().forEach { $0.completion(.failure(closedError)) }
        consumerState?.channel.close()
        ended.signal()
    }

    private func waitForWake(timeoutMs: Int32) {
        var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, 1, timeoutMs)
        drainWake()
    }

    private func drainWake() {
        var buf = [UInt8](repeating: 0, count: 64)
        while read(wakeFD, &buf, buf.count) > 0 {}
    }

    private func setConnected(_ value: Bool) {
        connected.store(value, ordering: .releasing)
    }

    private func connectOnThread() throws {
        guard let c = amqp_new_connection() else { throw AMQPError(.connection, message: "amqp_new_connection failed") }
        guard let socket = amqp_tcp_socket_new(c) else {
            amqp_destroy_connection(c)
            throw AMQPError(.connection, message: "amqp_tcp_socket_new failed")
        }
        var tv = timeval(tv_sec: Int(configuration.connectTimeout.components.seconds), tv_usec: 0)
        let status = amqp_socket_open_noblock(socket, configuration.host, Int32(configuration.port), &tv)
        if status != 0 {
            amqp_destroy_connection(c)
            throw AMQPError(.connection, replyCode: Int(status), message: "connect to \(configuration.host):\(configuration.port): \(String(cString: amqp_error_string2(status)))")
        }
        let heartbeat = Int32(configuration.heartbeat.components.seconds)
        let login = gedge_amqp_login_plain(c, configuration.vhost, 0, 131_072, heartbeat, configuration.user, configuration.password)
        if let e = replyError(login, "login") {
            amqp_destroy_connection(c)
            throw e
        }
        var rpcTimeout = timeval(tv_sec: Int(configuration.rpcTimeout.components.seconds), tv_usec: 0)
        amqp_set_rpc_timeout(c, &rpcTimeout)
        amqp_channel_open(c, 1)
        if let e = replyError(amqp_get_rpc_reply(c), "open channel") {
            amqp_destroy_connection(c)
            throw e
        }
        amqp_confirm_select(c, 1)
        if let e = replyError(amqp_get_rpc_reply(c), "confirm.select") {
            amqp_destroy_connection(c)
            throw e
        }
        conn = c
        generation += 1
        channel2Open = false
        do {
            for op in topology { try applyTopology(c, op) }
            if consumerState != nil { try startConsumerOnThread(c) }
        } catch {
            teardown(graceful: true)
            throw error
        }
        // Publish again whatever the last connection left unconfirmed, in order.
        let again = confirms.reconnected()
        for p in again where !publishOnThread(c, p) {
            teardown(graceful: false)
            throw AMQPError(.connection, message: "connection lost while publishing again")
        }
        if generation > 1 {
            reconnectCounter.increment()
            logger.info("AMQP reconnected", metadata: ["amqp.republished": "\(again.count)"])
        }
    }

    private func teardown(graceful: Bool) {
        guard let c = conn else { return }
        if graceful {
            _ = amqp_channel_close(c, 1, Int32(AMQP_REPLY_SUCCESS))
            _ = amqp_connection_close(c, Int32(AMQP_REPLY_SUCCESS))
        }
        amqp_destroy_connection(c)
        conn = nil
        channel2Open = false
        setConnected(false)
    }

    private func applyTopology(_ c: OpaquePointer, _ op: TopologyOp) throws {
        switch op {
        case .exchange(let name, let type, let durable):
            try onChannel2(c, "declare exchange \(name)") { cs in
                amqp_exchange_declare(c, 2, cs.bytes(name), cs.bytes(type.rawValue), 0, durable ? 1 : 0, 0, 0, amqp_table_t(num_entries: 0, entries: nil))
                return ()
            }
        case .queue(let spec):
            _ = try declareQueueOnThread(c, spec, passive: false)
        case .bind(let queue, let exchange, let key):
            try onChannel2(c, "bind \(queue)") { cs in
                amqp_queue_bind(c, 2, cs.bytes(queue), cs.bytes(exchange), cs.bytes(key), amqp_table_t(num_entries: 0, entries: nil))
                return ()
            }
        }
    }

    /// Runs an RPC on channel 2, opening it first if needed. A channel error closes channel 2
    /// only (answered with close-ok); a connection error throws `.connection`.
    private func onChannel2<T>(_ c: OpaquePointer, _ what: String, _ body: (CStrings) -> T) throws -> T {
        if !channel2Open {
            amqp_channel_open(c, 2)
            if let e = replyError(amqp_get_rpc_reply(c), "open channel 2") { throw e }
            channel2Open = true
        }
        let cs = CStrings()
        defer { cs.releaseTables() }
        let value = body(cs)
        let reply = amqp_get_rpc_reply(c)
        if let e = replyError(reply, what) {
            if reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && reply.reply.id == AMQPMethod.channelClose {
                var ok = amqp_channel_close_ok_t(dummy: 0)
                amqp_send_method(c, 2, AMQPMethod.channelCloseOK, &ok)
                channel2Open = false
            }
            throw e
        }
        return value
    }

    private func declareQueueOnThread(_ c: OpaquePointer, _ spec: AMQPQueueSpec, passive: Bool) throws -> AMQPQueueInfo {
        let what = passive ? "queue \(spec.name)" : "declare queue \(spec.name)"
        let ok = try onChannel2(c, what) { cs -> amqp_queue_declare_ok_t? in
            let args = passive ? amqp_table_t(num_entries: 0, entries: nil) : cs.table(spec.arguments)
            return amqp_queue_declare(
                c, 2, cs.bytes(spec.name), passive ? 1 : 0, spec.durable ? 1 : 0, spec.exclusive ? 1 : 0,
                spec.autoDelete ? 1 : 0, args)?.pointee
        }
        guard let ok else { throw AMQPError(.connection, message: "\(what): no reply") }
        return AMQPQueueInfo(name: ok.queue.string, messageCount: Int(ok.message_count), consumerCount: Int(ok.consumer_count))
    }

    private func startConsumerOnThread(_ c: OpaquePointer) throws {
        guard let state = consumerState else { return }
        amqp_basic_qos(c, 1, 0, state.prefetch, 0)
        if let e = replyError(amqp_get_rpc_reply(c), "basic.qos") { throw e }
        let cs = CStrings()
        amqp_basic_consume(c, 1, cs.bytes(state.queue), amqp_bytes_t(len: 0, bytes: nil), 0, 0, 0, amqp_table_t(num_entries: 0, entries: nil))
        if let e = replyError(amqp_get_rpc_reply(c), "consume \(state.queue)") {
            // A refused consume closes channel 1: start over on a new connection.
            throw AMQPError(e.code == .notFound ? .notFound : .connection, replyCode: e.replyCode, message: e.message)
        }
    }

    private func publishOnThread(_ c: OpaquePointer, _ p: PendingPublish) -> Bool {
        _ = confirms.publishing(p)
        let cs = CStrings()
        defer { cs.releaseTables() }
        var props = amqp_basic_properties_t()
        var flags: UInt32 = UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG)
        props.delivery_mode = p.message.persistent ? 2 : 1
        if let ct = p.message.contentType {
            flags |= UInt32(AMQP_BASIC_CONTENT_TYPE_FLAG)
            props.content_type = cs.bytes(ct)
        }
        if let id = p.message.messageID {
            flags |= UInt32(AMQP_BASIC_MESSAGE_ID_FLAG)
            props.message_id = cs.bytes(id)
        }
        if !p.message.headers.isEmpty {
            flags |= UInt32(AMQP_BASIC_HEADERS_FLAG)
            props.headers = cs.table(p.message.headers)
        }
        props._flags = flags
        let status = amqp_basic_publish(
            c, 1, cs.bytes(p.exchange), cs.bytes(p.routingKey), p.mandatory ? 1 : 0, 0, &props, cs.raw(p.message.body))
        if status != 0 {
            logger.warning("publish failed; will publish again after reconnect", metadata: [LogKeys.error: .string(String(cString: amqp_error_string2(status)))])
            return false
        }
        return true
    }

    /// Reads and handles every frame that is ready, without blocking. Returns false if the
    /// connection broke.
    private func readFrames(_ c: OpaquePointer) -> Bool {
        var handled = 0
        defer { amqp_maybe_release_buffers(c) }
        while handled < 512 {
            var frame = amqp_frame_t()
            var zero = timeval(tv_sec: 0, tv_usec: 0)
            let status = amqp_simple_wait_frame_noblock(c, &frame, &zero)
            if status == AMQP_STATUS_TIMEOUT.rawValue { return true }
            if status != 0 {
                logger.warning("AMQP connection lost", metadata: [LogKeys.error: .string(String(cString: amqp_error_string2(status)))])
                return false
            }
            handled += 1
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { continue }
            if !handleMethod(c, frame) { return false }
        }
        return true
    }

    private func handleMethod(_ c: OpaquePointer, _ frame: amqp_frame_t) -> Bool {
        let method = frame.payload.method
        switch method.id {
        case AMQPMethod.basicDeliver:
            let d = method.decoded!.assumingMemoryBound(to: amqp_basic_deliver_t.self).pointee
            let tag = d.delivery_tag
            let redelivered = d.redelivered != 0
            let exchange = d.exchange.string
            let routingKey = d.routing_key.string
            let content: (AMQPMessage, AMQPDelivery.Oversize?)
            switch readContent(c, channel: frame.channel, limit: configuration.maxBodyBytes, prefix: AMQPDelivery.Oversize.prefixBytes, timeout: configuration.rpcTimeout) {
            case .success(let read): content = read
            case .failure(let e):
                logger.warning("delivery could not be read", metadata: [LogKeys.error: "\(e)"])
                return false
            }
            let delivery = AMQPDelivery(
                message: content.0, deliveryTag: tag, redelivered: redelivered, exchange: exchange,
                routingKey: routingKey, generation: generation, oversize: content.1)
            consumerState?.channel.push(delivery)
        case AMQPMethod.basicAck, AMQPMethod.basicNack:
            let isAck = method.id == AMQPMethod.basicAck
            let (tag, multiple): (UInt64, Bool) =
                isAck
                ? { let a = method.decoded!.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee; return (a.delivery_tag, a.multiple != 0) }()
                : { let n = method.decoded!.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee; return (n.delivery_tag, n.multiple != 0) }()
            confirm(tag: tag, multiple: multiple, ack: isAck)
        case AMQPMethod.basicReturn:
            let r = method.decoded!.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
            let exchange = r.exchange.string, routingKey = r.routing_key.string
            var msg = amqp_message_t()
            let reply = amqp_read_message(c, frame.channel, &msg, 0)
            var messageID: String?
            if reply.reply_type == AMQP_RESPONSE_NORMAL {
                if msg.properties._flags & UInt32(AMQP_BASIC_MESSAGE_ID_FLAG) != 0 { messageID = msg.properties.message_id.string }
                amqp_destroy_message(&msg)
            }
            confirms.returned(exchange: exchange, routingKey: routingKey, messageID: messageID)
        case AMQPMethod.channelClose:
            let close = method.decoded!.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let error = AMQPError(close.reply_code == 404 ? .notFound : .channel, replyCode: Int(close.reply_code), message: close.reply_text.string)
            var ok = amqp_channel_close_ok_t(dummy: 0)
            amqp_send_method(c, frame.channel, AMQPMethod.channelCloseOK, &ok)
            if frame.channel == 2 {
                channel2Open = false
                return true
            }
            // Channel 1 refused a publish (e.g. no such exchange): fail what it had in flight
            // rather than publish it again, then start over on a new connection.
            logger.warning("channel closed by the broker", metadata: [LogKeys.error: "\(error)"])
            confirms.failAll().forEach { $0.completion(.failure(error)) }
            return false
        case AMQPMethod.connectionClose:
            let close = method.decoded!.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            logger.warning("connection closed by the broker", metadata: [LogKeys.error: .string("\(close.reply_code) \(close.reply_text.string)")])
            var ok = amqp_connection_close_ok_t(dummy: 0)
            amqp_send_method(c, 0, AMQPMethod.connectionCloseOK, &ok)
            return false
        case AMQPMethod.basicCancel:
            logger.warning("the broker cancelled the consumer (queue deleted?)", metadata: [LogKeys.amqpQueue: .string(consumerState?.queue ?? "")])
            consumerState?.channel.close()
            consumerState = nil
        default:
            break
        }
        return true
    }

    private func confirm(tag: UInt64, multiple: Bool, ack: Bool) {
        for (p, outcome) in confirms.confirmed(tag: tag, multiple: multiple, ack: ack) { PublishConfirms.complete(p, outcome) }
    }
}

/// The deliveries of a consumer, in order. Ends when the client closes or the broker
/// cancels the consumer.
public struct AMQPDeliveries: AsyncSequence, Sendable {
    public typealias Element = AMQPDelivery
    let channel: BoundedChannel<AMQPDelivery>

    public struct AsyncIterator: AsyncIteratorProtocol {
        let channel: BoundedChannel<AMQPDelivery>
        public mutating func next() async -> AMQPDelivery? { await channel.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(channel: channel) }

    /// Waits for one delivery, then takes whatever else is already there, up to `max`.
    /// Empty when the sequence has ended.
    public func nextBatch(max: Int) async -> [AMQPDelivery] { await channel.nextBatch(max: max) }
}
