import Atomics
import Foundation
import GEdgeCore
import Synchronization

/// Schedulable resources: CPU in millicores, memory in bytes, NVIDIA GPUs, and any other
/// extended resource (`amd.com/gpu`, `google.com/tpu`, ...) by its Kubernetes name.
public struct Resources: Sendable, Hashable {
    public var cpuMilli: Int64
    public var memory: Int64
    public var gpu: Int64
    public var extended: [String: Int64]

    public init(cpuMilli: Int64 = 0, memory: Int64 = 0, gpu: Int64 = 0, extended: [String: Int64] = [:]) {
        self.cpuMilli = cpuMilli
        self.memory = memory
        self.gpu = gpu
        self.extended = extended
    }

    public static let zero = Resources()
    public static let gpuResourceName = "nvidia.com/gpu"

    public var isZero: Bool { cpuMilli == 0 && memory == 0 && gpu == 0 && extended.values.allSatisfy { $0 == 0 } }

    public static func + (a: Resources, b: Resources) -> Resources {
        var e = a.extended
        for (k, v) in b.extended { e[k, default: 0] += v }
        return Resources(cpuMilli: a.cpuMilli + b.cpuMilli, memory: a.memory + b.memory, gpu: a.gpu + b.gpu, extended: e)
    }

    public static func - (a: Resources, b: Resources) -> Resources {
        var e = a.extended
        for (k, v) in b.extended { e[k, default: 0] -= v }
        return Resources(cpuMilli: a.cpuMilli - b.cpuMilli, memory: a.memory - b.memory, gpu: a.gpu - b.gpu, extended: e)
    }

    public static func * (a: Resources, n: Int) -> Resources {
        let m = Int64(n)
        return Resources(cpuMilli: a.cpuMilli * m, memory: a.memory * m, gpu: a.gpu * m, extended: a.extended.mapValues { $0 * m })
    }

    /// Adds (sign 1) or subtracts (sign -1) in place.
    public mutating func add(_ other: Resources, sign: Int) {
        let m = Int64(sign)
        cpuMilli += m * other.cpuMilli
        memory += m * other.memory
        gpu += m * other.gpu
        for (k, v) in other.extended { extended[k, default: 0] += m * v }
    }

    /// Whether `self` (what is asked) fits within `free`, resource by resource.
    @inline(__always)
    public func fits(in free: Resources) -> Bool {
        guard cpuMilli <= free.cpuMilli, memory <= free.memory, gpu <= free.gpu else { return false }
        if extended.isEmpty { return true }
        for (k, v) in extended where v > 0 && v > free.extended[k, default: 0] { return false }
        return true
    }

    /// How many copies of `self` fit in `free` (Int.max when nothing is asked).
    public func copies(in free: Resources) -> Int {
        var n = Int64.max
        if cpuMilli > 0 { n = min(n, max(0, free.cpuMilli) / cpuMilli) }
        if memory > 0 { n = min(n, max(0, free.memory) / memory) }
        if gpu > 0 { n = min(n, max(0, free.gpu) / gpu) }
        for (k, v) in extended where v > 0 { n = min(n, max(0, free.extended[k, default: 0]) / v) }
        return n == .max ? Int.max : Int(n)
    }

    /// Kubernetes form: `{"cpu":"500m","memory":"1073741824","nvidia.com/gpu":"1",...}`.
    public var json: JSONValue {
        var f: [String: JSONValue] = ["cpu": .string("\(cpuMilli)m"), "memory": .string(String(memory))]
        if gpu != 0 { f[Resources.gpuResourceName] = .string(String(gpu)) }
        for (k, v) in extended { f[k] = .string(String(v)) }
        return .object(f)
    }

