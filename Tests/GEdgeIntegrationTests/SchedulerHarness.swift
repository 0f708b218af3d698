import Foundation
import GEdgeAgent
import GEdgeCore
import GEdgeKafka
import GEdgePlacement
import GEdgePostgres
import GEdgeScheduler
import GEdgeSecurity
import Logging
import ServiceLifecycle
import Testing

/// A scheduler world for one test: its own mock Kafka cluster (so the default topic names
/// are private to the test), its own PostgreSQL schema, and schedulers and agents run
/// in-process as service groups.
final class SchedulerHarness: @unchecked Sendable {
    let logger = TestEnv.logger
    let cluster: KafkaMockCluster
    let kafka: KafkaConfiguration
    let schema: String
    let pool: PostgresPool
    let producer: KafkaProducer
    let store: RequestStore
    let codec = EnvelopeCodec()
    /// Where this world's consumers say they are stuck: other tests of the run, in this
    /// process, have consumers of the same names.
    let progress = ConsumerProgress()
    private var groups: [(ServiceGroup, Task<Void, any Error>)] = []
    private let lock = NSLock()

    let baseURL: String

    init(partitions: Int32 = 4, postgresURL: String = TestEnv.postgresURL) async throws {
        baseURL = postgresURL
        cluster = try KafkaMockCluster(brokers: 1, logger: TestEnv.logger)
        for (t, p) in [(Topics.scheduleRequests, partitions), (Topics.schedulerReplies, partitions), (Topics.clusterStatus, 1),
                       (Topics.scheduleResults, 2), (Topics.deadLetter(for: Topics.scheduleRequests), 1), (Topics.deadLetter(for: Topics.schedulerReplies), 1)] {
            try cluster.createTopic(t, partitions: p)
        }
        kafka = KafkaConfiguration(brokers: cluster.bootstrapServers, clientID: "test", properties: ["fetch.wait.max.ms": "10"])
        schema = TestEnv.unique("s").replacingOccurrences(of: "-", with: "_")
        let admin = PostgresPool(configuration: PostgresConfiguration(url: postgresURL, poolSize: 1), logger: TestEnv.logger)
        try await admin.execute("CREATE SCHEMA \(schema)")
        admin.shutdown()
        pool = PostgresPool(configuration: PostgresConfiguration(url: postgresURL + "?options=-csearch_path%3D\(schema)", poolSize: 4), logger: TestEnv.logger)
        try await PostgresMigrator(pool: pool, logger: TestEnv.logger).migrate(try RequestStore.migrations())
        var pc = KafkaProducerConfiguration(client: kafka)
        pc.lingerMs = 1
        producer = try KafkaProducer(configuration: pc, logger: TestEnv.logger)
        store = RequestStore(pool: pool)
    }

    var schemaURL: String { baseURL + "?options=-csearch_path%3D\(schema)" }

    func consumer(group: String, topic: String, earliest: Bool = true) throws -> KafkaConsumer {
        var c = KafkaConsumerConfiguration(client: kafka, groupID: group, topics: [topic])
        c.sessionTimeout = .seconds(6)
        c.autoOffsetReset = earliest ? "earliest" : "latest"
        var k = c.client
        k["allow.auto.create.topics"] = "true"
        c.client = k
        return try KafkaConsumer(configuration: c, logger: logger)
    }

    func run(_ services: [any Service]) -> ServiceGroup {
        let group = ServiceGroup(services: services, logger: logger)
        let task = Task { try await group.run() }
        lock.withLock { groups.append((group, task)) }
        return group
    }

    /// Starts a scheduler replica; returns its context.
    @discardableResult
    func startScheduler(instance: String, queue: QueuePolicy = QueuePolicy(), staleAfter: Duration = .seconds(3), candidates: Int = 3,
                        producers: ProducerSigning? = nil) throws -> SchedulerContext {
        var settings = SchedulerSettings(instance: instance, producers: producers)
        settings.queue = queue
        settings.pollInterval = .milliseconds(50)
        settings.maxCandidates = candidates
        settings.podLookupWait = .seconds(1)
        let context = SchedulerContext(
            settings: settings, queue: RequestQueue(pool: pool, policy: queue), view: ClusterView(staleAfter: staleAfter), producer: producer, logger: logger, progress: progress)
        let dead = KafkaDeadLetterPublisher(producer: producer, logger: logger)
        _ = run([
            ClusterStatusListener(consumer: try consumer(group: "view-\(instance)", topic: Topics.clusterStatus), context: context),
            RequestIngest(consumer: try consumer(group: "scheduler", topic: Topics.scheduleRequests), context: context, deadLetters: dead),
            ReplyHandler(consumer: try consumer(group: "scheduler-replies", topic: Topics.schedulerReplies), context: context, deadLetters: dead),
            Dispatcher(context: context), LeaseReaper(context: context, interval: .milliseconds(200)),
        ])
        return context
    }

