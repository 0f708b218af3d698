import Foundation
import GEdgeAgent
import GEdgeClusters
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
import GEdgeKubernetes
import GEdgePlacement
import GEdgePostgres
import GEdgeScheduler
import GEdgeServiceKit
import Hummingbird
import Logging
import ServiceLifecycle

// The cluster agent: one per cluster. Applies placements, answers the request codes, reports
// the cluster's nodes, resources and latencies.
//
// Drivers (agent.driver): `kubernetes` (in-cluster service account, kubernetes.url and
// kubernetes.token.file, or kubernetes.kubeconfig), or `simulated` (agent.topology: a JSON
// file; this agent runs the cluster of that name). Keys: docs/configuration.md.
//
// agent.mode=push: no cluster of its own; it serves the clusters registered with
// `gedgectl cluster register` (their credentials opened with cluster.credentials.key.file),
// sharing them with the other push agents by leases in PostgreSQL.

func makeDriver(_ config: ConfigReader, settings: inout AgentSettings, logger: Logger) throws -> (any ClusterDriver, HTTPClient?, ReplicaProcesses?) {
    switch config.string("agent.driver", default: "kubernetes") {
    case "simulated":
        guard let path = config.string("agent.topology") else {
            throw ConfigurationError(key: "agent.topology", reason: "the simulated driver needs a topology file")
        }
        let topo = try SimulatedTopology.load(path: path)
        guard let c = topo.clusters.first(where: { $0.name == settings.cluster }) else {
            throw ConfigurationError(key: "agent.cluster", reason: "'\(settings.cluster)' is not in \(path)")
        }
        settings.kind = c.kind
        let fail = config.string("agent.sim.fail")
        // agent.sim.exec: `name=command,...`: each replica of a scaled workload `name` is a
        // real local process running `command` (the demo's functions).
        var commands: [String: [String]] = [:]
        for spec in config.list("agent.sim.exec", default: []) {
            let kv = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2 else { throw ConfigurationError(key: "agent.sim.exec", reason: "'\(spec)' is not name=command") }
            commands[kv[0]] = kv[1].split(separator: " ").map(String.init)
        }
        let replicas = commands.isEmpty ? nil : ReplicaProcesses(commands: commands, logger: logger)
        var handler: (@Sendable (String, String, Int, Int) async -> Void)?
        if let replicas {
            handler = { ns, name, _, to in await replicas.scale(namespace: ns, name: name, to: to) }
        }
        let sim = SimulatedCluster(
            name: c.name, nodes: c.nodes, podStartDelay: try config.duration("agent.sim.pod.start", default: topo.podStartDelay),
            failApplies: fail, scaleHandler: handler)
        return (sim, nil, replicas)
    case "kubernetes":
        let api = try KubernetesAPIConfiguration(config)
        let client = HTTPClient(configuration: api.http, logger: logger)
        let nsName = config.string("agent.namespaces", default: KubernetesCluster.NamespacePolicy.requireManaged.rawValue)
        guard let nsPolicy = KubernetesCluster.NamespacePolicy(rawValue: nsName) else {
            throw ConfigurationError(key: "agent.namespaces", reason: "'\(nsName)' is not require-managed or create")
        }
        return (KubernetesCluster(client: client, configuration: api, applyTimeout: try config.duration("agent.apply.timeout", default: .seconds(120)),
                                  podFailureGrace: try config.duration("agent.apply.pod.failure.grace", default: .seconds(30)),
                                  namespaces: nsPolicy, logger: logger), client, nil)
    case let other:
        throw ConfigurationError(key: "agent.driver", reason: "'\(other)' is not kubernetes or simulated")
    }
}

