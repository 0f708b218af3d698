import Foundation
import GEdgeCore

/// The round trips between a fleet's clusters, as the world would give them: clusters sit in
/// geographic regions (metro areas on a continent-sized plane), each behind its own access
/// link, and routes are not straight lines. Vivaldi is never told any of this; it sees only
/// noisy samples (`sample`), and its estimates are judged against `rtt`.
///
/// - A region's centre is uniform on a 140 × 70 ms plane (one-way light-in-fibre distances
///   of a large continent); a cluster lies around its region's centre (σ 4 ms).
/// - Each cluster's access link adds 0.5 ms plus an exponential with mean 3 ms (at most
///   20 ms) to every round trip it takes part in.
/// - Each pair's route is longer than the straight line by 0 to 30 % (fixed per pair), so
///   the triangle inequality does not always hold, as on real networks.
/// - A sample is the true round trip ± 5 %, and one in twenty is a queued packet's, 20 to
///   100 % longer.
public struct GroundTruth: Sendable {
    public let count: Int
    public let regions: Int
    let x: [Double]
    let y: [Double]
    let access: [Double]
    public let region: [Int]
    let seed: UInt64

    public init(clusters: Int, regions: Int = 12, seed: UInt64 = 1) {
        precondition(clusters >= 1 && regions >= 1)
        count = clusters
        self.regions = regions
        self.seed = seed
        var g = SeededRandom(seed: seed)
        let centres = (0..<regions).map { _ in (Double.random(in: 0...140, using: &g), Double.random(in: 0...70, using: &g)) }
        func gaussian() -> Double {
            let u = Double.random(in: Double.ulpOfOne...1, using: &g), v = Double.random(in: 0...1, using: &g)
            return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
        var x: [Double] = [], y: [Double] = [], access: [Double] = [], region: [Int] = []
        for i in 0..<clusters {
            let r = i % regions
            region.append(r)
            x.append(centres[r].0 + 4 * gaussian())
            y.append(centres[r].1 + 4 * gaussian())
            access.append(min(20, 0.5 - 3 * log(Double.random(in: Double.ulpOfOne...1, using: &g))))
        }
        (self.x, self.y, self.access, self.region) = (x, y, access, region)
    }

    /// The true round trip between two clusters, milliseconds (0 to itself).
    public func rtt(_ a: Int, _ b: Int) -> Double {
        if a == b { return 0 }
        let dx = x[a] - x[b], dy = y[a] - y[b]
        return (dx * dx + dy * dy).squareRoot() * (1 + 0.3 * Self.unit(seed, min(a, b), max(a, b))) + access[a] + access[b]
    }

    /// One measured round trip: the true one with noise, now and then a queued packet's.
    public func sample(_ a: Int, _ b: Int, using g: inout some RandomNumberGenerator) -> Double {
        var ms = rtt(a, b) * Double.random(in: 0.95...1.05, using: &g)
        if Int.random(in: 0..<20, using: &g) == 0 { ms *= Double.random(in: 1.2...2.0, using: &g) }
        return ms
    }

    /// A number in [0, 1) fixed for a pair.
    static func unit(_ seed: UInt64, _ a: Int, _ b: Int) -> Double {
        var g = SeededRandom(seed: seed ^ (UInt64(a) &* 0x9E37_79B9) ^ (UInt64(b) &* 0x85EB_CA6B_C2B2_AE35))
        return Double(g.next() >> 11) / Double(1 << 53)
    }
}
