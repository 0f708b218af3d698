import Foundation
import GEdgeAMQP
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
import GEdgeSecurity
import GEdgePlacement
import GEdgePostgres
import GEdgeScaling
import GEdgeScheduler
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Settings of the autoscaler. Keys in docs/configuration.md (`autoscaler.*`).
public struct AutoscalerSettings: Sendable {
    /// How often every policy is evaluated (the HPA's sync period).
    public var interval: Duration = .seconds(15)
    /// Pod metrics older than this are not used (a silent agent's pods count as without metrics).
    public var metricsStaleAfter: Duration = .seconds(60)
    /// A scale command whose effect is not yet in the agent's report is sent again after this.
    public var resendAfter: Duration = .seconds(30)
    /// Usage kept for vertical recommendations, and the least time between two resizes.
    public var verticalWindow: Duration = .seconds(300)
    public var prometheusURL: String?
    /// The broker of `rabbitmq` metrics that name no `url` (`amqp.url`, `amqp.password.file`).
    public var amqp: AMQPConfiguration?
    public var repliesTopic = Topics.autoscalerReplies
    public var requestsTopic = Topics.scheduleRequests
    /// Signs schedule requests for their project (`producers.secret`).
    public var producers: ProducerSigning?
    /// The PostgreSQL advisory lock the acting replica holds (one per database by default).
    public var lockKey: Int64 = 0x6765_6467_6561_73

    public init() {}

    public init(_ c: ConfigReader) throws {
        if let secret = try c.secret("producers.secret") { producers = try ProducerSigning(secret: Array(secret.utf8)) }
        interval = try c.duration("autoscaler.interval", default: interval)
        metricsStaleAfter = try c.duration("autoscaler.metrics.stale.after", default: metricsStaleAfter)
        resendAfter = try c.duration("autoscaler.resend.after", default: resendAfter)
        verticalWindow = try c.duration("autoscaler.vertical.window", default: verticalWindow)
        prometheusURL = c.string("autoscaler.prometheus.url")
        amqp = try AMQPConfiguration(c)
        repliesTopic = c.string("autoscaler.replies.topic", default: repliesTopic)
        lockKey = Int64(try c.int("autoscaler.lock.key", default: Int(lockKey)))
    }
}

/// The latest pod metrics report of each cluster (hcode 620, in parts for a big cluster),
/// fed from Kafka.
public final class PodMetricsView: Sendable {
    private let reports = Mutex<[String: [Int: (report: PodMetricsReport, at: ContinuousClock.Instant)]]>([:])

    public init() {}

    public func update(_ r: PodMetricsReport) {
        reports.withLock { d in
            var parts = d[r.cluster] ?? [:]
            // A report in fewer parts than before: the parts beyond it are gone.
            parts = parts.filter { $0.key < r.parts }
            parts[r.part] = (r, .now)
            d[r.cluster] = parts
        }
    }

    /// The workload's usage in a cluster, if its report is fresh.
    public func usage(cluster: String, key: String, staleAfter: Duration) -> WorkloadUsage? {
        reports.withLock { d in
            for e in (d[cluster] ?? [:]).values where ContinuousClock.now - e.at <= staleAfter {
                if let w = e.report.workloads.first(where: { $0.key == key }) { return w }
            }
            return nil
        }
    }
}

/// Consumes `gedge.pod-metrics` into a view.
public struct PodMetricsListener: Service {
    let consumer: KafkaConsumer
    let view: PodMetricsView
    let logger: Logger
    let codec = EnvelopeCodec()

    public init(consumer: KafkaConsumer, view: PodMetricsView, logger: Logger) {
        self.consumer = consumer
        self.view = view
        self.logger = logger
    }

