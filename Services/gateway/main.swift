import Foundation
import GEdgeCore
import GEdgeGateway
import GEdgeOutbox
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePostgres
import GEdgeScheduler
import GEdgeServiceKit
import GEdgeWorkflow
import Hummingbird
import Logging

// The gateway: GS-Engine's service API, GS-Scheduler's front API and /v1 on one port
// (8888), beside /healthz, /readyz and /metrics. Stages: the HTTP server, the cluster
// status listener (for /v1/clusters), the callback recorder and deliverer.
// Keys: docs/configuration.md.

func runGateway() async throws {
    let config = try ConfigReader()
    let (logger, registry) = try ServiceKit.bootstrap(service: "gateway", config: config)
    let settings = try GatewaySettings(config)

    let pool = PostgresPool(configuration: try PostgresConfiguration(config, applicationName: "gedge-gateway"), logger: logger)
    try await PostgresMigrator(pool: pool, logger: logger).migrate(try RequestStore.migrations())

    var kafka = KafkaConfiguration(config, clientID: "gedge-gateway")
    var producerConfig = KafkaProducerConfiguration(client: kafka)
    producerConfig.lingerMs = try config.int("kafka.linger.ms", default: 1)
    let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
    let instance = config.string("gateway.instance", default: "\(ProcessInfo.processInfo.hostName)-\(getpid())")
    let group = config.string("kafka.group", default: "gedge-gateway")

    let view = ClusterView(staleAfter: try config.duration("scheduler.cluster.stale", default: .seconds(15)))
    // Agents' answers to this replica's requests (the console's pod logs): a group of its own.
    var repliesConfig = KafkaConsumerConfiguration(client: kafka, groupID: "\(group)-replies-\(instance)", topics: [Topics.gatewayReplies])
    repliesConfig.autoOffsetReset = "latest"
    var repliesClient = repliesConfig.client
    repliesClient["allow.auto.create.topics"] = "true"
    repliesConfig.client = repliesClient
    let rpc = AgentRPC(producer: producer, consumer: try KafkaConsumer(configuration: repliesConfig, logger: logger), logger: logger)
    let gateway = try Gateway(settings: settings, store: GatewayStore(pool: pool), producer: producer, view: view, rpc: rpc, logger: logger)

    // The first admin token: from configuration or a secret file, never a default.
    if let admin = try config.secret("gateway.admin.token") {
        guard admin.utf8.count >= 32 else {
            throw ConfigurationError(key: "gateway.admin.token", reason: "at least 32 characters; `openssl rand -hex 32` makes one")
        }
        try await gateway.tokens.ensureAdmin(token: admin)
        logger.info("admin token registered (its digest)")
    } else {
        logger.warning("no gateway.admin.token: only tokens already in the database work")
    }

    let statusConfig = ClusterStatusListener.consumerConfiguration(client: kafka, group: "\(group)-view-\(instance)", topic: Topics.clusterStatus)
    let status = try KafkaConsumer(configuration: statusConfig, logger: logger)
    var resultsConfig = KafkaConsumerConfiguration(
        client: kafka, groupID: "\(group)-callbacks", topics: [config.string("scheduler.results.topic", default: Topics.scheduleResults)])
    resultsConfig.autoOffsetReset = "earliest"
    let results = try KafkaConsumer(configuration: resultsConfig, logger: logger)
    let http = HTTPClient(configuration: try HTTPClientConfiguration(config, prefix: "gateway.callback.http"), logger: logger)
    let wake = Wakeup()

    let router = Router(context: GatewayRequestContext.self)
    ServiceKit.addOpsRoutes(
        to: router, registry: registry,
        readiness: [ReadinessCheck(name: "postgres") { await pool.ping() }])
    gateway.addRoutes(to: router)
    let host = config.string("http.host", default: "127.0.0.1")
    let port = try config.port("http.port", default: 8888)
    let app = Application(
        router: router,
        server: Gateway.httpServer(idleTimeout: try config.duration("gateway.idle.timeout", default: .seconds(60))),
        configuration: .init(address: .hostname(host, port: port), serverName: "gedge-gateway"), logger: logger)

    logger.info("gateway starting", metadata: ["address": "\(host):\(port)"])
    try await ServiceKit.run(
        [
            ClusterStatusListener(consumer: status, view: view, snapshots: producer, source: "gateway",
                                  known: ClusterStatusListener.boundClusters(RequestQueue(pool: pool, policy: QueuePolicy())), logger: logger),
            CallbackRecorder(consumer: results, pool: pool, wake: wake, allowPrivate: settings.callbackAllowPrivate, logger: logger),
            WebhookDeliverer(
                pool: pool, http: http, settings: try WebhookSettings(config, prefix: "gateway.callback"), wake: wake,
                table: "callback_deliveries", key: "request_id", metric: "gedge_gateway_callbacks_total", logger: logger),
            WorkflowEngine(store: WorkflowStore(pool: pool), producer: producer, settings: try WorkflowSettings(config), logger: logger),
            rpc,
            app,
        ], logger: logger)
    await producer.shutdown()
    await http.shutdown()
    pool.shutdown()
    logger.info("gateway stopped")
}

await Console.runMain("gateway") { try await runGateway() }
