import Foundation
import GEdgeCore
import GEdgeFleet
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePlacement
import GEdgePostgres
import GEdgeScheduler
import Logging
import Synchronization

// (d) Edge scale with a simulated fleet (GEdgeFleet): thousands of clusters in this process.
//   - coordinates against the ground truth after a warm-up, and GLowLatency's regret;
//   - status traffic per cluster per minute, deltas beside snapshots only;
//   - end to end against a dev broker, PostgreSQL and a scheduler process: the time to a
//     complete view, sustained requests/s, the view's staleness while it runs, the
//     scheduler's memory, and the time to a complete view after the scheduler restarts.
//
// Keys: bench.fleet.clusters (5000), bench.fleet.nodes (20), bench.fleet.requests (5000),
// bench.fleet.warmup.rounds (300: ten minutes of probing at the 2 s period), bench.fleet.pairs (20000), bench.fleet.regret.decisions
// (2000), bench.fleet.kafka.port (19094), bench.fleet.e2e (true), bench.fleet.brokers (3: the dev stack's).

/// A free TCP port on loopback (bound, read, closed).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Resident and peak memory of a process, MiB (VmRSS, VmHWM).
func memory(_ pid: pid_t) -> (rss: Double, peak: Double) {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    func kb(_ field: String) -> Double {
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }) else { return .nan }
        return Double(line.split(separator: " ").dropFirst().first.map(String.init) ?? "") ?? .nan
    }
    return (kb("VmRSS") / 1024, kb("VmHWM") / 1024)
}

/// A gauge's value from a scheduler's /metrics (the first series whose labels contain `labels`).
let scraper = HTTPClient(configuration: HTTPClientConfiguration(), logger: Logger(label: "bench-scrape"))

func scrape(_ port: Int, _ name: String, _ labels: String = "") async -> Double? {
    await scrape(port, [(name, labels)])?.first ?? nil
}

/// Several gauges from one read of /metrics (each read renders every series the scheduler
/// keeps, which the scheduler pays for while it is measured).
func scrape(_ port: Int, _ series: [(name: String, labels: String)]) async -> [Double?]? {
    guard let r = try? await scraper.execute(HTTPRequest(url: "http://127.0.0.1:\(port)/metrics")), r.isSuccess else { return nil }
    let lines = String(decoding: r.body, as: UTF8.self).split(separator: "\n")
    return series.map { (name, labels) in
        for line in lines where line.hasPrefix(name) && (labels.isEmpty || line.contains(labels)) {
            let rest = line.dropFirst(name.count)
            guard rest.first == " " || rest.first == "{" else { continue }
            return Double(line.split(separator: " ").last ?? "")
        }
        return nil
    }
}

