import Foundation
import GEdgeClusters
import GEdgeAgent
import GEdgeCore
import GEdgeSecurity
import GEdgeGateway
import GEdgeOutbox
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePlacement
import GEdgeScheduler
import Hummingbird
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing

/// The GS-Engine seed's service definition (config/gse/app1.yaml).
let seedServiceYAML: String = {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/gse/app1.yaml")
    return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
}()

@Suite("Gateway", .enabled(if: TestEnv.integration), .timeLimit(.minutes(3)))
struct GatewayTests {
    /// The GS-Engine seed's request, as sent, with a token: manifests that pass the
    /// Kubernetes schemas, a placement on the node the hint selects, then delete.
    @Test func seedServiceDefinitionIsPlacedAndDeleted() async throws {
        let g = try await GatewayHarness()
        let edge1 = SimulatedCluster(name: "edge1", nodes: [
            SimulatedNode(name: "plain", allocatable: Resources(cpuMilli: 8000, memory: 16 << 30)),
            SimulatedNode(name: "gpu-ssd", allocatable: Resources(cpuMilli: 4000, memory: 8 << 30), labels: ["gpu": "gpu1", "ssd": "ssd1"]),
        ], podStartDelay: .milliseconds(20))
        try g.world.startAgent("edge1", driver: edge1)
        let ctx = try g.world.startScheduler(instance: "s1")
        try await eventually("edge1 in view") { !ctx.view.fresh().isEmpty }
        let (bindStatus, _) = try await g.json("PUT", "/v1/projects/p1/clusters", token: g.adminToken, .object(["clusters": .array(["edge1"])]))
        #expect(bindStatus == 200)
        let token = try await g.token(project: "p1")
        // The seed's namespace is not the project's until an admin binds it.
        let (refused, why) = try await g.call("POST", "/gse/service/create", token: token, body: seedServiceYAML, contentType: "application/yaml")
        #expect(refused == 403 && why["res"] == .null && why["err"]?.stringValue?.contains("namespace") == true, "\(why)")
        try await g.bindNamespaces("p1", ["edge"])

        let (status, answer) = try await g.call("POST", "/gse/service/create", token: token, body: seedServiceYAML, contentType: "application/yaml")
        #expect(status == 200 && answer["err"] == .null, "\(answer)")
        let body = try #require(answer["res"])
        #expect(body["action"] == "created")
        let id = try #require(body["request_id"]?.stringValue)
        let manifests = try #require(body["manifests"]?.arrayValue)
        #expect(manifests.compactMap { $0["kind"]?.stringValue } == ["Deployment", "Service", "ServiceMonitor"])
        try await validateWithKubernetesSchemas(manifests.filter { $0["kind"] != "ServiceMonitor" })

        let done = try await g.world.waitFor(id, .completed)
        #expect(done.placement == .array([.object(["cluster": "edge1", "node": "gpu-ssd", "replicas": 1])]))
        let (_, status2) = try await g.call("GET", "/gse/service/edge/app1/status", token: token)
        #expect(status2["res"]?["state"] == "completed")
        #expect(status2["res"]?["history"]?.arrayValue?.compactMap { $0["state"]?.stringValue }.last == "completed")
        let (_, list) = try await g.call("GET", "/gse/service/list?namespace=edge", token: token)
        #expect(list == .object(["err": .null, "res": .array(["app1"])]), "\(list)")
        let (_, one) = try await g.call("GET", "/v1/services/edge/app1", token: token)
        #expect(one["definition"]?["name"] == "app1" && one["state"] == "completed")

        // Another project can neither see it nor take its namespace.
        let other = try await g.token(project: "p2")
        #expect(try await g.call("GET", "/gse/service/edge/app1", token: other).0 == 404)
        let (taken, takenBody) = try await g.call(
            "POST", "/gse/service/create", token: other, body: seedServiceYAML.replacingOccurrences(of: "app1", with: "app2"), contentType: "application/yaml")
        #expect(taken == 403, "\(takenBody)")
        // /v1 keeps its conventions: the same name again is a conflict there.
        let (v1Again, _) = try await g.call("POST", "/v1/services", token: token, body: seedServiceYAML, contentType: "application/yaml")
        #expect(v1Again == 409)

        let (del, _) = try await g.call("DELETE", "/gse/service/edge/app1", token: token)
        #expect(del == 200)
        _ = try await g.world.waitFor(id, .canceled)
        try await eventually("the pods removed") { await edge1.podCount == 0 }
        #expect(try await g.call("GET", "/gse/service/edge/app1", token: token).0 == 404)
        await g.shutdown()
    }