    public func run() async throws {
        await withTaskCancellationOrGracefulShutdownHandler {
            for await message in consumer {
                do {
                    let env = try codec.decode(message)
                    guard env.hcode == .podMetrics else { continue }
                    view.update(try PodMetricsReport.decode(env.msg))
                } catch {
                    logger.warning("pod metrics report ignored", metadata: [LogKeys.error: "\(error)"])
                }
            }
        } onCancelOrGracefulShutdown: {
            consumer.stopPolling()
        }
        try await consumer.close()
    }
}

/// Logs the agents' answers to scale and resize commands (a refusal is the operator's to see).
public struct AutoscalerReplyListener: Service {
    let consumer: KafkaConsumer
    let logger: Logger
    let codec = EnvelopeCodec()
    let failures = Counter(label: "gedge_autoscaler_command_failures_total")

    public init(consumer: KafkaConsumer, logger: Logger) {
        self.consumer = consumer
        self.logger = logger
    }

    public func run() async throws {
        await withTaskCancellationOrGracefulShutdownHandler {
            for await message in consumer {
                guard let env = try? codec.decode(message) else { continue }
                if env.hcode == .error || env.msg["ok"] == .bool(false) {
                    failures.increment()
                    logger.warning("agent refused a command", metadata: [
                        "cluster": "\(env.source)", LogKeys.requestID: .string(env.msg["request_id"]?.stringValue ?? ""),
                        "reason": .string(env.msg["reason"]?.stringValue ?? ""),
                    ])
                }
            }
        } onCancelOrGracefulShutdown: {
            consumer.stopPolling()
        }
        try await consumer.close()
    }
}

/// Reads the external and custom metrics: Prometheus (HTTP API through libcurl), RabbitMQ
/// queue length (AMQP passive declare), Kafka consumer lag (librdkafka).
public final class ExternalMetrics: Sendable {
    let http: HTTPClient
    let settings: AutoscalerSettings
    let kafka: KafkaConfiguration?
    let logger: Logger
    private let amqp = Mutex<[String: AMQPClient]>([:])
    private let lag = Mutex<[String: KafkaLagReader]>([:])

    public init(http: HTTPClient, settings: AutoscalerSettings, kafka: KafkaConfiguration?, logger: Logger) {
        self.http = http
        self.settings = settings
        self.kafka = kafka
        self.logger = logger
    }

    public func prometheus(_ query: String) async throws -> Double {
        guard let base = settings.prometheusURL else { throw MetricError(reason: "no Prometheus configured (autoscaler.prometheus.url)") }
        let q = query.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? query
        let root = base.hasSuffix("/") ? String(base.dropLast()) : base
        let r = try await http.execute(HTTPRequest(url: "\(root)/api/v1/query?query=\(q)", timeout: .seconds(5)))
        guard r.isSuccess else { throw MetricError(reason: "Prometheus answered \(r.status): \(r.bodyString.prefix(200))") }
        let j = try r.json()
        guard j["status"]?.stringValue == "success", let data = j["data"] else {
            throw MetricError(reason: "Prometheus: \(j["error"]?.stringValue ?? "no data")")
        }
        func sample(_ v: JSONValue?) -> Double? { v?.arrayValue?.last?.stringValue.flatMap(Double.init) }
        switch data["resultType"]?.stringValue {
        case "scalar": return sample(data["result"]) ?? 0
        case "vector":
            var total = 0.0
            for item in data["result"]?.arrayValue ?? [] { total += sample(item["value"]) ?? 0 }
            return total
        default: throw MetricError(reason: "Prometheus: a \(data["resultType"]?.stringValue ?? "?") result; the query must give a scalar or a vector")
        }
    }

    public func queueLength(_ queue: String, url: String?) async throws -> Double {
        let u = url ?? ""
        let client = try amqp.withLock { d in
            if let c = d[u] { return c }
            let configuration = try url.map { try AMQPConfiguration(url: $0) } ?? settings.amqp ?? AMQPConfiguration()
            let c = AMQPClient(configuration: configuration, logger: logger, name: "autoscaler")
            d[u] = c
            return c
        }
        do {
            return Double(try await client.queueInfo(queue).messageCount)
        } catch let e as AMQPError where e.code == .notFound {
            return 0
        }
    }

