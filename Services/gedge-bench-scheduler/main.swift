import Foundation
import GEdgeCore
import GEdgeKafka
import GEdgePlacement
import GEdgePostgres
import GEdgeScheduler
import Logging
import Synchronization

// Scheduler benchmarks, printed in one run (`make bench`, release build):
//   (a) decision time per request for each policy at 10, 100 and 1,000 clusters of 100 nodes
//       and 5,000 of 20, best first beside the full walk;
//   (b) end to end through Kafka and PostgreSQL with simulated agents (scheduler and agents
//       as their own processes, against a dev broker process started for the run): sustained
//       requests/s, and latency p50/p99 from publish to the completed result at a fixed
//       offered rate, beside a raw Kafka passthrough (consume and produce, no work) measured
//       the same way in the same run as the ceiling; at the offered rate, the latency by
//       second of sending, by segment (publish -> received -> completed -> result read) and
//       each process's share of the CPU;
//   (c) the cost of coding each message the scheduler and agents read and write.
//
// Keys: bench.decisions (2000), bench.decision.fleets (10x100,100x100,1000x100,5000x20), bench.e2e.requests (20000), bench.e2e.rate (1000),
// bench.e2e.seconds (10), bench.e2e.clusters (3), bench.e2e.nodes (1000), bench.kafka.port
// (19093), bench.fetch.wait.ms (10: librdkafka fetch.wait.max.ms for every consumer),
// bench.codec.iterations (300), bench.only (decision|codec|e2e|fleet), postgres.url; the fleet's keys in Fleet.swift.

/// `s` padded on the right to `width` characters (String(format:) does not pad `%@` here).
func pad(_ s: String, _ width: Int) -> String { s.count >= width ? s : s + String(repeating: " ", count: width - s.count) }
/// `s` padded on the left to `width` characters.
func lpad(_ s: String, _ width: Int) -> String { s.count >= width ? s : String(repeating: " ", count: width - s.count) + s }

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
func millis(_ d: Duration) -> Double { seconds(d) * 1000 }

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}

