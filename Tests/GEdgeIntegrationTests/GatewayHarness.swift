import Foundation
import GEdgeCore
import GEdgeGateway
import GEdgeWorkflow
import GEdgeOutbox
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePostgres
import GEdgeScheduler
import Hummingbird
import NIOCore
import Synchronization
import Testing

/// A gateway on a loopback port in front of a scheduler world (its own Kafka and schema).
final class GatewayHarness: @unchecked Sendable {
    let world: SchedulerHarness
    let gateway: Gateway
    let http: HTTPClient
    let port: Int
    let adminToken = "admin-" + Hex.random(bytes: 24)

    /// The tests' callback receivers listen on loopback.
    static var loopbackCallbacks: GatewaySettings {
        var s = GatewaySettings()
        s.callbackAllowPrivate = true
        return s
    }

    init(settings: GatewaySettings = GatewayHarness.loopbackCallbacks, callbacks: WebhookSettings = GatewayHarness.fastCallbacks) async throws {
        world = try await SchedulerHarness()
        try world.cluster.createTopic(Topics.gatewayReplies, partitions: 1)
        let view = ClusterView(staleAfter: .seconds(3))
        let rpc = AgentRPC(producer: world.producer, consumer: try world.consumer(group: TestEnv.unique("gw-replies"), topic: Topics.gatewayReplies, earliest: false), logger: world.logger)
        gateway = try Gateway(settings: settings, store: GatewayStore(pool: world.pool), producer: world.producer, view: view, rpc: rpc, logger: world.logger)
        try await gateway.tokens.ensureAdmin(token: adminToken)
        http = HTTPClient(logger: world.logger)
        let router = Router(context: GatewayRequestContext.self)
        gateway.addRoutes(to: router)
        let bound = PortBox()
        let app = Application(
            router: router, server: Gateway.httpServer(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in bound.set(channel.localAddress?.port ?? 0) }, logger: world.logger)
        let wake = Wakeup()
        _ = world.run([
            ClusterStatusListener(consumer: try world.consumer(group: TestEnv.unique("gw-view"), topic: Topics.clusterStatus), view: view,
                                  snapshots: world.producer, source: "gateway", logger: world.logger),
            CallbackRecorder(consumer: try world.consumer(group: "gw-callbacks", topic: Topics.scheduleResults), pool: world.pool, wake: wake, allowPrivate: settings.callbackAllowPrivate, logger: world.logger,
                             progress: world.progress),
            WebhookDeliverer(
                pool: world.pool, http: http, settings: callbacks, wake: wake, table: "callback_deliveries", key: "request_id",
                metric: "gedge_gateway_callbacks_total", logger: world.logger),
            WorkflowEngine(store: WorkflowStore(pool: world.pool), producer: world.producer, settings: GatewayHarness.fastWorkflows, logger: world.logger),
            rpc,
            app,
        ])
        var p = 0
        try await eventually("the gateway listening") {
            p = bound.get()
            return p != 0
        }
        port = p
    }

    static var fastWorkflows: WorkflowSettings {
        var w = WorkflowSettings()
        w.interval = .milliseconds(100)
        return w
    }

    static var fastCallbacks: WebhookSettings {
        var c = WebhookSettings()
        c.firstBackoff = .milliseconds(200)
        c.maxBackoff = .seconds(1)
        c.pollInterval = .milliseconds(50)
        c.timeout = .seconds(2)
        c.signingKey = "callback-secret"
        return c
    }

    var base: String { "http://127.0.0.1:\(port)" }

    func call(_ method: String, _ path: String, token: String?, body: String? = nil, contentType: String = "application/json") async throws -> (Int, JSONValue) {
        var headers: [(String, String)] = []
        if body != nil { headers.append(("Content-Type", contentType)) }
        let r = try await http.execute(GEdgeHTTPClient.HTTPRequest(
            method: method, url: base + path, headers: headers, body: body.map { Array($0.utf8) }, timeout: .seconds(10), bearerToken: token))
        let json = r.body.isEmpty ? JSONValue.null : ((try? r.json()) ?? .string(r.bodyString))
        return (r.status, json)
    }

    func json(_ method: String, _ path: String, token: String?, _ value: JSONValue) async throws -> (Int, JSONValue) {
        try await call(method, path, token: token, body: String(decoding: value.serialized(), as: UTF8.self))
    }

    /// A token for a project, made through the API as an operator would.
    func token(project: String, user: String = "u1") async throws -> String {
        let (status, body) = try await json("POST", "/v1/tokens", token: adminToken, .object([
            "user_name": .string(user), "workspace_name": "w1", "project_name": .string(project),
        ]))
        #expect(status == 201, "\(body)")
        return try #require(body["token"]?.stringValue)
    }

    /// Binds namespaces to a project through the admin API, as an operator would.
    func bindNamespaces(_ project: String, _ namespaces: [String]) async throws {
        let (status, body) = try await json("PUT", "/v1/projects/\(project)/namespaces", token: adminToken,
                                            .object(["namespaces": .array(namespaces.map(JSONValue.string))]))
        #expect(status == 200, "\(body)")
    }

    func shutdown() async {
        await world.shutdown()
        await http.shutdown()
    }
}

final class PortBox: Sendable {
    private let value = Mutex(0)
    func set(_ p: Int) { value.withLock { $0 = p } }
    func get() -> Int { value.withLock { $0 } }
}
