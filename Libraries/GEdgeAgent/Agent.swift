import Foundation
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePlacement
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Settings of a cluster agent. Keys in docs/configuration.md (`agent.*`).
public struct AgentSettings: Sendable {
    public var cluster: String
    public var kind: ClusterKind = .edge
    public var statusTopic = Topics.clusterStatus
    public var statusInterval: Duration = .seconds(5)
    /// Reports on change come no closer together than this (a big cluster's report is large).
    public var statusMinInterval: Duration = .milliseconds(500)
    /// Commands handled at once (applies wait for pods).
    public var concurrency = 64
    /// Peer clusters to measure latency to: cluster name to `host:port`.
    public var peers: [String: String] = [:]
    public var latencyInterval: Duration = .seconds(2)
    /// Peers probed per interval (the nearest known, others at random), whatever their number.
    public var latencyProbes = 3
    /// Status reports between two whole snapshots (deltas in between); 0 sends only snapshots.
    public var snapshotEvery = 12
    public var metricsTopic = Topics.podMetrics
    /// How often pod usage is reported (hcode 620) for the autoscaler; zero turns it off.
    public var metricsInterval: Duration = .seconds(15)
    /// GS-Scheduler's topics read for its requesters (200, 300, 520, 530 addressed to this
    /// cluster); empty turns them off.
    public var originalTopics = [Topics.originalGSCH, Topics.originalAPI]

    public init(cluster: String) { self.cluster = cluster }

    public init(_ c: ConfigReader) throws {
        guard let cluster = c.string("agent.cluster"), !cluster.isEmpty else {
            throw ConfigurationError(key: "agent.cluster", reason: "required: the name of the cluster this agent serves")
        }
        self.cluster = cluster
        let kindName = c.string("agent.kind", default: "edge")
        guard let kind = ClusterKind(rawValue: kindName) else { throw ConfigurationError(key: "agent.kind", reason: "'\(kindName)' is not edge or cloud") }
        self.kind = kind
        statusTopic = c.string("agent.status.topic", default: statusTopic)
        statusInterval = try c.duration("agent.status.interval", default: statusInterval)
        statusMinInterval = try c.duration("agent.status.min.interval", default: statusMinInterval)
        concurrency = try c.int("agent.concurrency", default: concurrency)
        latencyInterval = try c.duration("agent.latency.interval", default: latencyInterval)
        latencyProbes = try c.int("agent.latency.probes", default: latencyProbes)
        snapshotEvery = try c.int("agent.status.snapshot.every", default: snapshotEvery)
        guard snapshotEvery >= 0 else { throw ConfigurationError(key: "agent.status.snapshot.every", reason: "0 or more reports") }
        guard (1...64).contains(latencyProbes) else { throw ConfigurationError(key: "agent.latency.probes", reason: "1 to 64 peers an interval") }
        metricsTopic = c.string("agent.metrics.topic", default: metricsTopic)
        metricsInterval = try c.duration("agent.metrics.interval", default: metricsInterval)
        originalTopics = c.list("agent.original.topics", default: originalTopics).filter { !$0.isEmpty }
        for spec in c.list("agent.peers", default: []) {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[1].contains(":") else {
                throw ConfigurationError(key: "agent.peers", reason: "'\(spec)' is not cluster=host:port")
            }
            peers[parts[0]] = parts[1]
        }
    }
}

/// How an agent chooses whom to probe and what it tells its peers of its neighbourhood: one
/// rule for the agent (`LatencyProber`, peers by name) and the fleet simulator (clusters by
/// number), so the simulator measures what agents do. Inlinable: the simulator runs it for
/// thousands of clusters a period, specialised for its keys.
public enum ProbeChoice {
    public typealias Measurement = (ms: Double, at: ContinuousClock.Instant)

    /// The `k` peers measured nearest (fresh at `now`, and `eligible`), nearest first, ties
    /// to the lower key: picked in one pass over what is held.
    @inlinable
    public static func nearestMeasured<Key: Hashable & Comparable>(
        _ measured: [Key: Measurement], now: ContinuousClock.Instant, freshFor: Duration, k: Int = LatencyProber.nearestProbed,
        eligible: (Key) -> Bool = { _ in true }
    ) -> [Key] {
        var top: [(key: Key, ms: Double)] = []
        top.reserveCapacity(k + 1)
        for (key, m) in measured where now - m.at <= freshFor && eligible(key) {
            if top.count == k, let last = top.last, m.ms > last.ms || (m.ms == last.ms && key > last.key) { continue }
            let at = top.firstIndex { m.ms < $0.ms || (m.ms == $0.ms && key < $0.key) } ?? top.count
            top.insert((key, m.ms), at: at)
            if top.count > k { top.removeLast() }
        }
        return top.map(\.key)
    }