func fleetBenchmark(_ config: ConfigReader, logger: Logger) async throws {
    let clusterCount = try config.int("bench.fleet.clusters", default: 5000)
    let nodeCount = try config.int("bench.fleet.nodes", default: 20)
    let total = try config.int("bench.fleet.requests", default: 5000)
    let rounds = try config.int("bench.fleet.warmup.rounds", default: 300)
    let pairs = try config.int("bench.fleet.pairs", default: 20_000)
    let regretDecisions = try config.int("bench.fleet.regret.decisions", default: 2000)
    let port = try config.port("bench.fleet.kafka.port", default: 19094)
    let brokerCount = try config.int("bench.fleet.brokers", default: 3)
    guard (1...32).contains(brokerCount) else { throw ConfigurationError(key: "bench.fleet.brokers", reason: "\(brokerCount) is not 1 to 32") }
    // Read now, not after the warm-up: a bad value ends the run before it starts.
    let perConsumer = try config.int("bench.fleet.topics.per.consumer", default: FleetRunner.defaultTopicsPerConsumer)
    guard (1...5_000).contains(perConsumer) else {
        throw ConfigurationError(key: "bench.fleet.topics.per.consumer", reason: "\(perConsumer) is not 1 to 5,000")
    }
    let fetchWait = try config.duration("bench.fleet.fetch.wait", default: .milliseconds(500))
    guard fetchWait >= .milliseconds(1), fetchWait <= .seconds(10) else {
        throw ConfigurationError(key: "bench.fleet.fetch.wait", reason: "\(fetchWait) is not 1 ms to 10 s")
    }
    let consumers = (perConsumer: perConsumer, fetchWait: fetchWait)
    let endToEnd = try config.bool("bench.fleet.e2e", default: true)
    let runID = String(RequestID.make().prefix(6)).lowercased()
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gedge-bench-fleet-\(runID)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let settings = FleetSettings(clusters: clusterCount, nodesPerCluster: nodeCount, prefix: "bf\(runID.filter(\.isLetter).prefix(4))")
    try settings.validate()
    Console.line("")
    Console.line("(d) Edge scale: a simulated fleet of \(clusterCount) clusters × \(nodeCount) nodes in this process (GEdgeFleet: \(settings.regions) regions, "
                 + "access links, routes 0-30 % longer than straight, ±5 % noise and 1 in 20 samples queued); logs in \(dir.path)")

    // (d1) Coordinates and regret, in process.
    let fleet = Fleet(settings: settings)
    await fleet.fillBackground()
    let warmStart = ContinuousClock.now
    // The warm-up's periods as they would pass (a measurement stays fresh for 30 of them),
    // ending now: the rounds run faster here than the period.
    let period = settings.latencyInterval
    let warmedAt = warmStart
    for r in 0..<rounds { fleet.probeRound(now: warmedAt - period * (rounds - 1 - r)) }
    let warm = ContinuousClock.now - warmStart
    var g = SeededRandom(seed: 7)
    var errors: [Double] = []
    for _ in 0..<pairs {
        let a = Int.random(in: 0..<clusterCount, using: &g), b = Int.random(in: 0..<clusterCount, using: &g)
        guard a != b else { continue }
        let truth = fleet.truth.rtt(a, b)
        errors.append(abs(fleet.estimate(a, b) - truth) / truth)
    }
    errors.sort()
    Console.line(String(format: "  coordinates after %d probe periods (%d probes per cluster a period, %.1f s here): median relative error %.1f %%, p90 %.1f %%, p99 %.1f %% over %d pairs (target: median ≤ 15 %%)",
                        rounds, settings.latencyProbes, seconds(warm), percentile(errors, 0.5) * 100, percentile(errors, 0.9) * 100, percentile(errors, 0.99) * 100, errors.count))
    var states: [ClusterState] = []
    for i in 0..<clusterCount { states.append(await fleet.state(i, now: warmedAt)) }
    let view = ClusterView(staleAfter: .seconds(3600))
    for s in states { view.update(s) }
    let names = states.map(\.name)
    let req = WorkloadRequirements(perReplica: Resources(cpuMilli: 2000, memory: 4 << 30), replicas: 1)
    var regrets: [Double] = [], randomRegrets: [Double] = []
    let feasible = states.map { s in s.nodes.contains { NodeFilter.check($0, req, copies: 1) == nil } }
    for _ in 0..<regretDecisions {
        let source = Int.random(in: 0..<clusterCount, using: &g)
        var allowed = Set(names)
        allowed.remove(names[source])
        let input = PlacementInput(policy: .lowLatency, requirements: req, source: PlacementSource(cluster: names[source]), allowedClusters: allowed)
        guard case .placed(let plans) = Placer.decide(input, clusters: view.fresh()), let chosen = fleet.index(of: plans[0].parts[0].cluster) else { continue }
        var best = Double.infinity
        for c in 0..<clusterCount where c != source && feasible[c] { best = min(best, fleet.truth.rtt(source, c)) }
        regrets.append(fleet.truth.rtt(source, chosen) / best)
        var other = Int.random(in: 0..<clusterCount, using: &g)
        while other == source || !feasible[other] { other = Int.random(in: 0..<clusterCount, using: &g) }
        randomRegrets.append(fleet.truth.rtt(source, other) / best)
    }
    regrets.sort()
    randomRegrets.sort()
    Console.line(String(format: "  GLowLatencyPriority regret (true round trip of the cluster chosen over the best feasible one, the source excluded), %d decisions: "
                        + "median %.3f, p90 %.3f, p99 %.3f; best chosen %.0f %% (target: median ≤ 1.1, p90 ≤ 1.5); a random feasible cluster: median %.1f",
                        regrets.count, percentile(regrets, 0.5), percentile(regrets, 0.9), percentile(regrets, 0.99),
                        Double(regrets.filter { $0 <= 1.0000001 }.count) / Double(max(1, regrets.count)) * 100, percentile(randomRegrets, 0.5)))

    // (d2) Status traffic per cluster per minute at the default interval, in process: the same
    // fleet's next 12 reports each (deltas between snapshots), beside a fleet that sends
    // only snapshots.
    var snapshotsOnly = settings
    snapshotsOnly.snapshotEvery = 0
    let other = Fleet(settings: snapshotsOnly)
    await other.fillBackground()
    for _ in 0..<5 { other.probeRound() }
    var bytes = (delta: 0, snapshot: 0)
    for _ in 0..<12 {
        for i in 0..<clusterCount {
            bytes.delta += await fleet.report(i).bytes.count
            bytes.snapshot += await other.report(i).bytes.count
        }
    }
    let perMinute = Double(60) / (Double(settings.statusInterval.milliseconds) / 1000)
    let scale = perMinute / 12 / Double(clusterCount)
    Console.line(String(format: "  status traffic per cluster per minute (a report every %.0f s, %.0f %% of nodes changing between reports): deltas %.1f KB in %.0f messages; "
                        + "snapshots only %.1f KB in %.0f messages (%.1fx more); at %d clusters %.1f MB against %.1f MB a minute",
                        Double(settings.statusInterval.milliseconds) / 1000, settings.churn * 100, Double(bytes.delta) * scale / 1000, perMinute,
                        Double(bytes.snapshot) * scale / 1000, perMinute, Double(bytes.snapshot) / Double(max(1, bytes.delta)), clusterCount,
                        Double(bytes.delta) * scale * Double(clusterCount) / 1e6, Double(bytes.snapshot) * scale * Double(clusterCount) / 1e6))

    // (d3) End to end.
    guard endToEnd else { return }
    try await fleetEndToEnd(config, fleet: fleet, dir: dir, port: port, brokerCount: brokerCount, consumers: consumers, total: total, logger: logger)
}

