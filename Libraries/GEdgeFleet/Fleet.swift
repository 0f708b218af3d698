import Foundation
import GEdgeAgent
import GEdgeCore
import GEdgePlacement
import Synchronization

/// Settings of a simulated fleet. Keys in docs/configuration.md (`fleet.*`).
public struct FleetSettings: Sendable {
    public var clusters = 1000
    public var nodesPerCluster = 20
    /// Clusters are named `<prefix>-<number>` (`fleet-00042`); the prefix keeps two fleets,
    /// or a fleet and the demo's clusters, apart on one broker.
    public var prefix = "fleet"
    public var regions = 12
    public var seed: UInt64 = 1
    public var statusTopic = Topics.clusterStatus
    public var statusInterval: Duration = .seconds(5)
    public var statusMinInterval: Duration = .milliseconds(500)
    public var snapshotEvery = 12
    public var latencyInterval: Duration = .seconds(2)
    public var latencyProbes = 3
    /// The share of nodes whose other tenants' requests change between two reports.
    public var churn = 0.02
    public var podStartDelay: Duration = .zero

    public init(clusters: Int = 1000, nodesPerCluster: Int = 20, prefix: String = "fleet") {
        self.clusters = clusters
        self.nodesPerCluster = nodesPerCluster
        self.prefix = prefix
    }

    public init(_ c: ConfigReader) throws {
        clusters = try c.int("fleet.clusters", default: clusters)
        nodesPerCluster = try c.int("fleet.nodes", default: nodesPerCluster)
        prefix = c.string("fleet.prefix", default: prefix)
        regions = try c.int("fleet.regions", default: regions)
        seed = UInt64(try c.int("fleet.seed", default: Int(seed)))
        statusTopic = c.string("fleet.status.topic", default: statusTopic)
        statusInterval = try c.duration("fleet.status.interval", default: statusInterval)
        statusMinInterval = try c.duration("fleet.status.min.interval", default: statusMinInterval)
        snapshotEvery = try c.int("fleet.status.snapshot.every", default: snapshotEvery)
        latencyInterval = try c.duration("fleet.latency.interval", default: latencyInterval)
        latencyProbes = try c.int("fleet.latency.probes", default: latencyProbes)
        churn = try c.double("fleet.churn", default: churn)
        podStartDelay = try c.duration("fleet.pod.start.delay", default: podStartDelay)
        try validate()
    }

    public func validate() throws {
        guard (1...100_000).contains(clusters) else { throw ConfigurationError(key: "fleet.clusters", reason: "1 to 100000 clusters") }
        guard (1...1000).contains(nodesPerCluster) else { throw ConfigurationError(key: "fleet.nodes", reason: "1 to 1000 nodes a cluster") }
        guard (1...1000).contains(regions) else { throw ConfigurationError(key: "fleet.regions", reason: "1 to 1000 regions") }
        guard KubeNames.isDNSLabel(prefix), prefix.count <= 40 else {
            throw ConfigurationError(key: "fleet.prefix", reason: "'\(prefix)' is not a DNS label of at most 40 characters")
        }
        guard snapshotEvery >= 0 else { throw ConfigurationError(key: "fleet.status.snapshot.every", reason: "0 or more reports") }
        guard (1...64).contains(latencyProbes) else { throw ConfigurationError(key: "fleet.latency.probes", reason: "1 to 64 peers an interval") }
        guard (0...1).contains(churn) else { throw ConfigurationError(key: "fleet.churn", reason: "a share from 0 to 1") }
        guard statusInterval > .zero, latencyInterval > .zero else {
            throw ConfigurationError(key: "fleet.status.interval", reason: "intervals are longer than zero")
        }
    }

    public func name(_ i: Int) -> String {
        let digits = max(5, String(clusters - 1).count)
        let n = String(i)
        return prefix + "-" + String(repeating: "0", count: max(0, digits - n.count)) + n
    }
}

