import Foundation
import GEdgeCore

/// Network coordinates (Vivaldi, Dabek et al., SIGCOMM 2004, with the height vectors,
/// error terms, adjustment and gravity that Serf and Consul use): each cluster keeps a
/// point in a low-dimensional Euclidean space plus a height (its access link), and the
/// round trip between two clusters is estimated as the distance between their points. A
/// cluster moves its point after each measured round trip to a peer, weighted by how sure
/// it is of its own point against the peer's, so that a few probes per interval to a few
/// peers place every cluster: probes grow with the clusters probed, not with the fleet.
public struct VivaldiConfig: Sendable, Hashable {
    /// Dimensions of the Euclidean part.
    public var dimensions = 8
    /// The largest error a coordinate may claim (1.5 = 150 %), also a new coordinate's.
    public var errorMax = 1.5
    /// How fast the error estimate follows new samples.
    public var ce = 0.25
    /// How far a sample moves the coordinate (the spring constant).
    public var cc = 0.25
    /// Samples of (measured - estimated) kept for the adjustment term.
    public var adjustmentWindow = 20
    /// The least height, seconds (10 µs).
    public var heightMin = 10e-6
    /// Round trips kept per peer; the median is used (a queued packet's spike is ignored).
    public var latencyFilterSize = 3
    /// The gravity's length scale, seconds: coordinates drift back towards the origin
    /// with a force that grows with the square of their distance over this.
    public var gravityRho = 150.0

    public init() {}
}

/// A coordinate: the point, its height, the error it claims and its adjustment (all seconds).
public struct VivaldiCoordinate: Sendable, Hashable, Codable {
    public var vector: [Double]
    public var height: Double
    public var error: Double
    public var adjustment: Double

    public init(dimensions: Int, config: VivaldiConfig = VivaldiConfig()) {
        vector = Array(repeating: 0, count: dimensions)
        height = config.heightMin
        error = config.errorMax
        adjustment = 0
    }

    public init(vector: [Double], height: Double, error: Double, adjustment: Double) {
        self.vector = vector
        self.height = height
        self.error = error
        self.adjustment = adjustment
    }

    /// Usable: finite numbers, the right dimensions, a height and error within bounds.
    public func isValid(dimensions: Int) -> Bool {
        vector.count == dimensions && vector.allSatisfy(\.isFinite) && height.isFinite && height >= 0 && error.isFinite && error >= 0 && adjustment.isFinite
    }

    /// The Euclidean distance plus both heights: the raw estimate, seconds.
    public func rawDistance(to other: VivaldiCoordinate) -> Double {
        var sum = 0.0
        for i in 0..<min(vector.count, other.vector.count) {
            let d = vector[i] - other.vector[i]
            sum += d * d
        }
        return sum.squareRoot() + height + other.height
    }

    /// The estimated round trip, seconds: the raw distance corrected by both adjustments
    /// (unless that would make it negative).
    public func distance(to other: VivaldiCoordinate) -> Double {
        let raw = rawDistance(to: other)
        let adjusted = raw + adjustment + other.adjustment
        return adjusted > 0 ? adjusted : raw
    }

    /// The point pushed by `force` (seconds; negative pulls) along the line from `other`.
    func applying(force: Double, from other: VivaldiCoordinate, config: VivaldiConfig, random: inout some RandomNumberGenerator) -> VivaldiCoordinate {
        var out = self
        var diff = zip(vector, other.vector).map { $0 - $1 }
        var magnitude = (diff.reduce(0) { $0 + $1 * $1 }).squareRoot()
        if magnitude <= 1e-9 {
            // Two coordinates at one point: push apart in a random direction.
            diff = (0..<vector.count).map { _ in Double.random(in: -1...1, using: &random) }
            let m = (diff.reduce(0) { $0 + $1 * $1 }).squareRoot()
            diff = diff.map { $0 / max(m, 1e-12) }
            magnitude = 0
        } else {
            diff = diff.map { $0 / magnitude }
        }
        for i in 0..<vector.count { out.vector[i] = vector[i] + diff[i] * force }
        if magnitude > 1e-9 {
            out.height = max(config.heightMin, (height + other.height) * force / magnitude + height)
        }
        return out
    }
}

/// A coordinate of at most 8 dimensions held in place (no array to follow): what a decision
/// reads of every cluster to estimate its round trip. `distance` is `VivaldiCoordinate`'s,
/// to the bit: the unused dimensions are zero in both points and add nothing.
struct InlineCoordinate: Sendable, Hashable {
    static let capacity = 8
    var vector: SIMD8<Double>
    var dimensions: Int
    var height: Double
    var error: Double
    var adjustment: Double

    init?(_ c: VivaldiCoordinate) {
        guard c.vector.count <= Self.capacity else { return nil }
        vector = SIMD8<Double>(repeating: 0)
        for (i, x) in c.vector.enumerated() { vector[i] = x }
        dimensions = c.vector.count
        (height, error, adjustment) = (c.height, c.error, c.adjustment)
    }

    @inline(__always)
    func distance(to other: InlineCoordinate) -> Double {
        var sum = 0.0
        for i in 0..<Self.capacity {
            let d = vector[i] - other.vector[i]
            sum += d * d
        }
        let raw = sum.squareRoot() + height + other.height
        let adjusted = raw + adjustment + other.adjustment
        return adjusted > 0 ? adjusted : raw
    }
}