    /// A round's directed probes, before the random ones (`LatencyProber.chooseTargets`):
    /// again, one of the nearest measured in turn; explore, the nearest by coordinates among
    /// the known with no fresh measurement. They swap places every other turn, so that one
    /// probe a round alternates them.
    @inlinable
    public static func directed<Key: Hashable & Comparable>(
        measured: [Key: Measurement], known: [Key: VivaldiCoordinate], own: VivaldiCoordinate, turn: Int,
        now: ContinuousClock.Instant, freshFor: Duration, eligible: (Key) -> Bool = { _ in true }
    ) -> [Key] {
        let nearest = nearestMeasured(measured, now: now, freshFor: freshFor, eligible: eligible)
        let again = nearest.isEmpty ? nil : nearest[turn % nearest.count]
        var explore: (key: Key, distance: Double)?
        for (key, coordinate) in known where eligible(key) && (measured[key].map { now - $0.at > freshFor } ?? true) {
            let d = own.distance(to: coordinate)
            if explore.map({ d < $0.distance || (d == $0.distance && key < $0.key) }) ?? true { explore = (key, d) }
        }
        var out: [Key] = []
        for pick in (turn % 2 == 0 ? [again, explore?.key] : [explore?.key, again]) {
            if let pick, !out.contains(pick) { out.append(pick) }
        }
        return out
    }

    /// What `/coordinate/near` answers: the `k` nearest measured (fresh) of those whose
    /// coordinate is known, then, while fewer, the nearest known by coordinates.
    @inlinable
    public static func near<Key: Hashable & Comparable>(
        measured: [Key: Measurement], known: [Key: VivaldiCoordinate], own: VivaldiCoordinate,
        now: ContinuousClock.Instant, freshFor: Duration, k: Int = LatencyProber.nearestProbed
    ) -> [(Key, VivaldiCoordinate)] {
        var out = nearestMeasured(measured, now: now, freshFor: freshFor, k: k) { known[$0] != nil }.map { ($0, known[$0]!) }
        if out.count < k {
            let taken = Set(out.map(\.0))
            out += nearestKnown(known.filter { !taken.contains($0.key) }, to: own, k - out.count)
        }
        return out
    }

    /// The `k` entries of `known` nearest `own` by coordinates, nearest first, ties to the lower key.
    @inlinable
    public static func nearestKnown<Key: Hashable & Comparable>(_ known: [Key: VivaldiCoordinate], to own: VivaldiCoordinate, _ k: Int) -> [(Key, VivaldiCoordinate)] {
        known.map { (key: $0.key, coordinate: $0.value, distance: own.distance(to: $0.value)) }
            .sorted { $0.distance != $1.distance ? $0.distance < $1.distance : $0.key < $1.key }
            .prefix(k).map { ($0.key, $0.coordinate) }
    }
}

/// Measures latency to peer clusters and keeps this cluster's network coordinate (Vivaldi,
/// `VivaldiClient`). Each interval it probes at most `probes` peers, not every one: one of the
/// nearest it has measured again, the nearest by coordinates it has not measured lately, and
/// others at random (`chooseTargets`). A probe is a TCP connect to
/// the peer agent's ops endpoint (the round trip) and a read of its coordinate there
/// (`GET /coordinate`); the round trip moves this cluster's coordinate and is kept, smoothed
/// (EWMA, alpha 0.3), as a direct measurement while it is fresh (`freshPeriods` intervals). A peer
/// that does not answer drops out of the table.
public final class LatencyProber: Service, Sendable {
    let peers: [String: String]
    let interval: Duration
    let probes: Int
    private let table = Mutex<[String: (ms: Double, at: ContinuousClock.Instant)]>([:])
    private let vivaldi = Mutex(VivaldiClient())
    private let known = Mutex<[String: VivaldiCoordinate]>([:])
    private let thread = DedicatedThread(name: "latency-probe")
    let http: HTTPClient?

    public init(peers: [String: String], interval: Duration, probes: Int = 3) {
        self.peers = peers
        self.interval = interval
        self.probes = max(1, probes)
        var c = HTTPClientConfiguration()
        c.timeout = .seconds(1)
        c.connectTimeout = .seconds(1)
        // A peer's coordinate is a few hundred bytes, its nearest 16 a few KiB: a larger
        // answer is cut off unread.
        c.maxResponseBytes = 8192
        http = peers.isEmpty ? nil : HTTPClient(configuration: c, logger: Logger(label: "gedge.agent.latency"))
    }

    /// The nearest peers' fresh measurements a report carries: the low-latency policy reads
    /// the nearest first, and coordinates estimate the rest; a report stays small however
    /// many peers were probed while their measurements are fresh.
    public static let reportedPeers = 16
    /// Periods a direct measurement stays fresh (2 minutes at the default 2 s): each of the
    /// nearest measured is measured again in turn well before it goes, and the exploring
    /// probes cover the 60 nearest by coordinates meanwhile.
    public static let freshPeriods = 60

    /// Fresh direct measurements, milliseconds: the `reportedPeers` nearest.
    public var latencies: [String: Double] {
        let now = ContinuousClock.now, fresh = interval * Self.freshPeriods
        let held: [(String, Double)] = table.withLock { t in t.filter { now - $0.value.at <= fresh }.map { ($0.key, $0.value.ms) } }
        let nearest = held.sorted { (a: (String, Double), b: (String, Double)) -> Bool in a.1 != b.1 ? a.1 < b.1 : a.0 < b.0 }.prefix(Self.reportedPeers)
        var out: [String: Double] = [:]
        for (peer, ms) in nearest { out[peer] = ms }
        return out
    }

    /// This cluster's coordinate; nil for an agent with no peers to place itself by.
    public var coordinate: VivaldiCoordinate? { peers.isEmpty ? nil : vivaldi.withLock { $0.coordinate } }

    /// How many of the nearest measured peers take turns to be measured again, and how many
    /// nearest a peer tells of at `/coordinate/near`.
    public static let nearestProbed = 16
    private let round = Atomic<Int>(0)