/// One simulated cluster: a `SimulatedCluster` (the agent's own simulation of nodes, pods and
/// applies) and what its agent would keep: the report bookkeeping, its Vivaldi coordinate and
/// the round trips it measured.
final class FleetCluster: Sendable {
    struct Book {
        var epoch = Hex.random(bytes: 8)
        var sequence: Int64 = 0
        var last: (sequence: Int64, nodes: [NodeState])?
        var sinceSnapshot = 0
        var snapshotWanted = true
        var dirty = false
        var lastReport: ContinuousClock.Instant?
        var nextDue: ContinuousClock.Instant
        var vivaldi = VivaldiClient()
        /// Peers' coordinates seen, the nearest `knownLimit` kept.
        var known: [Int: VivaldiCoordinate] = [:]
        var measured: [Int: (ms: Double, at: ContinuousClock.Instant)] = [:]
        var random: SeededRandom
        var round = 0
    }

    let index: Int
    let name: String
    let kind: ClusterKind
    let sim: SimulatedCluster
    let book: Mutex<Book>

    init(index: Int, name: String, kind: ClusterKind, sim: SimulatedCluster, due: ContinuousClock.Instant, seed: UInt64) {
        self.index = index
        self.name = name
        self.kind = kind
        self.sim = sim
        book = Mutex(Book(nextDue: due, random: SeededRandom(seed: seed)))
    }
}

/// Counters of what a fleet did, for its log line and the benchmarks.
public final class FleetStats: Sendable {
    public struct Values: Sendable, Hashable {
        public var snapshots = 0, deltas = 0, snapshotBytes = 0, deltaBytes = 0
        public var applies = 0, refused = 0, removes = 0, snapshotAsks = 0, ignored = 0, undecodable = 0, publishFailures = 0
        public var reports: Int { snapshots + deltas }
        public var statusBytes: Int { snapshotBytes + deltaBytes }
    }
    let values = Mutex(Values())
    public init() {}
    public var current: Values { values.withLock { $0 } }
    func add(_ change: (inout Values) -> Void) { values.withLock { change(&$0) } }
}

/// Thousands of simulated clusters in one process, each with its own identity, status
/// reports (a snapshot, then deltas, as an agent sends them), Vivaldi coordinate from probes
/// of a ground-truth latency model, and apply handling. `FleetRunner` connects it to Kafka.
public final class Fleet: Sendable {
    public let settings: FleetSettings
    public let truth: GroundTruth
    let clusters: [FleetCluster]
    let byName: [String: Int]
    public let stats = FleetStats()
    let codec = EnvelopeCodec()
    /// Peer coordinates a cluster keeps (the nearest, and those measured lately): its
    /// exploring probes take the nearest not measured lately (an agent keeps all of its
    /// peers'; thousands of clusters here keep fewer).
    static let knownLimit = 96

    public init(settings: FleetSettings, start: ContinuousClock.Instant = .now) {
        self.settings = settings
        truth = GroundTruth(clusters: settings.clusters, regions: settings.regions, seed: settings.seed)
        var g = SeededRandom(seed: settings.seed ^ 0x5EED)
        var list: [FleetCluster] = []
        for i in 0..<settings.clusters {
            let name = settings.name(i)
            // The first cluster of each region is its cloud; the rest are edge sites.
            let cloud = i < settings.regions
            let nodes = (0..<settings.nodesPerCluster).map { n -> SimulatedNode in
                let cpu = Int64(cloud ? [32000, 64000][Int.random(in: 0...1, using: &g)] : [4000, 8000, 16000][Int.random(in: 0...2, using: &g)])
                let memory = Int64(cloud ? [128, 256][Int.random(in: 0...1, using: &g)] : [8, 16, 32][Int.random(in: 0...2, using: &g)]) << 30
                let gpus = Int.random(in: 0..<10, using: &g) == 0 ? Int64(Int.random(in: 1...4, using: &g)) : 0
                var labels = ["kubernetes.io/hostname": "\(name)-n\(n)", "topology.kubernetes.io/region": "r\(i % settings.regions)"]
                if gpus > 0 {
                    labels["accelerator.gedge.io/nvidia-gpu.count"] = String(gpus)
                    labels["accelerator.gedge.io/nvidia-gpu.model"] = "Tesla-T4"
                }
                return SimulatedNode(name: "\(name)-n\(n)", allocatable: Resources(cpuMilli: cpu, memory: memory, gpu: gpus), labels: labels)
            }
            let due = start + settings.statusInterval * (Double(i) / Double(settings.clusters))
            list.append(FleetCluster(index: i, name: name, kind: cloud ? .cloud : .edge,
                                     sim: SimulatedCluster(name: name, nodes: nodes, podStartDelay: settings.podStartDelay), due: due,
                                     seed: settings.seed &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15))
        }
        clusters = list
        byName = Dictionary(uniqueKeysWithValues: list.map { ($0.name, $0.index) })
    }

