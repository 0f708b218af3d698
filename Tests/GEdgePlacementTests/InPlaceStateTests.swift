import Foundation
import GEdgeCore
import Testing

@testable import GEdgePlacement

/// What a decision reads of every cluster in place says what the references behind it say:
/// the name filters never turn away a name they hold, the in-place coordinate's estimate is
/// the coordinate's to the bit, and the headline is the capacity summary's.
@Suite("State held in place")
struct InPlaceStateTests {
    @Test func aNameFilterNeverTurnsAwayANameItHolds() {
        var g = SplitMix(state: 11)
        var passed = 0, others = 0
        for _ in 0..<500 {
            let names = Set((0..<Int.random(in: 0...40, using: &g)).map { _ in "fleet-\(Int.random(in: 0..<100_000, using: &g))" })
            let filter = NameFilter(names)
            for n in names { #expect(filter.mayContain(NameFilter(name: n)), "\(n)") }
            for _ in 0..<20 {
                let other = "other-\(Int.random(in: 0..<100_000, using: &g))"
                others += 1
                if filter.mayContain(NameFilter(name: other)) { passed += 1 }
            }
        }
        // Most names not held are told apart (16 names: about 5 % pass; 40: about 25 %).
        #expect(Double(passed) / Double(others) < 0.3, "\(passed) of \(others)")
    }

    @Test func theInPlaceCoordinateEstimatesAsTheCoordinate() {
        var g = SplitMix(state: 12)
        for _ in 0..<1000 {
            func coordinate() -> VivaldiCoordinate {
                VivaldiCoordinate(vector: (0..<8).map { _ in Double.random(in: -0.1...0.1, using: &g) }, height: Double.random(in: 0.00001...0.01, using: &g),
                                  error: Double.random(in: 0...1.5, using: &g), adjustment: Double.random(in: -0.005...0.005, using: &g))
            }
            let a = coordinate(), b = coordinate()
            #expect(InlineCoordinate(a)!.distance(to: InlineCoordinate(b)!) == a.distance(to: b))
        }
        #expect(InlineCoordinate(VivaldiCoordinate(vector: Array(repeating: 0, count: 9), height: 0, error: 0, adjustment: 0)) == nil)
    }

    @Test func theHeadlineIsTheSummarysAndFollowsTheNodes() {
        var c = ClusterState(name: "c", nodes: [
            NodeState(name: "a", allocatable: Resources(cpuMilli: 4000, memory: 8 << 30, gpu: 2), requested: Resources(cpuMilli: 1000, memory: 1 << 30)),
            NodeState(name: "b", ready: false, allocatable: Resources(cpuMilli: 64000, memory: 256 << 30)),
        ])
        #expect(c.headline.schedulableNodes == 1 && c.headline.largestFreeCPU == 3000 && c.headline.largestFreeGPU == 2)
        #expect(c.capacity.headline == c.headline)
        c.nodes[0].requested.cpuMilli = 4000
        #expect(c.headline.largestFreeCPU == 0)
        #expect(!c.headline.mayFitResources(WorkloadRequirements(perReplica: Resources(cpuMilli: 100), name: "w")))
    }
}
