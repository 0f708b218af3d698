import Foundation
import GEdgePlacement
import Testing

/// A seeded generator, so that each run of these tests is the same run.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Runs CPU-bound work on a thread of its own, not the cooperative pool the other tests'
/// tasks (and their servers' callbacks) need.
func offThePool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { c in Thread { c.resume(returning: work()) }.start() }
}

@Suite("Vivaldi coordinates")
struct VivaldiTests {
    /// Clusters at known points of a plane, each with an access link (a height): round trips
    /// are the distances plus both heights, with ±5 % noise. Each cluster probes 3 random
    /// peers per round; after warm-up the estimates hold the true round trips.
    @Sendable func simulate(clusters n: Int, rounds: Int, noise: Double, seed: UInt64) -> (median: Double, p90: Double) {
        var g = SplitMix(state: seed)
        let points = (0..<n).map { _ in (Double.random(in: 0...0.1, using: &g), Double.random(in: 0...0.1, using: &g)) }
        let heights = (0..<n).map { _ in Double.random(in: 0.001...0.01, using: &g) }
        func truth(_ i: Int, _ j: Int) -> Double {
            let dx = points[i].0 - points[j].0, dy = points[i].1 - points[j].1
            return (dx * dx + dy * dy).squareRoot() + heights[i] + heights[j]
        }
        var clients = (0..<n).map { _ in VivaldiClient() }
        for _ in 0..<rounds {
            for i in 0..<n {
                for _ in 0..<3 {
                    var j = Int.random(in: 0..<n, using: &g)
                    if j == i { j = (j + 1) % n }
                    let rtt = truth(i, j) * (1 + Double.random(in: -noise...noise, using: &g))
                    clients[i].update(peer: "c\(j)", coordinate: clients[j].coordinate, rtt: rtt, random: &g)
                }
            }
        }
        var errors: [Double] = []
        for i in 0..<n { for j in (i + 1)..<n { errors.append(abs(clients[i].coordinate.distance(to: clients[j].coordinate) - truth(i, j)) / truth(i, j)) } }
        errors.sort()
        return (errors[errors.count / 2], errors[errors.count * 9 / 10])
    }

    @Test func convergesOnAKnownMetricSpace() async {
        let (median, p90) = await offThePool { simulate(clusters: 100, rounds: 200, noise: 0.05, seed: 20261204) }
        print("Vivaldi, 100 clusters, 3 probes a round, 200 rounds: median relative error \(median), p90 \(p90)")
        #expect(median <= 0.15, "median relative error \(median)")
        #expect(p90 <= 0.40, "p90 relative error \(p90)")
    }

    @Test func probesPerRoundDoNotGrowWithTheFleet() async {
        // The same 3 probes a round place a fleet twice as large as well.
        let (median, p90) = await offThePool { simulate(clusters: 200, rounds: 200, noise: 0.05, seed: 7) }
        print("Vivaldi, 200 clusters, 3 probes a round, 200 rounds: median relative error \(median), p90 \(p90)")
        #expect(median <= 0.15, "median relative error \(median)")
    }

    @Test func hostileSamplesChangeNothing() {
        var c = VivaldiClient()
        let before = c.coordinate
        let good = VivaldiCoordinate(dimensions: 8)
        for rtt in [-1.0, .nan, .infinity, 11] { c.update(peer: "p", coordinate: good, rtt: rtt) }
        c.update(peer: "p", coordinate: VivaldiCoordinate(vector: [.nan], height: 0, error: 1, adjustment: 0), rtt: 0.01)
        c.update(peer: "p", coordinate: VivaldiCoordinate(vector: Array(repeating: 0, count: 8), height: -1, error: 1, adjustment: 0), rtt: 0.01)
        #expect(c.coordinate == before && c.refused == 6)
    }

    @Test func aSpikeIsFilteredAndErrorsShrink() {
        var g = SplitMix(state: 1)
        var a = VivaldiClient(), b = VivaldiClient()
        for _ in 0..<200 {
            a.update(peer: "b", coordinate: b.coordinate, rtt: 0.05, random: &g)
            b.update(peer: "a", coordinate: a.coordinate, rtt: 0.05, random: &g)
        }
        #expect(abs(a.coordinate.distance(to: b.coordinate) - 0.05) < 0.005)
        #expect(a.coordinate.error < 0.2)
        // One queued packet's 2 s among 0.05 s samples moves nothing much: the median of 3.
        let before = a.coordinate.distance(to: b.coordinate)
        a.update(peer: "b", coordinate: b.coordinate, rtt: 2.0, random: &g)
        #expect(abs(a.coordinate.distance(to: b.coordinate) - before) < 0.005)
    }
}