/// Deterministic pseudo-random numbers (a 64-bit LCG), so every run sees the same clusters.
struct LCG {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return state >> 33
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

func makeClusters(_ count: Int, nodes perCluster: Int) -> [ClusterState] {
    var rng = LCG(state: 42)
    return (0..<count).map { c in
        let nodes = (0..<perCluster).map { n -> NodeState in
            let cpu = Int64([8000, 16000, 32000, 64000][rng.below(4)])
            let mem = Int64([16, 32, 64, 128][rng.below(4)]) << 30
            let gpus = rng.below(10) == 0 ? Int64(rng.below(4) + 1) : 0
            var labels = ["kubernetes.io/hostname": "c\(c)-n\(n)", "topology.kubernetes.io/zone": "z\(rng.below(3))"]
            if gpus > 0 {
                labels["accelerator.gedge.io/nvidia-gpu.count"] = String(gpus)
                labels["accelerator.gedge.io/nvidia-gpu.model"] = "Tesla-V100-SXM2-32GB"
            }
            // Each cluster measures a few peers (the prober's O(1) a round); the rest of the
            // fleet is estimated from coordinates.
            var latency: [String: Double] = [:]
            for other in Set([(c + 1) % count, (c + 2) % count, (c + count / 2) % count]) where other != c {
                latency["c\(other)"] = Double(1 + rng.below(40)) + Double(rng.below(100)) / 100
            }
            return NodeState(
                name: "c\(c)-n\(n)", ready: rng.below(50) != 0,
                allocatable: Resources(cpuMilli: cpu, memory: mem, gpu: gpus),
                requested: Resources(cpuMilli: cpu * Int64(rng.below(90)) / 100, memory: mem * Int64(rng.below(90)) / 100, gpu: gpus > 0 ? Int64(rng.below(Int(gpus))) : 0),
                labels: labels, latencyMs: latency)
        }
        var state = ClusterState(name: "c\(c)", kind: c == 0 ? .cloud : .edge, nodes: nodes)
        var vector = [Double](repeating: 0, count: VivaldiConfig().dimensions)
        vector[0] = Double(rng.below(50_000)) / 1e6
        vector[1] = Double(rng.below(50_000)) / 1e6
        state.coordinate = VivaldiCoordinate(vector: vector, height: 0.001, error: 0.2, adjustment: 0)
        return state
    }
}

/// Fleets for the decision benchmark: `bench.decision.fleets`, "CLUSTERSxNODES,...".
func decisionFleets(_ config: ConfigReader) throws -> [(clusters: Int, nodes: Int)] {
    try config.list("bench.decision.fleets", default: ["10x100", "100x100", "1000x100", "5000x20"]).map { spec in
        let parts = spec.split(separator: "x").compactMap { Int($0) }
        guard parts.count == 2, parts[0] >= 2, parts[1] >= 1 else {
            throw ConfigurationError(key: "bench.decision.fleets", reason: "'\(spec)' is not CLUSTERSxNODES")
        }
        return (parts[0], parts[1])
    }
}

func decisionBenchmark(_ config: ConfigReader) throws {
    let decisions = try config.int("bench.decisions", default: 2000)
    Console.line("(a) Decision time per request, as the scheduler takes it: the view's fresh clusters, then the policy (2% of nodes not ready, random load;")
    Console.line("    each cluster measured 3 peers, the rest estimated from coordinates). Best-first search beside the full walk over every node.")
    Console.line("  " + pad("policy", 24) + " " + lpad("clusters", 9) + " " + lpad("nodes", 6) + " " + lpad("p50 µs", 10) + " " + lpad("p99 µs", 10) + " " + lpad("max µs", 10)
                 + "   " + lpad("full walk p50", 14) + " " + lpad("p99 µs", 10))
    let workload = WorkloadRequirements(perReplica: Resources(cpuMilli: 500, memory: 512 << 20), replicas: 1)
    var gpuWorkload = WorkloadRequirements(perReplica: Resources(cpuMilli: 2000, memory: 4 << 30, gpu: 1), replicas: 1)
    gpuWorkload.accelerator = AcceleratorRequirement(kind: "nvidia-gpu", model: "V100")
    for (count, perCluster) in try decisionFleets(config) {
        let clusters = makeClusters(count, nodes: perCluster)
        let view = ClusterView(staleAfter: .seconds(3600))
        for c in clusters { view.update(c) }
        let names = clusters.map(\.name)
        let cases: [(String, PlacementInput)] = [
            ("GLowLatencyPriority", PlacementInput(policy: .lowLatency, requirements: workload, source: PlacementSource(cluster: "c1", node: "c1-n3"))),
            ("GMostRequestedPriority", PlacementInput(policy: .mostRequested, requirements: workload)),
            ("GMostRequested (GPU)", PlacementInput(policy: .mostRequested, requirements: gpuWorkload)),
            ("GMostAllocated", PlacementInput(policy: .mostAllocated, requirements: workload)),
            ("GLowLatency (project)", PlacementInput(policy: .lowLatency, requirements: workload, source: PlacementSource(cluster: "c1"),
                                                     allowedClusters: Set(names))),
            ("GSelectedCluster", PlacementInput(policy: .selectedCluster, requirements: workload, parameters: .object([
                "select_clusters": .array([.string(names[count / 2]), .array(names.prefix(5).map(JSONValue.string)), .string(names[count - 1])]),
            ]), source: PlacementSource(cluster: "c1"))),
            ("GSetClusters (capacity)", PlacementInput(policy: .setClusters, requirements: WorkloadRequirements(perReplica: workload.perReplica, replicas: 12),
                                                       parameters: .object(["clusters": .array(names.prefix(3).map(JSONValue.string)), "mode": .string("capacity")]))),
        ]
        var viewTimes: [Double] = []
        for _ in 0..<decisions {
            let start = ContinuousClock.now
            _ = view.fresh()
            viewTimes.append(millis(ContinuousClock.now - start) * 1000)
        }
        viewTimes.sort()
        Console.line("  " + pad("(the view's fresh list)", 24) + String(format: " %9d %6d %10.1f %10.1f %10.1f", count, perCluster,
                            percentile(viewTimes, 0.5), percentile(viewTimes, 0.99), viewTimes.last!))
        for (name, input) in cases {
            func run(pruning: Bool, _ n: Int) -> ([Double], Int, PlacementDecision?) {
                var times: [Double] = []
                times.reserveCapacity(n)
                var placed = 0
                var last: PlacementDecision?
                for _ in 0..<n {
                    let start = ContinuousClock.now
                    let d = Placer.decide(input, clusters: view.fresh(), pruning: pruning)
                    times.append(millis(ContinuousClock.now - start) * 1000)
                    if case .placed = d { placed += 1 }
                    last = d
                }
                return (times.sorted(), placed, last)
            }
            let (times, placed, fast) = run(pruning: true, decisions)
            let (full, _, reference) = run(pruning: false, max(20, decisions / 10))
            Console.line("  " + pad(name, 24) + String(format: " %9d %6d %10.1f %10.1f %10.1f   %14.1f %10.1f%@%@", count, perCluster,
                                percentile(times, 0.5), percentile(times, 0.99), times.last!, percentile(full, 0.5), percentile(full, 0.99),
                                (placed == decisions ? "" : "  (not placed!)") as NSString, (fast == reference ? "" : "  (differs from the full walk!)") as NSString))
        }
    }
}

// MARK: - message coding

/// Times `body` `n` times; returns the median and the 99th percentile in microseconds.
func timed(_ n: Int, _ body: () throws -> Void) rethrows -> (Double, Double) {
    var times: [Double] = []
    times.reserveCapacity(n)
    for _ in 0..<n {
        let start = ContinuousClock.now
        try body()
        times.append(millis(ContinuousClock.now - start) * 1000)
    }
    times.sort()
    return (percentile(times, 0.5), percentile(times, 0.99))
}

/// What the scheduler spends on each message it reads or writes, in the wire form the
/// services use (envelope JSON through EnvelopeCodec).
func codecBenchmark(_ config: ConfigReader) throws {
    let n = try config.int("bench.codec.iterations", default: 300)
    let nodes = try config.int("bench.e2e.nodes", default: 1000)
    let codec = EnvelopeCodec()
    Console.line("")
    Console.line("(c) Message coding per message (EnvelopeCodec and the message's own decoder; \(n) times each)")
    Console.line("  " + pad("message", 56) + " " + lpad("bytes", 8) + " " + lpad("p50 µs", 10) + " " + lpad("p99 µs", 10))
    func row(_ name: String, _ bytes: Int, _ t: (Double, Double)) {
        Console.line("  " + pad(name, 56) + String(format: " %8d %10.1f %10.1f", bytes, t.0, t.1))
    }
    let workload: JSONValue = .object([
        "apiVersion": .string("apps/v1"), "kind": .string("Deployment"), "metadata": .object(["name": .string("w1")]),
        "spec": .object(["replicas": .number(1), "template": .object(["spec": .object(["containers": .array([.object([
            "name": .string("w"), "image": .string("example/w:1"),
            "resources": .object(["requests": .object(["cpu": .string("10m"), "memory": .string("16Mi")])]),
        ])])])])]),
    ])
    let request = ScheduleRequest(requestID: "b-codec-1", policy: .mostRequested, userName: "bench", workspaceName: "w", projectName: "p1", workload: workload,
                                  parameters: .object(["source_cluster": .string("c0")]))
    let requestBytes = codec.encode(request.envelope(sourceCluster: "c0"))
    row("schedule request: decode, read, workload requirements", requestBytes.count, try timed(n) {
        let env = try codec.decode(requestBytes)
        let r = try ScheduleRequest.decode(msg: env.msg, key: "b-codec-1")
        _ = try WorkloadRequirements.extract(workload: r.workload, parameters: r.parameters)
    })
    let cmd = ApplyCommand(requestID: "b-codec-1", attempt: 1, namespace: "p1", workload: workload, node: "c0-n1", replicas: 1,
                           deadline: Date(), replyTo: Topics.schedulerReplies)
    let cmdEnvelope = Envelope(source: .cluster("scheduler"), target: .node(cluster: "c0", node: "c0-n1"), hcode: .applyMostRequested, lcode: .request, msg: cmd.msg)
    row("apply command (310): encode", codec.encode(cmdEnvelope).count, timed(n) { _ = codec.encode(cmdEnvelope) })
    let state = makeClusters(1, nodes: nodes)[0]
    let statusEnvelope = Envelope(source: .cluster(state.name), target: .cluster("scheduler"), hcode: .clusterStatus, lcode: .request, msg: state.json)
    let statusBytes = codec.encode(statusEnvelope)
    row("cluster status (600), \(nodes) nodes: encode (agent)", statusBytes.count, timed(max(10, n / 10)) { _ = codec.encode(Envelope(
        source: .cluster(state.name), target: .cluster("scheduler"), hcode: .clusterStatus, lcode: .request, msg: state.json)) })
    row("cluster status (600), \(nodes) nodes: decode (scheduler)", statusBytes.count, try timed(max(10, n / 10)) {
        _ = try ClusterState.decode(try codec.decode(statusBytes).msg)
    })
    // A delta instead: 1 % of the nodes changed since the report before (a placement's worth).
    var changed = state.nodes
    for i in stride(from: 0, to: changed.count, by: 100) { changed[i].requested.cpuMilli += 100 }
    let next = ClusterState(name: state.name, nodes: changed, sequence: 2)
    let delta = ClusterDelta.between(state.nodes, next, epoch: "bench", baseSequence: 1)
    let deltaBytes = codec.encode(Envelope(source: .cluster(state.name), target: .cluster("scheduler"), hcode: .clusterStatus, lcode: .request, msg: delta.json))
    row("cluster status delta (600), \(delta.changed.count) of \(nodes) nodes changed: encode", deltaBytes.count, timed(n) {
        _ = codec.encode(Envelope(source: .cluster(state.name), target: .cluster("scheduler"), hcode: .clusterStatus, lcode: .request,
                                  msg: ClusterDelta.between(state.nodes, next, epoch: "bench", baseSequence: 1).json))
    })
    var assembler = StatusAssembler()
    _ = assembler.apply(.snapshot(state, epoch: "bench"))
    row("cluster status delta (600): decode and apply (scheduler)", deltaBytes.count, try timed(max(10, n / 10)) {
        var a = assembler
        _ = a.apply(try ClusterReport.decode(try codec.decode(deltaBytes).msg))
    })
    // Status traffic per cluster per minute at the default interval (5 s: 12 reports), from
    // the sizes measured above: every report a snapshot, against one snapshot and 11 deltas.
    let perMinuteSnapshots = 12 * statusBytes.count, perMinuteDeltas = statusBytes.count + 11 * deltaBytes.count
    print(String(format: "status traffic per cluster per minute, %d nodes: snapshots only %.1f KB in 12 messages; snapshot + deltas %.1f KB in 12 messages (%.1fx less); at 5,000 clusters %.1f MB against %.1f MB a minute",
                 nodes, Double(perMinuteSnapshots) / 1000, Double(perMinuteDeltas) / 1000, Double(perMinuteSnapshots) / Double(perMinuteDeltas),
                 Double(perMinuteSnapshots) * 5000 / 1e6, Double(perMinuteDeltas) * 5000 / 1e6))
}

// MARK: - end to end

/// CPU time of the run's processes, from /proc: the broker, the scheduler and the agents
/// (children of this program), PostgreSQL (every process named postgres) and this program.
struct CPUSample {
    let at = ContinuousClock.now
    var ticks: [String: Int] = [:]
    var machine: (busy: Int, total: Int) = (0, 0)

