import Foundation
import GEdgeCore
import GEdgePlacement
import Testing

@testable import GEdgeScheduler

/// The view's reservations: placements this scheduler made, held on their node until a
/// report shows them, or until the TTL passes.
@Suite struct ClusterViewTests {
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    func report(_ sequence: Int64, at: Date, requestedMilli: Int64 = 0) -> ClusterState {
        ClusterState(name: "edge1", nodes: [
            NodeState(name: "n1", allocatable: Resources(cpuMilli: 4000, memory: 8 << 30), requested: Resources(cpuMilli: requestedMilli, memory: 0)),
            NodeState(name: "n2", allocatable: Resources(cpuMilli: 4000, memory: 8 << 30)),
        ], sequence: sequence, reportedAt: at)
    }

    func requested(_ view: ClusterView, _ node: String, now: Date) -> Int64? {
        view.fresh(now: now).first?.nodes.first { $0.name == node }?.requested.cpuMilli
    }

    @Test func aReservationHoldsUntilAReportAfterTheAnswerShowsIt() {
        let view = ClusterView(staleAfter: .seconds(60), reservationTTL: .seconds(30))
        view.update(report(1, at: t0))
        view.reserve(requestID: "r1", parts: [PlacementPart(cluster: "edge1", node: "n1", replicas: 2)],
                     perReplica: Resources(cpuMilli: 500, memory: 0), now: t0)
        #expect(requested(view, "n1", now: t0) == 1000)
        #expect(requested(view, "n2", now: t0) == 0)
        view.confirm(requestID: "r1", cluster: "edge1", ok: true, now: t0.addingTimeInterval(1))
        // A report generated before the answer does not account for the pods yet.
        view.update(report(2, at: t0.addingTimeInterval(0.5)))
        #expect(requested(view, "n1", now: t0) == 1000)
        // One generated after it does: the reservation goes, the report's figure stays.
        view.update(report(3, at: t0.addingTimeInterval(2), requestedMilli: 1000))
        #expect(view.reservationCount == 0)
        #expect(requested(view, "n1", now: t0.addingTimeInterval(2)) == 1000)
    }

    @Test func aRefusedApplyFreesItsReservationAtOnce() {
        let view = ClusterView(staleAfter: .seconds(60), reservationTTL: .seconds(30))
        view.update(report(1, at: t0))
        view.reserve(requestID: "r1", parts: [PlacementPart(cluster: "edge1", node: "n2", replicas: 1)],
                     perReplica: Resources(cpuMilli: 700, memory: 0), now: t0)
        view.confirm(requestID: "r1", cluster: "edge1", ok: false, now: t0)
        #expect(view.reservationCount == 0)
        #expect(requested(view, "n2", now: t0) == 0)
    }

    @Test func unansweredReservationsExpireAfterTheirTTL() {
        let view = ClusterView(staleAfter: .seconds(120), reservationTTL: .seconds(30))
        view.update(report(1, at: t0))
        view.reserve(requestID: "old", parts: [PlacementPart(cluster: "edge1", node: "n1", replicas: 1)],
                     perReplica: Resources(cpuMilli: 300, memory: 0), now: t0)
        view.reserve(requestID: "new", parts: [PlacementPart(cluster: "edge1", node: "n1", replicas: 1)],
                     perReplica: Resources(cpuMilli: 200, memory: 0), now: t0.addingTimeInterval(20))
        view.expireReservations(now: t0.addingTimeInterval(10))
        #expect(view.reservationCount == 2)
        view.expireReservations(now: t0.addingTimeInterval(31))
        #expect(view.reservationCount == 1)
        #expect(requested(view, "n1", now: t0.addingTimeInterval(31)) == 200)
        view.expireReservations(now: t0.addingTimeInterval(51))
        #expect(view.reservationCount == 0)
        #expect(requested(view, "n1", now: t0.addingTimeInterval(51)) == 0)
    }