    /// Reads a Kubernetes resource list (`{"cpu":"2","memory":"4Gi","nvidia.com/gpu":1}`).
    public static func decode(_ value: JSONValue, path: String) throws(MessageDecodingError) -> Resources {
        let r = try FieldReader(value, path: path)
        var out = Resources()
        for (name, v) in r.fields {
            var field: String { r.childPath(name) }
            let text: String
            switch v {
            case .string(let s): text = s
            case .number(let d): text = d.rounded() == d ? String(Int64(d)) : String(d)
            default: throw MessageDecodingError(.wrongType, field: field, reason: "expected a quantity, got \(v.kindName)")
            }
            switch name {
            case "cpu":
                guard let q = Quantity.milli(text) else { throw MessageDecodingError(.invalidValue, field: field, reason: "'\(text)' is not a CPU quantity") }
                out.cpuMilli = q
            case "memory":
                guard let q = Quantity.value(text) else { throw MessageDecodingError(.invalidValue, field: field, reason: "'\(text)' is not a memory quantity") }
                out.memory = q
            default:
                guard let q = Quantity.value(text) else { throw MessageDecodingError(.invalidValue, field: field, reason: "'\(text)' is not a quantity") }
                if name == gpuResourceName { out.gpu = q } else { out.extended[name] = q }
            }
        }
        return out
    }
}

/// Kubernetes resource quantities: `500m`, `2`, `1.5`, `128Mi`, `1G`, `1e3`.
public enum Quantity {
    static let binary: [String: Double] = ["Ki": 0x1p10, "Mi": 0x1p20, "Gi": 0x1p30, "Ti": 0x1p40, "Pi": 0x1p50, "Ei": 0x1p60]
    static let decimal: [String: Double] = ["n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18]

    static let powersOfTen: [Double] = (0...15).map { pow(10, Double($0)) }

    /// The common forms (`500m`, `64`, `1.5`, `256Gi`: up to 15 digits and a suffix) read
    /// straight from the bytes; anything else (exponents, spaces) goes the long way. Both
    /// give the same value: digits / 10^k is one correctly rounded division, as Double(text) is.
    static func parseSimple(_ s: String) -> Double?? {
        var s = s
        return s.withUTF8 { b -> Double?? in
            var mantissa: Int64 = 0
            var digits = 0
            var fraction = -1
            var i = 0
            while i < b.count {
                let c = b[i]
                if c >= 0x30, c <= 0x39 {
                    digits += 1
                    guard digits <= 15 else { return .none }  // and no Int64 overflow
                    mantissa = mantissa * 10 + Int64(c - 0x30)
                    if fraction >= 0 { fraction += 1 }
                } else if c == UInt8(ascii: "."), fraction < 0 {
                    fraction = 0
                } else {
                    break
                }
                i += 1
            }
            guard digits > 0, fraction != 0 else { return .none }
            let n = Double(mantissa) / powersOfTen[max(0, fraction)]
            let suffix = b.count - i
            if suffix == 0 { return .some(n) }
            let c0 = b[i]
            if suffix == 1 {
                switch c0 {
                case UInt8(ascii: "m"): return .some(n * 1e-3)
                case UInt8(ascii: "k"): return .some(n * 1e3)
                case UInt8(ascii: "M"): return .some(n * 1e6)
                case UInt8(ascii: "G"): return .some(n * 1e9)
                case UInt8(ascii: "T"): return .some(n * 1e12)
                default: return .none
                }
            }
            guard suffix == 2, b[i + 1] == UInt8(ascii: "i") else { return .none }
            switch c0 {
            case UInt8(ascii: "K"): return .some(n * 0x1p10)
            case UInt8(ascii: "M"): return .some(n * 0x1p20)
            case UInt8(ascii: "G"): return .some(n * 0x1p30)
            case UInt8(ascii: "T"): return .some(n * 0x1p40)
            default: return .none
            }
        }
    }

    static func parse(_ raw: String) -> Double? {
        parseSimple(raw) ?? parseGeneral(raw)
    }

    static func parseGeneral(_ raw: String) -> Double? {
        let s = raw.trimmingCharacters(in: .whitespaces)
        guard !s.isEmpty else { return nil }
        func number(_ text: Substring) -> Double? {
            guard let n = Double(text), n >= 0, n.isFinite, text.first != "+" else { return nil }
            return n
        }
        for (suffix, mult) in binary where s.hasSuffix(suffix) {
            return number(s.dropLast(suffix.count)).map { $0 * mult }
        }
        // A plain number, exponents included ("1e3"); then a decimal suffix ("1E" is exa).
        if let n = number(Substring(s)) { return n }
        guard let last = s.last, let mult = decimal[String(last)] else { return nil }
        return number(s.dropLast()).map { $0 * mult }
    }

    /// The quantity in thousandths, rounded up (Kubernetes rounds CPU up to 1m).
    public static func milli(_ s: String) -> Int64? {
        guard let d = parse(s), d * 1000 < 9e18 else { return nil }
        return Int64((d * 1000 - 1e-9).rounded(.up))
    }

    /// The quantity as a whole number, rounded up.
    public static func value(_ s: String) -> Int64? {
        guard let d = parse(s), d < 9e18 else { return nil }
        return Int64((d - 1e-9).rounded(.up))
    }
}

public struct Taint: Sendable, Hashable {
    public enum Effect: String, Sendable { case noSchedule = "NoSchedule", preferNoSchedule = "PreferNoSchedule", noExecute = "NoExecute" }
    public var key: String
    public var value: String?
    public var effect: Effect
    public init(key: String, value: String? = nil, effect: Effect) {
        self.key = key
        self.value = value
        self.effect = effect
    }
}

public struct Toleration: Sendable, Hashable {
    public var key: String?
    /// `Equal` (the default) or `Exists`.
    public var exists: Bool
    public var value: String?
    public var effect: Taint.Effect?
    public init(key: String?, exists: Bool = false, value: String? = nil, effect: Taint.Effect? = nil) {
        self.key = key
        self.exists = exists
        self.value = value
        self.effect = effect
    }