    public func consumerLag(topic: String, group: String) async throws -> Double {
        guard let kafka else { throw MetricError(reason: "no Kafka configured") }
        let reader = try lag.withLock { d in
            if let r = d[group] { return r }
            let r = try KafkaLagReader(configuration: kafka, group: group, logger: logger)
            d[group] = r
            return r
        }
        return Double(try await reader.lag(topic: topic))
    }
}

public struct MetricError: Error, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}

/// The autoscaler: every interval, for each policy, the HPA's calculation over the metrics,
/// the behavior's windows and rates, the new count split between the home cluster and
/// neighbours over the edge, scale commands to the agents, and a decision stored.
/// Replicas of this service stand by: one holds a PostgreSQL advisory lock and acts.
public final class Autoscaler: Service, Sendable {
    struct WorkloadState {
        var behavior: ScalingBehavior
        var samples: [(at: Date, cpu: Double, memory: Double)] = []
        var lastResize: Date?
        /// The last command per cluster: replicas and when.
        var sent: [String: (replicas: Int, at: ContinuousClock.Instant)] = [:]
        var lastSignature = ""
        /// What one replica needs of a node, from the policy's request (which never changes).
        var requirements: (requestID: String, value: WorkloadRequirements?)?
    }

    let settings: AutoscalerSettings
    let store: AutoscalerStore
    let pool: PostgresPool
    let clusters: ClusterView
    let pods: PodMetricsView
    let external: ExternalMetrics
    let producer: KafkaProducer
    let logger: Logger
    let clock: @Sendable () -> Date
    let codec = EnvelopeCodec()
    private let states = Mutex<[String: WorkloadState]>([:])
    private let sequence = Atomic<Int64>(0)
    let decisionsCounter = Counter(label: "gedge_autoscaler_decisions_total")
    let cycleTimer = Metrics.Timer(label: "gedge_autoscaler_cycle_seconds")
    let leaderGauge = Gauge(label: "gedge_autoscaler_leader")

    public init(settings: AutoscalerSettings, store: AutoscalerStore, pool: PostgresPool, clusters: ClusterView, pods: PodMetricsView,
                external: ExternalMetrics, producer: KafkaProducer, logger: Logger, clock: @escaping @Sendable () -> Date = { Date() }) {
        self.settings = settings
        self.store = store
        self.pool = pool
        self.clusters = clusters
        self.pods = pods
        self.external = external
        self.producer = producer
        self.logger = logger
        self.clock = clock
    }

    public func run() async throws {
        let running = RunFlag(true)
        let wake = Wakeup()
        await withTaskCancellationOrGracefulShutdownHandler {
            while running.isSet {
                do {
                    // Leadership lives as long as this connection: PostgreSQL drops the lock with it.
                    try await pool.withConnection { conn in
                        let got = try await conn.query("SELECT pg_try_advisory_lock($1) AS ok", [.int(settings.lockKey)])
                        guard try got.first?.decode("ok", as: Bool.self) == true else { return }
                        leaderGauge.record(1)
                        logger.info("leading: this autoscaler acts")
                        defer { leaderGauge.record(0) }
                        while running.isSet {
                            let start = ContinuousClock.now
                            await cycle()
                            cycleTimer.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
                            await wake.wait(timeout: settings.interval)
                            _ = try await conn.query("SELECT 1")
                        }
                        _ = try? await conn.query("SELECT pg_advisory_unlock($1)", [.int(settings.lockKey)])
                    }
                } catch {
                    logger.error("autoscaler cycle failed", metadata: [LogKeys.error: "\(error)"])
                }
                if running.isSet { await wake.wait(timeout: settings.interval) }
            }
        } onCancelOrGracefulShutdown: {
            running.set(false)
            wake.signal()
        }
    }