/// Local processes standing in for a simulated workload's replicas: started on scale-out,
/// sent SIGTERM (newest first) on scale-in.
actor ReplicaProcesses {
    let commands: [String: [String]]
    let logger: Logger
    var pids: [String: [pid_t]] = [:]

    init(commands: [String: [String]], logger: Logger) {
        self.commands = commands
        self.logger = logger
    }

    func scale(namespace: String, name: String, to replicas: Int) {
        guard let argv0 = commands[name] else { return }
        let key = "\(namespace)/\(name)"
        var list = (pids[key] ?? []).filter { kill($0, 0) == 0 }
        while list.count < replicas {
            var pid: pid_t = 0
            let argv: [UnsafeMutablePointer<CChar>?] = argv0.map { strdup($0) } + [nil]
            defer { for a in argv { free(a) } }
            guard posix_spawnp(&pid, argv0[0], nil, nil, argv, environ) == 0 else {
                logger.error("replica not started", metadata: ["workload": .string(key), "command": .string(argv0.joined(separator: " "))])
                break
            }
            list.append(pid)
            logger.info("replica started", metadata: ["workload": .string(key), "pid": "\(pid)"])
        }
        while list.count > replicas, let pid = list.popLast() {
            kill(pid, SIGTERM)
            Task.detached { var status: Int32 = 0; waitpid(pid, &status, 0) }
            logger.info("replica stopped", metadata: ["workload": .string(key), "pid": "\(pid)"])
        }
        pids[key] = list
    }

    func stopAll() {
        for (_, list) in pids { for pid in list { kill(pid, SIGTERM) } }
        pids = [:]
    }
}

/// Push mode: the registered clusters this agent's leases give it, each with its own
/// command consumer and status loop, over one producer.
func runPushAgents(_ config: ConfigReader, logger: Logger, ops makeOps: ([ReadinessCheck]) throws -> any Service) async throws {
    guard let key = try ClusterCredentialsKey(config) else {
        throw ConfigurationError(key: "cluster.credentials.key.file", reason: "push mode opens registered clusters' credentials with this key")
    }
    var template = AgentSettings(cluster: "-")
    template.statusInterval = try config.duration("agent.status.interval", default: template.statusInterval)
    template.statusMinInterval = try config.duration("agent.status.min.interval", default: template.statusMinInterval)
    template.concurrency = try config.int("agent.concurrency", default: template.concurrency)
    template.metricsInterval = .zero
    let instance = config.string("agent.push.instance", default: ProcessInfo.processInfo.hostName + "-\(getpid())")
    var settings = PushSettings(
        instance: instance, key: key, agent: template,
        directory: URL(fileURLWithPath: config.string("agent.push.dir", default: FileManager.default.temporaryDirectory.appendingPathComponent("gedge-push-\(getpid())").path)))
    settings.interval = try config.duration("agent.push.interval", default: settings.interval)
    settings.leaseTTL = try config.duration("agent.push.lease", default: settings.leaseTTL)
    settings.applyTimeout = try config.duration("agent.apply.timeout", default: settings.applyTimeout)
    settings.podFailureGrace = try config.duration("agent.apply.pod.failure.grace", default: settings.podFailureGrace)
    guard settings.leaseTTL >= settings.interval * 3 else {
        throw ConfigurationError(key: "agent.push.lease", reason: "at least three agent.push.interval, so that a live agent renews before its leases run out")
    }

    let pool = PostgresPool(configuration: try PostgresConfiguration(config, applicationName: "gedge-agent-push"), logger: logger)
    try await PostgresMigrator(pool: pool, logger: logger).migrate(try RequestStore.migrations())
    let kafka = KafkaConfiguration(config, clientID: "gedge-agent-push-\(instance)")
    var producerConfig = KafkaProducerConfiguration(client: kafka)
    producerConfig.lingerMs = try config.int("kafka.linger.ms", default: 1)
    let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
    var consumerSettings = kafka
    consumerSettings["allow.auto.create.topics"] = "true"
    let consumerKafka = consumerSettings
    let makeConsumer: @Sendable (String) throws -> KafkaConsumer = { cluster in
        try KafkaConsumer(configuration: KafkaConsumerConfiguration(client: consumerKafka, groupID: "gedge-agent-\(cluster)", topics: [Topics.agentCommands(cluster: cluster)]),
                          logger: logger)
    }
    let push = PushAgents(settings: settings, registry: ClusterRegistry(pool: pool), producer: producer, consumer: makeConsumer, logger: logger)
    let ops = try makeOps([ReadinessCheck(name: "postgres") { await pool.ping() }])
    try await ServiceKit.run([ops, push], logger: logger)
    await producer.shutdown()
    pool.shutdown()
    logger.info("push agent stopped")
}