    public func tolerates(_ t: Taint) -> Bool {
        if let effect, effect != t.effect { return false }
        guard let key else { return exists } // an empty key with Exists tolerates everything
        guard key == t.key else { return false }
        return exists || (value ?? "") == (t.value ?? "")
    }
}

/// A node as its cluster's agent reports it.
public struct NodeState: Sendable, Hashable {
    public var name: String
    public var ready: Bool
    public var unschedulable: Bool
    public var allocatable: Resources
    public var requested: Resources
    public var labels: [String: String]
    public var taints: [Taint]
    /// Measured round-trip latency in milliseconds from this node to other clusters, by cluster name.
    public var latencyMs: [String: Double]

    public init(
        name: String, ready: Bool = true, unschedulable: Bool = false, allocatable: Resources, requested: Resources = .zero,
        labels: [String: String] = [:], taints: [Taint] = [], latencyMs: [String: Double] = [:]
    ) {
        self.name = name
        self.ready = ready
        self.unschedulable = unschedulable
        self.allocatable = allocatable
        self.requested = requested
        self.labels = labels
        self.taints = taints
        self.latencyMs = latencyMs
    }

    public var free: Resources { allocatable - requested }
}

/// Where a cluster sits, for `scheduleHint.preferred`.
public enum ClusterKind: String, Sendable, Hashable {
    case edge, cloud
}

/// What a latency order of a cluster's nodes was computed for.
struct LatencyOrderKey: Hashable, Sendable {
    var source: String
    var sourceNode: String?
    var fallback: Double
}

/// A state's capacity summary, computed on first use (see `ClusterState.capacity`) and
/// read without a lock after that (every decision reads every cluster's). Not part of the
/// state's value: two states are equal whatever either has cached.
final class CapacityCache: Sendable, Hashable {
    private let held = ManagedAtomicLazyReference<ClusterCapacity>()

    @inline(__always)
    func value(_ nodes: [NodeState], headline: CapacityHeadline) -> ClusterCapacity {
        if let v = held.load() { return v }
        return held.storeIfNilThenLoad(ClusterCapacity(nodes, headline: headline))
    }

    static func == (lhs: CapacityCache, rhs: CapacityCache) -> Bool { true }
    func hash(into hasher: inout Hasher) {}
}

/// `ClusterState.latencySummary` as a list: derived from it, so not part of the state's value.
final class ShortLatencyList: Sendable, Hashable {
    let entries: [(String, Double)]
    init(_ entries: [(String, Double)]) { self.entries = entries }
    static func == (lhs: ShortLatencyList, rhs: ShortLatencyList) -> Bool { true }
    func hash(into hasher: inout Hasher) {}
}

/// Latency orders of one report's nodes. Not part of the state's value: two states are
/// equal whatever either has cached.
final class LatencyOrderCache: Sendable, Hashable {
    static let capacity = 64
    private let orders = Mutex<[LatencyOrderKey: [Int]]>([:])