    init(broker: ChildProcess, children: [ChildProcess]) {
        ticks["broker"] = Self.ticks(broker.pid)
        let counts = Dictionary(children.map { ($0.name, 1) }, uniquingKeysWith: +)
        for c in children { ticks[counts[c.name]! > 1 ? "\(c.name) ×\(counts[c.name]!)" : c.name, default: 0] += Self.ticks(c.pid) }
        ticks["PostgreSQL"] = Self.postgres()
        ticks["benchmark"] = Self.ticks(getpid())
        if let cpu = (try? String(contentsOfFile: "/proc/stat", encoding: .utf8))?.split(separator: "\n").first {
            let f = cpu.split(separator: " ").dropFirst().compactMap { Int($0) }
            if f.count >= 5 { machine = (f.reduce(0, +) - f[3] - f[4], f.reduce(0, +)) }
        }
    }

    /// utime + stime of a process, in clock ticks (0 when it is gone).
    static func ticks(_ pid: pid_t) -> Int {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let f = stat[stat.index(after: close)...].split(separator: " ")
        return f.count > 12 ? (Int(f[11]) ?? 0) + (Int(f[12]) ?? 0) : 0
    }

    static func postgres() -> Int {
        let pids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.compactMap { pid_t($0) } ?? []
        return pids.filter { (try? String(contentsOfFile: "/proc/\($0)/comm", encoding: .utf8)) == "postgres\n" }.map(ticks).reduce(0, +)
    }