    /// The peers to probe this round, a search for the nearest peers by their round trips, not
    /// only by coordinates (whose errors are largest between near clusters):
    /// - again: one of the `nearestProbed` nearest measured (fresh), in turn, so they stay fresh;
    /// - explore: the nearest by coordinate among the peers known (seen, or told of by a
    ///   peer as one of its nearest measured) that have no fresh measurement;
    /// - the rest at random.
    /// With one probe a round, again and explore take turns.
    func chooseTargets() -> [String] {
        let turn = round.wrappingAdd(1, ordering: .relaxed).oldValue
        var out = ProbeChoice.directed(measured: table.withLock { $0 }, known: known.withLock { $0 }, own: vivaldi.withLock { $0.coordinate },
                                       turn: turn, now: .now, freshFor: interval * Self.freshPeriods) { peers[$0] != nil }
        for name in peers.keys.shuffled() where out.count < probes && !out.contains(name) { out.append(name) }
        return Array(out.prefix(probes))
    }

    public func run() async throws {
        defer { thread.stop() }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            for cluster in chooseTargets() {
                guard let endpoint = peers[cluster] else { continue }
                let ms = (try? await thread.run { Self.connectTime(endpoint) }) ?? nil
                guard let ms else {
                    table.withLock { $0[cluster] = nil }
                    continue
                }
                record(cluster, ms: ms)
                if let other = await peerCoordinate(endpoint) {
                    learn(cluster, coordinate: other, rtt: ms, near: await peerNeighbours(endpoint))
                }
            }
            await Task.sleepUnlessShuttingDown(for: interval)
        }
        await http?.shutdown()
    }

    /// A round trip to `peer` measured now (milliseconds): kept, smoothed, as a direct measurement.
    func record(_ peer: String, ms: Double, at now: ContinuousClock.Instant = .now) {
        table.withLock { t in t[peer] = (t[peer].map { 0.7 * $0.ms + 0.3 * ms } ?? ms, now) }
    }

    /// What a probe of `peer` read besides the round trip: its coordinate (which moves this
    /// one) and its nearest (`/coordinate/near`), of which those among this agent's peers are
    /// known from now on: they are likely near here too, and later rounds explore them.
    func learn(_ peer: String, coordinate other: VivaldiCoordinate, rtt ms: Double, near: [String: VivaldiCoordinate]) {
        known.withLock { $0[peer] = other }
        vivaldi.withLock { _ = $0.update(peer: peer, coordinate: other, rtt: ms / 1000) }
        let near = near.filter { $0.key != peer && peers[$0.key] != nil }
        if !near.isEmpty { known.withLock { k in for (name, c) in near where k[name] == nil { k[name] = c } } }
    }

    /// The peers nearest this cluster (at most `nearestProbed`), for its peers' discovery of
    /// their neighbours: those it measured nearest (fresh), then, while it has measured
    /// fewer, the nearest by coordinates; each with the coordinate it last read.
    public func nearest() -> [String: VivaldiCoordinate] {
        let near = ProbeChoice.near(measured: table.withLock { $0 }, known: known.withLock { $0 }, own: vivaldi.withLock { $0.coordinate },
                                    now: .now, freshFor: interval * Self.freshPeriods)
        return Dictionary(near.map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
    }

    /// A peer's nearest peers and their coordinates (`/coordinate/near`), read within bounds;
    /// empty when it has none or answers out of bounds.
    func peerNeighbours(_ endpoint: String) async -> [String: VivaldiCoordinate] {
        guard let http, let r = try? await http.execute(HTTPRequest(url: "http://\(endpoint)/coordinate/near")), r.isSuccess,
              let doc = try? JSONValue.parse(r.body), case .object(let near)? = doc["near"], near.count <= Self.nearestProbed else { return [:] }
        var out: [String: VivaldiCoordinate] = [:]
        for (name, value) in near {
            guard KubeNames.isDNSLabel(name), let c = try? VivaldiCoordinate.decode(value) else { return [:] }
            out[name] = c
        }
        return out
    }

    /// The peer's coordinate from its ops endpoint, read within bounds; nil when it has none.
    func peerCoordinate(_ endpoint: String) async -> VivaldiCoordinate? {
        guard let http, let r = try? await http.execute(HTTPRequest(url: "http://\(endpoint)/coordinate")), r.isSuccess,
              let doc = try? JSONValue.parse(r.body), let c = try? VivaldiCoordinate.decode(doc) else { return nil }
        return c
    }

    /// Milliseconds to complete a TCP handshake with `host:port`, nil if it fails within 1 s.
    static func connectTime(_ endpoint: String) -> Double? {
        guard let colon = endpoint.lastIndex(of: ":"), let port = UInt16(endpoint[endpoint.index(after: colon)...]) else { return nil }
        let host = String(endpoint[..<colon])
        var hints = addrinfo()
        hints.ai_family = AF_INET
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let ai = res else { return nil }
        defer { freeaddrinfo(res) }
        let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let start = ContinuousClock.now
        let r = connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen)
        if r != 0 {
            guard errno == EINPROGRESS else { return nil }
            var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&pfd, 1, 1000) == 1 else { return nil }
            var err: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            guard err == 0 else { return nil }
        }
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }
}