    func get(_ key: LatencyOrderKey, count: Int) -> [Int]? {
        orders.withLock { o in o[key].flatMap { $0.count == count ? $0 : nil } }
    }

    func put(_ key: LatencyOrderKey, _ order: [Int]) {
        orders.withLock { o in if o.count < Self.capacity { o[key] = order } }
    }

    static func == (lhs: LatencyOrderCache, rhs: LatencyOrderCache) -> Bool { true }
    func hash(into hasher: inout Hasher) {}
}

/// A set of names as 128 bits, two a name (a Bloom filter): `mayContain` is false only for
/// a name not in the set. With a cluster's few measured peers (16) about 5 % of other
/// names are let through to be looked up.
struct NameFilter: Sendable, Hashable {
    var low: UInt64 = 0
    var high: UInt64 = 0

    init() {}

    /// The bits of one name (FNV-1a of its UTF-8, two 7-bit slices of it).
    init(name: String) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
        set(h & 127)
        set((h >> 7) & 127)
    }

    private mutating func set(_ bit: UInt64) {
        if bit < 64 { low |= 1 << bit } else { high |= 1 << (bit - 64) }
    }

    init(_ names: some Sequence<String>) {
        for n in names {
            let b = NameFilter(name: n)
            low |= b.low
            high |= b.high
        }
    }

    @inline(__always)
    func mayContain(_ bits: NameFilter) -> Bool { low & bits.low == bits.low && high & bits.high == bits.high }
}

/// A cluster as its agent reports it (hcode 600 on the cluster-status topic).
public struct ClusterState: Sendable, Hashable {
    public var name: String { didSet { nameBits = NameFilter(name: name) } }
    /// `name`'s bits in a `NameFilter`, held in place.
    private(set) var nameBits: NameFilter
    public var kind: ClusterKind
    /// After changing nodes' latencies or names, call `refreshLatencySummary()`. The
    /// capacity summary follows every change by itself.
    public var nodes: [NodeState] {
        didSet {
            capacityCache = CapacityCache()
            headline = CapacityHeadline(nodes)
        }
    }
    /// The capacity numbers every decision reads, kept with the nodes (O(nodes) a change).
    public private(set) var headline: CapacityHeadline
    /// Computed once per set of nodes (a report, a reservation added or released), on the
    /// first decision that asks; a change of the nodes starts a new one in O(1).
    private var capacityCache = CapacityCache()
    /// What the cluster could still take: decisions skip a cluster whose summary says
    /// nothing of it can fit.
    public var capacity: ClusterCapacity { capacityCache.value(nodes, headline: headline) }
    /// The same, read in place.
    @inline(__always)
    static func capacity(at p: UnsafePointer<ClusterState>) -> ClusterCapacity { p.pointee.capacityCache.value(p.pointee.nodes, headline: p.pointee.headline) }
    /// Increases with every report of this agent; older reports are ignored.
    public var sequence: Int64
    public var reportedAt: Date
    /// The cluster's network coordinate (Vivaldi), when its agent keeps one: round trips to
    /// clusters no node has measured are estimated from it.
    public var coordinate: VivaldiCoordinate? { didSet { point = coordinate.flatMap(InlineCoordinate.init) } }
    /// `coordinate`, held in place for the decisions that read every cluster's.
    private(set) var point: InlineCoordinate?
    /// Round trips the cluster's agent measured to peer clusters, milliseconds: the
    /// cluster's own, not any node's (a node's `latencyMs` is for drivers that know each
    /// node's). Reported beside the nodes, so a new measurement changes no node and a delta
    /// report stays small.
    public var measuredLatencyMs: [String: Double] = [:] { didSet { refreshLatencySummary() } }
    /// Latency from this cluster to each other cluster: the median over its ready nodes that
    /// measured it, else the agent's own measurement. Computed once.
    public private(set) var latencySummary: [String: Double]
    /// Nodes in order of latency to a source, computed on first use (see `latencyOrder`).
    private(set) var latencyOrders = LatencyOrderCache()

    public init(name: String, kind: ClusterKind = .edge, nodes: [NodeState], sequence: Int64 = 0, reportedAt: Date = Date()) {
        self.name = name
        self.nameBits = NameFilter(name: name)
        self.kind = kind
        self.nodes = nodes
        self.headline = CapacityHeadline(nodes)
        self.sequence = sequence
        self.reportedAt = reportedAt
        self.latencySummary = Self.summarize(nodes)
        self.latencyList = Self.shortList(latencySummary)
        self.measuredFilter = NameFilter(latencySummary.keys)
    }