func runAgent() async throws {
    let config = try ConfigReader()
    let (logger, registry) = try ServiceKit.bootstrap(service: "agent", config: config)
    switch config.string("agent.mode", default: "pull") {
    case "pull": break
    case "push":
        return try await runPushAgents(config, logger: logger) { checks in
            ServiceKit.opsServer(try OpsServerConfiguration(config, defaultPort: 9103), registry: registry, readiness: checks, logger: logger)
        }
    case let other: throw ConfigurationError(key: "agent.mode", reason: "'\(other)' is not pull or push")
    }
    var settings = try AgentSettings(config)
    let (driver, http, replicas) = try makeDriver(config, settings: &settings, logger: logger)

    var kafka = KafkaConfiguration(config, clientID: "gedge-agent-\(settings.cluster)")
    if kafka["fetch.wait.max.ms"] == nil { kafka["fetch.wait.max.ms"] = "10" }
    var producerConfig = KafkaProducerConfiguration(client: kafka)
    producerConfig.lingerMs = try config.int("kafka.linger.ms", default: 1)
    let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
    var consumerKafka = kafka
    // The command topic appears with the first command; subscribe before that.
    consumerKafka["allow.auto.create.topics"] = "true"
    let consumer = try KafkaConsumer(
        configuration: KafkaConsumerConfiguration(
            client: consumerKafka, groupID: config.string("kafka.group", default: "gedge-agent-\(settings.cluster)"),
            topics: [Topics.agentCommands(cluster: settings.cluster)]),
        logger: logger)

    let agent = Agent(settings: settings, driver: driver, producer: producer, logger: logger)
    // GS-Scheduler's requesters: from the topics' end, as its agents read them; a group of
    // this cluster's own, since every cluster sees every message and answers those addressed to it.
    var originalLoop: [AgentCommandLoop] = []
    if !settings.originalTopics.isEmpty {
        var c = KafkaConsumerConfiguration(
            client: consumerKafka, groupID: config.string("kafka.group", default: "gedge-agent-\(settings.cluster)") + "-original",
            topics: settings.originalTopics)
        c.autoOffsetReset = "latest"
        originalLoop = [AgentCommandLoop(agent: agent, consumer: try KafkaConsumer(configuration: c, logger: logger))]
    }

    let ops = ServiceKit.opsServer(
        try OpsServerConfiguration(config, defaultPort: 9103), registry: registry,
        readiness: [ReadinessCheck(name: "cluster") { (try? await driver.state()) != nil }], logger: logger) { router in
            // This cluster's network coordinate, for its peers' probes (404 without peers).
            router.get("/coordinate") { _, _ in
                guard let c = agent.prober.coordinate else { return Response(status: .notFound) }
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: c.json.serialized())))
            }
            // The peers nearest this cluster (those it measured nearest, then by coordinates),
            // for its peers to find their own neighbours: `{"near": {cluster: coordinate}}`, at most 16.
            router.get("/coordinate/near") { _, _ in
                let near = JSONValue.object(["near": .object(agent.prober.nearest().mapValues(\.json))])
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: near.serialized())))
            }
        }
    logger.info("agent starting", metadata: [LogKeys.cluster: .string(settings.cluster), "kind": .string(settings.kind.rawValue)])
    try await ServiceKit.run([ops, agent.prober, AgentCommandLoop(agent: agent, consumer: consumer), AgentStatusLoop(agent: agent)] + originalLoop
        + (settings.metricsInterval > .zero ? [AgentMetricsLoop(agent: agent)] : []), logger: logger)
    await producer.shutdown()
    await http?.shutdown()
    await replicas?.stopAll()
    logger.info("agent stopped")
}

await Console.runMain("agent") { try await runAgent() }