/// Tracks offsets of messages handled out of order: an offset is stored only once every
/// earlier message of its partition is done, so a crash never skips one.
final class OffsetTracker: Sendable {
    private let state = Mutex<[KafkaTopicPartition: (order: [Int64], done: Set<Int64>)]>([:])

    func started(_ m: KafkaMessage) {
        state.withLock { $0[KafkaTopicPartition(topic: m.topic, partition: m.partition), default: ([], [])].order.append(m.offset) }
    }

    /// Marks a message done; returns the offset to store for its partition, if it advanced.
    func finished(_ m: KafkaMessage) -> (KafkaTopicPartition, Int64)? {
        let tp = KafkaTopicPartition(topic: m.topic, partition: m.partition)
        return state.withLock { s in
            guard var p = s[tp] else { return nil }
            p.done.insert(m.offset)
            var next: Int64?
            var i = 0
            while i < p.order.count, p.done.contains(p.order[i]) {
                p.done.remove(p.order[i])
                next = p.order[i] + 1
                i += 1
            }
            p.order.removeFirst(i)
            s[tp] = p
            return next.map { (tp, $0) }
        }
    }
}

/// A cluster's agent: applies placements, answers the request codes (200 latency, 300
/// resources, 520 namespace, 530 node of a pod), and reports the cluster's status.
public final class Agent: Sendable {
    public let settings: AgentSettings
    let driver: any ClusterDriver
    let producer: KafkaProducer
    public let prober: LatencyProber
    let codec = EnvelopeCodec()
    let logger: Logger
    let changed = Wakeup()
    private let sequence = Atomic<Int64>(0)
    /// New at each start: consumers tell a restarted agent's reports from the old ones'.
    public let epoch = Hex.random(bytes: 8)
    /// The next status report is a whole snapshot (the first, and when a consumer asks).
    let snapshotWanted = Atomic<Bool>(true)
    let handled = Counter(label: "gedge_agent_commands_total")
    let scaled = Counter(label: "gedge_agent_scale_commands_total")
    let applyTimer = Metrics.Timer(label: "gedge_agent_apply_seconds")

    public init(settings: AgentSettings, driver: any ClusterDriver, producer: KafkaProducer, logger: Logger) {
        self.settings = settings
        self.driver = driver
        self.producer = producer
        self.prober = LatencyProber(peers: settings.peers, interval: settings.latencyInterval, probes: settings.latencyProbes)
        var l = logger
        l[metadataKey: LogKeys.cluster] = .string(settings.cluster)
        self.logger = l
    }

    /// The cluster as reported: nodes from the driver (with each node's latencies where the
    /// driver knows them, as a simulation does); the prober's measurements and coordinate
    /// as the cluster's own, beside the nodes, so that they change no node.
    public func report() async throws -> ClusterState {
        let nodes = try await driver.state()
        let seq = sequence.wrappingAdd(1, ordering: .relaxed).newValue
        var state = ClusterState(name: settings.cluster, kind: settings.kind, nodes: nodes, sequence: seq, reportedAt: Date())
        state.measuredLatencyMs = prober.latencies
        state.coordinate = prober.coordinate
        return state
    }

    func publish(_ envelope: Envelope, topic: String, key: String) async {
        do {
            _ = try await producer.send(KafkaRecord(topic: topic, key: key, value: codec.encode(envelope)))
        } catch {
            logger.error("publish failed", metadata: [LogKeys.kafkaTopic: .string(topic), LogKeys.error: "\(error)"])
        }
    }

    func reply(to env: Envelope, topic: String, key: String, hcode: HCode? = nil, msg: JSONValue) async {
        await publish(Envelope(source: .cluster(settings.cluster), target: env.source, hcode: hcode ?? env.hcode, lcode: .reply, msg: msg), topic: topic, key: key)
    }

    /// A command message, decoded once: for its ordering key, then for handling.
    struct Command: Sendable {
        let message: KafkaMessage
        let envelope: Result<Envelope, any Error>

        /// The key under which the command is ordered: the workload for scale and resize
        /// commands (whoever sends them, with whatever message key), else the message key
        /// (the request ID of apply and delete commands).
        var orderingKey: String {
            if case .success(let env) = envelope, env.hcode == .scaleWorkload || env.hcode == .resizeWorkload,
               let namespace = env.msg["namespace"]?.stringValue, let name = env.msg["name"]?.stringValue {
                return "workload:\(env.msg["kind"]?.stringValue ?? "Deployment")/\(namespace)/\(name)"
            }
            return "message:" + (message.keyString ?? "")
        }
    }

    /// A topic a command may have its answer written to: a legal Kafka topic name that is
    /// none of the suite's input topics (requests, agents' commands, results, status).
    public static func isReplyTopic(_ t: String) -> Bool {
        guard Topics.isLegalName(t) else { return false }
        let base = t.hasSuffix(".dlq") ? String(t.dropLast(4)) : t
        return ![Topics.scheduleRequests, Topics.scheduleResults, Topics.clusterStatus, Topics.podMetrics].contains(base)
            && !t.hasPrefix(Topics.agentCommands(cluster: ""))
    }

    func command(_ message: KafkaMessage) -> Command {
        Command(message: message, envelope: Result { try codec.decode(message) })
    }