    /// One pass over every policy.
    public func cycle() async {
        let policies: [AutoscalePolicy]
        do { policies = try await store.policies() } catch {
            logger.error("policies not read", metadata: [LogKeys.error: "\(error)"])
            return
        }
        let keys = Set(policies.map(\.key))
        states.withLock { s in s = s.filter { keys.contains($0.key) } }
        for p in policies {
            do { try await evaluate(p) } catch {
                logger.warning("policy not evaluated", metadata: ["workload": .string(p.key), LogKeys.error: "\(error)"])
            }
        }
    }

    func nextID(_ p: AutoscalePolicy) -> String {
        "autoscale-\(p.namespace)-\(p.name)-\(sequence.wrappingAdd(1, ordering: .relaxed).newValue)"
    }

    func send(_ hcode: HCode, msg: JSONValue, cluster: String, key: String) async throws {
        let env = Envelope(source: .cluster("autoscaler"), target: .cluster(cluster), hcode: hcode, lcode: .request, msg: msg)
        _ = try await producer.send(KafkaRecord(topic: Topics.agentCommands(cluster: cluster), key: key, value: codec.encode(env)))
    }

    func record(_ d: ScalingDecision) async {
        decisionsCounter.increment()
        logger.info("\(d.kind.rawValue) \(d.namespace)/\(d.name): \(d.current) -> \(d.target): \(d.reason)")
        do { try await store.record(d) } catch { logger.error("decision not stored", metadata: [LogKeys.error: "\(error)"]) }
    }

