import GEdgeAMQP
import GEdgeCore
import GEdgeFaaS
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePostgres
import GEdgeScheduler
import GEdgeServiceKit
import Hummingbird
import Logging

// faas-trigger: scales functions from zero on RabbitMQ queue depth, reading KEDA
// ScaledObjects (files in faas.scaledobjects, or posted to the gateway's /v1/functions).
// Scale commands go to the function's cluster agent (hcode 700). Ops port 9104.
// Keys: docs/configuration.md.

func runFaaSTrigger() async throws {
    let config = try ConfigReader()
    let (logger, registry) = try ServiceKit.bootstrap(service: "faas-trigger", config: config)
    let settings = try FaaSSettings(config)
    // The ScaledObject files are checked before anything is connected or started.
    _ = try FaaSTrigger.readFiles(settings)
    let pool = PostgresPool(configuration: try PostgresConfiguration(config, applicationName: "gedge-faas-trigger"), logger: logger)
    try await PostgresMigrator(pool: pool, logger: logger).migrate(try RequestStore.migrations())
    var producerConfig = KafkaProducerConfiguration(client: KafkaConfiguration(config, clientID: "gedge-faas-trigger"))
    producerConfig.lingerMs = 0
    let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
    let http = HTTPClient(logger: logger)
    let store = FunctionStore(pool: pool)
    // Work in progress reported by the function replicas: counted when the management API is not.
    let inFlight = try config.bool("faas.inflight.enabled", default: true)
        ? InFlightTracker(client: AMQPClient(configuration: try AMQPConfiguration(config), logger: logger, name: "faas-inflight"),
                          ttl: try config.duration("faas.inflight.ttl", default: .seconds(7)), logger: logger)
        : nil

    let router = Router()
    ServiceKit.addOpsRoutes(to: router, registry: registry, readiness: [ReadinessCheck(name: "postgres") { await pool.ping() }])
    router.get("/v1/functions") { _, _ in
        Response(status: .ok, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(bytes: JSONValue.object(["functions": .array(try await store.list())]).serialized())))
    }
    let app = Application(
        router: router,
        configuration: .init(address: .hostname(config.string("http.host", default: "127.0.0.1"), port: try config.port("http.port", default: 9104)), serverName: "faas-trigger"),
        logger: logger)

    try await ServiceKit.run(
        [app, FaaSTrigger(settings: settings, store: store, readers: QueueReaders(http: http, settings: settings, inFlight: inFlight, logger: logger), producer: producer, logger: logger)]
            + (inFlight.map { [$0] } ?? []),
        logger: logger)
    await producer.shutdown()
    await http.shutdown()
    pool.shutdown()
    logger.info("faas-trigger stopped")
}

await Console.runMain("faas-trigger") { try await runFaaSTrigger() }
