import Foundation
import GEdgeAutoscaler
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePostgres
import GEdgeScheduler
import GEdgeServiceKit
import Logging

// autoscaler: scales workloads out and in (the HPA's algorithm and behavior), up and down
// (requests from observed usage), and over the edge into the nearest neighbour cluster when
// the home cluster is full. Policies come from service definitions (the gateway) or the
// gateway's /v1/autoscaling API; pod metrics from the agents (hcode 620); scale and resize
// commands go to the agents (hcodes 700, 710). Ops port 9106. Keys: docs/configuration.md.

func runAutoscaler() async throws {
    let config = try ConfigReader()
    let (logger, registry) = try ServiceKit.bootstrap(service: "autoscaler", config: config)
    let settings = try AutoscalerSettings(config)
    let pool = PostgresPool(configuration: try PostgresConfiguration(config, applicationName: "gedge-autoscaler"), logger: logger)
    try await PostgresMigrator(pool: pool, logger: logger).migrate(try RequestStore.migrations())
    var kafka = KafkaConfiguration(config, clientID: "gedge-autoscaler")
    kafka["allow.auto.create.topics"] = "true"
    var producerConfig = KafkaProducerConfiguration(client: kafka)
    producerConfig.lingerMs = 1
    let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
    let instance = config.string("autoscaler.instance", default: ProcessInfo.processInfo.hostName)
    let group = config.string("kafka.group", default: "gedge-autoscaler")

    let statusConfig = ClusterStatusListener.consumerConfiguration(
        client: kafka, group: "\(group)-view-\(instance)", topic: config.string("agent.status.topic", default: Topics.clusterStatus))
    var metricsConfig = KafkaConsumerConfiguration(client: kafka, groupID: "\(group)-metrics-\(instance)", topics: [config.string("agent.metrics.topic", default: Topics.podMetrics)])
    metricsConfig.autoOffsetReset = "latest"
    let replies = try KafkaConsumer(configuration: KafkaConsumerConfiguration(client: kafka, groupID: group + "-replies", topics: [settings.repliesTopic]), logger: logger)

    let view = ClusterView(staleAfter: try config.duration("autoscaler.cluster.stale", default: .seconds(30)))
    let podView = PodMetricsView()
    let http = HTTPClient(logger: logger)
    let store = AutoscalerStore(pool: pool)
    let autoscaler = Autoscaler(
        settings: settings, store: store, pool: pool, clusters: view, pods: podView,
        external: ExternalMetrics(http: http, settings: settings, kafka: kafka, logger: logger), producer: producer, logger: logger)

    let ops = ServiceKit.opsServer(
        try OpsServerConfiguration(config, defaultPort: 9106), registry: registry,
        readiness: [ReadinessCheck(name: "postgres") { await pool.ping() }], logger: logger)
    logger.info("autoscaler starting", metadata: ["instance": .string(instance)])
    try await ServiceKit.run(
        [
            ops, ClusterStatusListener(consumer: try KafkaConsumer(configuration: statusConfig, logger: logger), view: view, snapshots: producer, source: "autoscaler",
                                       known: ClusterStatusListener.boundClusters(RequestQueue(pool: pool, policy: QueuePolicy())), logger: logger),
            PodMetricsListener(consumer: try KafkaConsumer(configuration: metricsConfig, logger: logger), view: podView, logger: logger),
            AutoscalerReplyListener(consumer: replies, logger: logger), autoscaler,
        ], logger: logger)
    await producer.shutdown()
    await http.shutdown()
    pool.shutdown()
    logger.info("autoscaler stopped")
}

await Console.runMain("autoscaler") { try await runAutoscaler() }