    public var count: Int { clusters.count }
    public func name(_ i: Int) -> String { clusters[i].name }
    public func index(of name: String) -> Int? { byName[name] }

    /// Other tenants' requests on every node, at random up to 60 % of it: a fleet that is
    /// partly used before anything is placed.
    public func fillBackground() async {
        var g = SeededRandom(seed: settings.seed ^ 0xBAC6)
        for c in clusters {
            let nodes = await c.sim.state()
            for (i, n) in nodes.enumerated() { await c.sim.setBackground(node: i, Self.background(n, &g)) }
        }
    }

    static func background(_ n: NodeState, _ g: inout SeededRandom) -> Resources {
        Resources(cpuMilli: n.allocatable.cpuMilli * Int64(Int.random(in: 0...60, using: &g)) / 100,
                  memory: n.allocatable.memory * Int64(Int.random(in: 0...60, using: &g)) / 100)
    }

    // MARK: reports

    /// Whether cluster `i` reports now: its interval came round, or it changed (an apply, a
    /// snapshot asked for) and its last report is `statusMinInterval` old.
    func due(_ i: Int, now: ContinuousClock.Instant) -> Bool {
        clusters[i].book.withLock { b in
            if b.nextDue <= now { return true }
            // The first report waits for the cluster's phase: a fleet starting does not send
            // every snapshot at once.
            guard let last = b.lastReport, b.dirty || b.snapshotWanted else { return false }
            return now - last >= settings.statusMinInterval
        }
    }

    /// Cluster `i`'s next status report (hcode 600) as it goes on the wire, and whether it
    /// is a snapshot. Nodes' other tenants move first (`churn`).
    public func report(_ i: Int, now: ContinuousClock.Instant = .now) async -> (bytes: [UInt8], snapshot: Bool) {
        let c = clusters[i]
        if settings.churn > 0 {
            let moves: [Int] = c.book.withLock { b in
                (0..<settings.nodesPerCluster).filter { _ in Double.random(in: 0..<1, using: &b.random) < settings.churn }
            }
            if !moves.isEmpty {
                let nodes = await c.sim.state()
                var g = c.book.withLock { b in SeededRandom(seed: b.random.next()) }
                for n in moves where n < nodes.count { await c.sim.setBackground(node: n, Self.background(nodes[n], &g)) }
            }
        }
        let nodes = await c.sim.state()
        let freshFor = settings.latencyInterval * LatencyProber.freshPeriods
        let (msg, snapshot) = c.book.withLock { b -> (JSONValue, Bool) in
            b.sequence += 1
            var state = ClusterState(name: c.name, kind: c.kind, nodes: nodes, sequence: b.sequence, reportedAt: Date())
            state.measuredLatencyMs = Self.reported(b.measured, now: now, freshFor: freshFor) { (clusters[$0].name, ($1 * 100).rounded() / 100) }
            state.coordinate = b.vivaldi.coordinate
            let msg: JSONValue
            let snapshot: Bool
            if let previous = b.last, !b.snapshotWanted, b.sinceSnapshot < settings.snapshotEvery {
                msg = ClusterDelta.between(previous.nodes, state, epoch: b.epoch, baseSequence: previous.sequence).json
                b.sinceSnapshot += 1
                snapshot = false
            } else {
                msg = ClusterReport.snapshotJSON(state, epoch: b.epoch)
                b.sinceSnapshot = 0
                snapshot = true
            }
            b.snapshotWanted = false
            b.dirty = false
            b.last = (state.sequence, nodes)
            b.lastReport = now
            while b.nextDue <= now { b.nextDue = b.nextDue + settings.statusInterval }
            return (msg, snapshot)
        }
        let bytes = codec.encode(Envelope(source: .cluster(c.name), target: .cluster("scheduler"), hcode: .clusterStatus, lcode: .request, msg: msg))
        stats.add { v in
            if snapshot {
                v.snapshots += 1
                v.snapshotBytes += bytes.count
            } else {
                v.deltas += 1
                v.deltaBytes += bytes.count
            }
        }
        return (bytes, snapshot)
    }