    /// Evaluates one policy and acts on it.
    func evaluate(_ p: AutoscalePolicy) async throws {
        let now = clock()
        var placements = try await store.placements(namespace: p.namespace, name: p.name)
        // The home placement: the policy's request, once the scheduler has placed it.
        if !placements.contains(where: \.home) {
            guard let req = try await store.request(id: p.requestID) else { return }
            guard req.state == "completed", let cluster = req.cluster else { return }
            let reported = pods.usage(cluster: cluster, key: p.key, staleAfter: settings.metricsStaleAfter)
            let replicas = reported?.replicas ?? (req.placement.arrayValue?.first?["replicas"]?.numberValue).map { Int($0) } ?? 1
            let home = WorkloadPlacement(requestID: p.requestID, cluster: cluster, home: true, replicas: replicas, state: .running)
            try await store.save(namespace: p.namespace, name: p.name, home)
            placements.insert(home, at: 0)
        }
        // Overflow placements the scheduler has finished with.
        for (i, o) in placements.enumerated() where o.state == .placing {
            guard let req = try await store.request(id: o.requestID) else { continue }
            switch req.state {
            case "completed":
                placements[i].cluster = req.cluster
                placements[i].state = .running
                try await store.save(namespace: p.namespace, name: p.name, placements[i])
                await record(ScalingDecision(namespace: p.namespace, name: p.name, kind: .overflow, current: o.replicas, target: o.replicas,
                                             inputs: .object(["request_id": .string(o.requestID), "cluster": .string(req.cluster ?? "")]),
                                             reason: "over the edge: \(o.replicas) replica(s) running in \(req.cluster ?? "?")"))
            case "failed", "rejected", "canceled":
                try await store.remove(namespace: p.namespace, name: p.name, requestID: o.requestID)
                await record(ScalingDecision(namespace: p.namespace, name: p.name, kind: .overflow, current: 0, target: 0,
                                             inputs: .object(["request_id": .string(o.requestID)]), reason: "no neighbour took the overflow: \(req.reason ?? req.state)"))
                placements[i].replicas = -1
            default: break
            }
        }
        placements.removeAll { $0.replicas < 0 }

        // Reports: every running placement's pods, and whether they reflect what was sent.
        var podSamples: [PodSample] = []
        var usageByCluster: [String: WorkloadUsage] = [:]
        var settling: [String] = []
        var st = states.withLock { $0[p.key] } ?? WorkloadState(behavior: ScalingBehavior(scaleUp: p.scaleUp, scaleDown: p.scaleDown))
        st.behavior.scaleUp = p.scaleUp
        st.behavior.scaleDown = p.scaleDown
        for pl in placements where pl.state == .running {
            guard let c = pl.cluster else { continue }
            guard let u = pods.usage(cluster: c, key: p.key, staleAfter: settings.metricsStaleAfter) else {
                // No fresh report: its pods count as without metrics.
                for i in 0..<pl.replicas { podSamples.append(PodSample(name: "\(c)/unknown-\(i)", ready: false, value: nil)) }
                continue
            }
            usageByCluster[c] = u
            if u.replicas != pl.replicas {
                if let sent = st.sent[c], ContinuousClock.now - sent.at < settings.resendAfter { settling.append(c) } else {
                    // The cluster disagrees with what was decided: say it again.
                    try await scale(p, cluster: c, replicas: pl.replicas, placements: placements, state: &st)
                    settling.append(c)
                }
            }
        }
        let current = placements.reduce(0) { $0 + $1.replicas }

        // The HPA's calculation, metric by metric.
        var proposals: [HPAProposal] = []
        var inputs: [String: JSONValue] = [:]
        for m in p.metrics {
            do {
                let proposal: HPAProposal
                switch m {
                case .cpu(let t), .memory(let t):
                    let cpu: Bool = if case .cpu = m { true } else { false }
                    let samples = usageByCluster.flatMap { c, u in
                        u.pods.map { pod in
                            PodSample(name: "\(c)/\(pod.name)", ready: pod.ready, value: cpu ? pod.cpuMilli : pod.memory,
                                      request: cpu ? pod.cpuRequestMilli : pod.memoryRequest)
                        }
                    } + podSamples
                    proposal = HPA.replicas(current: current, pods: samples, target: .utilization(t))
                    let used = samples.compactMap(\.value).reduce(0, +), requested = samples.filter { $0.value != nil }.compactMap(\.request).reduce(0, +)
                    inputs[m.name] = .object([
                        "target_utilization": .number(t), "utilization": .number(requested > 0 ? (used / requested * 100).rounded() : 0),
                        "pods": .number(Double(samples.count)), "proposal": .number(Double(proposal.replicas)),
                    ])
                case .prometheus(let q, let target):
                    let v = try await external.prometheus(q)
                    proposal = Self.external(current: current, value: v, target: target)
                    inputs[m.name] = .object(["value": .number(v), "proposal": .number(Double(proposal.replicas))])
                case .rabbitmq(let queue, let url, let target):
                    let v = try await external.queueLength(queue, url: url)
                    proposal = Self.external(current: current, value: v, target: target)
                    inputs[m.name] = .object(["value": .number(v), "proposal": .number(Double(proposal.replicas))])
                case .kafkaLag(let topic, let group, let target):
                    let v = try await external.consumerLag(topic: topic, group: group)
                    proposal = Self.external(current: current, value: v, target: target)
                    inputs[m.name] = .object(["value": .number(v), "proposal": .number(Double(proposal.replicas))])
                }
                proposals.append(proposal)
            } catch {
                // As the HPA does: a metric that cannot be read is left out of this cycle.
                inputs[m.name] = .object(["error": .string("\(error)")])
            }
        }

        if !p.metrics.isEmpty {
            let best = HPA.combine(proposals, current: current)
            let bounded = min(p.maxReplicas, max(p.minReplicas, best.replicas))
            let target = settling.isEmpty ? st.behavior.next(now: now, current: current, recommendation: bounded) : current
            var reason = proposals.isEmpty ? "no metric could be read; replicas kept" : best.reason
            if bounded != best.replicas { reason += "; bounded to \(bounded) by min/max" }
            if target != bounded && settling.isEmpty { reason += "; \(target) after the stabilization window and rate policies" }
            if !settling.isEmpty { reason = "waiting for \(settling.joined(separator: ", ")) to report the last change" }

            // Where the replicas go.
            var original: PlacedRequest?
            if st.requirements?.requestID != p.requestID {
                original = try await store.request(id: p.requestID)
                st.requirements = (p.requestID, original.flatMap { try? WorkloadRequirements.extract(workload: $0.workload, parameters: .null) })
            }
            let req = st.requirements?.value
            let view = Dictionary(clusters.fresh(now: now).map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            let plan = ReplicaPlanner.plan(target: target, placements: placements, overflow: p.overflow) { cluster in
                guard let r = req, let state = view[cluster] else { return 0 }
                var one = r
                one.replicas = 1
                return ReplicaPlanner.room(state, one)
            }
            inputs["current"] = .number(Double(current))
            inputs["recommendation"] = .number(Double(bounded))
            inputs["placements"] = .array(placements.map(\.json))
            let moves = placements.contains { pl in pl.state == .running && plan.replicas[pl.requestID].map { $0 != pl.replicas } == true }
            if moves || plan.needsOverflow {
                for (i, pl) in placements.enumerated() where pl.state == .running {
                    guard let n = plan.replicas[pl.requestID], n != pl.replicas else { continue }
                    placements[i].replicas = n
                }
                for pl in placements where pl.state == .running {
                    guard let c = pl.cluster else { continue }
                    if pl.replicas == 0 && !pl.home {
                        // Back from over the edge: the neighbour's placement is withdrawn.
                        try await withdraw(p, pl)
                        continue
                    }
                    try await store.save(namespace: p.namespace, name: p.name, pl)
                    try await scale(p, cluster: c, replicas: pl.replicas, placements: placements.filter { $0.replicas > 0 }, state: &st)
                }
                if plan.needsOverflow {
                    if original == nil { original = try await store.request(id: p.requestID) }
                    if let original { try await placeOverflow(p, original: original, home: placements.first(where: \.home)?.cluster) }
                }
                let placed = placements.filter { $0.replicas > 0 }.reduce(0) { $0 + $1.replicas }
                if plan.waiting > 0 { reason += "; \(plan.waiting) wait for a neighbour over the edge" }
                await record(ScalingDecision(namespace: p.namespace, name: p.name, kind: .horizontal, current: current, target: placed, inputs: .object(inputs), reason: reason))
                st.lastSignature = ""
            } else if bounded != current {
                // Held by a window, a rate, or a neighbour being placed: stored once per
                // distinct recommendation.
                if plan.waiting > 0 { reason += "; \(plan.waiting) wait for a neighbour over the edge" }
                let signature = "\(current)->\(bounded)"
                if signature != st.lastSignature {
                    st.lastSignature = signature
                    await record(ScalingDecision(namespace: p.namespace, name: p.name, kind: .horizontal, current: current, target: current, inputs: .object(inputs), reason: reason))
                }
            } else {
                st.lastSignature = ""
            }
        }

        // Vertical: the resources no utilization target scales on.
        if p.vertical.enabled {
            try await vertical(p, usage: usageByCluster, placements: placements, now: now, state: &st)
        }
        let final = st
        states.withLock { $0[p.key] = final }
    }

    /// An external metric against its target: AverageValue divides the total among the pods;
    /// Value compares the total with the target (the HPA's external metric rules).
    static func external(current: Int, value: Double, target: AutoscalePolicy.ExternalTarget) -> HPAProposal {
        switch target {
        case .averageValue(let t): return HPA.replicas(current: current, externalTotal: value, averageTarget: t)
        case .value(let t):
            let ratio = value / t
            if abs(1 - ratio) <= HPA.tolerance { return HPAProposal(replicas: current, usageRatio: ratio, reason: "within tolerance") }
            return HPAProposal(replicas: Int((Double(current) * ratio).rounded(.up)), usageRatio: ratio, reason: String(format: "%.1f for a target of %.1f", value, t))
        }
    }

    func scale(_ p: AutoscalePolicy, cluster: String, replicas: Int, placements: [WorkloadPlacement], state st: inout WorkloadState) async throws {
        let total = max(1, placements.filter { $0.state == .running }.reduce(0) { $0 + $1.replicas })
        let share = (Double(replicas) / Double(total) * 10_000).rounded() / 10_000
        let cmd = ScaleCommand(requestID: nextID(p), namespace: p.namespace, name: p.name, replicas: replicas, trafficShare: min(1, share), replyTo: settings.repliesTopic)
        try await send(.scaleWorkload, msg: cmd.msg, cluster: cluster, key: p.key)
        st.sent[cluster] = (replicas, .now)
    }

    func signed(_ record: KafkaRecord, project: String) -> KafkaRecord {
        settings.producers.map { record.signed(project: project, signing: $0) } ?? record
    }

    func withdraw(_ p: AutoscalePolicy, _ pl: WorkloadPlacement) async throws {
        let cancel = CancelRequest(requestID: pl.requestID, reason: "autoscaler: back from over the edge", withdraw: true)
        var env = cancel.envelope
        env.source = .cluster("autoscaler")
        _ = try await producer.send(signed(KafkaRecord(topic: settings.requestsTopic, key: pl.requestID, value: codec.encode(env)), project: p.projectName))
        try await store.remove(namespace: p.namespace, name: p.name, requestID: pl.requestID)
        await record(ScalingDecision(namespace: p.namespace, name: p.name, kind: .overflow, current: 0, target: 0,
                                     inputs: .object(["request_id": .string(pl.requestID), "cluster": .string(pl.cluster ?? "")]),
                                     reason: "scale-in: the overflow placement in \(pl.cluster ?? "?") is withdrawn"))
    }

    /// Asks the scheduler for one replica in the nearest neighbour that fits (low latency
    /// from the home cluster); later cycles scale it.
    func placeOverflow(_ p: AutoscalePolicy, original: PlacedRequest, home: String?) async throws {
        let n = try await store.overflowCount(namespace: p.namespace, name: p.name) + 1
        let id = "\(p.requestID.prefix(100))-x\(n)"
        var params = original.parameters.objectValue ?? [:]
        if let home { params["source_cluster"] = .string(home) }
        params["namespace"] = .string(p.namespace)
        params.removeValue(forKey: "select_clusters")
        params.removeValue(forKey: "select_cluster")
        params.removeValue(forKey: "select_node")
        let workload = Self.withReplicas(original.workload, 1)
        let request = ScheduleRequest(requestID: id, policy: .lowLatency, userName: original.userName, workspaceName: original.workspaceName,
                                      projectName: original.projectName, workload: workload, parameters: .object(params))
        _ = try await producer.send(signed(KafkaRecord(topic: settings.requestsTopic, key: id, value: codec.encode(request.envelope(sourceCluster: "autoscaler"))), project: original.projectName))
        try await store.save(namespace: p.namespace, name: p.name, WorkloadPlacement(requestID: id, cluster: nil, home: false, replicas: 1, state: .placing))
        await record(ScalingDecision(namespace: p.namespace, name: p.name, kind: .overflow, current: 0, target: 1,
                                     inputs: .object(["placement_request": .string(id), "source_cluster": .string(home ?? "")]),
                                     reason: "\(home ?? "the home cluster") is full: asking the scheduler for the nearest neighbour (\(id))"))
    }

    /// The workload with every Deployment's replicas set (JSON manifests, or YAML text left as is).
    static func withReplicas(_ workload: JSONValue, _ n: Int) -> JSONValue {
        func fix(_ m: JSONValue) -> JSONValue {
            guard case .object(var o) = m, ["Deployment", "StatefulSet"].contains(o["kind"]?.stringValue ?? ""), case .object(var spec)? = o["spec"] else { return m }
            spec["replicas"] = .number(Double(n))
            o["spec"] = .object(spec)
            return .object(o)
        }
        switch workload {
        case .array(let items): return .array(items.map(fix))
        case .object(let o) where o["items"] != nil:
            var x = o
            x["items"] = .array((o["items"]?.arrayValue ?? []).map(fix))
            return .object(x)
        default: return fix(workload)
        }
    }

    func vertical(_ p: AutoscalePolicy, usage: [String: WorkloadUsage], placements: [WorkloadPlacement], now: Date, state st: inout WorkloadState) async throws {
        let ready = usage.values.flatMap(\.pods).filter { $0.ready && $0.cpuMilli != nil }
        guard let sample = ready.first else { return }
        let cpuAvg = ready.compactMap(\.cpuMilli).reduce(0, +) / Double(ready.count)
        let memAvg = ready.compactMap(\.memory).reduce(0, +) / Double(ready.count)
        let window = Double(settings.verticalWindow.components.seconds)
        st.samples.append((now, cpuAvg, memAvg))
        st.samples.removeAll { now.timeIntervalSince($0.at) > window }
        // Enough history, and not within a window of the last change.
        guard let first = st.samples.first, now.timeIntervalSince(first.at) >= window / 2 else { return }
        if let last = st.lastResize, now.timeIntervalSince(last) < window { return }
        let horizontalOnCPU = p.metrics.contains { if case .cpu = $0 { true } else { false } }
        let horizontalOnMemory = p.metrics.contains { if case .memory = $0 { true } else { false } }
        let v = p.vertical
        let cpu = horizontalOnCPU ? nil : VerticalRecommender.recommend(
            samples: st.samples.map(\.cpu), current: Int64(sample.cpuRequestMilli), min: v.minCPUMilli, max: v.maxCPUMilli,
            headroomPercent: v.headroomPercent, minChangePercent: v.minChangePercent)
        let mem = horizontalOnMemory ? nil : VerticalRecommender.recommend(
            samples: st.samples.map(\.memory), current: Int64(sample.memoryRequest), min: v.minMemory, max: v.maxMemory,
            headroomPercent: v.headroomPercent, minChangePercent: v.minChangePercent)
        guard cpu != nil || mem != nil else { return }
        for pl in placements where pl.state == .running && pl.replicas > 0 {
            guard let c = pl.cluster else { continue }
            let cmd = ResizeCommand(requestID: nextID(p), namespace: p.namespace, name: p.name, cpuRequestMilli: cpu, cpuLimitMilli: cpu.map { $0 * 2 },
                                    memoryRequest: mem, memoryLimit: mem.map { $0 + $0 / 2 }, replyTo: settings.repliesTopic)
            try await send(.resizeWorkload, msg: cmd.msg, cluster: c, key: p.key)
        }
        st.lastResize = now
        st.samples.removeAll()
        let replicas = placements.reduce(0) { $0 + $1.replicas }
        var inputs: [String: JSONValue] = ["samples_cpu_milli_avg": .number(cpuAvg.rounded()), "samples_memory_avg": .number(memAvg.rounded())]
        var parts: [String] = []
        if let cpu {
            inputs["cpu_request_milli"] = .object(["from": .number(sample.cpuRequestMilli), "to": .number(Double(cpu))])
            parts.append("CPU request \(Int(sample.cpuRequestMilli))m -> \(cpu)m")
        }
        if let mem {
            inputs["memory_request"] = .object(["from": .number(sample.memoryRequest), "to": .number(Double(mem))])
            parts.append("memory request \(Int(sample.memoryRequest / 1_048_576))Mi -> \(mem / 1_048_576)Mi")
        }
        await record(ScalingDecision(namespace: p.namespace, name: p.name, kind: .vertical, current: replicas, target: replicas, inputs: .object(inputs),
                                     reason: parts.joined(separator: ", ") + " (90th percentile of usage plus \(Int(v.headroomPercent)) %)"))
    }
}
