import Foundation
import Synchronization

/// A thread of its own that runs submitted jobs in order. Blocking C calls (librdkafka's
/// flush and commit, libpq queries, rabbitmq-c I/O) run here, never on Swift's cooperative
/// pool. A job may also be a long loop that checks `isStopping`.
///
/// The thread lives from `init` to `stop()` (or the last reference going) and holds only
/// its `Worker`, never the object itself. Its state is a `WorkQueue` behind one condition
/// lock: a job submitted after `stop()` is refused (`run` throws `ThreadStoppedError`), and
/// the jobs still queued when the thread ends are refused the same way, so no caller of
/// `run` is ever left waiting.
public final class DedicatedThread: Sendable {
    public let name: String
    private let worker: Worker

    struct Job {
        let run: () -> Void
        let refuse: () -> Void
    }

    final class Worker: @unchecked Sendable {
        let condition = NSCondition()
        /// Guarded by `condition`.
        var queue = WorkQueue<Job>()
        /// Set once before the thread starts; read to tell whether `stop` runs on it.
        var thread: Thread?

        func loop() {
            while true {
                condition.lock()
                while queue.isEmpty && queue.isRunning { condition.wait() }
                if !queue.isRunning {
                    // Stopping: run what was queued before the stop, then end.
                    let left = queue.take()
                    condition.unlock()
                    left.forEach { $0.run() }
                    condition.lock()
                    let refused = queue.finish()
                    condition.broadcast()
                    condition.unlock()
                    refused.forEach { $0.refuse() }
                    return
                }
                let batch = queue.take()
                condition.unlock()
                batch.forEach { $0.run() }
            }
        }
    }

    public init(name: String) {
        self.name = name
        let worker = Worker()
        self.worker = worker
        let thread = Thread { worker.loop() }
        thread.name = name
        thread.stackSize = 1 << 20
        worker.thread = thread
        thread.start()
    }

    deinit {
        stop()
    }

    /// Whether `stop()` was called. Long-running jobs check this.
    public var isStopping: Bool {
        worker.condition.lock()
        defer { worker.condition.unlock() }
        return !worker.queue.isRunning
    }

    /// Queues a job without waiting for it. Returns false (the job will not run) once the
    /// thread is stopping.
    @discardableResult
    public func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        enqueue(Job(run: job, refuse: {}))
    }

    private func enqueue(_ job: Job) -> Bool {
        worker.condition.lock()
        let action = worker.queue.submit(job)
        if case .queued(let wake) = action, wake { worker.condition.signal() }
        worker.condition.unlock()
        if case .refused(let j) = action {
            j.refuse()
            return false
        }
        return true
    }

    /// Runs `body` on this thread and returns its result to the awaiting task. Throws
    /// `ThreadStoppedError` when the thread stops before running it.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
            let resumed = Atomic<Bool>(false)
            _ = enqueue(Job(
                run: {
                    guard !resumed.exchange(true, ordering: .acquiringAndReleasing) else { return }
                    do { cont.resume(returning: try body()) } catch { cont.resume(throwing: error) }
                },
                refuse: {
                    guard !resumed.exchange(true, ordering: .acquiringAndReleasing) else { return }
                    cont.resume(throwing: ThreadStoppedError(thread: self.name))
                }))
        }
    }

    /// Runs the jobs queued before it, then ends the thread; refuses every later one.
    /// Returns once the thread has ended (at once when called on the thread itself).
    public func stop() {
        let w = worker
        w.condition.lock()
        _ = w.queue.stop()
        w.condition.broadcast()
        if Thread.current !== w.thread {
            while w.queue.state != .stopped { w.condition.wait() }
        }
        w.condition.unlock()
    }
}

/// A job handed to a `DedicatedThread` that had stopped.
public struct ThreadStoppedError: Error, Sendable, CustomStringConvertible {
    public let thread: String
    public var description: String { "thread \(thread) is stopped" }
}

/// A bounded buffer between a producing plain thread, which blocks when it is full, and
/// consuming async tasks, which suspend when it is empty. Nothing is dropped.
public final class BoundedChannel<Element: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var buffer: [Element] = []
    private var head = 0
    private var waiter: CheckedContinuation<Element?, Never>?
    private var closed = false
    public let capacity: Int

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    private var count: Int { buffer.count - head }

    /// Adds an element, blocking the calling thread while the buffer is full.
    /// Returns false if the channel was closed (the element is not delivered).
    @discardableResult
    public func push(_ element: Element) -> Bool {
        condition.lock()
        while count >= capacity && !closed && waiter == nil { condition.wait() }
        if closed {
            condition.unlock()
            return false
        }
        if let w = waiter {
            waiter = nil
            condition.unlock()
            w.resume(returning: element)
            return true
        }
        buffer.append(element)
        condition.unlock()
        return true
    }

    /// The next element, or nil once the channel is closed and drained.
    public func next() async -> Element? {
        await withCheckedContinuation { (cont: CheckedContinuation<Element?, Never>) in
            condition.lock()
            if count > 0 {
                let e = buffer[head]
                head += 1
                if head > 1024 && head * 2 > buffer.count {
                    buffer.removeFirst(head)
                    head = 0
                }
                condition.signal()
                condition.unlock()
                cont.resume(returning: e)
            } else if closed {
                condition.unlock()
                cont.resume(returning: nil)
            } else {
                precondition(waiter == nil, "BoundedChannel supports one consumer at a time")
                waiter = cont
                condition.signal()
                condition.unlock()
            }
        }
    }

    /// Waits for one element, then takes up to `max - 1` more that are already buffered.
    /// Empty once the channel is closed and drained.
    public func nextBatch(max: Int) async -> [Element] {
        guard let first = await next() else { return [] }
        return drain(into: [first], max: max)
    }

    private func drain(into initial: [Element], max: Int) -> [Element] {
        var out = initial
        condition.lock()
        while out.count < max, count > 0 {
            out.append(buffer[head])
            head += 1
        }
        if head > 1024 && head * 2 > buffer.count {
            buffer.removeFirst(head)
            head = 0
        }
        condition.broadcast()
        condition.unlock()
        return out
    }

    /// Closes the channel: the producer is released, the consumer drains what is left, then gets nil.
    public func close() {
        condition.lock()
        closed = true
        let w = count == 0 ? waiter : nil
        if w != nil { waiter = nil }
        condition.broadcast()
        condition.unlock()
        w?.resume(returning: nil)
    }
}

import Synchronization

/// A flag shared between a loop on a plain thread and whoever stops it.
public final class RunFlag: Sendable {
    private let value: Atomic<Bool>
    public init(_ initial: Bool = true) { value = Atomic(initial) }
    public var isSet: Bool { value.load(ordering: .acquiring) }
    public func set(_ v: Bool) { value.store(v, ordering: .releasing) }
    /// Sets the flag and returns its previous value.
    public func exchange(_ v: Bool) -> Bool { value.exchange(v, ordering: .acquiringAndReleasing) }
}