    /// Handles one command message.
    func handle(_ command: Command) async {
        handled.increment()
        let key = command.message.keyString ?? ""
        let env: Envelope
        do {
            env = try command.envelope.get()
            guard env.lcode == .request else { return }
        } catch {
            logger.warning("command not understood", metadata: [LogKeys.error: "\(error)"])
            let dead = Envelope(source: .cluster(settings.cluster), target: .cluster("scheduler"), hcode: .error, lcode: .reply,
                                msg: .object(["request_id": .string(key), "reason": .string("\(error)")]))
            await publish(dead, topic: Topics.schedulerReplies, key: key)
            return
        }
        // GS-Scheduler's requesters write `source {"type": "none"}` and no reply_to: they wait on
        // a topic named by the request ID, and address clusters in `target`.
        if env.source.type == .none, env.msg["reply_to"] == nil {
            await handleOriginal(env, key: key)
            return
        }
        // A command names where its answer goes; never a topic that others trust as input.
        var replyTo = env.msg["reply_to"]?.stringValue ?? Topics.schedulerReplies
        if !Self.isReplyTopic(replyTo) {
            logger.warning("reply_to refused; answering on the scheduler's replies", metadata: ["reply_to": .string(String(replyTo.prefix(256)))])
            replyTo = Topics.schedulerReplies
        }
        do {
            switch env.hcode {
            case .applyLowLatency, .applyMostRequested, .applySelectedCluster:
                let cmd = try ApplyCommand.decode(env.msg)
                let start = ContinuousClock.now
                let outcome: ApplyOutcome
                switch cmd.action {
                case .apply:
                    let r = try await driver.apply(cmd)
                    outcome = ApplyOutcome(requestID: cmd.requestID, attempt: cmd.attempt, cluster: settings.cluster, ok: r.ok, reason: r.reason, pods: r.pods)
                case .delete:
                    let n = try await driver.remove(requestID: cmd.requestID, attempt: cmd.attempt)
                    outcome = ApplyOutcome(requestID: cmd.requestID, attempt: cmd.attempt, cluster: settings.cluster, action: .delete, ok: true, reason: "removed \(n) object(s)")
                }
                applyTimer.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
                changed.signal()
                logger.info("\(cmd.action.rawValue) \(outcome.ok ? "done" : "failed")", metadata: [LogKeys.requestID: .string(cmd.requestID), "reason": .string(outcome.reason)])
                await reply(to: env, topic: cmd.replyTo, key: cmd.requestID, msg: outcome.msg)
            case .scaleWorkload:
                let cmd = try ScaleCommand.decode(env.msg)
                let before = try await driver.scale(cmd)
                scaled.increment()
                logger.info("scaled \(cmd.kind) \(cmd.namespace)/\(cmd.name) \(before) -> \(cmd.replicas)", metadata: [LogKeys.requestID: .string(cmd.requestID)])
                await reply(to: env, topic: cmd.replyTo, key: key, msg: .object([
                    "request_id": .string(cmd.requestID), "cluster": .string(settings.cluster), "ok": true,
                    "namespace": .string(cmd.namespace), "name": .string(cmd.name),
                    "previous": .number(Double(before)), "replicas": .number(Double(cmd.replicas)),
                ]))
            case .resizeWorkload:
                let cmd = try ResizeCommand.decode(env.msg)
                let pods = try await driver.resize(cmd)
                changed.signal()
                logger.info("resized \(cmd.kind) \(cmd.namespace)/\(cmd.name)", metadata: [
                    LogKeys.requestID: .string(cmd.requestID), "cpu_request_milli": "\(cmd.cpuRequestMilli.map(String.init) ?? "-")",
                    "memory_request": "\(cmd.memoryRequest.map(String.init) ?? "-")",
                ])
                await reply(to: env, topic: cmd.replyTo, key: key, msg: .object([
                    "request_id": .string(cmd.requestID), "cluster": .string(settings.cluster), "ok": true,
                    "namespace": .string(cmd.namespace), "name": .string(cmd.name), "pods": .number(Double(pods)),
                ]))
            case .statusSnapshot:
                // The next report is a whole snapshot, soon; many asking at once get one.
                snapshotWanted.store(true, ordering: .relaxed)
                changed.signal()
            case .simulateLoad:
                guard let sim = driver as? SimulatedCluster else {
                    throw MessageDecodingError(.unknownCode, field: "hcode", reason: "hcode 790 is for simulated clusters; \(settings.cluster) is a real one")
                }
                let load = try SimulatedLoad.decode(env.msg)
                await sim.setLoad(load)
                logger.info("simulated load on \(load.namespace)/\(load.name): \(Int(load.cpuMilli))m CPU")
            case .clusterLatency:
                let state = try await report()
                var nodes: [String: JSONValue] = [:]
                // Each node: its own measurements, and the cluster's where it has none.
                for n in state.nodes { nodes[n.name] = .object(n.latencyMs.merging(state.measuredLatencyMs) { own, _ in own }.mapValues(JSONValue.number)) }
                let peers = Set(state.nodes.flatMap { $0.latencyMs.keys }).union(state.measuredLatencyMs.keys)
                let cluster = Dictionary(uniqueKeysWithValues: peers.compactMap { p in state.latency(to: p).map { (p, JSONValue.number($0)) } })
                await reply(to: env, topic: replyTo, key: key, msg: .object(["cluster": .string(settings.cluster), "latency_ms": .object(cluster), "nodes": .object(nodes)]))
            case .clusterResources:
                await reply(to: env, topic: replyTo, key: key, msg: try await report().json)
            case .nodeOfPod:
                let r = try FieldReader(env.msg, path: "msg")
                var pod = try r.optionalString("pod")
                if pod == nil, case .member(let ref) = env.target.object { pod = ref.members.first }
                guard let pod else { throw MessageDecodingError(.missingField, field: "msg.pod", reason: "which pod?") }
                let node = try await driver.nodeOf(pod: pod, namespace: try r.optionalString("namespace"))
                var msg: [String: JSONValue] = ["request_id": .string(try r.optionalString("request_id") ?? key), "pod": .string(pod), "cluster": .string(settings.cluster)]
                if let node { msg["node"] = .string(node) }
                await reply(to: env, topic: replyTo, key: key, msg: .object(msg))
            case .podLogs:
                let r = try FieldReader(env.msg, path: "msg")
                let ns = try r.string("namespace"), pod = try r.string("pod")
                let tail = min(5000, max(1, try r.optionalInt("tail") ?? 200))
                let lines = try await driver.logs(namespace: ns, pod: pod, tail: tail)
                var msg: [String: JSONValue] = [
                    "request_id": .string(try r.optionalString("request_id") ?? key), "cluster": .string(settings.cluster),
                    "namespace": .string(ns), "pod": .string(pod), "found": .bool(lines != nil),
                ]
                msg["lines"] = .array((lines ?? []).map(JSONValue.string))
                await reply(to: env, topic: replyTo, key: key, msg: .object(msg))
            case .inventory:
                let query = try InventoryQuery.decode(env.msg)
                let page = try await driver.inventory(query)
                var msg: [String: JSONValue] = [
                    "request_id": .string(env.msg["request_id"]?.stringValue ?? key), "cluster": .string(settings.cluster),
                    "kind": .string(query.kind.rawValue), "items": .array(page.items),
                ]
                if let next = page.continueToken { msg["continue"] = .string(next) }
                await reply(to: env, topic: replyTo, key: key, msg: .object(msg))
            case .projectNamespace:
                let r = try FieldReader(env.msg, path: "msg")
                let name = try r.optionalString("namespace") ?? KubeNames.namespace(forProject: try r.string("project_name"))
                guard KubeNames.isDNSLabel(name) else { throw MessageDecodingError(.invalidValue, field: "msg.namespace", reason: "'\(name)' is not a namespace name") }
                let delete = (try r.optionalString("action") ?? "create") == "delete"
                try await driver.namespace(name, delete: delete)
                await reply(to: env, topic: replyTo, key: key, msg: .object(["namespace": .string(name), "action": .string(delete ? "delete" : "create"), "ok": .bool(true)]))
            default:
                throw MessageDecodingError(.unknownCode, field: "hcode", reason: "an agent does not handle hcode \(env.hcode.rawValue)")
            }
        } catch {
            logger.warning("command failed", metadata: [LogKeys.requestID: .string(key), "hcode": "\(env.hcode)", LogKeys.error: "\(error)"])
            // An apply that errored (not a refusal) is still answered, so the scheduler moves on.
            if [HCode.applyLowLatency, .applyMostRequested, .applySelectedCluster].contains(env.hcode), let cmd = try? ApplyCommand.decode(env.msg) {
                let o = ApplyOutcome(requestID: cmd.requestID, attempt: cmd.attempt, cluster: settings.cluster, action: cmd.action, ok: false, reason: "\(error)")
                await reply(to: env, topic: replyTo, key: key, msg: o.msg)
            } else {
                await reply(to: env, topic: replyTo, key: key, hcode: .error,
                            msg: .object(["request_id": .string(key), "hcode": .number(Double(env.hcode.rawValue)), "reason": .string("\(error)")]))
            }
        }
    }
}

