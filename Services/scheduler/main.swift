import GEdgeCore
import GEdgeKafka
import GEdgePostgres
import GEdgeScheduler
import GEdgeServiceKit
import Logging
import ServiceLifecycle

// The scheduler: a policy worker. Any number of replicas share the requests topic in one
// consumer group and the queue in PostgreSQL.
//
// Stages: ingest (requests -> PostgreSQL), dispatcher (queue -> policy -> apply commands),
// reply handler (agent replies -> lifecycle), cluster status listener (agent reports -> view),
// lease reaper (stuck requests -> queue). Keys: docs/configuration.md.

func runScheduler() async throws {
    let config = try ConfigReader()
    let (logger, registry) = try ServiceKit.bootstrap(service: "scheduler", config: config)
    let settings = try SchedulerSettings(config)
    let opsConfig = try OpsServerConfiguration(config, defaultPort: 9101)

    var pgConfig = try PostgresConfiguration(config, applicationName: "gedge-scheduler")
    if try config.bool("scheduler.postgres.keyed.plans", default: true) { pgConfig.settings += RequestQueue.plannerSettings }
    let pool = PostgresPool(configuration: pgConfig, logger: logger)
    try await PostgresMigrator(pool: pool, logger: logger).migrate(try RequestStore.migrations())

    var kafka = KafkaConfiguration(config, clientID: "gedge-scheduler")
    // Scheduling is latency-bound: fetch as soon as anything is there.
    if kafka["fetch.wait.max.ms"] == nil { kafka["fetch.wait.max.ms"] = "10" }
    var producerConfig = KafkaProducerConfiguration(client: kafka)
    producerConfig.lingerMs = try config.int("kafka.linger.ms", default: 1)
    let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
    let group = config.string("kafka.group", default: "gedge-scheduler")

    let view = ClusterView(
        staleAfter: try config.duration("scheduler.cluster.stale", default: .seconds(15)),
        reservationTTL: try config.duration("scheduler.reservation.ttl", default: .seconds(30)))
    let context = SchedulerContext(
        settings: settings, queue: RequestQueue(pool: pool, policy: settings.queue), view: view, producer: producer, logger: logger)
    let deadLetters = KafkaDeadLetterPublisher(producer: producer, logger: logger)

    // Each ingest and reply worker is a member of its topic's group: the partitions are
    // shared among them as among replicas, and one's database round trip overlaps another's
    // decoding and deciding.
    let ingestWorkers = try config.int("scheduler.ingest.workers", default: 2)
    let replyWorkers = try config.int("scheduler.replies.workers", default: 2)
    for (key, n) in [("scheduler.ingest.workers", ingestWorkers), ("scheduler.replies.workers", replyWorkers)] where n < 1 {
        throw ConfigurationError(key: key, reason: "must be at least 1, got \(n)")
    }
    let requests = try (0..<ingestWorkers).map { _ in
        try KafkaConsumer(configuration: KafkaConsumerConfiguration(client: kafka, groupID: group, topics: [settings.requestsTopic]), logger: logger)
    }
    let replies = try (0..<replyWorkers).map { _ in
        try KafkaConsumer(configuration: KafkaConsumerConfiguration(client: kafka, groupID: group + "-replies", topics: [settings.repliesTopic]), logger: logger)
    }
    let statusConfig = ClusterStatusListener.consumerConfiguration(client: kafka, group: "\(group)-view-\(settings.instance)", topic: settings.statusTopic)
    let status = try KafkaConsumer(configuration: statusConfig, logger: logger)

    let ops = ServiceKit.opsServer(
        opsConfig, registry: registry,
        readiness: [
            ReadinessCheck(name: "postgres") { await pool.ping() },
            ReadinessCheck(name: "cluster-view") { view.reportedCount > 0 },
        ],
        logger: logger)

    let gauges = SchedulerGauges(context: context, lag: [
        (try KafkaLagReader(configuration: kafka, group: group, logger: logger), settings.requestsTopic),
        (try KafkaLagReader(configuration: kafka, group: group + "-replies", logger: logger), settings.repliesTopic),
    ], interval: try config.duration("scheduler.gauges.interval", default: .seconds(15)))
    logger.info("scheduler starting", metadata: ["instance": .string(settings.instance), LogKeys.kafkaTopic: .string(settings.requestsTopic)])
    try await ServiceKit.run(
        [ops, ClusterStatusListener(consumer: status, context: context)]
            + requests.map { RequestIngest(consumer: $0, context: context, deadLetters: deadLetters) as any Service }
            + replies.map { ReplyHandler(consumer: $0, context: context, deadLetters: deadLetters) as any Service }
            + [Dispatcher(context: context), LeaseReaper(context: context), gauges],
        logger: logger)
    await producer.shutdown()
    pool.shutdown()
    logger.info("scheduler stopped")
}

await Console.runMain("scheduler") { try await runScheduler() }
