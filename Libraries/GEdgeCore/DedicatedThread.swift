import Foundation

/// A thread of its own that runs submitted jobs in order. Blocking C calls (librdkafka's
/// flush and commit, libpq queries, rabbitmq-c I/O) run here, never on Swift's cooperative
/// pool. A job may also be a long loop that checks `isStopping`.
public final class DedicatedThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var stopping = false
    private var finished = false
    private var thread: Thread?
    public let name: String

    public init(name: String) {
        self.name = name
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = name
        thread.stackSize = 1 << 20
        self.thread = thread
        thread.start()
    }

    deinit {
        stop()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty && stopping {
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }

    /// Whether `stop()` was called. Long-running jobs check this.
    public var isStopping: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stopping
    }

    /// Queues a job without waiting for it.
    public func submit(_ job: @escaping @Sendable () -> Void) {
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }

    /// Runs `body` on this thread and returns its result to the awaiting task.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, any Error>) in
            submit {
                do { cont.resume(returning: try body()) } catch { cont.resume(throwing: error) }
            }
        }
    }

    /// Finishes the queued jobs, then ends the thread. Returns once it has ended.
    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        if Thread.current !== thread {
            while !finished && thread != nil { condition.wait() }
        }
        condition.unlock()
    }
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
