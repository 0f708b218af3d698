import GEdgeAccelerators
import GEdgeAgent
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePlacement
import GEdgeServiceKit
import Logging

// The cluster agent: one per cluster. Applies placements, answers the request codes, reports
// the cluster's nodes, resources and latencies.
//
// Drivers (agent.driver): `kubernetes` (in-cluster service account, kubernetes.url and
// kubernetes.token.file, or kubernetes.kubeconfig), or `simulated` (agent.topology: a JSON
// file; this agent runs the cluster of that name). Keys: docs/configuration.md.

func makeDriver(_ config: ConfigReader, settings: inout AgentSettings, logger: Logger) throws -> (any ClusterDriver, HTTPClient?) {
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
        return (SimulatedCluster(name: c.name, nodes: c.nodes, podStartDelay: try config.duration("agent.sim.pod.start", default: topo.podStartDelay), failApplies: fail), nil)
    case "kubernetes":
        let api = try config.string("kubernetes.kubeconfig").map { try Kubeconfig.load(path: $0, context: config.string("kubernetes.context")) }
            ?? KubernetesAPIConfiguration(config)
        let client = HTTPClient(configuration: api.http, logger: logger)
        return (KubernetesCluster(client: client, configuration: api, applyTimeout: try config.duration("agent.apply.timeout", default: .seconds(120))), client)
    case let other:
        throw ConfigurationError(key: "agent.driver", reason: "'\(other)' is not kubernetes or simulated")
    }
}

func runAgent() async throws {
    let config = try ConfigReader()
    let (logger, registry) = try ServiceKit.bootstrap(service: "agent", config: config)
    var settings = try AgentSettings(config)
    let (driver, http) = try makeDriver(config, settings: &settings, logger: logger)

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
    let ops = ServiceKit.opsServer(
        try OpsServerConfiguration(config, defaultPort: 9103), registry: registry,
        readiness: [ReadinessCheck(name: "cluster") { (try? await driver.state()) != nil }], logger: logger)
    logger.info("agent starting", metadata: [LogKeys.cluster: .string(settings.cluster), "kind": .string(settings.kind.rawValue)])
    try await ServiceKit.run([ops, agent.prober, AgentCommandLoop(agent: agent, consumer: consumer), AgentStatusLoop(agent: agent)], logger: logger)
    await producer.shutdown()
    await http?.shutdown()
    logger.info("agent stopped")
}

try await runAgent()
