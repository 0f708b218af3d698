/// The life of a client that owns a thread: the work callers hand it and whether it still
/// takes work, as one value whose transitions say what to do next. It holds no lock and
/// does no I/O; its owner keeps it behind a lock, performs the returned action outside,
/// and so every caller is either taken or refused, never left waiting:
///
/// - `running`: `submit` queues a job and says whether to wake the thread.
/// - `stopping`: `stop` was called; `submit` refuses (the caller fails at once), the
///   thread finishes what it took and calls `finish`, which hands back the jobs it never
///   took, to be refused too.
/// - `stopped`: the thread has ended.
public struct WorkQueue<Job> {
    public enum State: Equatable, Sendable { case running, stopping, stopped }

    public private(set) var state: State = .running
    private var jobs: [Job] = []

    public init() {}

    public enum SubmitAction {
        /// Queued; wake the thread when `wake` (it was idle: nothing was queued).
        case queued(wake: Bool)
        /// Not queued: the client is stopping or stopped. Fail the job's caller now.
        case refused(Job)
    }

    public mutating func submit(_ job: Job) -> SubmitAction {
        guard state == .running else { return .refused(job) }
        jobs.append(job)
        return .queued(wake: jobs.count == 1)
    }

    /// The jobs queued so far, in order, for the thread to run.
    public mutating func take() -> [Job] {
        defer { jobs = [] }
        return jobs
    }

    /// Puts jobs the thread took but could not run (a connection lost under them) back in
    /// front, to run first when it can. While stopping they are refused by `finish`.
    public mutating func putBack(_ taken: [Job]) {
        jobs = taken + jobs
    }

    public var isEmpty: Bool { jobs.isEmpty }
    public var isRunning: Bool { state == .running }

    public enum StopAction: Equatable {
        /// The first stop: wake the thread so that it sees it, and wait for it to end.
        case wakeAndWait
        /// Already stopping: wait for the thread to end (it may have already).
        case wait
    }

    public mutating func stop() -> StopAction {
        guard state == .running else { return .wait }
        state = .stopping
        return .wakeAndWait
    }

    /// The thread is ending: the jobs it never took, each to be refused.
    public mutating func finish() -> [Job] {
        state = .stopped
        return take()
    }
}

import Synchronization

/// The end of a client's thread, awaited by any number of callers of its shutdown: each
/// returns once the thread has ended, including one that comes after.
public final class ThreadEnd: Sendable {
    private let state = Mutex<(ended: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public init() {}

    /// Called by the thread as its last act.
    public func signal() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.ended = true
            defer { s.waiters = [] }
            return s.waiters
        }
        waiters.forEach { $0.resume() }
    }

    public var hasEnded: Bool { state.withLock { $0.ended } }

    public func wait() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.ended { return true }
                s.waiters.append(c)
                return false
            }
            if now { c.resume() }
        }
    }
}
