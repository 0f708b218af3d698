import GEdgeAMQP
import GEdgeCore
import GEdgeFaaS
import GEdgeHTTPClient
import GEdgeOutbox
import GEdgePostgres
import GEdgeScheduler
import GEdgeServiceKit
import Hummingbird
import Logging
import ServiceLifecycle

// notifier: detection events from RabbitMQ result queues become stored notifications,
// delivered to webhooks (signed, retried, dead-lettered). Delivery status on its port
// (9105): GET /v1/notifications, /v1/notifications/{event_id}. Keys: docs/configuration.md.

func runNotifier() async throws {
    let config = try ConfigReader()
    let (logger, registry) = try ServiceKit.bootstrap(service: "notifier", config: config)
    let settings = try NotifierSettings(config)
    let pool = PostgresPool(configuration: try PostgresConfiguration(config, applicationName: "gedge-notifier"), logger: logger)
    try await PostgresMigrator(pool: pool, logger: logger).migrate(try RequestStore.migrations())
    var amqp = try AMQPConfiguration(config)
    // A body past the event limit is dead-lettered anyway: only its prefix is read into memory.
    amqp.maxBodyBytes = settings.maxEventBytes
    let http = HTTPClient(configuration: try HTTPClientConfiguration(config, prefix: "notifier.webhook.http"), logger: logger)
    let wake = Wakeup()
    let store = NotificationStore(pool: pool)

    let router = Router()
    ServiceKit.addOpsRoutes(to: router, registry: registry, readiness: [ReadinessCheck(name: "postgres") { await pool.ping() }])
    router.get("/v1/notifications") { request, _ in
        let q = request.uri.queryParameters
        let limit = min(max(Int(q["limit"].map(String.init) ?? "") ?? 50, 1), 500)
        let list = try await store.list(queue: q["queue"].map(String.init), limit: limit)
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: JSONValue.object(["notifications": .array(list)]).serialized())))
    }
    router.get("/v1/notifications/:id") { _, context in
        guard let n = try await store.get(eventID: try context.parameters.require("id")) else {
            return Response(status: .notFound, headers: [.contentType: "application/problem+json"],
                            body: .init(byteBuffer: ByteBuffer(string: #"{"type":"about:blank","title":"Not Found","status":404,"code":"not_found","detail":"no such event"}"#)))
        }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: n.serialized())))
    }
    let app = Application(
        router: router,
        configuration: .init(address: .hostname(config.string("http.host", default: "127.0.0.1"), port: try config.port("http.port", default: 9105)), serverName: "notifier"),
        logger: logger)

    var services: [any Service] = [app]
    var clients: [AMQPClient] = []
    for queue in settings.queues {
        let client = AMQPClient(configuration: amqp, logger: logger, name: "notifier-\(queue)")
        clients.append(client)
        services.append(NotificationConsumer(queue: queue, client: client, pool: pool, settings: settings, wake: wake, logger: logger))
    }
    services.append(WebhookDeliverer(
        pool: pool, http: http, settings: try WebhookSettings(config, prefix: "notifier.webhook"), wake: wake,
        table: "notification_deliveries", key: "id", metric: "gedge_notifier_deliveries_total", logger: logger))
    logger.info("notifier starting", metadata: ["queues": .string(settings.queues.joined(separator: ",")), "webhooks": "\(settings.webhooks.count)"])
    try await ServiceKit.run(services, logger: logger)
    for c in clients { await c.close() }
    await http.shutdown()
    pool.shutdown()
    logger.info("notifier stopped")
}

await Console.runMain("notifier") { try await runNotifier() }
