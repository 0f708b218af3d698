import Foundation
import GEdgeAgent
import GEdgeAMQP
import GEdgeAutoscaler
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePlacement
import GEdgeScaling
import GEdgeScheduler
import Hummingbird
import NIOCore
import Testing

/// Runs an autoscaler in the harness (its own advisory lock, so concurrent tests do not
/// share leadership), with its cluster and pod-metrics views; returns its HTTP client.
func startAutoscaler(_ h: SchedulerHarness, _ settings: AutoscalerSettings, store: AutoscalerStore) throws -> HTTPClient {
    var s = settings
    s.lockKey = Int64.random(in: 1..<Int64.max)
    // Generous: on a loaded two-core machine a report can come late, and a neighbour
    // that looks stale cannot take the overflow.
    let view = ClusterView(staleAfter: .seconds(15))
    let pods = PodMetricsView()
    let http = HTTPClient(logger: h.logger)
    _ = h.run([
        ClusterStatusListener(consumer: try h.consumer(group: "as-view", topic: Topics.clusterStatus), view: view, snapshots: h.producer, source: "autoscaler", logger: h.logger),
        PodMetricsListener(consumer: try h.consumer(group: "as-metrics", topic: Topics.podMetrics, earliest: false), view: pods, logger: h.logger),
        Autoscaler(settings: s, store: store, pool: h.pool, clusters: view, pods: pods,
                   external: ExternalMetrics(http: http, settings: s, kafka: h.kafka, logger: h.logger), producer: h.producer, logger: h.logger),
    ])
    return http
}

