import Foundation
import GEdgeCore
import Synchronization
import Testing

final class Count: Sendable {
    private let m = Mutex(0)
    func add() { m.withLock { $0 += 1 } }
    var value: Int { m.withLock { $0 } }
}

/// The lifecycle every thread-owning client shares, and the dedicated thread built on it.
@Suite struct WorkQueueTests {
    @Test func queuesUntilStoppedThenRefusesAndHandsBackWhatWasLeft() {
        var q = WorkQueue<Int>()
        guard case .queued(wake: true) = q.submit(1), case .queued(wake: false) = q.submit(2) else { Issue.record("not queued"); return }
        #expect(q.take() == [1, 2])
        _ = q.submit(3)
        q.putBack([2])
        #expect(q.take() == [2, 3])
        _ = q.submit(4)
        #expect(q.stop() == .wakeAndWait)
        #expect(q.stop() == .wait)
        #expect(q.state == .stopping)
        guard case .refused(5) = q.submit(5) else { Issue.record("a job after stop must be refused"); return }
        #expect(q.finish() == [4])
        #expect(q.state == .stopped)
        guard case .refused = q.submit(6) else { Issue.record("refused after the end too"); return }
    }

    @Test func aDedicatedThreadRunsInOrderAndRefusesAfterStop() async throws {
        let t = DedicatedThread(name: "test")
        let seen = Mutex<[Int]>([])
        for i in 0..<5 { t.submit { seen.withLock { $0.append(i) } } }
        #expect(try await t.run { 42 } == 42)
        #expect(seen.withLock { $0 } == [0, 1, 2, 3, 4])
        t.stop()
        #expect(t.isStopping)
        #expect(!t.submit {})
        await #expect(throws: ThreadStoppedError.self) { try await t.run { 1 } }
        t.stop()  // twice: returns
    }

    /// Calls racing a stop: each is run or refused, none waits forever.
    @Test func callsRacingStopAreAllAnswered() async throws {
        for _ in 0..<20 {
            let t = DedicatedThread(name: "race")
            let answered = Count()
            await withTaskGroup(of: Void.self) { group in
                for i in 0..<50 {
                    group.addTask {
                        _ = try? await t.run { i }
                        answered.add()
                    }
                }
                group.addTask { t.stop() }
            }
            #expect(answered.value == 50)
        }
    }

    @Test func threadEndReleasesEveryWaiterAndLateOnes() async {
        let end = ThreadEnd()
        let done = Count()
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<3 { group.addTask { await end.wait(); done.add() } }
            group.addTask {
                try? await Task.sleep(for: .milliseconds(20))
                end.signal()
            }
        }
        await end.wait()
        #expect(done.value == 3 && end.hasEnded)
    }
}