    /// GS-Scheduler's front API with a multipart form, and its callback really called: the
    /// receiver is down at first, then up, and gets the end state exactly once.
    @Test func frontAPIFormAndCallbackDeliveredOnce() async throws {
        let g = try await GatewayHarness()
        let edge1 = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 2), podStartDelay: .milliseconds(20))
        let edge2 = SimulatedCluster(name: "edge2", nodes: simNodes("e2", count: 2), podStartDelay: .milliseconds(20))
        try g.world.startAgent("edge1", driver: edge1)
        try g.world.startAgent("edge2", driver: edge2)
        let ctx = try g.world.startScheduler(instance: "s1")
        try await eventually("clusters in view") { ctx.view.fresh().count == 2 }
        try await g.world.bind("p1", ["edge1", "edge2"])
        let token = try await g.token(project: "p1")

        // A port with nothing on it yet.
        let receiver = try WebhookReceiver()
        let port = receiver.port  // nothing listens there yet

        let boundary = "gedge-boundary-7f3a"
        var form = ""
        func field(_ name: String, _ value: String, file: Bool = false) {
            form += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"" + (file ? "; filename=\"w.yaml\"\r\nContent-Type: application/yaml" : "") + "\r\n\r\n\(value)\r\n"
        }
        field("yaml_file", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n      - {name: web, image: nginx, resources: {requests: {cpu: 100m}}}\n", file: true)
        field("user_name", "u1")
        field("workspace_name", "w1")
        field("project_name", "p1")
        field("select_clusters", #"["edge2", ["edge1"]]"#)
        field("mode", "cluster")
        field("fast_option", "true")
        field("callback_url", "http://127.0.0.1:\(port)/hook")
        form += "--\(boundary)--\r\n"
        let (status, body) = try await g.call("POST", "/scheduler/select", token: token, body: form, contentType: "multipart/form-data; boundary=\(boundary)")
        #expect(status == 202, "\(body)")
        let id = try #require(body["request_id"]?.stringValue)
        let done = try await g.world.waitFor(id, .completed)
        #expect(done.placement.arrayValue?.first?["cluster"] == "edge2")
        let (_, st) = try await g.call("GET", "/scheduler/status/\(id)", token: token)
        #expect(st["fast_option"] == true && st["state"] == "completed")

        // Tried while down...
        try await eventually("two failed attempts") {
            let rows = try await g.world.pool.query("SELECT attempts, state FROM callback_deliveries WHERE request_id = $1", [.text(id)])
            return (try rows.first?.decode("attempts", as: Int.self) ?? 0) >= 2
        }
        // ...delivered once when up, signed.
        try await receiver.start()
        try await eventually("the callback delivered") { receiver.received.count == 1 }
        try await Task.sleep(for: .seconds(1))
        #expect(receiver.received.count == 1)
        let hit = try #require(receiver.received.first)
        #expect(hit.body["request_id"] == .string(id) && hit.body["state"] == "completed")
        #expect(hit.signature == "sha256=" + Digests.hmacSHA256Hex(key: Array("callback-secret".utf8), message: hit.raw))
        let rows = try await g.world.pool.query("SELECT state FROM callback_deliveries WHERE request_id = $1", [.text(id)])
        #expect(try rows.first?.decode("state", as: String.self) == "delivered")
        await receiver.stop()
        await g.shutdown()
    }

    /// /v1 requests: create, lifecycle, list with filters and pages, cancel.
    @Test func requestsAreCreatedListedPagedAndCanceled() async throws {
        let g = try await GatewayHarness()
        let edge1 = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 2), podStartDelay: .milliseconds(20))
        try g.world.startAgent("edge1", driver: edge1)
        var queue = QueuePolicy()
        queue.retryBackoff = .seconds(30)
        let ctx = try g.world.startScheduler(instance: "s1", queue: queue)
        try await eventually("edge1 in view") { !ctx.view.fresh().isEmpty }
        try await g.world.bind("p1", ["edge1"])
        let token = try await g.token(project: "p1")

        var ids: [String] = []
        for i in 0..<5 {
            let (s, b) = try await g.json("POST", "/v1/requests", token: token, .object([
                "policy": "most", "workload": workload("w\(i)", cpu: "100m"),
            ]))
            #expect(s == 202, "\(b)")
            ids.append(try #require(b["request_id"]?.stringValue))
        }
        // YAML text as the workload, and a client-chosen ID.
        let (ys, yb) = try await g.call("POST", "/v1/requests", token: token, body: """
            request_id: yaml-1
            policy: GMostRequestedPriority
            workload: |
              apiVersion: v1
              kind: Pod
              metadata: {name: p}
              spec: {containers: [{name: c, image: busybox}]}
            """, contentType: "application/yaml")
        #expect(ys == 202, "\(yb)")
        ids.append("yaml-1")
        #expect(try await g.json("POST", "/v1/requests", token: token, .object(["request_id": "yaml-1", "policy": "most", "workload": workload("again")])).0 == 409)
        for id in ids { _ = try await g.world.waitFor(id, .completed) }

        let (_, one) = try await g.call("GET", "/v1/requests/\(ids[0])", token: token)
        #expect(one["history"]?.arrayValue?.compactMap { $0["state"]?.stringValue } == ["received", "enqueued", "dispatched", "scheduling", "applying", "completed"])

        // Pages of two cover all six, newest first, no repeats.
        var seen: [String] = []
        var cursor: String?
        repeat {
            let (s, page) = try await g.call("GET", "/v1/requests?limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""), token: token)
            #expect(s == 200)
            seen += page["requests"]?.arrayValue?.compactMap { $0["request_id"]?.stringValue } ?? []
            cursor = page["next_cursor"]?.stringValue
        } while cursor != nil
        #expect(Set(seen) == Set(ids) && seen.count == ids.count)
        let (_, completed) = try await g.call("GET", "/v1/requests?state=completed&limit=100", token: token)
        #expect(completed["requests"]?.arrayValue?.count == 6)
        let (_, none) = try await g.call("GET", "/v1/requests?state=failed", token: token)
        #expect(none["requests"]?.arrayValue?.isEmpty == true)

        // A request that cannot fit waits in the retry queue; cancel ends it.
        let (hs, hb) = try await g.json("POST", "/v1/requests", token: token, .object(["policy": "most", "workload": workload("huge", cpu: "64")]))
        #expect(hs == 202)
        let huge = try #require(hb["request_id"]?.stringValue)
        try await eventually("huge failed once") { (try await g.world.store.request(id: huge))?.failCount ?? 0 >= 1 }
        let (cs, _) = try await g.call("POST", "/v1/requests/\(huge)/cancel", token: token)
        #expect(cs == 202)
        let canceled = try await g.world.waitFor(huge, .canceled)
        #expect(canceled.reason?.contains("canceled by u1") == true)
        let (_, hist) = try await g.call("GET", "/v1/requests/\(huge)/history?after=0", token: token)
        #expect(hist["history"]?.arrayValue?.last?["state"] == "canceled")
        await g.shutdown()
    }

    /// The clusters and nodes the agents report, limited to the token's project.
    @Test func clustersAndNodesAsReported() async throws {
        let g = try await GatewayHarness()
        try g.world.startAgent("edge1", driver: SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 3)))
        try g.world.startAgent("edge2", driver: SimulatedCluster(name: "edge2", nodes: simNodes("e2", count: 1)))
        try await g.world.bind("p1", ["edge1"])
        let token = try await g.token(project: "p1")
        try await eventually("edge1 reported") {
            try await g.call("GET", "/v1/clusters", token: token).1["clusters"]?.arrayValue?.count == 1
        }
        let (_, list) = try await g.call("GET", "/v1/clusters", token: token)
        let c = try #require(list["clusters"]?.arrayValue?.first)
        #expect(c["name"] == "edge1" && c["nodes"] == 3 && c["stale"] == false)
        let (_, nodes) = try await g.call("GET", "/v1/clusters/edge1/nodes", token: token)
        #expect(nodes["nodes"]?.arrayValue?.count == 3)
        #expect(try await g.call("GET", "/v1/clusters/edge2", token: token).0 == 404)
        try await eventually("admin sees both") {
            try await g.call("GET", "/v1/clusters", token: g.adminToken).1["clusters"]?.arrayValue?.count == 2
        }
        await g.shutdown()
    }

    /// Bad input gets a clear answer and changes nothing: no row, no message.
    @Test func badInputIsRefusedAndChangesNothing() async throws {
        var settings = GatewaySettings()
        settings.maxBody = 64 * 1024
        let g = try await GatewayHarness(settings: settings)
        try await g.world.bind("p1", ["edge1"])
        try await g.world.bind("p2", ["edge9"])
        let token = try await g.token(project: "p1")
        let p2 = try await g.token(project: "p2")
        let requestsSeen = try g.world.consumer(group: TestEnv.unique("watch"), topic: Topics.scheduleRequests)

        let good = #"{"policy":"most","workload":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}}"#
        let cases: [(String, String, String?, String, String, Int, String, String?)] = [
            ("malformed JSON", "/v1/requests", token, #"{"policy": "most", "#, "application/json", 400, "malformed_json", nil),
            ("malformed YAML", "/v1/requests", token, "policy: [unclosed", "application/yaml", 400, "malformed_json", ""),
            ("YAML workload that is not YAML", "/v1/requests", token, #"{"policy":"most","workload":"a: [b"}"#, "application/json", 400, "malformed_json", "workload"),
            ("wrong type", "/v1/requests", token, #"{"policy":"most","workload":{},"fast_option":"yes"}"#, "application/json", 400, "invalid_value", "fast_option"),
            ("fast_option a number", "/v1/requests", token, #"{"policy":"most","workload":{},"fast_option":3}"#, "application/json", 400, "wrong_type", "fast_option"),
            ("missing workload", "/v1/requests", token, #"{"policy":"most"}"#, "application/json", 400, "missing_field", "workload"),
            ("missing policy", "/v1/requests", token, #"{"workload":{"kind":"Pod"}}"#, "application/json", 400, "missing_field", "policy"),
            ("unknown field", "/v1/requests", token, #"{"policy":"most","workload":{},"priority_boost":1}"#, "application/json", 400, "unknown_field", "priority_boost"),
            ("unknown policy", "/v1/requests", token, #"{"policy":"fastest","workload":{}}"#, "application/json", 400, "invalid_value", "policy"),
            ("bad request ID", "/v1/requests", token, #"{"request_id":"a b","policy":"most","workload":{}}"#, "application/json", 400, "invalid_value", "request_id"),
            ("not an object", "/v1/requests", token, "[1,2]", "application/json", 400, "wrong_type", ""),
            ("wrong content type", "/v1/requests", token, good, "text/plain", 415, "unsupported_media_type", nil),
            ("oversized", "/v1/requests", token, String(repeating: " ", count: 70 * 1024) + good, "application/json", 413, "too_large", nil),
            ("no token", "/v1/requests", nil, good, "application/json", 401, "unauthorized", nil),
            ("unknown token", "/v1/requests", "gedge_" + String(repeating: "0", count: 64), good, "application/json", 401, "unauthorized", nil),
            ("another project's name", "/v1/requests", token, #"{"policy":"most","project_name":"p2","workload":{}}"#, "application/json", 403, "forbidden", nil),
            ("another project's cluster", "/v1/requests", token,
             #"{"policy":"select","parameters":{"select_clusters":["edge1",["edge9"]]},"workload":{"kind":"Pod","spec":{"containers":[]}}}"#,
             "application/json", 403, "forbidden", nil),
            ("bad service", "/v1/services", token, "name: a\nnamespace: edge\ncontainers: [x]\nports: [0]\ntype: ClusterIP", "application/yaml", 400, "invalid_value", "ports[0]"),
            ("service unknown field", "/v1/services", token, #"{"name":"a","namespace":"e","containers":["x"],"ports":[1],"type":"ClusterIP","color":"red"}"#, "application/json", 400, "unknown_field", "color"),
            ("front form without yaml_file", "/scheduler/low", token, "user_name=u1&source_cluster=edge1", "application/x-www-form-urlencoded", 400, "missing_field", "yaml_file"),
            ("front select_clusters not a list", "/scheduler/select", token, "yaml_file=kind%3A+Pod&select_clusters=%5Bedge1", "application/x-www-form-urlencoded", 400, "invalid_value", "select_clusters"),
            ("front select_clusters code", "/scheduler/select", token, "yaml_file=kind%3A+Pod&select_clusters=__import__('os')", "application/x-www-form-urlencoded", 400, "invalid_value", "select_clusters"),
            ("front unknown field", "/scheduler/most", token, "yaml_file=kind%3A+Pod&evil=1", "application/x-www-form-urlencoded", 400, "unknown_field", "evil"),
            ("NUL in a workload", "/v1/requests", token, #"{"policy":"most","workload":{"kind":"Pod","metadata":{"name":"a\u0000b"}}}"#, "application/json", 400, "invalid_value", "workload.metadata.name"),
            ("NUL in a service", "/v1/services", token, #"{"name":"a","namespace":"e","containers":["x\u0000"],"ports":[1],"type":"ClusterIP"}"#, "application/json", 400, "invalid_value", "containers[0]"),
            ("front unknown policy", "/scheduler/fastest", token, "yaml_file=kind%3A+Pod", "application/x-www-form-urlencoded", 404, "not_found", nil),
            ("non-admin makes tokens", "/v1/tokens", token, #"{"user_name":"x","workspace_name":"w","project_name":"p1","admin":true}"#, "application/json", 403, "forbidden", nil),
            ("non-admin binds clusters", "/v1/projects/p1/clusters", token, #"{"clusters":["edge9"]}"#, "application/json", 403, "forbidden", nil),
        ]
        for (what, path, tok, body, type, status, code, field) in cases {
            let method = path.hasPrefix("/v1/projects") ? "PUT" : "POST"
            let (s, b) = try await g.call(method, path, token: tok, body: body, contentType: type)
            #expect(s == status, "\(what): \(b)")
            #expect(b["code"]?.stringValue == code, "\(what): \(b)")
            #expect(b["type"] == "about:blank" && b["detail"]?.stringValue?.isEmpty == false, "\(what): \(b)")
            if let field { #expect(b["field"]?.stringValue == field, "\(what): \(b)") }
        }
        // Reads across projects: a request of p1 is invisible to p2.
        let (ok, created) = try await g.call("POST", "/v1/requests", token: token, body: good)
        #expect(ok == 202)
        let id = try #require(created["request_id"]?.stringValue)
        #expect(try await g.call("GET", "/v1/requests/\(id)", token: p2).0 == 404)
        #expect(try await g.call("POST", "/v1/requests/\(id)/cancel", token: p2).0 == 404)
        #expect(try await g.call("GET", "/v1/requests?project=p1", token: p2).0 == 403)
        #expect(try await g.call("GET", "/v1/projects/p1/clusters", token: p2).0 == 403)
        #expect(try await g.call("GET", "/v1/nowhere", token: token).1["code"] == "not_found")

        // Exactly one message reached the requests topic: the good one.
        // Read the topic in the background for a while; never wait on it unbounded.
        let seen = Mutex<[String]>([])
        let reader = Task {
            for await m in requestsSeen { seen.withLock { $0.append(m.keyString ?? "") } }
        }
        try await eventually("the good request seen") { !seen.withLock { $0 }.isEmpty }
        try await Task.sleep(for: .seconds(1))
        requestsSeen.stopPolling()
        await reader.value
        #expect(seen.withLock { $0 } == [id])
        let services = try await g.world.pool.query("SELECT count(*) AS n FROM edge_services")
        #expect(try services.first?.decode("n", as: Int.self) == 0)
        try await requestsSeen.close()
        await g.shutdown()
    }

    /// Functions defined through the gateway (the seed's ScaledObject as it stands) and read back.
    @Test func functionsAreDefinedAndListed() async throws {
        var settings = GatewaySettings()
        settings.defaultFunctionQueue = "motion"
        let g = try await GatewayHarness(settings: settings)
        let seed = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../config/faas/darknet-scaledobject.yaml"), encoding: .utf8)
        let user = try await g.token(project: "p1")
        #expect(try await g.call("POST", "/v1/functions", token: user, body: seed, contentType: "application/yaml").0 == 403)
        let (s, b) = try await g.call("POST", "/v1/functions?cluster=edge2", token: g.adminToken, body: seed, contentType: "application/yaml")
        #expect(s == 201, "\(b)")
        #expect(b["cluster"] == "edge2" && b["target"] == "darknet-detail-detection-model")
        #expect(b["notes"]?.arrayValue?.count == 3)
        // A project reads the functions in its namespaces only.
        #expect(try await g.call("GET", "/v1/functions", token: user).1["functions"] == .array([]))
        #expect(try await g.call("GET", "/v1/functions/detail-detection/darknet-detail-detection-scaling", token: user).0 == 404)
        try await g.bindNamespaces("p1", ["detail-detection"])
        let (_, list) = try await g.call("GET", "/v1/functions", token: user)
        #expect(list["functions"]?.arrayValue?.first?["replicas"] == 0)
        let (one, detail) = try await g.call("GET", "/v1/functions/detail-detection/darknet-detail-detection-scaling", token: user)
        #expect(one == 200 && detail["events"] == .array([]))
        let (bad, problem) = try await g.call("POST", "/v1/functions", token: g.adminToken, body: seed.replacingOccurrences(of: "type: rabbitmq", with: "type: kafka"), contentType: "application/yaml")
        #expect(bad == 400 && problem["field"] == "spec.triggers[0].type", "\(problem)")
        // A KEDA field the suite does not act on is refused by name.
        let (paused, pausedProblem) = try await g.call("POST", "/v1/functions", token: g.adminToken,
            body: seed.replacingOccurrences(of: "spec:\n", with: "spec:\n  initialCooldownPeriod: 30\n"), contentType: "application/yaml")
        #expect(paused == 400 && pausedProblem["field"] == "spec.initialCooldownPeriod" && pausedProblem["code"] == "unknown_field", "\(pausedProblem)")
        // A file with its Secret and TriggerAuthentication, as KEDA's documentation writes it.
        let withAuth = """
            apiVersion: v1
            kind: Secret
            metadata: {name: rmq, namespace: detail-detection}
            stringData: {host: "amqp://user:pw@rabbitmq:5672/"}
            ---
            apiVersion: keda.sh/v1alpha1
            kind: TriggerAuthentication
            metadata: {name: rmq-auth, namespace: detail-detection}
            spec:
              secretTargetRef: [{parameter: host, name: rmq, key: host}]
            ---
            apiVersion: keda.sh/v1alpha1
            kind: ScaledObject
            metadata: {name: with-auth, namespace: detail-detection}
            spec:
              scaleTargetRef: {name: worker}
              triggers:
              - type: rabbitmq
                metadata: {queueName: jobs, mode: QueueLength, value: "5"}
                authenticationRef: {name: rmq-auth}
            """
        let (ok, created) = try await g.call("POST", "/v1/functions", token: g.adminToken, body: withAuth, contentType: "application/yaml")
        #expect(ok == 201 && created["name"] == "with-auth", "\(created)")
        // The Secret's value is nowhere in what the API answers.
        let (_, fetched) = try await g.call("GET", "/v1/functions/detail-detection/with-auth", token: g.adminToken)
        #expect(!String(decoding: fetched.serialized(), as: UTF8.self).contains("user:pw"))
        // Deleting: admin only, then gone.
        #expect(try await g.call("DELETE", "/v1/functions/detail-detection/with-auth", token: user).0 == 403)
        #expect(try await g.call("DELETE", "/v1/functions/detail-detection/with-auth", token: g.adminToken).0 == 200)
        #expect(try await g.call("GET", "/v1/functions/detail-detection/with-auth", token: g.adminToken).0 == 404)
        #expect(try await g.call("DELETE", "/v1/functions/detail-detection/with-auth", token: g.adminToken).0 == 404)
        await g.shutdown()
    }

    @Test func perTokenRateLimit() async throws {
        var settings = GatewaySettings()
        settings.rate = 0.2  // one token every 5 s: the 8 calls below take far less, even on a loaded machine
        settings.burst = 5
        let g = try await GatewayHarness(settings: settings)
        let a = try await g.token(project: "p1")
        let b = try await g.token(project: "p1", user: "u2")
        var statuses: [Int] = []
        for _ in 0..<8 { statuses.append(try await g.call("GET", "/v1/whoami", token: a).0) }
        #expect(statuses.prefix(5).allSatisfy { $0 == 200 })
        #expect(statuses.suffix(2).allSatisfy { $0 == 429 })
        // Another token has its own bucket.
        #expect(try await g.call("GET", "/v1/whoami", token: b).0 == 200)
        let (revoke, _) = try await g.call("DELETE", "/v1/tokens/\(try await tokenID(g, b))", token: g.adminToken)
        #expect(revoke == 204)
        try await eventually("the revoked token refused", timeout: .seconds(10)) {
            try await g.call("GET", "/v1/whoami", token: b).0 == 401
        }
        await g.shutdown()
    }

    func tokenID(_ g: GatewayHarness, _ token: String) async throws -> String {
        try #require(try await g.call("GET", "/v1/whoami", token: token).1["token_id"]?.stringValue)
    }

    /// schemathesis (PyPI) against the served OpenAPI document: no 5xx, every answer as
    /// documented (status, content type, schema, headers), 405 for undeclared methods.
    /// The data-acceptance checks are left out: a workload's validity (YAML of Kubernetes
    /// manifests) is more than a JSON schema can say.
    @Test func schemathesisFindsNothing() async throws {
        var settings = GatewaySettings()
        settings.rate = 0
        settings.clusterKey = try ClusterCredentialsKey(hex: String(repeating: "3c", count: 32))
        let g = try await GatewayHarness(settings: settings)
        // The document as served, read from a file: a machine busy with the other suites
        // must not fail the schema's loading; each request gets a generous timeout too.
        let doc = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("openapi") + ".yaml")
        try Data(try await g.http.execute(GEdgeHTTPClient.HTTPRequest(url: g.base + "/openapi.yaml", timeout: .seconds(60))).body).write(to: doc)
        defer { try? FileManager.default.removeItem(at: doc) }
        let rc = await runCommand([
            "schemathesis", "run", doc.path, "--url", g.base, "-H", "Authorization: Bearer \(g.adminToken)", "--request-timeout", "30",
            "--max-examples", "25", "--checks", "all", "--exclude-checks", "positive_data_acceptance,negative_data_rejection",
            "--exclude-operation-id", "revokeToken", "--seed", "20261123", "--no-color",
        ])
        #expect(rc == 0, "schemathesis found problems (its report is above)")
        await g.shutdown()
    }

    @Test func openAPIDocumentIsServedAndValid() async throws {
        let g = try await GatewayHarness()
        let r = try await g.http.execute(GEdgeHTTPClient.HTTPRequest(url: g.base + "/openapi.yaml"))
        #expect(r.status == 200 && r.bodyString.hasPrefix("openapi: 3"))
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("openapi") + ".yaml")
        try Data(r.body).write(to: file)
        #expect(await runCommand(["python3", "-c", "import sys, yaml; from openapi_spec_validator import validate; validate(yaml.safe_load(open(sys.argv[1])))", file.path]) == 0)
        await g.shutdown()
    }
}

@Suite("gedgectl", .enabled(if: TestEnv.integration), .timeLimit(.minutes(3)))
struct GedgectlTests {
    func ctl(_ g: GatewayHarness, token: String, _ args: [String]) async throws -> (Int32, [String]) {
        let p = try ChildProcess("gedgectl", ["--server", g.base, "--token", token] + args)
        try await p.waitForExit(timeout: .seconds(60))
        try await Task.sleep(for: .milliseconds(100))  // the last lines
        return (p.exitStatus, p.lines)
    }

    /// As an operator would: bind, make a token, submit and watch to the end, list, cancel.
    @Test func submitWatchListAndCancel() async throws {
        let g = try await GatewayHarness()
        let edge1 = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 2), podStartDelay: .milliseconds(50))
        try g.world.startAgent("edge1", driver: edge1)
        let ctx = try g.world.startScheduler(instance: "s1")
        try await eventually("edge1 in view") { !ctx.view.fresh().isEmpty }

        let (bound, _) = try await ctl(g, token: g.adminToken, ["bind", "p1", "edge1"])
        #expect(bound == 0)
        let (made, tokenLines) = try await ctl(g, token: g.adminToken, ["--json", "token", "create", "--user", "u1", "--workspace", "w1", "--project", "p1"])
        #expect(made == 0)
        let token = try #require(try JSONValue.parse(Array(tokenLines.joined(separator: "\n").utf8))["token"]?.stringValue)

        let file = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("deploy") + ".yaml")
        try "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n      - {name: web, image: nginx, resources: {requests: {cpu: 200m}}}\n"
            .write(to: file, atomically: true, encoding: .utf8)
        let (watched, lines) = try await ctl(g, token: token, ["submit", "-f", file.path, "--policy", "select", "--select", #"["edge1"]"#, "--id", "ctl-1", "--watch"])
        #expect(watched == 0, "\(lines)")
        #expect(lines.first == "request ctl-1 submitted (GSelectedCluster)")
        #expect(lines.contains { $0.contains("completed") && $0.contains("applied on edge1") }, "\(lines)")
        #expect(lines.last?.hasPrefix("ctl-1: completed on edge1/e1-1 x2") == true, "\(lines)")

        let (listed, table) = try await ctl(g, token: token, ["requests"])
        #expect(listed == 0)
        #expect(table.first?.hasPrefix("REQUEST") == true && table.contains { $0.hasPrefix("ctl-1") && $0.contains("completed") })
        let (_, json) = try await ctl(g, token: token, ["--json", "clusters"])
        #expect(try JSONValue.parse(Array(json.joined(separator: "\n").utf8))["clusters"]?.arrayValue?.first?["name"] == "edge1")
        let (_, nodes) = try await ctl(g, token: token, ["nodes", "edge1"])
        #expect(nodes.count == 3 && nodes[1].hasPrefix("e1-1"))
        // As kubectl users type it: the token sees one cluster, so no -c is needed.
        let (gotNodes, kubectlNodes) = try await ctl(g, token: token, ["get", "nodes"])
        #expect(gotNodes == 0 && kubectlNodes == nodes, "\(kubectlNodes)")
        let (gotOne, oneNode) = try await ctl(g, token: token, ["-o", "json", "get", "no", "e1-2", "-c", "edge1"])
        #expect(gotOne == 0 && (try? JSONValue.parse(Array(oneNode.joined(separator: "\n").utf8)))?["name"] == "e1-2", "\(oneNode)")
        let (noNode, _) = try await ctl(g, token: token, ["get", "nodes", "e1-9", "-c", "edge1"])
        #expect(noNode == 1)
        let (gotClusters, clusterTable) = try await ctl(g, token: token, ["get", "clusters"])
        #expect(gotClusters == 0 && clusterTable.first?.hasPrefix("CLUSTER") == true && clusterTable.dropFirst().first?.hasPrefix("edge1") == true, "\(clusterTable)")
        // --no-headers, anywhere on the line, as scripts use kubectl's.
        let (bare, bareTable) = try await ctl(g, token: token, ["get", "clusters", "--no-headers"])
        #expect(bare == 0 && bareTable == Array(clusterTable.dropFirst()), "\(bareTable)")
        let (_, bareNodes) = try await ctl(g, token: token, ["--no-headers", "get", "nodes", "-o", "wide"])
        #expect(bareNodes.first?.hasPrefix("e1-1") == true && !bareNodes.contains { $0.hasPrefix("NAME") || $0.hasPrefix("NODE") }, "\(bareNodes)")
        let (noKind, _) = try await ctl(g, token: token, ["get", "gizmos", "x"])
        #expect(noKind == 64)
        // The suite's own objects under the same verb: the list, and one by name.
        let (gotRequests, requestTable) = try await ctl(g, token: token, ["get", "requests"])
        #expect(gotRequests == 0 && requestTable.first?.hasPrefix("REQUEST") == true && requestTable.contains { $0.hasPrefix("ctl-1") && $0.contains("completed") },
                "\(requestTable)")
        let (gotRequest, oneRequest) = try await ctl(g, token: token, ["-o", "json", "get", "req", "ctl-1"])
        #expect(gotRequest == 0 && (try? JSONValue.parse(Array(oneRequest.joined(separator: "\n").utf8)))?["request_id"] == "ctl-1", "\(oneRequest)")
        let (gotServices, services) = try await ctl(g, token: token, ["get", "services", "-o", "json"])
        #expect(gotServices == 0 && (try? JSONValue.parse(Array(services.joined(separator: "\n").utf8)))?["services"] != nil, "\(services)")

        // A request that cannot fit, canceled: watch ends with 1.
        let (_, big) = try await ctl(g, token: token, ["--json", "submit", "-f", file.path, "--policy", "most", "--param", "replicas=64", "--id", "ctl-2"])
        #expect(try JSONValue.parse(Array(big.joined(separator: "\n").utf8))["request_id"] == "ctl-2")
        try await eventually("ctl-2 failed once") { (try await g.world.store.request(id: "ctl-2"))?.failCount ?? 0 >= 1 }
        let (canceled, _) = try await ctl(g, token: token, ["cancel", "ctl-2"])
        #expect(canceled == 0)
        let (ended, _) = try await ctl(g, token: token, ["watch", "ctl-2"])
        #expect(ended == 1)
        // Errors are the API's, with the field; a foreign token is refused.
        let (bad, _) = try await ctl(g, token: token, ["submit", "-f", file.path, "--policy", "fastest"])
        #expect(bad == 1)
        let (refused, _) = try await ctl(g, token: "gedge_nope", ["requests"])
        #expect(refused == 4)
        await g.shutdown()
    }

    /// Runs gedgectl with standard output and standard error apart.
    func split(_ args: [String], env: String = "") async throws -> (status: Int32, out: String, err: String) {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("ctl")).path
        defer { try? FileManager.default.removeItem(atPath: base + ".out"); try? FileManager.default.removeItem(atPath: base + ".err") }
        let quoted = args.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let status = await runCommand(["/bin/sh", "-c", "\(env) '\(TestEnv.binDir.appendingPathComponent("gedgectl").path)' \(quoted) > '\(base).out' 2> '\(base).err'"])
        return (status, (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "", (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
    }

    /// kubectl's manners: help per command on standard output, every read as table, wide,
    /// JSON or YAML (parsed back here), version, completion that bash loads, contexts, ages,
    /// and wrong arguments refused with the command's usage.
    @Test func kubectlManners() async throws {
        let g = try await GatewayHarness()
        let edge1 = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 2), podStartDelay: .milliseconds(20))
        try g.world.startAgent("edge1", driver: edge1)
        let ctx = try g.world.startScheduler(instance: "s1")
        try await eventually("edge1 in view") { !ctx.view.fresh().isEmpty }
        let auth = ["--server", g.base, "--token", g.adminToken]

        for help in [["help", "submit"], ["submit", "--help"], ["service", "apply", "--help"], ["--help"]] {
            let (s, out, err) = try await split(help)
            #expect(s == 0 && out.contains("USAGE: gedgectl") && err.isEmpty, "\(help): \(s) \(out.prefix(200)) \(err)")
        }
        let (vs, version, _) = try await split(["version"])
        #expect(vs == 0 && version.hasPrefix("gedgectl "))
        for wrong in [["clusters", "extra"], ["requets"], ["clusters", "-o", "xml"], ["requests", "--limit", "many"], ["service", "get", "nons"]] {
            let (s, out, err) = try await split(auth + wrong)
            #expect(s != 0 && out.isEmpty && !err.isEmpty, "\(wrong): \(s) \(out) \(err)")
        }
        // Every format of one read, parsed back.
        let (js, json, _) = try await split(auth + ["clusters", "-o", "json"])
        let parsedJSON = try JSONValue.parse(Array(json.utf8))
        #expect(js == 0 && parsedJSON["clusters"]?.arrayValue?.first?["name"] == "edge1")
        let (ys, yaml, _) = try await split(auth + ["-o", "yaml", "clusters"])
        let parsedYAML = try YAMLText.document(yaml, path: "")
        #expect(ys == 0 && parsedYAML["clusters"]?.arrayValue?.first?["name"] == "edge1", "\(yaml)")
        let (ws, wide, _) = try await split(auth + ["clusters", "-o", "wide"])
        #expect(ws == 0 && wide.hasPrefix("CLUSTER") && wide.contains("SEQUENCE"))
        let (ts, tableText, _) = try await split(auth + ["clusters"])
        let row = tableText.split(separator: "\n").dropFirst().first.map(String.init) ?? ""
        #expect(ts == 0 && row.range(of: #" [0-9]+s "#, options: .regularExpression) != nil && !row.contains("."), "an age as 5s, not 0.42s: \(row)")
        let (tok, tokens, _) = try await split(auth + ["token", "list", "-o", "json"])
        let tokenList = try JSONValue.parse(Array(tokens.utf8))
        #expect(tok == 0 && tokenList["tokens"]?.arrayValue?.isEmpty == false)
        // A token made, listed, revoked; then refused (status 4).
        let (_, made, _) = try await split(auth + ["token", "create", "--user", "u9", "--workspace", "w9", "--project", "p9", "-o", "json"])
        let created = try JSONValue.parse(Array(made.utf8))
        let (rv, _, _) = try await split(auth + ["token", "revoke", created["id"]?.stringValue ?? "-"])
        #expect(rv == 0)
        let (refused, _, why) = try await split(["--server", g.base, "--token", created["token"]?.stringValue ?? "-", "whoami"])
        #expect(refused == 4 && why.contains("401"), "\(why)")

        // Completion scripts bash loads.
        let completion = await runCommand(["/bin/bash", "-c", "source <('\(TestEnv.binDir.appendingPathComponent("gedgectl").path)' completion bash) && complete -p gedgectl"])
        #expect(completion == 0)
        for shell in ["zsh", "fish"] { #expect(try await split(["completion", shell]).0 == 0) }

        // Contexts: set, used by --context and by use-context.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("ctx"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenFile = dir.appendingPathComponent("token").path
        try g.adminToken.write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let env = "GEDGECTL_CONFIG='\(dir.appendingPathComponent("config").path)' GEDGE_SERVER= GEDGE_TOKEN= GEDGE_TOKEN_FILE="
        #expect(try await split(["config", "set-context", "here", "--server", g.base, "--token-file", tokenFile], env: env).0 == 0)
        #expect(try await split(["config", "set-context", "nowhere", "--server", "http://127.0.0.1:1"], env: env).0 == 0)
        #expect(try await split(["whoami"], env: env).1.contains("admin"), "the first context set is current")
        #expect(try await split(["config", "use-context", "nowhere"], env: env).0 == 0)
        #expect(try await split(["whoami"], env: env).0 == 3, "nowhere cannot be reached")
        #expect(try await split(["--context", "here", "whoami"], env: env).0 == 0)
        let (cs, current, _) = try await split(["config", "current-context"], env: env)
        #expect(cs == 0 && current == "nowhere\n")
        #expect(try await split(["config", "use-context", "missing"], env: env).0 != 0)
        await g.shutdown()
    }
}

/// Runs kubernetes-validate (PyPI) in strict mode against a current Kubernetes version.
func validateWithKubernetesSchemas(_ objects: [JSONValue], sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("manifests"))
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    var paths: [String] = []
    for (i, o) in objects.enumerated() {
        let p = dir.appendingPathComponent("\(i).json").path
        try Data(o.serialized()).write(to: URL(fileURLWithPath: p))
        paths.append(p)
    }
    let rc = await runCommand(["python3", "-m", "kubernetes_validate", "--strict", "-k", "1.33.0", "--quiet"] + paths)
    #expect(rc == 0, "kubernetes-validate rejected the manifests in \(dir.path)", sourceLocation: sourceLocation)
}

/// A webhook receiver on loopback that records what it is sent. Its port is held from the
/// start (`PortReservation`), so a sender can be given the address while nothing listens
/// there yet (its connections are refused) and no other socket can take the port before
/// `start()` listens on it. It listens once: a server stopped and started again on the same
/// port could not always bind it again.
final class WebhookReceiver: Sendable {
    struct Hit: Sendable { var raw: [UInt8]; var body: JSONValue; var signature: String? }
    private let hits = Mutex<[Hit]>([])
    private let running = Mutex<(ServiceGroup, Task<Void, any Error>)?>(nil)
    private let reservation: PortReservation
    private let started = Mutex(false)
    var received: [Hit] { hits.withLock { $0 } }
    var port: Int { reservation.port }

    init() throws { reservation = try PortReservation() }

    /// Starts listening on the receiver's port.
    func start() async throws {
        precondition(started.withLock { s in defer { s = true }; return !s }, "a receiver listens once")
        let router = Router()
        router.post("/hook") { request, _ in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            let raw = Array(buffer.readableBytesView)
            self.hits.withLock { $0.append(Hit(raw: raw, body: (try? JSONValue.parse(raw)) ?? .null, signature: request.headers.first { $0.name.canonicalName == "x-gedge-signature" }?.value)) }
            return Response(status: .ok)
        }
        let bound = PortBox()
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: port), reuseAddress: true),
            onServerRunning: { bound.set($0.localAddress?.port ?? 0) }, logger: TestEnv.logger)
        let group = ServiceGroup(services: [app], logger: TestEnv.logger)
        let failure = Mutex<String?>(nil)
        let task = Task {
            do { try await group.run() } catch {
                failure.withLock { $0 = String(describing: error) }
                throw error
            }
        }
        running.withLock { $0 = (group, task) }
        try await eventually("the receiver listening on port \(port)") {
            if bound.get() != 0 { return true }
            // A server that could not bind ends at once: say why instead of waiting.
            if let why = failure.withLock({ $0 }) {
                let holders = Subprocess.run("/bin/sh", ["-c", "ss -tanp | grep ':\(port) ' || true"]).map { String(decoding: $0.output, as: UTF8.self) } ?? ""
                Issue.record("the receiver could not start on port \(port): \(why); sockets on the port: \(holders)")
                throw CancellationError()
            }
            return false
        }
    }

    func stop() async {
        guard let (group, task) = running.withLock({ r in defer { r = nil }; return r }) else { return }
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}