/// The autoscaler end to end: scheduler, three simulated clusters with their agents (pod
/// metrics included) and the autoscaler, over the mock Kafka cluster and PostgreSQL. Load
/// rises on a service placed in a small home cluster: it scales out there, then over the
/// edge into the nearest neighbour (not the far one); load falls: the neighbour gives its
/// replicas back first and its placement is withdrawn, then the home scales in.
@Suite("Autoscaler", .enabled(if: TestEnv.integration), .serialized) struct AutoscalerFlowTests {
    @Test(.timeLimit(.minutes(5)))
    func scalesOutOverTheEdgeAndBackIn() async throws {
        let h = try await SchedulerHarness(partitions: 2)
        defer { Task { await h.shutdown() } }
        try h.cluster.createTopic(Topics.podMetrics, partitions: 1)
        try h.cluster.createTopic(Topics.autoscalerReplies, partitions: 1)
        try h.startScheduler(instance: "s1", staleAfter: .seconds(15))
        let home = SimulatedCluster(name: "home", nodes: simNodes("h", count: 1, cpu: 2000, latency: ["near": 5, "far": 40]), podStartDelay: .milliseconds(20))
        let near = SimulatedCluster(name: "near", nodes: simNodes("n", count: 2, latency: ["home": 5, "far": 40]), podStartDelay: .milliseconds(20))
        let far = SimulatedCluster(name: "far", nodes: simNodes("f", count: 2, latency: ["home": 40, "near": 40]), podStartDelay: .milliseconds(20))
        for (name, driver) in [("home", home), ("near", near), ("far", far)] {
            try h.startAgent(name, driver: driver, statusInterval: .milliseconds(150), metricsInterval: .milliseconds(100))
        }
        try await h.bind("p1", ["home", "near", "far"])
        try await h.submit(request("svc-1", .selectedCluster, ["select_clusters": .array([.string("home")])]))
        _ = try await h.waitFor("svc-1", .completed)

        let ns = KubeNames.namespace(forProject: "p1")
        let store = AutoscalerStore(pool: h.pool)
        let fast = ScalingRules(stabilizationWindowSeconds: 0, policies: [.init(type: .pods, value: 100, periodSeconds: 1)])
        // Scale-in gives back at most 2 replicas a second, so the order is visible.
        let slowDown = ScalingRules(stabilizationWindowSeconds: 0, policies: [.init(type: .pods, value: 2, periodSeconds: 1)])
        try await store.upsert(AutoscalePolicy(
            namespace: ns, name: "w-svc-1", requestID: "svc-1", projectName: "p1", minReplicas: 1, maxReplicas: 8,
            metrics: [.cpu(targetUtilization: 50)], scaleUp: fast, scaleDown: slowDown), source: "api")

        var settings = AutoscalerSettings()
        settings.interval = .milliseconds(200)
        settings.resendAfter = .seconds(2)
        let http = try startAutoscaler(h, settings, store: store)
        defer { Task { await http.shutdown() } }

        func load(_ cpu: Double) async throws {
            for c in ["home", "near", "far"] {
                let env = Envelope(source: .cluster("test"), target: .cluster(c), hcode: .simulateLoad, lcode: .request,
                                   msg: SimulatedLoad(namespace: ns, name: "w-svc-1", cpuMilli: cpu).msg)
                _ = try await h.producer.send(KafkaRecord(topic: Topics.agentCommands(cluster: c), key: "load", value: h.codec.encode(env)))
            }
        }
        func replicas(_ c: SimulatedCluster) async -> Int { await c.usage().first { $0.name == "w-svc-1" }?.replicas ?? 0 }

        // 3000m offered against 500m requests at a 50 % target wants 12: the maximum, 8. The
        // home fits 4 (2000m); the other 4 go over the edge to the nearest neighbour.
        try await load(3000)
        var seen = (0, 0, 0)
        try await eventually("8 replicas: 4 at home, 4 in near", timeout: .seconds(90), detail: { "home \(seen.0), near \(seen.1), far \(seen.2)" }) {
            seen = (await replicas(home), await replicas(near), await replicas(far))
            return seen.0 == 4 && seen.1 == 4
        }
        #expect(await replicas(far) == 0)
        let placements = try await store.placements(namespace: ns, name: "w-svc-1")
        #expect(placements.map(\.cluster) == ["home", "near"])
        var decisions = try await store.decisions(namespace: ns, name: "w-svc-1", limit: 200)
        #expect(decisions.contains { $0.kind == .overflow && $0.reason.contains("running in near") })
        // The decision for all 8 is recorded by the cycle that sees the neighbour's replicas
        // running, which may come just after they are counted here.
        do {
            try await eventually("a horizontal decision for 8", timeout: .seconds(60)) {
                decisions = try await store.decisions(namespace: ns, name: "w-svc-1", limit: 200)
                return decisions.contains { $0.kind == .horizontal && $0.target == 8 && $0.inputs["cpu"]?["target_utilization"] == .number(50) }
            }
        } catch {
            Issue.record("\(decisions.map { "\($0.kind) \($0.target): \($0.reason) \($0.inputs)" })")
        }

        // Load falls to 200m: 1 replica. The neighbour empties before the home shrinks.
        try await load(200)
        var timeline: [(Int, Int)] = []
        try await eventually("back to 1 replica at home, none over the edge", timeout: .seconds(90), detail: { "\(timeline.suffix(5))" }) {
            let (a, b) = (await replicas(home), await replicas(near))
            timeline.append((a, b))
            return a == 1 && b == 0
        }
        #expect(!timeline.contains { $0.0 < 4 && $0.1 > 0 }, "the home shrank while the neighbour still ran replicas: \(timeline)")
        #expect(try await store.placements(namespace: ns, name: "w-svc-1").map(\.cluster) == ["home"])
        decisions = try await store.decisions(namespace: ns, name: "w-svc-1", limit: 200)
        #expect(decisions.contains { $0.kind == .overflow && $0.reason.contains("withdrawn") })
        // The overflow request was withdrawn through the scheduler.
        let overflowID = decisions.compactMap { $0.inputs["placement_request"]?.stringValue }.first
        #expect(overflowID != nil)
        if let overflowID { #expect(try await h.states(overflowID).contains(.canceled)) }
    }
}

/// The metric sources besides pod usage, each against the real thing: a Prometheus HTTP
/// API (a loopback server answering as Prometheus does), a RabbitMQ queue, a Kafka group's lag.
@Suite("Autoscaler metric sources", .enabled(if: TestEnv.integration), .timeLimit(.minutes(2)))
struct AutoscalerMetricSourceTests {
    @Test func prometheusRabbitMQAndKafkaLag() async throws {
        // Prometheus: a vector summed; an error answer is an error.
        let router = Router()
        router.get("/api/v1/query") { request, _ -> Response in
            let q = request.uri.queryParameters["query"].map(String.init) ?? ""
            let body: String
            switch q {
            case "up": body = #"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"3"]},{"metric":{},"value":[1,"4.5"]}]}}"#
            case "scalar(1)": body = #"{"status":"success","data":{"resultType":"scalar","result":[1,"42"]}}"#
            default: body = #"{"status":"error","errorType":"bad_data","error":"parse error"}"#
            }
            return Response(status: q == "up" || q == "scalar(1)" ? .ok : .badRequest, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        let port = PortBox()
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { port.set($0.localAddress?.port ?? 0) }, logger: TestEnv.logger)
        let h = try await SchedulerHarness(partitions: 2)
        defer { Task { await h.shutdown() } }
        _ = h.run([app])
        try await eventually("the fake Prometheus listening") { port.get() != 0 }

        var settings = AutoscalerSettings()
        settings.prometheusURL = "http://127.0.0.1:\(port.get())/"
        settings.amqp = try AMQPConfiguration(url: TestEnv.amqpURL)
        let http = HTTPClient(logger: h.logger)
        defer { Task { await http.shutdown() } }
        let external = ExternalMetrics(http: http, settings: settings, kafka: h.kafka, logger: h.logger)
        #expect(try await external.prometheus("up") == 7.5)
        #expect(try await external.prometheus("scalar(1)") == 42)
        await #expect(throws: (any Error).self) { try await external.prometheus("bad(") }

        // RabbitMQ: ready messages by passive declare; a queue not there yet holds nothing.
        let amqp = AMQPClient(configuration: try AMQPConfiguration(url: TestEnv.amqpURL), logger: h.logger)
        try await amqp.waitUntilConnected()
        let q = TestEnv.unique("as-queue")
        _ = try await amqp.declareQueue(AMQPQueueSpec(name: q, autoDelete: false))
        for i in 0..<5 { try await amqp.publish(routingKey: q, message: AMQPMessage(body: Array("m\(i)".utf8))) }
        #expect(try await external.queueLength(q, url: nil) == 5)
        #expect(try await external.queueLength(TestEnv.unique("absent"), url: nil) == 0)
        _ = try await amqp.deleteQueue(q)
        await amqp.close()

        // Kafka: 10 messages, a group that consumed and committed 4 of them: a lag of 6.
        let topic = TestEnv.unique("as-lag")
        try h.cluster.createTopic(topic, partitions: 2)
        for i in 0..<10 { _ = try await h.producer.send(KafkaRecord(topic: topic, key: "k\(i)", value: Array("v".utf8))) }
        #expect(try await external.consumerLag(topic: topic, group: "workers") == 10)  // nothing committed yet
        let consumer = try h.consumer(group: "workers", topic: topic)
        var taken = 0
        for await m in consumer {
            try consumer.storeOffset(m)
            taken += 1
            if taken == 4 { break }
        }
        try await consumer.commit()
        try await eventually("a lag of 6") { try await external.consumerLag(topic: topic, group: "workers") == 6 }
        consumer.stopPolling()
        try await consumer.close()
    }
}

/// Scale up and down: a workload using far less memory than it requests gets its request
/// lowered to the observed 90th percentile plus headroom, once, and not again while usage
/// holds (no flapping); CPU, which the HPA scales on, is left alone.
@Suite("Autoscaler vertical", .enabled(if: TestEnv.integration), .timeLimit(.minutes(2)))
struct AutoscalerVerticalTests {
    @Test func memoryRequestFollowsUsageWithoutFlapping() async throws {
        let h = try await SchedulerHarness(partitions: 2)
        defer { Task { await h.shutdown() } }
        try h.cluster.createTopic(Topics.podMetrics, partitions: 1)
        try h.cluster.createTopic(Topics.autoscalerReplies, partitions: 1)
        try h.startScheduler(instance: "s1")
        let edge = SimulatedCluster(name: "edge", nodes: simNodes("e", count: 2), podStartDelay: .milliseconds(20))
        try h.startAgent("edge", driver: edge, statusInterval: .milliseconds(150), metricsInterval: .milliseconds(100))
        try await h.bind("p1", ["edge"])
        try await h.submit(request("v-1", .selectedCluster, ["select_clusters": .array([.string("edge")])]))
        _ = try await h.waitFor("v-1", .completed)
        let ns = KubeNames.namespace(forProject: "p1")
        // 256Mi requested; 64Mi used.
        let env = Envelope(source: .cluster("test"), target: .cluster("edge"), hcode: .simulateLoad, lcode: .request,
                           msg: SimulatedLoad(namespace: ns, name: "w-v-1", cpuMilli: 250, memory: Double(64 << 20)).msg)
        _ = try await h.producer.send(KafkaRecord(topic: Topics.agentCommands(cluster: "edge"), key: "load", value: h.codec.encode(env)))

        let store = AutoscalerStore(pool: h.pool)
        var policy = AutoscalePolicy(namespace: ns, name: "w-v-1", requestID: "v-1", projectName: "p1", minReplicas: 1, maxReplicas: 3,
                                     metrics: [.cpu(targetUtilization: 50)])
        policy.vertical.enabled = true
        policy.vertical.minMemory = 32 << 20
        try await store.upsert(policy, source: "api")
        var settings = AutoscalerSettings()
        settings.interval = .milliseconds(100)
        settings.verticalWindow = .seconds(1)
        let http = try startAutoscaler(h, settings, store: store)
        defer { Task { await http.shutdown() } }
        // 64Mi + 15 % = 73.6Mi.
        let expected = Int64((Double(64 << 20) * 1.15).rounded(.up))
        try await eventually("the memory request lowered", timeout: .seconds(20)) {
            await edge.usage().first?.pods.first?.memoryRequest == Double(expected)
        }
        #expect(await edge.usage().first?.pods.first?.cpuRequestMilli == 500)
        try await Task.sleep(for: .seconds(3))  // three more windows with the same usage
        let vertical = try await store.decisions(namespace: ns, name: "w-v-1", limit: 100).filter { $0.kind == .vertical }
        #expect(vertical.count == 1, "\(vertical.map(\.reason))")
        #expect(vertical.first?.reason.contains("memory request 256Mi -> 73Mi") == true, "\(vertical.map(\.reason))")
    }
}

/// Policies through the gateway and gedgectl: from a service definition's `autoscaling`
/// (the HPA is then left to the autoscaler), through `PUT /v1/autoscaling`, read back with
/// their decisions, kept to their project, and removed.
@Suite("Autoscaling API", .enabled(if: TestEnv.integration), .timeLimit(.minutes(3)))
struct AutoscalingAPITests {
    @Test func policiesFromServicesAndTheAPIWithDecisions() async throws {
        let g = try await GatewayHarness()
        let edge1 = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 2), podStartDelay: .milliseconds(20))
        try g.world.startAgent("edge1", driver: edge1)
        let ctx = try g.world.startScheduler(instance: "s1")
        try await eventually("edge1 in view") { !ctx.view.fresh().isEmpty }
        _ = try await g.json("PUT", "/v1/projects/p1/clusters", token: g.adminToken, .object(["clusters": .array(["edge1"])]))
        let token = try await g.token(project: "p1")
        try await g.bindNamespaces("p1", ["shop"])
        let other = try await g.token(project: "p2")

        // A service asking for autoscaling: a policy, and no HPA applied beside it.
        let service = """
            name: web
            namespace: shop
            containers: [nginx]
            ports: [80]
            type: ClusterIP
            autoscaling: {minReplicas: 2, maxReplicas: 6, targetCPUUtilization: 70}
            """
        let (created, body) = try await g.call("POST", "/v1/services", token: token, body: service, contentType: "application/yaml")
        #expect(created == 202, "\(body)")
        #expect(body["manifests"]?.arrayValue?.compactMap { $0["kind"]?.stringValue } == ["Deployment", "Service"])
        #expect(body["autoscaling"]?["maxReplicas"] == .number(6))
        let serviceRequest = try #require(body["request_id"]?.stringValue)
        _ = try await g.world.waitFor(serviceRequest, .completed)

        let (listed, list) = try await g.call("GET", "/v1/autoscaling", token: token)
        #expect(listed == 200)
        let policy = try #require(list["policies"]?.arrayValue?.first)
        #expect(policy["name"] == "web" && policy["namespace"] == "shop" && policy["request_id"] == .string(serviceRequest))
        #expect(policy["metrics"]?.arrayValue?.first?["targetUtilization"] == .number(70))
        #expect(policy["behavior"]?["scaleUp"]?["stabilizationWindowSeconds"] == .number(180))
        #expect(try await g.call("GET", "/v1/autoscaling", token: other).1["policies"]?.arrayValue?.isEmpty == true)

        // A policy through the API for a workload placed by a plain request.
        try await g.world.submit(request("plain-1", .selectedCluster, ["select_clusters": .array(["edge1"])]))
        _ = try await g.world.waitFor("plain-1", .completed)
        let put = #"{"request_id": "plain-1", "minReplicas": 1, "maxReplicas": 4, "metrics": [{"type": "rabbitmq", "queue": "jobs", "targetAverageValue": 10}], "overflow": false}"#
        let (setStatus, set) = try await g.call("PUT", "/v1/autoscaling/p1/w-plain-1", token: token, body: put)
        #expect(setStatus == 200, "\(set)")
        #expect(set["project"] == "p1" && set["overflow"] == false)
        // Mistakes are 400s that name the field; other projects' requests and policies are not there.
        let (bad, badBody) = try await g.call("PUT", "/v1/autoscaling/p1/w-plain-1", token: token, body: #"{"request_id": "plain-1", "maxReplicas": 0}"#)
        #expect(bad == 400 && badBody["field"] == "maxReplicas", "\(badBody)")
        let (mismatch, _) = try await g.call("PUT", "/v1/autoscaling/p1/w-plain-1", token: token, body: #"{"name": "other", "request_id": "plain-1", "maxReplicas": 3}"#)
        #expect(mismatch == 400)
        #expect(try await g.call("PUT", "/v1/autoscaling/p1/w-plain-1", token: other, body: put).0 == 404)
        #expect(try await g.call("GET", "/v1/autoscaling/p1/w-plain-1", token: other).0 == 404)
        #expect(try await g.call("PUT", "/v1/autoscaling/p1/x", token: token, body: #"{"request_id": "nope", "maxReplicas": 3}"#).0 == 404)

        // Decisions, newest first, paged.
        let store = AutoscalerStore(pool: g.world.pool)
        for i in 1...3 {
            try await store.record(ScalingDecision(namespace: "shop", name: "web", kind: .horizontal, current: i, target: i + 1,
                                                   inputs: .object(["cpu": .object(["utilization": .number(Double(90 + i))])]), reason: "step \(i)"))
        }
        let (_, page1) = try await g.call("GET", "/v1/autoscaling/shop/web/decisions?limit=2", token: token)
        #expect(page1["decisions"]?.arrayValue?.compactMap { $0["reason"]?.stringValue } == ["step 3", "step 2"])
        let next = try #require(page1["next"]?.stringValue)
        let (_, page2) = try await g.call("GET", next, token: token)
        #expect(page2["decisions"]?.arrayValue?.compactMap { $0["reason"]?.stringValue } == ["step 1"])
        let (_, one) = try await g.call("GET", "/v1/autoscaling/shop/web", token: token)
        #expect(one["decisions"]?.arrayValue?.count == 3)
        #expect(try await g.call("GET", "/v1/autoscaling/shop/web/decisions?limit=0", token: token).0 == 400)

        // gedgectl reads the same.
        let ctl = GedgectlTests()
        let (code, lines) = try await ctl.ctl(g, token: token, ["scaling", "list"])
        #expect(code == 0)
        #expect(lines.contains { $0.contains("web") && $0.contains("cpu=70%") } && lines.contains { $0.contains("w-plain-1") && $0.contains("rabbitmq=10") }, "\(lines)")
        let (code2, lines2) = try await ctl.ctl(g, token: token, ["scaling", "decisions", "shop/web"])
        #expect(code2 == 0 && lines2.contains { $0.contains("step 3") }, "\(lines2)")

        // Deleting the service removes its policy; deleting a policy leaves the workload.
        #expect(try await g.call("DELETE", "/v1/services/shop/web", token: token).0 == 202)
        #expect(try await g.call("GET", "/v1/autoscaling/shop/web", token: token).0 == 404)
        #expect(try await g.call("DELETE", "/v1/autoscaling/p1/w-plain-1", token: token).0 == 204)
        #expect(try await g.call("GET", "/v1/autoscaling", token: token).1["policies"]?.arrayValue?.isEmpty == true)
        await g.shutdown()
    }
}