    /// Cluster `i` as a scheduler would hold it after its latest report (measurements fresh
    /// at `now`).
    public func state(_ i: Int, now: ContinuousClock.Instant = .now) async -> ClusterState {
        let c = clusters[i]
        let nodes = await c.sim.state()
        let freshFor = settings.latencyInterval * LatencyProber.freshPeriods
        return c.book.withLock { b in
            var s = ClusterState(name: c.name, kind: c.kind, nodes: nodes, sequence: b.sequence, reportedAt: Date())
            s.measuredLatencyMs = Self.reported(b.measured, now: now, freshFor: freshFor) { (clusters[$0].name, $1) }
            s.coordinate = b.vivaldi.coordinate
            return s
        }
    }

    /// The fresh measurements a report carries: the nearest `LatencyProber.reportedPeers`,
    /// as an agent reports them.
    static func reported(_ measured: [Int: (ms: Double, at: ContinuousClock.Instant)], now: ContinuousClock.Instant, freshFor: Duration,
                         _ entry: (Int, Double) -> (String, Double)) -> [String: Double] {
        let fresh = measured.filter { now - $0.value.at <= freshFor }.sorted { $0.value.ms < $1.value.ms }.prefix(LatencyProber.reportedPeers)
        return Dictionary(fresh.map { entry($0.key, $0.value.ms) }, uniquingKeysWith: { a, _ in a })
    }

    // MARK: coordinates

    /// One probe period for every cluster: each probes at most `latencyProbes` peers as
    /// `LatencyProber.chooseTargets` picks them (one of its nearest measured again, the
    /// nearest by coordinates not measured lately, the others at random), samples the round
    /// trip from the ground truth, moves its coordinate with the peer's, keeps the round trip
    /// (EWMA, as the agent) and learns the peer's nearest (its `/coordinate/near`).
    public func probeRound(now: ContinuousClock.Instant = .now) {
        let n = clusters.count
        guard n > 1 else { return }
        let freshFor = settings.latencyInterval * LatencyProber.freshPeriods
        // Every cluster's coordinate and nearest as the period starts: what its `/coordinate`
        // and `/coordinate/near` would answer during it.
        let served: [(coordinate: VivaldiCoordinate, near: [(Int, VivaldiCoordinate)])] = clusters.map { c in
            c.book.withLock { b in
                (b.vivaldi.coordinate, ProbeChoice.near(measured: b.measured, known: b.known, own: b.vivaldi.coordinate, now: now, freshFor: freshFor))
            }
        }
        for c in clusters {
            let targets: [Int] = c.book.withLock { b in
                let turn = b.round
                b.round += 1
                var out = ProbeChoice.directed(measured: b.measured, known: b.known, own: b.vivaldi.coordinate, turn: turn, now: now, freshFor: freshFor)
                var tries = 0
                while out.count < min(settings.latencyProbes, n - 1), tries < 100 {
                    tries += 1
                    let j = Int.random(in: 0..<n, using: &b.random)
                    if j != c.index, !out.contains(j) { out.append(j) }
                }
                return Array(out.prefix(settings.latencyProbes))
            }
            c.book.withLock { b in
                for j in targets {
                    let ms = truth.sample(c.index, j, using: &b.random)
                    _ = b.vivaldi.update(peer: clusters[j].name, coordinate: served[j].coordinate, rtt: ms / 1000, random: &b.random)
                    b.measured[j] = (b.measured[j].map { 0.7 * $0.ms + 0.3 * ms } ?? ms, now)
                    b.known[j] = served[j].coordinate
                    // The peer's nearest are likely near here too: later periods explore them.
                    for (k, coordinate) in served[j].near where k != c.index && b.known[k] == nil { b.known[k] = coordinate }
                }
                if b.known.count > 2 * Self.knownLimit {
                    // The nearest by coordinates are kept, and every one measured lately (at
                    // twice the limit: a sort each round would cost more than the round).
                    var keep = Set(ProbeChoice.nearestKnown(b.known, to: b.vivaldi.coordinate, Self.knownLimit).map(\.0))
                    for (k, m) in b.measured where now - m.at <= freshFor { keep.insert(k) }
                    b.known = b.known.filter { keep.contains($0.key) }
                }
                // Measurements no longer fresh are not reported; not kept either.
                if b.measured.count > 2 * settings.latencyProbes * LatencyProber.freshPeriods {
                    b.measured = b.measured.filter { now - $0.value.at <= freshFor }
                }
            }
        }
    }