    public mutating func refreshLatencySummary() {
        latencySummary = Self.summarize(nodes).merging(measuredLatencyMs) { node, _ in node }
        latencyList = Self.shortList(latencySummary)
        measuredFilter = NameFilter(latencySummary.keys)
        latencyOrders = LatencyOrderCache()
    }

    /// `latencySummary` as a list while it is short (a cluster measures a few peers): the
    /// low-latency policy asks every cluster whether it measured the source, and comparing a
    /// few names costs less than hashing one.
    private(set) var latencyList: ShortLatencyList?
    static let shortList = 32

    static func shortList(_ summary: [String: Double]) -> ShortLatencyList? {
        summary.count <= shortList ? ShortLatencyList(summary.map { ($0.key, $0.value) }) : nil
    }

    /// The names `latencySummary` holds, as a filter held in place: the low-latency policy
    /// asks every cluster whether it measured the source, and most did not; the filter says
    /// so without reading the cluster's list.
    private(set) var measuredFilter: NameFilter

    /// The median latency this cluster's nodes measured to `cluster` (whose filter bits are
    /// `bits`), if any did.
    @inline(__always)
    func latency(measuredTo cluster: String, bits: NameFilter) -> Double? {
        guard measuredFilter.mayContain(bits) else { return nil }
        guard let list = latencyList else { return latencySummary[cluster] }
        for (n, ms) in list.entries where n == cluster { return ms }
        return nil
    }

    /// The node indices by `score` (highest first, ties to the lower name), kept for `key`:
    /// the scores depend only on the nodes' names and latencies, which change only with a
    /// new report, not with the resources a placement reserves. At most
    /// `LatencyOrderCache.capacity` keys are kept; past that the order is computed each time.
    func latencyOrder(_ key: LatencyOrderKey, score: (Int) -> Double) -> [Int] {
        if let hit = latencyOrders.get(key, count: nodes.count) { return hit }
        let scores = nodes.indices.map(score)
        let order = nodes.indices.sorted { a, b in scores[a] != scores[b] ? scores[a] > scores[b] : nodes[a].name < nodes[b].name }
        latencyOrders.put(key, order)
        return order
    }

    static func summarize(_ nodes: [NodeState]) -> [String: Double] {
        var values: [String: [Double]] = [:]
        for n in nodes where n.ready { for (c, ms) in n.latencyMs { values[c, default: []].append(ms) } }
        return values.mapValues { v in
            let s = v.sorted()
            return s[s.count / 2]
        }
    }

    /// Latency from this cluster to another: the median over its ready nodes that measured it.
    public func latency(to cluster: String) -> Double? {
        cluster == name ? 0 : latencySummary[cluster]
    }
}

// MARK: - Wire form