    /// Starts an agent for a driver; returns its service group (to stop it alone).
    @discardableResult
    func startAgent(_ name: String, driver: any ClusterDriver, kind: ClusterKind = .edge, statusInterval: Duration = .milliseconds(300),
                    metricsInterval: Duration? = nil, original: Bool = false, snapshotEvery: Int = 12) throws -> ServiceGroup {
        var settings = AgentSettings(cluster: name)
        settings.snapshotEvery = snapshotEvery
        settings.kind = kind
        settings.statusInterval = statusInterval
        settings.statusMinInterval = .milliseconds(50)
        let agent = Agent(settings: settings, driver: driver, producer: producer, logger: logger)
        var services: [any Service] = [
            AgentCommandLoop(agent: agent, consumer: try consumer(group: "agent-\(name)", topic: Topics.agentCommands(cluster: name))),
            AgentStatusLoop(agent: agent),
        ]
        if original {
            // GS-Scheduler's topics, from the start (the test creates them before it writes).
            var c = KafkaConsumerConfiguration(client: kafka, groupID: "agent-\(name)-original", topics: [Topics.originalGSCH, Topics.originalAPI])
            c.sessionTimeout = .seconds(6)
            services.append(AgentCommandLoop(agent: agent, consumer: try KafkaConsumer(configuration: c, logger: logger)))
        }
        if let metricsInterval {
            settings.metricsInterval = metricsInterval
            services.append(AgentMetricsLoop(agent: Agent(settings: settings, driver: driver, producer: producer, logger: logger)))
        }
        return run(services)
    }

    /// Stops one service group and waits until it has finished (its in-flight work drained).
    func stop(_ group: ServiceGroup) async {
        let task = lock.withLock { groups.first { $0.0 === group }?.1 }
        await group.triggerGracefulShutdown()
        _ = try? await task?.value
    }

    func bind(_ project: String, _ clusters: [String]) async throws {
        try await RequestQueue(pool: pool, policy: QueuePolicy()).bind(project: project, clusters: clusters)
    }

    func submit(_ r: ScheduleRequest, source: String = "gateway") async throws {
        _ = try await producer.send(KafkaRecord(topic: Topics.scheduleRequests, key: r.requestID, value: codec.encode(r.envelope(sourceCluster: source))))
    }

    func waitFor(_ id: String, _ state: RequestState, timeout: Duration = .seconds(20)) async throws -> StoredRequest {
        var last: StoredRequest?
        try await eventually("\(id) \(state.rawValue)", timeout: timeout, detail: { last.map { "\($0.state) \($0.reason ?? "")" } ?? "none" }) {
            last = try await store.request(id: id)
            return last?.state == state
        }
        return last!
    }

    func states(_ id: String) async throws -> [RequestState] { try await store.lifecycle(id: id).map(\.state) }

    func shutdown() async {
        let all = lock.withLock { groups }
        for (g, _) in all { await g.triggerGracefulShutdown() }
        for (_, t) in all { _ = try? await t.value }
        await producer.shutdown()
        pool.shutdown()
    }
}

func simNodes(_ prefix: String, count: Int, cpu: Int64 = 4000, mem: Int64 = 8 << 30, latency: [String: Double] = [:]) -> [SimulatedNode] {
    (1...count).map { SimulatedNode(name: "\(prefix)-\($0)", allocatable: Resources(cpuMilli: cpu, memory: mem), latencyMs: latency) }
}

func workload(_ name: String, cpu: String = "500m", replicas: Int = 1) -> JSONValue {
    .object([
        "apiVersion": .string("apps/v1"), "kind": .string("Deployment"), "metadata": .object(["name": .string(name)]),
        "spec": .object(["replicas": .number(Double(replicas)), "selector": .object(["matchLabels": .object(["app": .string(name)])]),
                         "template": .object(["metadata": .object(["labels": .object(["app": .string(name)])]), "spec": .object(["containers": .array([
            .object(["name": .string(name), "image": .string("example/\(name):1"), "resources": .object(["requests": .object(["cpu": .string(cpu), "memory": .string("256Mi")])])]),
        ])])])]),
    ])
}

func request(_ id: String, _ policy: SchedulingPolicy, project: String = "p1", fast: Bool = false, cpu: String = "500m", _ params: [String: JSONValue] = [:]) -> ScheduleRequest {
    ScheduleRequest(requestID: id, policy: policy, userName: "u1", workspaceName: "w1", projectName: project, fast: fast,
                    workload: workload("w-\(id)", cpu: cpu), parameters: .object(params))
}