    /// The coordinates' estimate of the round trip between two clusters, milliseconds.
    public func estimate(_ a: Int, _ b: Int) -> Double {
        if a == b { return 0 }
        let ca = clusters[a].book.withLock { $0.vivaldi.coordinate }
        let cb = clusters[b].book.withLock { $0.vivaldi.coordinate }
        return ca.distance(to: cb) * 1000
    }

    // MARK: commands

    /// Handles one command read from cluster `i`'s topic: applies and deletes as the agent
    /// does them (on the cluster's `SimulatedCluster`), snapshot requests; returns the reply
    /// to send (topic, key, bytes), if any. Other codes are counted and left.
    public func handle(cluster i: Int, key: String, value: [UInt8]) async -> (topic: String, key: String, bytes: [UInt8])? {
        let c = clusters[i]
        let env: Envelope
        do {
            env = try codec.decode(value)
        } catch {
            stats.add { $0.undecodable += 1 }
            return nil
        }
        guard env.lcode == .request else { return nil }
        switch env.hcode {
        case .applyLowLatency, .applyMostRequested, .applySelectedCluster:
            guard let cmd = try? ApplyCommand.decode(env.msg) else {
                stats.add { $0.undecodable += 1 }
                return nil
            }
            let outcome: ApplyOutcome
            switch cmd.action {
            case .apply:
                let r = (try? await c.sim.apply(cmd)) ?? ApplyResult(ok: false, reason: "the simulated cluster failed")
                outcome = ApplyOutcome(requestID: cmd.requestID, attempt: cmd.attempt, cluster: c.name, ok: r.ok, reason: r.reason, pods: r.pods)
                stats.add { if r.ok { $0.applies += 1 } else { $0.refused += 1 } }
            case .delete:
                let n = await c.sim.remove(requestID: cmd.requestID, attempt: cmd.attempt)
                outcome = ApplyOutcome(requestID: cmd.requestID, attempt: cmd.attempt, cluster: c.name, action: .delete, ok: true, reason: "removed \(n) object(s)")
                stats.add { $0.removes += 1 }
            }
            c.book.withLock { $0.dirty = true }
            let replyTo = Agent.isReplyTopic(cmd.replyTo) ? cmd.replyTo : Topics.schedulerReplies
            let reply = Envelope(source: .cluster(c.name), target: env.source, hcode: env.hcode, lcode: .reply, msg: outcome.msg)
            return (replyTo, cmd.requestID, codec.encode(reply))
        case .statusSnapshot:
            c.book.withLock { $0.snapshotWanted = true }
            stats.add { $0.snapshotAsks += 1 }
            return nil
        default:
            stats.add { $0.ignored += 1 }
            return nil
        }
    }
}