    /// What each process costs at rest (its share of a core between `idleFrom` and
    /// `idleTo`) and what each item (a request) adds on top since `earlier`, and the cores
    /// both take at `rate` items a second.
    func perItem(since earlier: CPUSample, items: Int, idleFrom: CPUSample, idleTo: CPUSample, rate: Double) -> String {
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        let idleWall = max(0.001, seconds(idleTo.at - idleFrom.at)), wall = seconds(at - earlier.at)
        let rows = ticks.keys.map { name -> (name: String, rest: Double, ms: Double) in
            let rest = Double((idleTo.ticks[name] ?? 0) - (idleFrom.ticks[name] ?? 0)) / hz / idleWall
            let used = Double((ticks[name] ?? 0) - (earlier.ticks[name] ?? 0)) / hz
            return (name, rest, max(0, used - rest * wall) * 1000 / Double(max(1, items)))
        }.sorted { $0.ms > $1.ms }
        let rest = rows.reduce(0) { $0 + $1.rest }, each = rows.reduce(0) { $0 + $1.ms }
        return "at rest (the fleet reporting, no requests): " + rows.map { String(format: "%@ %.0f%%", $0.name as NSString, $0.rest * 100) }.joined(separator: ", ")
            + " of a core; each request adds " + rows.map { String(format: "%@ %.2f ms", $0.name as NSString, $0.ms) }.joined(separator: ", ")
            + String(format: "; %.0f requests/s would take %.1f + %.1f = %.1f cores (this machine has %d)",
                     rate, rest, each * rate / 1000, rest + each * rate / 1000, ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Each process's share of one core since `earlier`, and how busy the machine was.
    func since(_ earlier: CPUSample) -> String {
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        let wall = seconds(at - earlier.at)
        let shares = ticks.map { (name: $0.key, share: Double($0.value - (earlier.ticks[$0.key] ?? 0)) / hz / wall) }.sorted { $0.share > $1.share }
        let busy = Double(machine.busy - earlier.machine.busy) / Double(max(1, machine.total - earlier.machine.total))
        return shares.map { String(format: "%@ %.0f%%", $0.name as NSString, $0.share * 100) }.joined(separator: ", ")
            + String(format: " of one core; the machine %.0f%% busy on %d cores", busy * 100, ProcessInfo.processInfo.activeProcessorCount)
    }
}

/// Publish times and latencies, shared with delivery callbacks and the result reader.
final class Timings: Sendable {
    private let start = ContinuousClock.now
    private let state = Mutex<(sent: [String: ContinuousClock.Instant], latencies: [Double], bySecond: [Int: [Double]], last: ContinuousClock.Instant?)>(
        ([:], [], [:], nil))
    /// Wall-clock times (seconds since 1970) of each send and receipt, to set beside
    /// PostgreSQL's timestamps of the same request.
    private let wall = Mutex<(sent: [String: Double], received: [String: Double])>(([:], [:]))
    func sent(_ id: String) {
        let w = Date().timeIntervalSince1970
        state.withLock { $0.sent[id] = .now }
        wall.withLock { $0.sent[id] = w }
    }
    func received(_ id: String) {
        let now = ContinuousClock.now
        let w = Date().timeIntervalSince1970
        let counted = state.withLock { s in
            guard let t = s.sent.removeValue(forKey: id) else { return false }
            let ms = millis(now - t)
            s.latencies.append(ms)
            s.bySecond[Int(max(0, (t - start).components.seconds)), default: []].append(ms)
            s.last = now
            return true
        }
        if counted { wall.withLock { $0.received[id] = w } }
    }
    var wallClock: (sent: [String: Double], received: [String: Double]) { wall.withLock { $0 } }
    var count: Int { state.withLock { $0.latencies.count } }
    var latencies: [Double] { state.withLock { $0.latencies.sorted() } }
    /// Latencies by the second of the measurement in which each message was sent, in order.
    var latenciesBySecond: [[Double]] {
        state.withLock { s in s.bySecond.keys.sorted().map { s.bySecond[$0]!.sorted() } }
    }
    var last: ContinuousClock.Instant? { state.withLock { $0.last } }
}

/// The measurement under way, for the readers.
final class CurrentTimings: Sendable {
    private let state = Mutex<Timings?>(nil)
    func get() -> Timings? { state.withLock { $0 } }
    func set(_ t: Timings?) { state.withLock { $0 = t } }
}

func e2eBenchmark(_ config: ConfigReader, logger: Logger) async throws {
    let total = try config.int("bench.e2e.requests", default: 20_000)
    let rate = try config.int("bench.e2e.rate", default: 1000)
    let rateSeconds = try config.int("bench.e2e.seconds", default: 10)
    let clusterCount = try config.int("bench.e2e.clusters", default: 3)
    let nodeCount = try config.int("bench.e2e.nodes", default: 1000)
    let port = try config.port("bench.kafka.port", default: 19093)
    let runID = String(RequestID.make().prefix(6))
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gedge-bench-\(runID)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    Console.line("")
    Console.line("(b) End to end: \(clusterCount) simulated clusters of \(nodeCount) nodes (pods start at once), 1 scheduler, dev broker process, PostgreSQL; logs in \(dir.path)")

    // The broker.
    let bootstrapFile = dir.appendingPathComponent("bootstrap")
    let topics = [
        "\(Topics.scheduleRequests):8", "\(Topics.schedulerReplies):8", "\(Topics.scheduleResults):4", "\(Topics.clusterStatus):1",
        "\(Topics.deadLetter(for: Topics.scheduleRequests)):1", "\(Topics.deadLetter(for: Topics.schedulerReplies)):1", "pt-in:8", "pt-out:4",
        // The four-hop passthrough: the request's path (requests 8, commands 4, replies 8, results 4) without the work.
        "pt4-in:8", "pt4-a:4", "pt4-b:8", "pt4-out:4",
    ] + (0..<clusterCount).map { "\(Topics.agentCommands(cluster: "c\($0)")):4" }
    let broker = try ChildProcess("gedge-kafka-dev", ["--kafka-dev-port", String(port), "--kafka-dev-brokers", "1", "--log-level", "error",
                                                      "--kafka-dev-topics", topics.joined(separator: ","), "--kafka-dev-bootstrap-file", bootstrapFile.path],
                           logFile: dir.appendingPathComponent("kafka.log").path)
    defer { broker.stop() }
    try await broker.waitForFile(bootstrapFile.path)
    let brokers = "127.0.0.1:\(port)"
    let fetchWait = try config.int("bench.fetch.wait.ms", default: 10)
    let kafka = KafkaConfiguration(brokers: brokers, clientID: "bench", properties: ["fetch.wait.max.ms": String(fetchWait)])

    // PostgreSQL: a schema of its own.
    let db = try await BenchSchema.create(config, name: "bench_\(runID)", logger: logger)
    let (pool, schemaURL) = (db.pool, db.url)
    try await RequestQueue(pool: pool, policy: QueuePolicy()).bind(project: "p1", clusters: (0..<clusterCount).map { "c\($0)" })

    // Topology and processes.
    var clustersJSON: [JSONValue] = []
    for c in 0..<clusterCount {
        var latency: [String: JSONValue] = [:]
        for o in 0..<clusterCount where o != c { latency["c\(o)"] = .number(Double(1 + (c + o) % 7)) }
        clustersJSON.append(.object(["name": .string("c\(c)"), "kind": .string("edge"), "node_groups": .array([.object([
            "prefix": .string("c\(c)-n"), "count": .number(Double(nodeCount)), "cpu": .string("64"), "memory": .string("256Gi"), "latency_ms": .object(latency),
        ])])]))
    }
    let topoFile = dir.appendingPathComponent("topology.json")
    try Data(JSONValue.object(["pod_start_ms": .number(0), "clusters": .array(clustersJSON)]).serialized()).write(to: topoFile)
    let common = ["--kafka-brokers", brokers, "--log-level", "warning", "--http-host", "127.0.0.1", "--http-port", "0",
                  "--kafka-rdkafka-fetch-wait-max-ms", String(fetchWait)]
    var children: [ChildProcess] = []
    defer { ChildProcess.stop(children) }
    for c in 0..<clusterCount {
        children.append(try ChildProcess("agent", common + ["--agent-cluster", "c\(c)", "--agent-driver", "simulated", "--agent-topology", topoFile.path,
                                                      "--agent-status-min-interval", "1s", "--agent-metrics-interval", "0s"],
                                                logFile: dir.appendingPathComponent("agent-c\(c).log").path))
    }
    children.append(try ChildProcess("scheduler", common + ["--postgres-url", schemaURL, "--scheduler-instance", "bench", "--scheduler-producers", "trusted"], logFile: dir.appendingPathComponent("scheduler.log").path))

    let producerConfig: KafkaProducerConfiguration = {
        var p = KafkaProducerConfiguration(client: kafka)
        p.lingerMs = 1
        return p
    }()
    let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
    let codec = EnvelopeCodec()

    // Readers of the results and of the passthrough's output: one each for the whole run,
    // from the topic's start (the broker is new), joined before anything is sent. (A reader
    // made per measurement with `latest` would miss what is produced before its position
    // is resolved.) Each message goes to the measurement under way.
    let current = CurrentTimings()
    func reader(_ topic: String) throws -> (KafkaConsumer, Task<Void, Never>) {
        var c = KafkaConsumerConfiguration(client: kafka, groupID: "bench-\(topic)-\(runID)", topics: [topic])
        c.autoOffsetReset = "earliest"
        c.bufferCapacity = 4096
        let consumer = try KafkaConsumer(configuration: c, logger: logger)
        let task = Task {
            for await m in consumer {
                if let k = m.keyString, let t = current.get() { t.received(k) }
            }
        }
        return (consumer, task)
    }
    func joined(_ consumer: KafkaConsumer) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? consumer.assignment())?.isEmpty ?? true {
            guard ContinuousClock.now < deadline else { throw ConfigurationError(key: "bench", reason: "a reader did not join its group") }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
    let readers = [try reader("pt-out"), try reader("pt4-out"), try reader(Topics.scheduleResults)]
    for (c, _) in readers { try await joined(c) }

    // The passthroughs: consume a topic, produce each message to the next, no work; each
    // hop its own consumer and producer, as each hop of a request is its own process's.
    // Two hops (pt-in -> pt-out), and four along the request's path
    // (requests -> commands -> replies -> results, as pt4-in -> pt4-a -> pt4-b -> pt4-out).
    func forward(_ from: String, _ to: String) throws -> (KafkaConsumer, KafkaProducer, Task<Void, Never>) {
        var c = KafkaConsumerConfiguration(client: kafka, groupID: "bench-pt-\(from)-\(runID)", topics: [from])
        c.autoOffsetReset = "earliest"  // the topic is new: nothing sent is skipped
        c.bufferCapacity = 4096
        let consumer = try KafkaConsumer(configuration: c, logger: logger)
        let out = try KafkaProducer(configuration: producerConfig, logger: logger)
        let task = Task {
            while true {
                let batch = await consumer.nextBatch(max: 500)
                if batch.isEmpty { break }
                for m in batch {
                    while true {
                        do {
                            try out.enqueue(KafkaRecord(topic: to, key: m.key, value: m.value)) { _ in }
                            break
                        } catch { try? await Task.sleep(for: .microseconds(200)) }
                    }
                    try? consumer.storeOffset(m)
                }
            }
        }
        return (consumer, out, task)
    }
    let forwarders = [try forward("pt-in", "pt-out"), try forward("pt4-in", "pt4-a"), try forward("pt4-a", "pt4-b"), try forward("pt4-b", "pt4-out")]

    // The agents report within a second; the warm-up below waits for its requests to end.
    try await Task.sleep(for: .seconds(3))

    func request(_ i: Int, _ tag: String) -> (String, [UInt8]) {
        let id = "b-\(runID)-\(tag)-\(i)"
        let policy: SchedulingPolicy = i % 4 == 0 ? .lowLatency : (i % 4 == 1 ? .mostAllocated : .mostRequested)
        let workload: JSONValue = .object([
            "apiVersion": .string("apps/v1"), "kind": .string("Deployment"), "metadata": .object(["name": .string("w\(i)")]),
            "spec": .object(["replicas": .number(1), "template": .object(["spec": .object(["containers": .array([.object([
                "name": .string("w"), "image": .string("example/w:1"),
                "resources": .object(["requests": .object(["cpu": .string("10m"), "memory": .string("16Mi")])]),
            ])])])])]),
        ])
        let r = ScheduleRequest(requestID: id, policy: policy, userName: "bench", workspaceName: "w", projectName: "p1", workload: workload,
                                parameters: .object(["source_cluster": .string("c0")]))
        return (id, codec.encode(r.envelope(sourceCluster: "c0")))
    }

    func publish(_ topic: String, _ id: String, _ bytes: [UInt8], _ timings: Timings) async {
        timings.sent(id)
        while true {
            do {
                try producer.enqueue(KafkaRecord(topic: topic, key: id, value: bytes)) { _ in }
                return
            } catch { try? await Task.sleep(for: .microseconds(200)) }
        }
    }

    /// Sends `n` messages, at `perSecond` if given, else as fast as possible; waits for them all.
    func drive(_ topic: String, _ tag: String, n: Int, perSecond: Int?) async throws -> (Duration, [Double], Int, [[Double]], Timings) {
        let timings = Timings()
        current.set(timings)
        defer { current.set(nil) }
        let messages = (0..<n).map { request($0, tag) }
        let start = ContinuousClock.now
        for (i, (id, bytes)) in messages.enumerated() {
            if let perSecond {
                let due = start + .nanoseconds(Int64(i) * 1_000_000_000 / Int64(perSecond))
                if due > .now { try await Task.sleep(until: due, clock: .continuous) }
            }
            await publish(topic, id, bytes, timings)
        }
        let deadline = ContinuousClock.now + .seconds(120)
        while timings.count < n && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        let elapsed = (timings.last ?? .now) - start
        return (elapsed, timings.latencies, timings.count, timings.latenciesBySecond, timings)
    }

    for (c, _, _) in forwarders { try await joined(c) }
    func line(_ name: String, _ r: (Duration, [Double], Int, [[Double]], Timings), _ n: Int) {
        let (elapsed, lat, got, _, _) = r
        Console.line("  " + pad(name, 32) + String(format: " %6d/%-6d in %6.2f s %9.0f /s   p50 %7.2f ms  p99 %7.2f ms", got, n, seconds(elapsed),
                            Double(got) / seconds(elapsed), percentile(lat, 0.5), percentile(lat, 0.99)))
    }
    // Warm up both paths (group joins, topic metadata, first PostgreSQL plans).
    _ = try await drive("pt-in", "warm-pt", n: 200, perSecond: 1000)
    _ = try await drive("pt4-in", "warm-pt4", n: 200, perSecond: 1000)
    _ = try await drive(Topics.scheduleRequests, "warm", n: 500, perSecond: 1000)
    if (try? config.bool("bench.analyze", default: false)) == true { try await pool.execute("ANALYZE") }

    Console.line("  sustained: \(total) requests published as fast as possible; latency here includes queueing")
    let ptBurst = try await drive("pt-in", "pt", n: total, perSecond: nil)
    line("Kafka passthrough, 2 hops", ptBurst, total)
    let pt4Burst = try await drive("pt4-in", "pt4", n: total, perSecond: nil)
    line("Kafka passthrough, 4 hops", pt4Burst, total)
    let cpuBurstBefore = CPUSample(broker: broker, children: children)
    let e2eBurst = try await drive(Topics.scheduleRequests, "burst", n: total, perSecond: nil)
    let cpuBurstAfter = CPUSample(broker: broker, children: children)
    line("schedule request -> result read", e2eBurst, total)
    Console.line("  sustained, CPU: " + cpuBurstAfter.since(cpuBurstBefore))
    // Placed as they arrived (one row write after the insert), or through the queue once the
    // in-flight cap (scheduler.queue.max.inflight) was reached (three: claimed, recorded, completed).
    let onArrival = try await pool.query(
        "SELECT count(*) AS n FROM schedule_request_events WHERE request_id LIKE $1 AND state = 'dispatched' AND reason LIKE '%(empty: at once)%'",
        [.text("b-\(runID)-burst-%")])[0].decode("n", as: Int.self)
    Console.line("  sustained: \(onArrival) of \(total) placed as they arrived, \(total - onArrival) through the queue"
        + (onArrival < total ? " (the in-flight cap was reached)" : ""))
    let offered = rate * rateSeconds
    Console.line("  offered load: \(rate) requests/s for \(rateSeconds) s, latency from publish to the result message (4 hops)")
    let ptRate = try await drive("pt-in", "pt-rate", n: offered, perSecond: rate)
    line("Kafka passthrough, 2 hops", ptRate, offered)
    let pt4Rate = try await drive("pt4-in", "pt4-rate", n: offered, perSecond: rate)
    line("Kafka passthrough, 4 hops", pt4Rate, offered)
    let cpuBefore = CPUSample(broker: broker, children: children)
    let e2eRate = try await drive(Topics.scheduleRequests, "rate", n: offered, perSecond: rate)
    let cpuAfter = CPUSample(broker: broker, children: children)
    line("schedule request -> result read", e2eRate, offered)

    // Where the time goes at the offered rate, end to end: the benchmark's clock at publish
    // and at the result, PostgreSQL's at received and completed (one machine, one clock).
    let recorded = try await pool.query(
        """
        SELECT request_id, state, extract(epoch FROM at)::float8 AS t FROM schedule_request_events
        WHERE request_id LIKE $1 AND state IN ('received', 'completed')
        """, [.text("b-\(runID)-rate-%")])
    var received: [String: Double] = [:]
    var completed: [String: Double] = [:]
    for row in recorded {
        let id = try row.decode("request_id", as: String.self)
        let t = try row.decode("t", as: Double.self)
        if try row.decode("state", as: String.self) == "received" { received[id] = t } else { completed[id] = t }
    }
    let clock = e2eRate.4.wallClock
    var segments: [(String, [Double])] = [("publish -> received (Kafka hop 1)", []), ("received -> completed (scheduler, 2 hops, agent)", []),
                                          ("completed -> result read (Kafka hop 4)", [])]
    var toCompleted: [Double] = []
    for (id, sent) in clock.sent {
        guard let r = received[id], let c = completed[id], let done = clock.received[id] else { continue }
        segments[0].1.append((r - sent) * 1000)
        segments[1].1.append((c - r) * 1000)
        segments[2].1.append((done - c) * 1000)
        toCompleted.append((c - sent) * 1000)
    }
    toCompleted.sort()
    Console.line("  " + pad("schedule request -> completed", 32) + String(format: " %6d/%-6d   (3 hops; PostgreSQL's clock)   p50 %7.2f ms  p99 %7.2f ms",
                                                                            toCompleted.count, offered, percentile(toCompleted, 0.5), percentile(toCompleted, 0.99)))
    func bySecond(_ r: (Duration, [Double], Int, [[Double]], Timings)) -> String {
        r.3.enumerated().map { String(format: "%d: %.0f/%.0f", $0.offset + 1, percentile($0.element, 0.5), percentile($0.element, 0.99)) }.joined(separator: ", ")
    }
    Console.line("  at the offered rate, by second of sending (p50/p99 ms), schedule requests: " + bySecond(e2eRate))
    Console.line("  at the offered rate, by second of sending (p50/p99 ms), 4-hop passthrough: " + bySecond(pt4Rate))
    Console.line("  at the offered rate, CPU: " + cpuAfter.since(cpuBefore))
    Console.line("  at the offered rate, each segment (p50/p99 ms): " + segments.map {
        let v = $0.1.sorted()
        return String(format: "%@ %.1f/%.1f", $0.0 as NSString, percentile(v, 0.5), percentile(v, 0.99))
    }.joined(separator: "; "))

    // Where the time goes at the offered rate: each lifecycle step after the one before it.
    let steps = try await pool.query(
        """
        SELECT state, count(*) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99
        FROM (SELECT state, extract(epoch FROM at - lag(at) OVER (PARTITION BY request_id ORDER BY id)) * 1000 AS ms
              FROM schedule_request_events WHERE request_id LIKE $1) x
        WHERE ms IS NOT NULL GROUP BY state ORDER BY p50
        """, [.text("b-\(runID)-rate-%")])
    Console.line("  at the offered rate, time from the previous step (PostgreSQL clock): " + (try steps.map {
        String(format: "%@ p50 %.1f / p99 %.1f ms", try $0.decode("state", as: String.self) as NSString, try $0.decode("p50", as: Double.self), try $0.decode("p99", as: Double.self))
    }).joined(separator: "; "))
    let counts = try await pool.query("SELECT state, count(*) AS n FROM schedule_requests GROUP BY state ORDER BY state")
    Console.line("  requests by state: " + (try counts.map { "\(try $0.decode("state", as: String.self)) \(try $0.decode("n", as: Int.self))" }).joined(separator: ", "))
    let events = try await pool.query("SELECT count(*) AS n FROM schedule_request_events")[0].decode("n", as: Int.self)
    Console.line("  lifecycle events written: \(events)")

    for (c, out, task) in forwarders {
        c.stopPolling()
        await task.value
        try? await c.close()
        await out.shutdown()
    }
    for (c, task) in readers {
        c.stopPolling()
        await task.value
        try? await c.close()
    }
    await producer.shutdown()
    try await db.drop()
}

func runBench() async throws {
    let config = try ConfigReader()
    try config.check(program: "gedge-bench-scheduler")
    GEdgeLogging.bootstrapConsole(level: .error)
    let logger = Logger(label: "gedge-bench-scheduler")
    let only = config.string("bench.only")
    if let only, !["decision", "codec", "e2e", "fleet"].contains(only) {
        throw ConfigurationError(key: "bench.only", reason: "'\(only)' is not decision, codec, e2e or fleet")
    }
    if only == nil || only == "decision" { try decisionBenchmark(config) }
    if only == nil || only == "codec" { try codecBenchmark(config) }
    if only == nil || only == "e2e" { try await e2eBenchmark(config, logger: logger) }
    if only == nil || only == "fleet" { try await fleetBenchmark(config, logger: logger) }
}

ChildProcess.stopAllOnInterrupt()
await Console.runMain("gedge-bench-scheduler") { try await runBench() }