extension ClusterState {
    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "cluster": .string(name),
            "kind": .string(kind.rawValue),
            "sequence": .number(Double(sequence)),
            "reported_at": .number((reportedAt.timeIntervalSince1970 * 1000).rounded()),
            "nodes": .array(nodes.map(\.json)),
        ]
        if let c = coordinate { o["coordinate"] = c.json }
        if !measuredLatencyMs.isEmpty { o["latency_ms"] = .object(measuredLatencyMs.mapValues(JSONValue.number)) }
        return .object(o)
    }

    /// At most this many peers in a report's cluster-level `latency_ms`.
    public static let maxMeasuredPeers = 4096

    /// A report's cluster-level `latency_ms`: peer names to finite, non-negative milliseconds.
    static func decodeMeasured(_ r: FieldReader) throws(MessageDecodingError) -> [String: Double] {
        guard let l = try r.optionalObject("latency_ms") else { return [:] }
        guard l.fields.count <= maxMeasuredPeers else {
            throw MessageDecodingError(.invalidValue, field: r.childPath("latency_ms"), reason: "at most \(maxMeasuredPeers) peers")
        }
        var out: [String: Double] = [:]
        out.reserveCapacity(l.fields.count)
        for key in l.fields.keys {
            guard let ms = try l.optionalNumber(key) else { continue }
            guard ms.isFinite, ms >= 0 else { throw MessageDecodingError(.invalidValue, field: l.childPath(key), reason: "a round trip is a finite, non-negative number of milliseconds") }
            out[key] = ms
        }
        return out
    }

    public static func decode(_ value: JSONValue, path: String = "msg") throws(MessageDecodingError) -> ClusterState {
        let r = try FieldReader(value, path: path)
        try r.rejectUnknown(allowed: ["cluster", "kind", "sequence", "reported_at", "nodes", "coordinate", "latency_ms"])
        let name = try r.string("cluster")
        let kindName = try r.optionalString("kind") ?? "edge"
        guard let kind = ClusterKind(rawValue: kindName) else {
            throw MessageDecodingError(.invalidValue, field: r.childPath("kind"), reason: "'\(kindName)' is not edge or cloud")
        }
        var nodes: [NodeState] = []
        let list = try r.optionalList("nodes") ?? []
        nodes.reserveCapacity(list.count)
        for (i, n) in list.enumerated() {
            do {
                nodes.append(try NodeState.decode(n, path: ""))
            } catch {
                throw error.under("\(r.childPath("nodes"))[\(i)]")
            }
        }
        let millis = try r.optionalNumber("reported_at") ?? Date().timeIntervalSince1970 * 1000
        var state = ClusterState(
            name: name, kind: kind, nodes: nodes, sequence: Int64(try r.optionalInt("sequence") ?? 0),
            reportedAt: Date(timeIntervalSince1970: millis / 1000))
        if let c = try r.optionalObject("coordinate") { state.coordinate = try VivaldiCoordinate.decode(c) }
        state.measuredLatencyMs = try decodeMeasured(r)
        return state
    }
}

extension NodeState {
    public var json: JSONValue {
        var f: [String: JSONValue] = [
            "name": .string(name), "ready": .bool(ready), "allocatable": allocatable.json, "requested": requested.json,
            "labels": .object(labels.mapValues(JSONValue.string)),
            "latency_ms": .object(latencyMs.mapValues(JSONValue.number)),
        ]
        if unschedulable { f["unschedulable"] = .bool(true) }
        if !taints.isEmpty {
            f["taints"] = .array(taints.map { t in
                var o: [String: JSONValue] = ["key": .string(t.key), "effect": .string(t.effect.rawValue)]
                if let v = t.value { o["value"] = .string(v) }
                return .object(o)
            })
        }
        return .object(f)
    }

    public static func decode(_ value: JSONValue, path: String) throws(MessageDecodingError) -> NodeState {
        let r = try FieldReader(value, path: path)
        try r.rejectUnknown(allowed: ["name", "ready", "unschedulable", "allocatable", "requested", "labels", "taints", "latency_ms"])
        var latency: [String: Double] = [:]
        if let l = try r.optionalObject("latency_ms") {
            latency.reserveCapacity(l.fields.count)
            for (key, value) in l.fields {
                switch value {
                case .number(let ms): latency[key] = ms
                case .null: continue
                default: latency[key] = try l.optionalNumber(key)
                }
            }
        }
        var taints: [Taint] = []
        for (i, t) in (try r.optionalList("taints") ?? []).enumerated() {
            taints.append(try Self.decodeTaint(t, path: "\(r.childPath("taints"))[\(i)]"))
        }
        return NodeState(
            name: try r.string("name"), ready: try r.optionalBool("ready") ?? false,
            unschedulable: try r.optionalBool("unschedulable") ?? false,
            allocatable: try Resources.decode(try r.required("allocatable"), path: r.childPath("allocatable")),
            requested: try r.fields["requested"].map { v throws(MessageDecodingError) in try Resources.decode(v, path: r.childPath("requested")) } ?? .zero,
            labels: try r.optionalStringMap("labels") ?? [:], taints: taints, latencyMs: latency)
    }

    public static func decodeTaint(_ value: JSONValue, path: String) throws(MessageDecodingError) -> Taint {
        let t = try FieldReader(value, path: path)
        let effectName = try t.string("effect")
        guard let effect = Taint.Effect(rawValue: effectName) else {
            throw MessageDecodingError(.invalidValue, field: t.childPath("effect"), reason: "'\(effectName)' is not NoSchedule, PreferNoSchedule or NoExecute")
        }
        return Taint(key: try t.string("key"), value: try t.optionalString("value"), effect: effect)
    }
}