func fleetEndToEnd(_ config: ConfigReader, fleet: Fleet, dir: URL, port: Int, brokerCount: Int, consumers: (perConsumer: Int, fetchWait: Duration), total: Int,
                   logger: Logger) async throws {
    let clusterCount = fleet.count
    let bootstrapFile = dir.appendingPathComponent("bootstrap")
    let topics = [
        "\(Topics.scheduleRequests):8", "\(Topics.schedulerReplies):8", "\(Topics.scheduleResults):4",
        // The mock cluster keeps about 5 MB of a partition: a fleet's reports (keyed by
        // cluster, so each cluster's stay in order) are spread over 16 for a minute's.
        "\(Topics.clusterStatus):16",
        "\(Topics.deadLetter(for: Topics.scheduleRequests)):1", "\(Topics.deadLetter(for: Topics.schedulerReplies)):1",
    ]
    // Every cluster's command topic, one partition each, made before the fleet starts.
    let commandTopics = dir.appendingPathComponent("command-topics")
    try (0..<clusterCount).map { Topics.agentCommands(cluster: fleet.name($0)) + ":1\n" }.joined().write(to: commandTopics, atomically: true, encoding: .utf8)
    let brokerStart = ContinuousClock.now
    let broker = try ChildProcess("gedge-kafka-dev", ["--kafka-dev-port", String(port), "--kafka-dev-brokers", String(brokerCount), "--log-level", "error",
                                                      "--kafka-dev-topics", topics.joined(separator: ","), "--kafka-dev-topics-file", commandTopics.path,
                                                      "--kafka-dev-bootstrap-file", bootstrapFile.path],
                                  logFile: dir.appendingPathComponent("kafka.log").path)
    defer { broker.stop() }
    try await broker.waitForFile(bootstrapFile.path)
    let brokerReady = seconds(ContinuousClock.now - brokerStart)
    let brokers = "127.0.0.1:\(port)"
    let kafka = KafkaConfiguration(brokers: brokers, clientID: "bench-fleet", properties: ["fetch.wait.max.ms": "10"])

    let runID = String(RequestID.make().prefix(6)).lowercased()
    let db = try await BenchSchema.create(config, name: "bench_fleet_\(runID)", logger: logger)
    let (pool, schemaURL) = (db.pool, db.url)
    // The project is bound to every cluster of the fleet: decisions read the project's list.
    try await RequestQueue(pool: pool, policy: QueuePolicy()).bind(project: "p1", clusters: (0..<clusterCount).map(fleet.name))

    let opsPort = freePort()
    let schedulerArgs = ["--kafka-brokers", brokers, "--log-level", "warning", "--http-host", "127.0.0.1", "--http-port", String(opsPort),
                         "--kafka-rdkafka-fetch-wait-max-ms", "10", "--postgres-url", schemaURL, "--scheduler-instance", "bench-fleet",
                         "--scheduler-producers", "trusted", "--scheduler-gauges-interval", "250ms"]
    var scheduler = try ChildProcess("scheduler", schedulerArgs, logFile: dir.appendingPathComponent("scheduler.log").path)
    defer { scheduler.stop() }

    // The fleet's consumers wait up to 500 ms for commands (`bench.fleet.fetch.wait`). The mock cluster finds each
    // topic of a fetch by walking its list of topics (5,000 here), so a fetch's cost grows
    // with the topics in it and with the fleet: each consumer's 100 topics, split over the
    // brokers, keep it small, and a longer wait makes the empty fetches rarer. (From 250
    // topics and 100 ms the broker went from 64 % to 42 % of a core.)
    let runner = FleetRunner(fleet: fleet, kafka: KafkaConfiguration(brokers: brokers, clientID: "bench-fleet", properties: ["fetch.wait.max.ms": String(consumers.fetchWait.milliseconds)]),
                             statsInterval: .zero, topicsPerConsumer: consumers.perConsumer, logger: logger)
    let fleetTask = Task { try await runner.run() }
    defer { fleetTask.cancel() }

    func fresh() async -> Int { Int(await scrape(opsPort, "gedge_cluster_view_clusters", "state=\"fresh\"") ?? 0) }
    /// Seconds until the scheduler's view holds every cluster fresh, or nil past `limit`.
    func untilComplete(since start: ContinuousClock.Instant, limit: Duration = .seconds(120)) async -> Double? {
        while ContinuousClock.now - start < limit {
            if await fresh() >= clusterCount { return seconds(ContinuousClock.now - start) }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return nil
    }
    let coldStart = ContinuousClock.now
    guard let cold = await untilComplete(since: coldStart) else {
        Console.line("  end to end: the scheduler's view did not hold every cluster within 120 s (\(await fresh()) of \(clusterCount)); see \(dir.path)")
        return
    }
    // Requests wait for every cluster's command topic to be assigned to the fleet: an apply
    // sent to a topic that does not exist yet waits for it, and times out.
    while !runner.ready.isSet && ContinuousClock.now - coldStart < .seconds(600) { try await Task.sleep(for: .milliseconds(100)) }
    guard runner.ready.isSet else {
        Console.line("  end to end: the fleet's \(clusterCount) command topics were not all assigned to it within 600 s; see \(dir.path)")
        return
    }
    let topicsReady = seconds(ContinuousClock.now - coldStart)
    Console.line(String(format: "  end to end: dev broker (its %d command topics made in %.1f s), PostgreSQL, 1 scheduler process, the fleet here (one producer; consumers of %d command topics each); view complete %.1f s after start, every command topic assigned after %.1f s",
                        clusterCount, brokerReady, runner.topicsPerConsumer, cold, topicsReady))

    // Requests, as fast as they can be published; results read from the start of the topic.
    let codec = EnvelopeCodec()
    var producerConfig = KafkaProducerConfiguration(client: kafka)
    producerConfig.lingerMs = 1
    let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
    var readerConfig = KafkaConsumerConfiguration(client: kafka, groupID: "bench-fleet-results-\(runID)", topics: [Topics.scheduleResults])
    readerConfig.autoOffsetReset = "earliest"
    readerConfig.bufferCapacity = 4096
    let reader = try KafkaConsumer(configuration: readerConfig, logger: logger)
    let outcomes = Mutex<(done: Int, completed: Int, last: ContinuousClock.Instant?)>((0, 0, nil))
    let readerTask = Task {
        for await m in reader {
            let ok = (try? codec.decode(m))?.msg["state"]?.stringValue == "completed"
            outcomes.withLock { o in
                o.done += 1
                if ok { o.completed += 1 }
                o.last = .now
            }
        }
    }
    while (try? reader.assignment())?.isEmpty ?? true { try await Task.sleep(for: .milliseconds(50)) }
    var g = SeededRandom(seed: 11)
    let policies: [SchedulingPolicy] = [.lowLatency, .mostRequested, .mostAllocated]
    let messages: [(String, [UInt8])] = (0..<total).map { i in
        let id = "bf-\(runID)-\(i)"
        let workload: JSONValue = .object([
            "apiVersion": .string("apps/v1"), "kind": .string("Deployment"), "metadata": .object(["name": .string("w\(i)")]),
            "spec": .object(["replicas": .number(1), "template": .object(["spec": .object(["containers": .array([.object([
                "name": .string("w"), "image": .string("example/w:1"),
                "resources": .object(["requests": .object(["cpu": .string("10m"), "memory": .string("16Mi")])]),
            ])])])])]),
        ])
        let source = fleet.name(Int.random(in: 0..<clusterCount, using: &g))
        let r = ScheduleRequest(requestID: id, policy: policies[i % 3], userName: "bench", workspaceName: "w", projectName: "p1", workload: workload,
                                parameters: .object(["source_cluster": .string(source)]))
        return (id, codec.encode(r.envelope(sourceCluster: source)))
    }
    // What the processes cost at rest, with the fleet reporting and probing: 5 s.
    let idleFrom = CPUSample(broker: broker, children: [scheduler])
    try await Task.sleep(for: .seconds(5))
    let idleTo = CPUSample(broker: broker, children: [scheduler])
    let statsBefore = fleet.stats.current
    let cpuBefore = CPUSample(broker: broker, children: [scheduler])
    let staleness = Mutex<[(p99: Double, max: Double)]>([])
    let sampling = Task {
        while !Task.isCancelled {
            if let v = await scrape(opsPort, [("gedge_cluster_view_report_age_seconds", "quantile=\"0.99\""), ("gedge_cluster_view_report_age_seconds", "quantile=\"1\"")]),
               let p99 = v[0], let mx = v[1] {
                staleness.withLock { $0.append((p99, mx)) }
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }
    let start = ContinuousClock.now
    for (id, bytes) in messages {
        while true {
            do {
                try producer.enqueue(KafkaRecord(topic: Topics.scheduleRequests, key: id, value: bytes)) { _ in }
                break
            } catch { try await Task.sleep(for: .microseconds(200)) }
        }
    }
    let deadline = ContinuousClock.now + .seconds(300)
    while outcomes.withLock({ $0.done }) < total && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
    let (done, completed, last) = outcomes.withLock { $0 }
    sampling.cancel()
    _ = await sampling.value
    let cpuAfter = CPUSample(broker: broker, children: [scheduler])
    let statsAfter = fleet.stats.current
    let elapsed = seconds((last ?? .now) - start)
    Console.line(String(format: "  end to end, %d clusters reporting: %d of %d requests answered (%d completed) in %.2f s: %.0f requests/s sustained (target ≥ 2,000)",
                        clusterCount, done, total, completed, elapsed, Double(done) / max(elapsed, 0.001)))
    let samples = staleness.withLock { $0 }
    let interval = Double(fleet.settings.statusInterval.milliseconds) / 1000
    let worstP99 = samples.map(\.p99).max() ?? .nan, worstMax = samples.map(\.max).max() ?? .nan
    Console.line(String(format: "  view staleness while it ran (age of the report held, over every cluster, sampled every 250 ms, %d samples): p99 at most %.2f s = %.2f report intervals (target < 2); the oldest %.2f s",
                        samples.count, worstP99, worstP99 / interval, worstMax))
    let minutes = elapsed / 60
    Console.line(String(format: "  status traffic measured while it ran, per cluster per minute: %.1f messages (%.2f snapshots), %.1f KB; fleet applies %d, refused %d",
                        Double(statsAfter.reports - statsBefore.reports) / Double(clusterCount) / minutes,
                        Double(statsAfter.snapshots - statsBefore.snapshots) / Double(clusterCount) / minutes,
                        Double(statsAfter.statusBytes - statsBefore.statusBytes) / Double(clusterCount) / minutes / 1000,
                        statsAfter.applies - statsBefore.applies, statsAfter.refused - statsBefore.refused))
    Console.line("  while it ran, CPU: " + cpuAfter.since(cpuBefore) + " (the fleet of \(clusterCount) clusters runs in the benchmark's process)")
    Console.line("  CPU " + cpuAfter.perItem(since: cpuBefore, items: done, idleFrom: idleFrom, idleTo: idleTo, rate: 2_000))
    let mem = memory(scheduler.pid)
    Console.line(String(format: "  scheduler memory with %d clusters × %d nodes in view: %.0f MiB resident, %.0f MiB at peak", clusterCount, fleet.settings.nodesPerCluster, mem.rss, mem.peak))

    // A restart: the new scheduler reads on from its group's offsets; deltas that do not
    // follow what it holds (nothing) make it ask every cluster for a snapshot.
    let asksBefore = fleet.stats.current.snapshotAsks
    scheduler.stop()
    let restart = ContinuousClock.now
    scheduler = try ChildProcess("scheduler", schedulerArgs, logFile: dir.appendingPathComponent("scheduler-2.log").path)
    if let t = await untilComplete(since: restart) {
        let mem2 = memory(scheduler.pid)
        Console.line(String(format: "  after a restart: view complete in %.1f s (%d snapshots asked for); scheduler memory %.0f MiB resident",
                            t, fleet.stats.current.snapshotAsks - asksBefore, mem2.rss))
    } else {
        Console.line("  after a restart: the view did not hold every cluster within 120 s (\(await fresh()) of \(clusterCount))")
    }

    reader.stopPolling()
    await readerTask.value
    try? await reader.close()
    await producer.shutdown()
    fleetTask.cancel()
    _ = try? await fleetTask.value
    scheduler.stop()
    try await db.drop()
}

/// A PostgreSQL schema of the run's own, migrated, for the scheduler's tables; `drop()`
/// removes it.
struct BenchSchema {
    let admin: PostgresPool
    let pool: PostgresPool
    let name: String
    /// `postgres.url` with the schema as the search path, for the services the run starts.
    let url: String

    static func create(_ config: ConfigReader, name: String, logger: Logger) async throws -> BenchSchema {
        let pgConfig = try PostgresConfiguration(config, applicationName: "gedge-bench")
        let admin = PostgresPool(configuration: pgConfig, logger: logger)
        try await admin.execute("CREATE SCHEMA \(name)")
        let sep = pgConfig.url.contains("?") ? "&" : "?"
        var scoped = pgConfig
        scoped.url = pgConfig.url + "\(sep)options=-csearch_path%3D\(name)"
        let pool = PostgresPool(configuration: scoped, logger: logger)
        try await PostgresMigrator(pool: pool, logger: logger).migrate(try RequestStore.migrations())
        return BenchSchema(admin: admin, pool: pool, name: name, url: scoped.url)
    }

    func drop() async throws {
        pool.shutdown()
        try await admin.execute("DROP SCHEMA \(name) CASCADE")
        admin.shutdown()
    }
}
