import GEdgeCore
import GEdgeKafka
import GEdgePostgres
import GEdgeScheduler
import GEdgeServiceKit
import Logging

// The scheduler service. At this stage: consume schedule requests from Kafka, record and
// queue them in PostgreSQL, dead-letter what cannot be decoded.
//
// Keys (docs/configuration.md): kafka.brokers, kafka.group (gedge-scheduler),
// scheduler.topic (gedge.schedule.requests), postgres.url, postgres.pool.size, http.host,
// http.port (9101), log.level, log.format.

let config = try ConfigReader()
let (logger, registry) = try ServiceKit.bootstrap(service: "scheduler", config: config)

let pool = PostgresPool(configuration: try PostgresConfiguration(config, applicationName: "gedge-scheduler"), logger: logger)
try await PostgresMigrator(pool: pool, logger: logger).migrate(try RequestStore.migrations())

let kafka = KafkaConfiguration(config, clientID: "gedge-scheduler")
let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: kafka), logger: logger)
let topic = config.string("scheduler.topic", default: Topics.scheduleRequests)
let consumer = try KafkaConsumer(
    configuration: KafkaConsumerConfiguration(client: kafka, groupID: config.string("kafka.group", default: "gedge-scheduler"), topics: [topic]),
    logger: logger)

let ingest = RequestIngest(
    consumer: consumer, store: RequestStore(pool: pool),
    deadLetters: KafkaDeadLetterPublisher(producer: producer, logger: logger), logger: logger)
let ops = ServiceKit.opsServer(
    try OpsServerConfiguration(config, defaultPort: 9101), registry: registry,
    readiness: [ReadinessCheck(name: "postgres") { await pool.ping() }], logger: logger)

logger.info("scheduler starting", metadata: [LogKeys.kafkaTopic: .string(topic)])
try await ServiceKit.run([ops, ingest], logger: logger)
await producer.shutdown()
pool.shutdown()
logger.info("scheduler stopped")