/// The few numbers of a cluster's capacity that a decision reads of every cluster, held in
/// the state itself and kept with its nodes (a decision over thousands of clusters reads
/// them in place, following no reference): over the ready, schedulable nodes, how many there
/// are, the largest free CPU, memory and GPUs (not necessarily on one node), the best
/// GS-Scheduler score (`Placer.mostRequestedScore`) without and with GPUs asked, and what
/// bounds the bin-packing score.
public struct CapacityHeadline: Sendable, Hashable {
    public var schedulableNodes = 0
    public var largestFreeCPU: Int64 = 0, largestFreeMemory: Int64 = 0, largestFreeGPU: Int64 = 0
    /// No node of the cluster scores more (`-infinity` when it has none).
    public var topFreeShare = -Double.infinity, topFreeShareGPU = -Double.infinity
    /// The largest share of each resource already requested, and the largest sum of one
    /// node's shares: CPU and memory, and with GPUs.
    public var maxRequestedShareCPU = 0.0, maxRequestedShareMemory = 0.0, maxRequestedShareGPU = 0.0
    public var maxRequestedShareCPUMemory = 0.0, maxRequestedShareAll = 0.0
    /// The smallest positive allocatable amount of each (a request is the largest share of that node).
    public var smallestCPU = Int64.max, smallestMemory = Int64.max, smallestGPU = Int64.max

    static let plain = WorkloadRequirements()
    static let withGPU = WorkloadRequirements(perReplica: Resources(gpu: 1))

    public init(_ nodes: [NodeState]) {
        for i in nodes.indices where nodes[i].ready && !nodes[i].unschedulable {
            let n = nodes[i]
            schedulableNodes += 1
            largestFreeCPU = max(largestFreeCPU, n.allocatable.cpuMilli - n.requested.cpuMilli)
            largestFreeMemory = max(largestFreeMemory, n.allocatable.memory - n.requested.memory)
            largestFreeGPU = max(largestFreeGPU, n.allocatable.gpu - n.requested.gpu)
            topFreeShare = max(topFreeShare, Placer.mostRequestedScore(n, Self.plain))
            topFreeShareGPU = max(topFreeShareGPU, Placer.mostRequestedScore(n, Self.withGPU))
            func share(_ used: Int64, _ cap: Int64) -> Double { cap > 0 ? Double(used) / Double(cap) : 0 }
            let shares = (share(n.requested.cpuMilli, n.allocatable.cpuMilli), share(n.requested.memory, n.allocatable.memory), share(n.requested.gpu, n.allocatable.gpu))
            maxRequestedShareCPU = max(maxRequestedShareCPU, shares.0)
            maxRequestedShareMemory = max(maxRequestedShareMemory, shares.1)
            maxRequestedShareGPU = max(maxRequestedShareGPU, shares.2)
            maxRequestedShareCPUMemory = max(maxRequestedShareCPUMemory, shares.0 + shares.1)
            maxRequestedShareAll = max(maxRequestedShareAll, shares.0 + shares.1 + shares.2)
            if n.allocatable.cpuMilli > 0 { smallestCPU = min(smallestCPU, n.allocatable.cpuMilli) }
            if n.allocatable.memory > 0 { smallestMemory = min(smallestMemory, n.allocatable.memory) }
            if n.allocatable.gpu > 0 { smallestGPU = min(smallestGPU, n.allocatable.gpu) }
        }
    }

    /// False when no node can hold one replica's CPU, memory and GPUs. What else a request
    /// asks (extended resources, labels) is `ClusterCapacity.mayFit`'s to check.
    @inline(__always)
    public func mayFitResources(_ req: WorkloadRequirements) -> Bool {
        let p = req.perReplica
        return schedulableNodes > 0 && p.cpuMilli <= largestFreeCPU && p.memory <= largestFreeMemory && p.gpu <= largestFreeGPU
    }