extension Agent {
    /// Whether `target` names this cluster (a name or a list of names, as the original sent).
    func addressed(_ target: Endpoint) -> Bool {
        guard target.type == .cluster else { return false }
        switch target.object {
        case .name(let n): return n == settings.cluster
        case .names(let ns): return ns.contains(settings.cluster)
        default: return false
        }
    }

    /// Answers GS-Scheduler's requests as its cluster agent did (GE_GSCH_cluster_agent.py):
    /// 200 latencies from a node to clusters, 300 the best node's resources, 520 a project's
    /// namespace, 530 the node of a pod. The answer goes to the topic named by the request ID,
    /// keyed by it, with `msg.result`; what cannot be answered is a 900 there.
    func handleOriginal(_ env: Envelope, key: String) async {
        guard addressed(env.target) else { return }
        guard let requestID = env.msg["request_id"]?.stringValue, !requestID.isEmpty else {
            logger.warning("an original request without msg.request_id; nowhere to answer", metadata: ["hcode": "\(env.hcode.rawValue)"])
            return
        }
        // The request ID is the topic; never one of the suite's trusted inputs.
        guard Self.isReplyTopic(requestID), !requestID.hasPrefix("gedge."), !requestID.hasPrefix("__"),
              ![Topics.originalGSCH, Topics.originalAPI].contains(requestID) else {
            logger.warning("request ID is not a topic this agent answers on", metadata: [LogKeys.requestID: .string(String(requestID.prefix(256)))])
            return
        }
        let me = Endpoint.cluster(settings.cluster)
        func answer(_ hcode: HCode, _ msg: [String: JSONValue], bare: Bool = false) async {
            var m = msg
            m["request_id"] = .string(requestID)
            var out = Envelope(source: me, target: .none, hcode: hcode, lcode: .reply, msg: .object(m))
            // The original's 520/530 answers were bare {request_id, method, result}: read as
            // return_msg['result'] by its requester; kept at the top level as well.
            if bare { out.extra = ["request_id": .string(requestID), "method": m["method"] ?? .null, "result": m["result"] ?? .null] }
            await publish(out, topic: requestID, key: requestID)
        }
        func fail(_ message: String) async {
            logger.warning("original request not answered", metadata: [LogKeys.requestID: .string(requestID), "hcode": "\(env.hcode.rawValue)", LogKeys.error: .string(message)])
            await answer(.error, ["result": "error", "message": .string(message)])
        }
        do {
            let r = try FieldReader(env.msg, path: "msg")
            switch env.hcode {
            case .clusterLatency:
                let node = try r.string("source_node")
                var clusters: [String] = []
                func collect(_ v: JSONValue) { if case .string(let s) = v { clusters.append(s) } else if case .array(let a) = v { a.forEach(collect) } }
                collect(try r.required("select_clusters"))
                let state = try await report()
                guard let n = state.nodes.first(where: { $0.name == node }) else {
                    return await fail("node '\(node)' is not in cluster \(settings.cluster)")
                }
                let measured = clusters.map { c in (c, c == settings.cluster ? n.latencyMs[c] ?? 0 : n.latencyMs[c] ?? state.measuredLatencyMs[c]) }
                // Sorted by (latency, cluster) as the original; clusters never measured last.
                let sorted = measured.sorted { a, b in
                    switch (a.1, b.1) {
                    case let (x?, y?): return x != y ? x < y : a.0 < b.0
                    case (.some, nil): return true
                    case (nil, .some): return false
                    case (nil, nil): return a.0 < b.0
                    }
                }
                await answer(.clusterLatency, ["result": .array(sorted.map { .object(["cluster": .string($0.0), "latency": $0.1.map(JSONValue.number) ?? .null]) })])
            case .clusterResources:
                let filter = try r.optionalString("GPUFilter") ?? "unnecessary"
                guard ["necessary", "unnecessary"].contains(filter) else {
                    return await fail("GPUFilter '\(filter)' is not necessary or unnecessary")
                }
                let state = try await report()
                var best: (NodeState, Double, Double, Int64, Double)?
                for n in state.nodes where n.ready {
                    let cpu = n.allocatable.cpuMilli > 0 ? Double(n.requested.cpuMilli) / Double(n.allocatable.cpuMilli) * 100 : 100
                    let mem = n.allocatable.memory > 0 ? Double(n.requested.memory) / Double(n.allocatable.memory) * 100 : 100
                    let gpus = max(0, n.allocatable.gpu - n.requested.gpu)
                    let score = (100 - cpu) + (100 - mem) + (filter == "necessary" ? Double(gpus) * 200 : 0)
                    if best == nil || score > best!.4 { best = (n, cpu, mem, gpus, score) }
                }
                guard let (n, cpu, mem, gpus, score) = best else { return await fail("cluster \(settings.cluster) has no ready node") }
                await answer(.clusterResources, ["result": .object([
                    "cluster_name": .string(settings.cluster), "node_name": .string(n.name), "cpu": .number(cpu), "memory": .number(mem),
                    "nvidia.com/gpu": .number(Double(gpus)), "score": .number(score),
                ])])
            case .projectNamespace:
                let method = try r.string("method")
                let p = try FieldReader(try r.required("parameters"), path: "msg.parameters")
                let name = try p.string("project_name") + "-" + (try p.string("workspace_uid"))
                var result: [String: JSONValue] = ["status": "success", "error_msg": .null]
                if !["create", "delete"].contains(method) {
                    result = ["status": "fail", "error_msg": "not support method"]
                } else if !KubeNames.isDNSLabel(name) {
                    result = ["status": "fail", "error_msg": .string("'\(name)' is not a namespace name")]
                } else {
                    do { try await driver.namespace(name, delete: method == "delete") } catch {
                        result = ["status": "fail", "error_msg": .string("\(error)")]
                    }
                }
                await answer(.projectNamespace, ["method": .string(method), "result": .object(result)], bare: true)
            case .nodeOfPod:
                let method = try r.string("method")
                let p = try FieldReader(try r.required("parameters"), path: "msg.parameters")
                let pod = try p.string("pod_name")
                var result: [String: JSONValue] = ["status": "fail", "source_node": .null, "error_msg": "not support method"]
                if method == "read" {
                    if let node = try await driver.nodeOf(pod: pod, namespace: try p.optionalString("namespace_name")) {
                        result = ["status": "success", "source_node": .string(node), "error_msg": .null]
                    } else {
                        result = ["status": "fail", "source_node": .null, "error_msg": "is not exist pod"]
                    }
                }
                await answer(.nodeOfPod, ["method": .string(method), "result": .object(result)], bare: true)
            case .applyLowLatency, .applyMostRequested, .applySelectedCluster:
                await fail("hcode \(env.hcode.rawValue) with file_id names a YAML file in GS-Scheduler's Redis, which this suite does not have; submit the workload as a schedule request (hcode 100)")
            default:
                await fail("an agent does not handle hcode \(env.hcode.rawValue)")
            }
        } catch {
            await fail("\(error)")
        }
    }
}