/// One cluster's side of Vivaldi: its coordinate, and what it keeps to move it well (the
/// latest round trips per peer, the adjustment samples).
public struct VivaldiClient: Sendable {
    public let config: VivaldiConfig
    public private(set) var coordinate: VivaldiCoordinate
    var samples: [String: [Double]] = [:]
    var adjustments: [Double]
    var adjustmentIndex = 0
    /// Samples refused (not finite, negative, over 10 s, or from an invalid coordinate).
    public private(set) var refused = 0

    public init(config: VivaldiConfig = VivaldiConfig()) {
        self.config = config
        coordinate = VivaldiCoordinate(dimensions: config.dimensions, config: config)
        adjustments = Array(repeating: 0, count: max(1, config.adjustmentWindow))
    }

    /// A measured round trip (seconds) to `peer`, whose coordinate is `other`; returns the
    /// new coordinate. Hostile input (a peer's bad coordinate, a nonsense time) is refused
    /// and changes nothing.
    @discardableResult
    public mutating func update(peer: String, coordinate other: VivaldiCoordinate, rtt: Double) -> VivaldiCoordinate {
        var g = SystemRandomNumberGenerator()
        return update(peer: peer, coordinate: other, rtt: rtt, random: &g)
    }

    @discardableResult
    public mutating func update(peer: String, coordinate other: VivaldiCoordinate, rtt: Double, random: inout some RandomNumberGenerator) -> VivaldiCoordinate {
        guard rtt.isFinite, rtt >= 0, rtt <= 10, other.isValid(dimensions: config.dimensions) else {
            refused += 1
            return coordinate
        }
        // The median of the peer's latest round trips.
        var list = samples[peer] ?? []
        list.append(rtt)
        if list.count > config.latencyFilterSize { list.removeFirst(list.count - config.latencyFilterSize) }
        samples[peer] = list
        let filtered = list.sorted()[list.count / 2]

        // Vivaldi's step.
        let zero = 1e-6
        let measured = max(filtered, zero)
        let estimate = coordinate.rawDistance(to: other)
        let wrongness = abs(estimate - measured) / measured
        let totalError = max(coordinate.error + other.error, zero)
        let weight = coordinate.error / totalError
        var next = coordinate
        next.error = min(config.errorMax, config.ce * weight * wrongness + coordinate.error * (1 - config.ce * weight))
        let force = config.cc * weight * (measured - estimate)
        next = next.applying(force: force, from: other, config: config, random: &random)

        // The adjustment: the mean of recent (measured - raw estimate), halved (each side takes half).
        adjustments[adjustmentIndex] = measured - next.rawDistance(to: other)
        adjustmentIndex = (adjustmentIndex + 1) % adjustments.count
        next.adjustment = adjustments.reduce(0, +) / Double(2 * adjustments.count)

        // Gravity: a pull to the origin that grows with the square of the distance from it.
        let origin = VivaldiCoordinate(vector: Array(repeating: 0, count: config.dimensions), height: config.heightMin, error: config.errorMax, adjustment: 0)
        let d = origin.rawDistance(to: next)
        next = next.applying(force: -((d / config.gravityRho) * (d / config.gravityRho)), from: origin, config: config, random: &random)

        guard next.isValid(dimensions: config.dimensions) else {
            // Numbers that went out of range (never seen; kept as a guard): start again.
            refused += 1
            coordinate = VivaldiCoordinate(dimensions: config.dimensions, config: config)
            return coordinate
        }
        coordinate = next
        return coordinate
    }

    /// Forgets a peer's samples (it left).
    public mutating func forget(peer: String) { samples[peer] = nil }
}

// MARK: - Wire form (hcode 600's `coordinate`): seconds, as Serf's.

extension VivaldiCoordinate {
    public var json: JSONValue {
        .object(["vec": .array(vector.map(JSONValue.number)), "height": .number(height), "error": .number(error), "adjustment": .number(adjustment)])
    }

    /// A coordinate read from a peer (its `/coordinate`), within the same bounds.
    public static func decode(_ value: JSONValue) throws(MessageDecodingError) -> VivaldiCoordinate {
        try decode(try FieldReader(value, path: ""))
    }

    /// Bounded: 1 to 16 dimensions, finite numbers, nothing over 1,000 s; the error 0 to 10.
    static func decode(_ r: FieldReader) throws(MessageDecodingError) -> VivaldiCoordinate {
        try r.rejectUnknown(allowed: ["vec", "height", "error", "adjustment"])
        guard case .array(let items)? = r.fields["vec"], (1...16).contains(items.count) else {
            throw MessageDecodingError(.invalidValue, field: r.childPath("vec"), reason: "1 to 16 numbers")
        }
        var vec: [Double] = []
        for v in items {
            guard case .number(let d) = v, d.isFinite, abs(d) <= 1000 else {
                throw MessageDecodingError(.invalidValue, field: r.childPath("vec"), reason: "finite numbers of seconds, at most 1000")
            }
            vec.append(d)
        }
        func bounded(_ key: String, _ range: ClosedRange<Double>) throws(MessageDecodingError) -> Double {
            guard let d = try r.optionalNumber(key), d.isFinite, range.contains(d) else {
                throw MessageDecodingError(.invalidValue, field: r.childPath(key), reason: "a number from \(range.lowerBound) to \(range.upperBound)")
            }
            return d
        }
        return VivaldiCoordinate(vector: vec, height: try bounded("height", 0...1000), error: try bounded("error", 0...10),
                                 adjustment: try bounded("adjustment", -1000...1000))
    }
}