    /// No schedulable node of the cluster scores more than this for `req` by
    /// `Placer.mostAllocatedScore`. A node's share of a resource after the request is its
    /// share requested plus the request over its allocatable amount, at most 1; so the sum
    /// of its shares is at most both the sum of each resource's largest share (plus the
    /// request over the smallest node, each capped at 1) and the largest sum of one node's
    /// shares (plus the same requests).
    public func mostAllocatedBound(_ req: WorkloadRequirements) -> Double {
        guard schedulableNodes > 0 else { return -.infinity }
        let r = Int64(req.replicas)
        func asked(_ ask: Int64, _ smallest: Int64) -> Double { ask <= 0 || smallest == .max ? 0 : Double(ask) / Double(smallest) }
        let cpu = asked(req.perReplica.cpuMilli * r, smallestCPU)
        let memory = asked(req.perReplica.memory * r, smallestMemory)
        var separate = min(1, maxRequestedShareCPU + cpu) + min(1, maxRequestedShareMemory + memory)
        var joint = cpu + memory
        var weights = 2.0
        if req.perReplica.gpu * r > 0 {
            let gpu = asked(req.perReplica.gpu * r, smallestGPU)
            separate += min(1, maxRequestedShareGPU + gpu)
            joint += maxRequestedShareAll + gpu
            weights += 1
        } else {
            joint += maxRequestedShareCPUMemory
        }
        return min(separate, joint) * 100 / weights
    }
}

/// A cluster's capacity in summary, for pruning before any node is scored: its headline
/// (`CapacityHeadline`), the largest free amount of each extended resource and every label
/// pair of its ready, schedulable nodes, and those nodes in order of score. A requirement
/// that no node could meet in one of these cannot be met by any one node, so the cluster is
/// skipped; one that passes is still checked node by node.
public final class ClusterCapacity: Sendable {
    public let headline: CapacityHeadline
    public var schedulableNodes: Int { headline.schedulableNodes }
    public let largestFree: Resources
    public let labelPairs: Set<String>
    /// The schedulable nodes by GS-Scheduler's score (`Placer.mostRequestedScore`), best
    /// first, ties to the lower name: that score does not depend on what is asked (only on
    /// whether GPUs are), so the first node in this order that fits a request is the one a
    /// walk over every node picks. `byFreeShareGPU` adds the free GPUs' term.
    public let byFreeShare: [Int]
    public let byFreeShareGPU: [Int]

    public init(_ nodes: [NodeState], headline: CapacityHeadline? = nil) {
        let headline = headline ?? CapacityHeadline(nodes)
        var schedulable: [Int] = []
        var largestFree = Resources(cpuMilli: headline.largestFreeCPU, memory: headline.largestFreeMemory, gpu: headline.largestFreeGPU)
        var labelPairs: Set<String> = []
        for (i, n) in nodes.enumerated() where n.ready && !n.unschedulable {
            schedulable.append(i)
            for (k, v) in n.allocatable.extended { largestFree.extended[k] = max(largestFree.extended[k] ?? .min, v - n.requested.extended[k, default: 0]) }
            for (k, v) in n.labels { labelPairs.insert(k + "=" + v) }
        }
        func order(_ req: WorkloadRequirements) -> [Int] {
            let scores = schedulable.map { Placer.mostRequestedScore(nodes[$0], req) }
            let sorted = schedulable.indices.sorted { a, b in
                scores[a] != scores[b] ? scores[a] > scores[b] : nodes[schedulable[a]].name < nodes[schedulable[b]].name
            }
            return sorted.map { schedulable[$0] }
        }
        self.headline = headline
        self.largestFree = largestFree
        self.labelPairs = labelPairs
        byFreeShare = order(CapacityHeadline.plain)
        byFreeShareGPU = order(CapacityHeadline.withGPU)
    }

    public func mostAllocatedBound(_ req: WorkloadRequirements) -> Double { headline.mostAllocatedBound(req) }

    /// False when no node of the cluster can hold one replica of `req`.
    public func mayFit(_ req: WorkloadRequirements) -> Bool {
        guard headline.mayFitResources(req) else { return false }
        let p = req.perReplica
        for (k, v) in p.extended where v > 0 && v > largestFree.extended[k, default: 0] { return false }
        for key in req.networkLabels where !labelPairs.contains(key + "=true") { return false }
        for (k, v) in req.nodeSelector where !labelPairs.contains(k + "=" + v) { return false }
        return true
    }
}