/// Runs work items so that items of the same key run one after another, in the order they
/// were given, while items of different keys run at the same time.
final class KeyedOrder: Sendable {
    private let tails = Mutex<[String: (id: Int, task: Task<Void, Never>)]>([:])
    private let counter = Atomic<Int>(0)

    /// Starts `body` once every body given earlier under `key` has finished.
    func run(_ key: String, _ body: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        let id = counter.add(1, ordering: .relaxed).newValue
        return tails.withLock { tails in
            let previous = tails[key]?.task
            let task = Task {
                await previous?.value
                await body()
                self.tails.withLock { if $0[key]?.id == id { $0[key] = nil } }
            }
            tails[key] = (id, task)
            return task
        }
    }
}

/// Consumes the agent's command topic, handling up to `concurrency` commands at once.
/// Commands on the same workload (`Agent.Command.orderingKey`) are handled one after another, in the
/// order they were sent: two scale commands sent a moment apart cannot land in reverse
/// order and leave the older replica count in place.
public struct AgentCommandLoop: Service {
    let agent: Agent
    let consumer: KafkaConsumer

    public init(agent: Agent, consumer: KafkaConsumer) {
        self.agent = agent
        self.consumer = consumer
    }

    public func run() async throws {
        let tracker = OffsetTracker()
        let order = KeyedOrder()
        await withTaskCancellationOrGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                var running = 0
                for await message in consumer {
                    if running >= agent.settings.concurrency {
                        await group.next()
                        running -= 1
                    }
                    tracker.started(message)
                    running += 1
                    let command = agent.command(message)
                    let turn = order.run(command.orderingKey) {
                        await agent.handle(command)
                        if let (tp, next) = tracker.finished(message) { try? consumer.storeOffsets([tp: next]) }
                    }
                    group.addTask { await turn.value }
                }
            }
        } onCancelOrGracefulShutdown: {
            consumer.stopPolling()
        }
        try await consumer.close()
        agent.logger.info("agent commands stopped; offsets committed")
    }
}

