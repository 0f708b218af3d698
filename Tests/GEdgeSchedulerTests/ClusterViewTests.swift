import Foundation
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
}