    /// Random reservations, answers, releases, reports and expiries over several clusters,
    /// against a model kept here: after every step each node shows its report's figure plus
    /// exactly the reservations still held on it (the view keeps them indexed by cluster and
    /// adjusts in place; the model sums them from scratch).
    ///
    /// With `readers`, each step runs while 0-3 decisions read the view (`withFresh`, nested
    /// here as they overlap in the scheduler): the changes are held meanwhile, yet a reader
    /// that starts during the step sees every one of them, the readers' own snapshots stay
    /// as they were, and once they leave the view shows everything, in order.
    @Test(arguments: [false, true]) func reservationsFollowAModelOverRandomSteps(readers: Bool) {
        struct Held { var cluster: String; var node: String; var cpu: Int64; var created: Date; var confirmed: Date? }
        let ttl: TimeInterval = 30
        let view = ClusterView(staleAfter: .seconds(100_000), reservationTTL: .seconds(30))
        let clusters = ["c0", "c1", "c2"], nodes = ["n0", "n1", "n2"]
        var rng = SeededRandom(seed: 25)
        var reports: [String: (at: Date, cpu: [String: Int64])] = [:]
        var held: [String: [Held]] = [:]
        var now = t0
        var sequence: Int64 = 0
        func send(_ cluster: String) {
            sequence += 1
            let cpu = Dictionary(uniqueKeysWithValues: nodes.map { ($0, Int64.random(in: 0...1000, using: &rng)) })
            view.update(ClusterState(name: cluster, nodes: nodes.map {
                NodeState(name: $0, allocatable: Resources(cpuMilli: 1_000_000, memory: 8 << 30), requested: Resources(cpuMilli: cpu[$0]!, memory: 0))
            }, sequence: sequence, reportedAt: now))
            reports[cluster] = (now, cpu)
            for (id, list) in held {
                let kept = list.filter { !($0.cluster == cluster && ($0.confirmed.map { $0 < now } ?? false)) }
                held[id] = kept.isEmpty ? nil : kept
            }
        }
        for c in clusters { send(c) }
        func matches(_ shown: [ClusterState], _ step: Int) -> Bool {
            let seen = Dictionary(uniqueKeysWithValues: shown.map { ($0.name, $0) })
            for c in clusters {
                for n in nodes {
                    let expected = reports[c]!.cpu[n]! + held.values.joined().filter { $0.cluster == c && $0.node == n }.reduce(0) { $0 + $1.cpu }
                    let shown = seen[c]?.nodes.first { $0.name == n }?.requested.cpuMilli
                    #expect(shown == expected, "step \(step): \(c)/\(n)")
                    if shown != expected { return false }
                }
            }
            return true
        }
        func whileReading(_ depth: Int, _ step: Int, _ body: () -> Void) -> Bool {
            guard depth > 0 else {
                body()
                // A decision starting now sees every change, held or not.
                return view.withFresh(now: now) { matches($0, step) }
            }
            return view.withFresh(now: now) { snapshot in
                let before = snapshot.map { $0.nodes.map(\.requested.cpuMilli) }
                let ok = whileReading(depth - 1, step, body)
                #expect(snapshot.map { $0.nodes.map(\.requested.cpuMilli) } == before, "step \(step): a reader's snapshot changed")
                return ok
            }
        }
        for step in 0..<3_000 {
            let depth = readers ? Int.random(in: 0...3, using: &rng) : 0
            // While decisions read, several changes in a row (their order matters: a report
            // and a reservation on the same node).
            let changes = depth > 0 ? Int.random(in: 1...4, using: &rng) : 1
            let stepOK = whileReading(depth, step) {
            for _ in 0..<changes {
                now = now.addingTimeInterval(0.3)
                let id = "r\(Int.random(in: 0..<25, using: &rng))"
                let cluster = clusters.randomElement(using: &rng)!
                switch Int.random(in: 0..<6, using: &rng) {
                case 0, 1:
                    let parts = (0..<Int.random(in: 1...3, using: &rng)).map { _ in
                        PlacementPart(cluster: clusters.randomElement(using: &rng)!, node: nodes.randomElement(using: &rng)!, replicas: Int.random(in: 1...3, using: &rng))
                    }
                    let per = Int64.random(in: 1...100, using: &rng)
                    view.reserve(requestID: id, parts: parts, perReplica: Resources(cpuMilli: per, memory: 0), now: now)
                    for p in parts { held[id, default: []].append(Held(cluster: p.cluster, node: p.node!, cpu: per * Int64(p.replicas), created: now)) }
                case 2:
                    let ok = Bool.random(using: &rng)
                    view.confirm(requestID: id, cluster: cluster, ok: ok, now: now)
                    if var list = held[id] {
                        if ok {
                            for i in list.indices where list[i].cluster == cluster { list[i].confirmed = now }
                        } else {
                            list.removeAll { $0.cluster == cluster }
                        }
                        held[id] = list.isEmpty ? nil : list
                    }
                case 3:
                    view.release(requestID: id)
                    held[id] = nil
                case 4:
                    send(cluster)
                default:
                    view.expireReservations(now: now)
                    for (id, list) in held {
                        let kept = list.filter { now.timeIntervalSince($0.created) < ttl }
                        held[id] = kept.isEmpty ? nil : kept
                    }
                }
            }
            }
            guard stepOK, matches(view.fresh(now: now), step) else { return }
            #expect(view.reservationCount == held.values.reduce(0) { $0 + $1.count })
        }
    }

    @Test func freshLeavesOutStaleClustersAndTakesBackOnesThatReportAgain() {
        let view = ClusterView(staleAfter: .seconds(15), reservationTTL: .seconds(30))
        view.update(report(1, at: t0))
        var other = report(1, at: t0.addingTimeInterval(10))
        other.name = "edge2"
        view.update(other)
        #expect(view.fresh(now: t0).map(\.name) == ["edge1", "edge2"])
        #expect(view.fresh(now: t0.addingTimeInterval(14)).map(\.name) == ["edge1", "edge2"])
        #expect(view.fresh(now: t0.addingTimeInterval(16)).map(\.name) == ["edge2"])
        #expect(view.fresh(now: t0.addingTimeInterval(26)).map(\.name) == [])
        // A cluster that reports again is fresh again.
        view.update(report(2, at: t0.addingTimeInterval(25)))
        #expect(view.fresh(now: t0.addingTimeInterval(26)).map(\.name) == ["edge1"])
        #expect(view.fresh(now: t0.addingTimeInterval(30)).map(\.name) == ["edge1"])
    }
}