/// Publishes the cluster's status every interval, and soon after any change.
public struct AgentStatusLoop: Service {
    let agent: Agent

    public init(agent: Agent) { self.agent = agent }

    public func run() async throws {
        let running = RunFlag(true)
        // What the last report said, for the next delta.
        var last: (sequence: Int64, nodes: [NodeState])?
        var sinceSnapshot = 0
        await withTaskCancellationOrGracefulShutdownHandler {
            while running.isSet {
                let started = ContinuousClock.now
                do {
                    let state = try await agent.report()
                    let wanted = agent.snapshotWanted.exchange(false, ordering: .relaxed)
                    let msg: JSONValue
                    if let previous = last, !wanted, sinceSnapshot < agent.settings.snapshotEvery {
                        msg = ClusterDelta.between(previous.nodes, state, epoch: agent.epoch, baseSequence: previous.sequence).json
                        sinceSnapshot += 1
                    } else {
                        msg = ClusterReport.snapshotJSON(state, epoch: agent.epoch)
                        sinceSnapshot = 0
                    }
                    last = (state.sequence, state.nodes)
                    // A report not yet delivered when the agent stops is superseded by the
                    // next agent's: shutdown does not wait on an unreachable broker for it.
                    try? await cancelWhenGracefulShutdown {
                        await agent.publish(
                            Envelope(source: .cluster(agent.settings.cluster), target: .cluster("scheduler"), hcode: .clusterStatus, lcode: .request, msg: msg),
                            topic: agent.settings.statusTopic, key: agent.settings.cluster)
                    }
                } catch {
                    agent.logger.error("status not read", metadata: [LogKeys.error: "\(error)"])
                }
                await agent.changed.wait(timeout: agent.settings.statusInterval)
                // Coalesce a burst of changes into one report.
                let since = ContinuousClock.now - started
                if running.isSet, since < agent.settings.statusMinInterval {
                    try? await Task.sleep(for: agent.settings.statusMinInterval - since)
                }
            }
        } onCancelOrGracefulShutdown: {
            running.set(false)
            agent.changed.signal()
        }
    }
}

/// Publishes the pod usage of the workloads the suite placed (hcode 620) every interval.
public struct AgentMetricsLoop: Service {
    let agent: Agent

    public init(agent: Agent) { self.agent = agent }

    public func run() async throws {
        let running = RunFlag(true)
        let wake = Wakeup()
        await withTaskCancellationOrGracefulShutdownHandler {
            while running.isSet {
                do {
                    let report = PodMetricsReport(cluster: agent.settings.cluster, workloads: try await agent.driver.usage())
                    // In parts of at most 2,000 pods each (about 400 KB), under Kafka's 1 MB message limit.
                    // Superseded by the next report: a shutdown does not wait on the broker for it.
                    try? await cancelWhenGracefulShutdown {
                        for part in report.split(maxPods: 2000) {
                            await agent.publish(
                                Envelope(source: .cluster(agent.settings.cluster), target: .cluster("autoscaler"), hcode: .podMetrics, lcode: .request, msg: part.json),
                                topic: agent.settings.metricsTopic, key: agent.settings.cluster)
                        }
                    }
                } catch {
                    agent.logger.error("pod metrics not read", metadata: [LogKeys.error: "\(error)"])
                }
                await wake.wait(timeout: agent.settings.metricsInterval)
            }
        } onCancelOrGracefulShutdown: {
            running.set(false)
            wake.signal()
        }
    }
}
