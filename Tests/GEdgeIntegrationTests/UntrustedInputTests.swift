import Foundation
import GEdgeAgent
import GEdgeCore
import GEdgeFaaS
import GEdgeGateway
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePlacement
import GEdgePostgres
@testable import GEdgeScheduler
import GEdgeSecurity
import Testing

/// The attacks of docs/security.md, each followed by a valid message that must still be
/// processed: deep and exploding YAML, a message near 1 MB, the namespace escape, unsigned
/// and forged producers, a second project reading the first's data, raw HTTP abuse, and
/// SIGTERM while a consumer is stuck.
@Suite("Untrusted input", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(3)))
struct UntrustedInputTests {
    static let deepYAML = "a: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
    static let bombYAML: String = {
        var lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
        for i in 1..<9 { lines.append("a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]") }
        return lines.joined(separator: "\n") + "\n"
    }()

    /// One simulated edge cluster of two nodes and a scheduler replica that sees it.
    @discardableResult
    static func edgeAndScheduler(_ h: SchedulerHarness, producers: ProducerSigning? = nil) async throws -> SchedulerContext {
        try h.startAgent("edge1", driver: SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 2), podStartDelay: .milliseconds(5)))
        let ctx = try h.startScheduler(instance: "s1", producers: producers)
        try await eventually("cluster in view") { !ctx.view.fresh().isEmpty }
        return ctx
    }

    func dead(_ h: SchedulerHarness, topic: String, count: Int) async throws -> [KafkaMessage] {
        let dlq = try h.consumer(group: TestEnv.unique("dlq"), topic: Topics.deadLetter(for: topic))
        var got: [KafkaMessage] = []
        let watchdog = Task {
            try await Task.sleep(for: .seconds(30))
            dlq.stopPolling()
        }
        for await m in dlq {
            got.append(m)
            if got.count == count { break }
        }
        watchdog.cancel()
        try await dlq.close()
        return got
    }

    @Test func poisonRequestsEndWithAReasonAndTheNextIsPlaced() async throws {
        let h = try await SchedulerHarness()
        try await h.bind("p1", ["edge1"])
        try await Self.edgeAndScheduler(h)

        // Deep YAML and an alias bomb as the workload: recorded, rejected naming the limit.
        var deep = request("deep", .mostRequested)
        deep.workload = .string(Self.deepYAML)
        var bomb = request("bomb", .mostRequested)
        bomb.workload = .string(Self.bombYAML)
        let started = ContinuousClock.now
        try await h.submit(deep)
        try await h.submit(bomb)
        // A message near 1 MB: its dead letter cannot carry it whole.
        let huge = [UInt8](repeating: UInt8(ascii: "x"), count: 990_000)
        _ = try await h.producer.send(KafkaRecord(topic: Topics.scheduleRequests, key: "huge", value: huge))
        // A request the database cannot store (a NUL in the workload).
        var nul = request("nul", .mostRequested)
        nul.workload = .object(["kind": "Pod", "metadata": .object(["name": "a\u{0}b"])])
        try await h.submit(nul)
        try await h.submit(request("after", .mostRequested, cpu: "100m"))

        let after = try await h.waitFor("after", .completed)
        #expect(after.state == .completed)
        for (id, limit) in [("deep", "decode.max.depth"), ("bomb", "decode.max.nodes")] {
            let r = try await h.waitFor(id, .rejected)
            #expect(r.reason?.contains(limit) == true, "\(r.reason ?? "")")
        }
        #expect(ContinuousClock.now - started < .seconds(20))
        let letters = try await dead(h, topic: Topics.scheduleRequests, count: 2)
        let byKey = Dictionary(letters.map { ($0.keyString ?? "", $0) }, uniquingKeysWith: { a, _ in a })
        let big = try #require(byKey["huge"])
        func header(_ m: KafkaMessage, _ k: String) -> String? { m.header(k).map { String(decoding: $0, as: UTF8.self) } }
        #expect(header(big, MessageHeaders.truncated) == "true")
        #expect(header(big, MessageHeaders.originalBytes) == "990000")
        #expect(header(big, MessageHeaders.originalSHA256) == Digests.sha256Hex(huge))
        #expect(big.value.count < 100_000 && header(big, MessageHeaders.originalOffset) != nil)
        #expect(header(try #require(byKey["nul"]), MessageHeaders.errorField)?.contains("msg.workload") == true)
        await h.shutdown()
    }

    /// A gzip batch that inflates to 64 MiB (as any producer may write one: the broker's limit
    /// is on the compressed batch), a key past 16 KiB and headers past 64 KiB: each is
    /// refused as it is read, only a prefix kept for its dead letter, which names the limit
    /// and carries the original's size and digest; the next request is placed.
    @Test func oversizedMessagesAreRefusedAsTheyAreRead() async throws {
        let h = try await SchedulerHarness()
        try await h.bind("p1", ["edge1"])
        try await Self.edgeAndScheduler(h)
        var pc = KafkaProducerConfiguration(client: h.kafka)
        pc.client["compression.type"] = "gzip"
        pc.client["message.max.bytes"] = String(100 << 20)
        let attacker = try KafkaProducer(configuration: pc, logger: TestEnv.logger)
        let inflated = Array(#"{"hcode":100,"lcode":1,"msg":{"request_id":"x","workload":""#.utf8) + [UInt8](repeating: UInt8(ascii: "A"), count: 64 << 20) + Array(#""}}"#.utf8)
        _ = try await attacker.send(KafkaRecord(topic: Topics.scheduleRequests, key: "inflated", value: inflated))
        let longKey = "k" + String(repeating: "x", count: 20 << 10)
        _ = try await attacker.send(KafkaRecord(topic: Topics.scheduleRequests, key: longKey, value: h.codec.encode(request("long-key", .mostRequested).envelope(sourceCluster: "p"))))
        _ = try await attacker.send(KafkaRecord(
            topic: Topics.scheduleRequests, key: "headers", value: h.codec.encode(request("headers", .mostRequested).envelope(sourceCluster: "p")),
            headers: (0..<3).map { KafkaHeader(key: "h\($0)", value: [UInt8](repeating: 0x41, count: 30 << 10)) }))
        await attacker.shutdown()
        try await h.submit(request("after-oversized", .mostRequested, cpu: "100m"))
        #expect(try await h.waitFor("after-oversized", .completed).state == .completed)

        let letters = try await dead(h, topic: Topics.scheduleRequests, count: 3)
        func header(_ m: KafkaMessage, _ k: String) -> String? { m.header(k).map { String(decoding: $0, as: UTF8.self) } }
        let big = try #require(letters.first { $0.keyString == "inflated" })
        #expect(header(big, MessageHeaders.errorCode) == "too_large")
        #expect(header(big, MessageHeaders.error)?.contains("message of \(inflated.count) bytes exceeds the limit of \(1 << 20)") == true, "\(header(big, MessageHeaders.error) ?? "")")
        #expect(header(big, MessageHeaders.originalBytes) == String(inflated.count))
        #expect(header(big, MessageHeaders.originalSHA256) == Digests.sha256Hex(inflated))
        #expect(big.value.count <= 64 << 10 && big.value.starts(with: inflated.prefix(1000)))
        let keyed = try #require(letters.first { $0.keyString?.hasPrefix("kxxx") == true })
        #expect(header(keyed, MessageHeaders.errorField) == "key" && keyed.key!.count <= 16 << 10)
        let headed = try #require(letters.first { $0.keyString == "headers" })
        #expect(header(headed, MessageHeaders.errorField) == "headers")
        #expect(header(headed, MessageHeaders.error)?.contains("exceed the limit of \(64 << 10)") == true)
        // Neither reached the queue.
        for id in ["long-key", "headers", "x"] { #expect(try await h.store.request(id: id) == nil, "\(id)") }
        await h.shutdown()
    }

    /// A refusal is checked against PostgreSQL as it is now: a namespace another process
    /// (the gateway) bound a moment after this one's cache was loaded is seen at once.
    @Test func aRefusalReadsTheBindingJustMade() async throws {
        let h = try await SchedulerHarness()
        let scheduler = ProjectPolicyStore(pool: h.pool), gateway = ProjectPolicyStore(pool: h.pool)
        #expect(try await scheduler.policy(project: "p1").namespaces.isEmpty)
        try await gateway.bind(project: "p1", namespaces: ["team-a"], replace: false)
        #expect(try await scheduler.policy(project: "p1").namespaces.isEmpty, "the cache still holds the old policy")
        #expect(try await scheduler.freshPolicy(project: "p1").namespaces == ["team-a"])
        #expect(try await scheduler.policy(project: "p1").namespaces == ["team-a"], "and keeps it")
        await h.shutdown()
    }

    /// Garbage, deep JSON and a message near 1 MB on every Kafka topic the services read
    /// (replies, an agent's commands, results, cluster status): then a request goes all the
    /// way, its callback recorded.
    @Test func poisonOnEveryTopicStopsNothing() async throws {
        let g = try await GatewayHarness()
        try await Self.edgeAndScheduler(g.world)
        try await g.world.bind("p1", ["edge1"])
        let deepJSON = Array((#"{"hcode":1,"msg":"# + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}").utf8)
        let poisons: [[UInt8]] = [Array("{\"source\":".utf8), deepJSON, [UInt8](repeating: 0x7B, count: 990_000), [0xFF, 0xFE, 0x00]]
        for topic in [Topics.schedulerReplies, Topics.agentCommands(cluster: "edge1"), Topics.scheduleResults, Topics.clusterStatus] {
            for (i, p) in poisons.enumerated() {
                _ = try await g.world.producer.send(KafkaRecord(topic: topic, key: "poison-\(i)", value: p))
            }
        }
        let token = try await g.token(project: "p1")
        let (s, b) = try await g.json("POST", "/v1/requests", token: token, .object([
            "policy": "most", "workload": workload("after-poison", cpu: "100m"), "callback_url": "http://127.0.0.1:9/hook",
        ]))
        #expect(s == 202, "\(b)")
        let id = try #require(b["request_id"]?.stringValue)
        _ = try await g.world.waitFor(id, .completed)
        try await eventually("callback recorded") {
            try await g.world.pool.query("SELECT count(*) AS n FROM callback_deliveries WHERE request_id = $1", [.text(id)]).first?.decode("n", as: Int.self) == 1
        }
        // The replies' poison is dead-lettered with the reason; the big one shortened.
        let letters = try await dead(g.world, topic: Topics.schedulerReplies, count: 4)
        #expect(Set(letters.compactMap(\.keyString)) == ["poison-0", "poison-1", "poison-2", "poison-3"])
        let big = try #require(letters.first { $0.keyString == "poison-2" })
        #expect(big.value.count < 100_000 && big.header(MessageHeaders.truncated) == Array("true".utf8))
        #expect(g.world.progress.stuck.isEmpty)
        await g.shutdown()
    }

    /// A replica whose view is still empty (just started, its clusters not yet heard from)
    /// places nothing and charges no request a failure; it places once they report.
    @Test func aFreshReplicaChargesNoFalseFailures() async throws {
        let h = try await SchedulerHarness()
        try await h.bind("p1", ["edge1"])
        let ctx = try h.startScheduler(instance: "fresh", staleAfter: .seconds(10))
        for i in 0..<20 { try await h.submit(request("early-\(i)", .mostRequested, cpu: "50m")) }
        try await Task.sleep(for: .seconds(2))
        let complete = ctx.viewComplete.load(ordering: .relaxed)
        #expect(!complete)
        try h.startAgent("edge1", driver: SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 2), podStartDelay: .milliseconds(5)))
        for i in 0..<20 {
            let r = try await h.waitFor("early-\(i)", .completed)
            #expect(r.failCount == 0, "early-\(i) charged \(r.failCount) failure(s)")
        }
        await h.shutdown()
    }

    @Test func onlySignedProducersAreBelieved() async throws {
        let h = try await SchedulerHarness()
        try await h.bind("p1", ["edge1"])
        try await h.bind("p2", ["edge1"])
        let signing = try ProducerSigning(secret: Array(Hex.random(bytes: 32).utf8))
        try await Self.edgeAndScheduler(h, producers: signing)
        func record(_ r: ScheduleRequest) -> KafkaRecord {
            KafkaRecord(topic: Topics.scheduleRequests, key: r.requestID, value: h.codec.encode(r.envelope(sourceCluster: "producer")))
        }
        // Unsigned; signed with another secret; signed by p2 but naming p1; then a good one.
        _ = try await h.producer.send(record(request("unsigned", .mostRequested)))
        let forger = try ProducerSigning(secret: Array(Hex.random(bytes: 32).utf8))
        _ = try await h.producer.send(record(request("forged", .mostRequested)).signed(project: "p1", signing: forger))
        _ = try await h.producer.send(record(request("claims-p1", .mostRequested)).signed(project: "p2", signing: signing))
        _ = try await h.producer.send(record(request("good", .mostRequested, cpu: "100m")).signed(project: "p1", signing: signing))
        #expect(try await h.waitFor("good", .completed).projectName == "p1")
        let letters = try await dead(h, topic: Topics.scheduleRequests, count: 3)
        let reasons = Dictionary(letters.map { ($0.keyString ?? "", $0.header(MessageHeaders.error).map { String(decoding: $0, as: UTF8.self) } ?? "") },
                                 uniquingKeysWith: { a, _ in a })
        #expect(reasons["unsigned"]?.contains("unauthenticated") == true, "\(reasons)")
        #expect(reasons["forged"]?.contains("does not match") == true, "\(reasons)")
        #expect(reasons["claims-p1"]?.contains("signed for project 'p2'") == true, "\(reasons)")
        for id in ["unsigned", "forged", "claims-p1"] { #expect(try await h.store.request(id: id) == nil) }
        await h.shutdown()
    }

    @Test func theNamespaceEscapeIsRefusedAtTheGatewayAndByTheScheduler() async throws {
        let g = try await GatewayHarness()
        try await Self.edgeAndScheduler(g.world)
        try await g.world.bind("p1", ["edge1"])
        try await g.world.bind("p2", ["edge1"])
        let p1 = try await g.token(project: "p1")
        try await g.bindNamespaces("p2", ["team-two"])
        let daemonSet: JSONValue = .object([
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": .object(["name": "own"]),
            "spec": .object(["template": .object(["spec": .object(["hostPID": true, "containers": .array([
                .object(["name": "c", "image": "busybox", "securityContext": .object(["privileged": true])]),
            ])])])]),
        ])
        func submit(_ workload: JSONValue, namespace: String?) async throws -> (Int, JSONValue) {
            var params: [String: JSONValue] = [:]
            if let namespace { params["namespace"] = .string(namespace) }
            return try await g.json("POST", "/v1/requests", token: p1, .object(["policy": "most", "workload": workload, "parameters": .object(params)]))
        }
        var (s, b) = try await submit(daemonSet, namespace: "kube-system")
        #expect(s == 403 && b["code"] == "system_namespace", "\(b)")
        (s, b) = try await submit(workload("x"), namespace: "team-two")
        #expect(s == 403 && b["code"] == "foreign_namespace", "\(b)")
        (s, b) = try await submit(daemonSet, namespace: nil)
        #expect(s == 403 && b["code"] == "kind", "\(b)")
        // A privileged Deployment in the project's own namespace: the Pod Security rule and field.
        guard case .object(var dep) = workload("priv") else { return }
        dep["spec"] = .object(["template": .object(["spec": .object(["containers": .array([
            .object(["name": "c", "image": "busybox", "securityContext": .object(["privileged": true])]),
        ])])])])
        (s, b) = try await submit(.object(dep), namespace: nil)
        #expect(s == 403 && b["code"] == "pod_security" && b["field"] == "workload.spec.template.spec.containers[0].securityContext.privileged", "\(b)")
        #expect(b["detail"]?.stringValue?.contains("violates PodSecurity \"baseline:latest\": privileged") == true, "\(b)")
        // restricted for p1: a plain Deployment now fails, one that drops everything passes.
        (s, b) = try await g.json("PUT", "/v1/projects/p1/policy", token: g.adminToken, .object(["pod_security": "restricted"]))
        #expect(s == 200 && b["pod_security"] == "restricted")
        (s, b) = try await submit(workload("plain"), namespace: nil)
        #expect(s == 403 && b["detail"]?.stringValue?.contains("allowPrivilegeEscalation") == true, "\(b)")
        // The gateway's own manifests for a restricted project meet the profile, and are placed.
        let (svcStatus, svc) = try await g.call("POST", "/v1/services", token: p1, body: "{name: hardened, namespace: p1, containers: [nginx], ports: [80], type: ClusterIP}", contentType: "application/yaml")
        #expect(svcStatus == 202 && svc["manifests"]?.arrayValue?.first?["spec"]?["template"]?["spec"]?["securityContext"]?["runAsNonRoot"] == true, "\(svc)")
        _ = try await g.world.waitFor(try #require(svc["request_id"]?.stringValue), .completed)
        // A system namespace cannot be bound, a bound one cannot be taken.
        #expect(try await g.json("PUT", "/v1/projects/p1/namespaces", token: g.adminToken, .object(["namespaces": .array(["kube-public"])])).0 == 403)
        #expect(try await g.json("PUT", "/v1/projects/p1/namespaces", token: g.adminToken, .object(["namespaces": .array(["team-two"])])).0 == 409)
        #expect(try await g.json("PUT", "/v1/projects/p1/namespaces", token: p1, .object(["namespaces": .array(["mine"])])).0 == 403)

        // The same escape written straight to Kafka: recorded, rejected, never applied.
        var escape = request("escape", .mostRequested, ["namespace": "kube-system"])
        escape.workload = daemonSet
        try await g.world.submit(escape)
        let r = try await g.world.waitFor("escape", .rejected)
        #expect(r.reason?.contains("system namespace") == true, "\(r.reason ?? "")")
        try await g.world.submit(request("ok-after", .mostRequested, project: "p2", cpu: "100m"))
        _ = try await g.world.waitFor("ok-after", .completed)
        await g.shutdown()
    }

    /// Every GET route of the OpenAPI document, read with a second project's token, with
    /// the first project's real names in the path: 403 or 404, or an answer that holds
    /// none of the first project's data.
    @Test func everyRouteIsScopedToTheTokensProject() async throws {
        let g = try await GatewayHarness()
        try await Self.edgeAndScheduler(g.world)
        try await g.world.bind("p1", ["edge1"])
        try await g.bindNamespaces("p1", ["secret-ns"])
        let p1 = try await g.token(project: "p1")
        let p2 = try await g.token(project: "p2", user: "intruder")
        let (s1, svc) = try await g.call("POST", "/v1/services", token: p1, body: "{name: hidden-svc, namespace: secret-ns, containers: [nginx], ports: [80], type: ClusterIP}", contentType: "application/yaml")
        #expect(s1 == 202, "\(svc)")
        let requestID = try #require(svc["request_id"]?.stringValue)
        _ = try await g.world.waitFor(requestID, .completed)
        let (s2, wf) = try await g.call("POST", "/v1/workflows", token: p1, body: "name: hidden-wf\nnamespace: secret-ns\nsteps:\n- {name: a, service: {containers: [a], ports: [1], type: ClusterIP}}", contentType: "application/yaml")
        #expect(s2 == 202, "\(wf)")
        let workflowID = try #require(wf["id"]?.stringValue)
        let fn = try ScaledObject.parseAll("""
            apiVersion: keda.sh/v1alpha1
            kind: ScaledObject
            metadata: {name: hidden-fn, namespace: secret-ns}
            spec:
              scaleTargetRef: {name: hidden-worker}
              triggers: [{type: rabbitmq, metadata: {host: "amqp://127.0.0.1", queueName: hidden-q, mode: QueueLength, value: "5"}}]
            """)[0]
        try await FunctionStore(pool: g.world.pool).upsert(fn, definition: .object([:]), cluster: "edge1")
        _ = try await g.world.pool.execute("INSERT INTO notifications (event_id, queue, payload) VALUES ('hidden-event', 'hidden-q', '{}')")
        let text = String(decoding: try await g.http.execute(HTTPRequest(url: "\(g.base)/openapi.yaml")).body, as: UTF8.self)
        let doc = try YAMLText.document(text, path: "")
        guard case .object(let paths)? = doc["paths"] else { Issue.record("no paths"); return }
        let values: [String: String] = [
            "id": requestID, "namespace": "secret-ns", "name": "hidden-svc", "project": "p1", "pod": "w-hidden-0",
        ]
        let secrets = [requestID, "hidden-svc", "hidden-wf", workflowID, "hidden-fn", "hidden-event", "secret-ns"]
        func concrete(_ template: String) -> String {
            var path = template
            for (k, v) in values { path = path.replacingOccurrences(of: "{\(k)}", with: v) }
            if template.hasPrefix("/v1/workflows/") { path = template.replacingOccurrences(of: "{id}", with: workflowID) }
            if template.hasPrefix("/v1/functions/") { path = path.replacingOccurrences(of: "hidden-svc", with: "hidden-fn") }
            if template.contains("/clusters/{name}") { path = template.replacingOccurrences(of: "{name}", with: "edge1")
                .replacingOccurrences(of: "{namespace}", with: "secret-ns").replacingOccurrences(of: "{pod}", with: "w-hidden-0")
                .replacingOccurrences(of: "{object}", with: "w-hidden-0") }
            // GS-Engine's original reads name the service in the query.
            if ["/gse/service/get", "/gse/service/status", "/gse/service/list"].contains(template) { path += "?name=hidden-svc&namespace=secret-ns" }
            return path.replacingOccurrences(of: "{policy}", with: "most")
        }
        var walked = 0
        for (template, ops) in paths.sorted(by: { $0.key < $1.key }) where ops["get"] != nil {
            let path = concrete(template)
            guard !path.contains("{") else { Issue.record("no value for \(template)"); continue }
            let (status, body) = try await g.call("GET", path, token: p2)
            walked += 1
            let raw = String(decoding: body.serialized(), as: UTF8.self)
            if status == 200 {
                for s in secrets { #expect(!raw.contains(s), "GET \(path) as p2 shows \(s): \(raw.prefix(300))") }
            } else {
                #expect([403, 404, 503].contains(status), "GET \(path) as p2: \(status) \(raw.prefix(300))")
            }
        }
        #expect(walked >= 20, "walked \(walked) GET routes")
        // Every route that acts on a named object, as p2 on p1's: refused, and nothing changed.
        var acted = 0
        for (template, ops) in paths.sorted(by: { $0.key < $1.key }) where template.contains("{") {
            for method in ["put", "post", "delete"] where ops[method] != nil {
                let path = concrete(template)
                let (status, body) = try await g.call(method.uppercased(), path, token: p2, body: "{}")
                acted += 1
                let raw = String(decoding: body.serialized(), as: UTF8.self)
                #expect([400, 403, 404, 415].contains(status), "\(method.uppercased()) \(path) as p2: \(status) \(raw.prefix(300))")
            }
        }
        #expect(acted >= 10, "acted on \(acted) routes")
        #expect(try await g.call("GET", "/v1/services/secret-ns/hidden-svc", token: p1).0 == 200)
        #expect(try await g.call("GET", "/v1/workflows/\(workflowID)", token: p1).1["state"] != "canceled")
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await g.world.store.request(id: requestID)?.state == .completed)
        await g.shutdown()
    }

    /// The gateway's every door with deep YAML and an alias bomb: a 400 naming the limit,
    /// quickly, and the gateway still answers.
    @Test func hostileDocumentsAtTheGatewayAreRefusedByLimit() async throws {
        let g = try await GatewayHarness()
        let token = try await g.token(project: "p1")
        let started = ContinuousClock.now
        for (path, type) in [("/v1/services", "application/yaml"), ("/gse/service/create", "application/yaml"), ("/v1/workflows", "application/yaml")] {
            for (doc, limit) in [(Self.deepYAML, "decode.max.depth"), (Self.bombYAML, "decode.max.nodes"), ("- " + String(repeating: "- ", count: 5000) + "x", "decode.max.depth")] {
                let (s, b) = try await g.call("POST", path, token: token, body: doc, contentType: type)
                // GS-Engine answers in its own form: {"err": reason, "res": null}.
                let reason = path.hasPrefix("/gse") ? b["err"] : b["detail"]
                #expect(s == 400 && (path.hasPrefix("/gse") || b["code"] == "too_large") && reason?.stringValue?.contains(limit) == true, "\(path): \(s) \(b)")
            }
        }
        // GS-Scheduler's front API with the bomb in yaml_file.
        let boundary = "xYz"
        let form = "--\(boundary)\r\nContent-Disposition: form-data; name=\"yaml_file\"; filename=\"w.yaml\"\r\n\r\n\(Self.bombYAML)\r\n--\(boundary)--\r\n"
        let (fs, fb) = try await g.call("POST", "/scheduler/most", token: token, body: form, contentType: "multipart/form-data; boundary=\(boundary)")
        #expect(fs == 400 && fb["detail"]?.stringValue?.contains("decode.max.nodes") == true, "\(fb)")
        // A JSON request whose workload is the deep YAML text.
        let (js, jb) = try await g.json("POST", "/v1/requests", token: token, .object(["policy": "most", "workload": .string(Self.deepYAML)]))
        #expect(js == 400 && jb["field"]?.stringValue?.hasPrefix("workload.a[0]") == true, "\(jb)")
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(try await g.call("GET", "/v1/whoami", token: token).0 == 200)
        await g.shutdown()
    }

    @Test func rawHTTPAbuseGetsProblemAnswers() async throws {
        let g = try await GatewayHarness()
        // CONNECT is refused and the connection closed (not held until the reader gives up).
        let t0 = ContinuousClock.now
        // The reader waits up to 15 s for more: a connection the server keeps open shows as
        // that long; one it closes, in a fraction of it (10 s of room for a loaded machine).
        let connect = try await rawHTTP(port: g.port, "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", quiet: 15)
        #expect(ContinuousClock.now - t0 < .seconds(10), "CONNECT held the connection for \(ContinuousClock.now - t0)")
        #expect(connect.hasPrefix("HTTP/1.1 405"), "\(connect)")
        #expect(connect.contains("application/problem+json"))
        // A 10 MB declared body with Expect: 100-continue: 413 before any of it is sent.
        let expect = try await rawHTTP(port: g.port, "POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\nExpect: 100-continue\r\n\r\n")
        #expect(expect.contains("413") && expect.contains("too_large"), "\(expect)")
        #expect(!expect.contains("100 Continue"), "\(expect)")
        // What the HTTP parser refuses is answered as problem+json too, and the connection closed.
        for raw in ["FOO / HTTP/1.1\r\nHost: x\r\n\r\n", "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nContent-Type: a\u{01}b\r\n\r\n",
                    "GET /v1/whoami HTTP/9\r\n\r\n"] {
            let t = ContinuousClock.now
            let answer = try await rawHTTP(port: g.port, raw, quiet: 15)
            #expect(answer.hasPrefix("HTTP/1.1 400") && answer.contains("application/problem+json") && answer.contains("\"code\":\"bad_request\""), "\(raw): \(answer)")
            #expect(ContinuousClock.now - t < .seconds(10), "the connection was held for \(ContinuousClock.now - t)")
        }
        await g.shutdown()
    }

    /// Sends raw bytes and reads until the server closes or 3 s pass.
    /// Sends `text` and reads until the server closes, or until nothing comes for `quiet` seconds.
    func rawHTTP(port: Int, _ text: String, quiet: Int = 3) async throws -> String {
        try await Task.detached {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard rc == 0 else { throw POSIXError(.ECONNREFUSED) }
            var tv = timeval(tv_sec: quiet, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            var out: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = recv(fd, &buf, buf.count, 0)
                if n <= 0 { break }
                out += buf[0..<n]
                if out.count > 1 << 16 { break }
            }
            return String(decoding: out, as: UTF8.self)
        }.value
    }

    /// A scheduler whose PostgreSQL goes away while a request arrives: its ingest is stuck,
    /// /readyz says so, and SIGTERM still ends it within its grace period.
    @Test func sigtermEndsASchedulerWhoseConsumerIsStuck() async throws {
        let reservation = try PortReservation()
        let ops = try PortReservation()
        defer { reservation.release(); ops.release() }
        let dir = "/tmp/" + TestEnv.unique("gedge-pg")
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures/scratch_postgres.sh").standardized.path
        // On a thread of their own: pg_ctl takes seconds, and the tests' cooperative threads are two.
        func pg(_ action: String) async { #expect(await runCommand(["/bin/bash", script, dir, "\(reservation.port)", action]) == 0, "scratch PostgreSQL \(action)") }
        await pg("start")
        defer { _ = runCommandBlocking(["/bin/bash", script, dir, "\(reservation.port)", "stop"]); try? FileManager.default.removeItem(atPath: dir) }
        let h = try await SchedulerHarness(postgresURL: "postgres://gedge@127.0.0.1:\(reservation.port)/postgres")
        try h.startAgent("edge1", driver: SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 2), podStartDelay: .milliseconds(5)))
        try await h.bind("p1", ["edge1"])
        let s = try ChildProcess("scheduler", [
            "--kafka-brokers", h.cluster.bootstrapServers, "--postgres-url", h.schemaURL, "--http-host", "127.0.0.1", "--http-port", "\(ops.port)",
            "--scheduler-producers", "trusted", "--shutdown-grace", "5s", "--postgres-connect-timeout", "1s", "--log-level", "warning",
        ])
        let http = HTTPClient(logger: TestEnv.logger)
        try await eventually("scheduler ready", timeout: .seconds(30)) {
            (try? await http.execute(HTTPRequest(url: "http://127.0.0.1:\(ops.port)/readyz")))?.status == 200
        }
        // Decisions are timed in nanoseconds, into buckets below a millisecond (the first
        // ones read the project's clusters and policy from PostgreSQL; later ones, the caches).
        for i in 0..<10 {
            try await h.submit(request("timed-\(i)", .mostRequested, cpu: "10m"))
            // The first waits for the scheduler's groups to settle: generous on a loaded machine.
            _ = try await h.waitFor("timed-\(i)", .completed, timeout: .seconds(60))
        }
        let timers = String(decoding: try await http.execute(HTTPRequest(url: "http://127.0.0.1:\(ops.port)/metrics")).body, as: UTF8.self)
        let subMillisecond = timers.split(separator: "\n").first { $0.hasPrefix("gedge_scheduler_decision_seconds_bucket{le=\"0.001\"}") }
        #expect(subMillisecond.flatMap { Int($0.split(separator: " ").last ?? "") }.map { $0 >= 1 } == true, "\(String(describing: subMillisecond))")
        await pg("stop")
        try await h.submit(request("stuck", .mostRequested))
        var why = ""
        try await eventually("readyz names the stalled consumer (last: \(why); log: \(s.lines.suffix(5)))", timeout: .seconds(40)) {
            guard let r = try? await http.execute(HTTPRequest(url: "http://127.0.0.1:\(ops.port)/readyz")) else { return false }
            why = String(decoding: r.body, as: UTF8.self)
            return r.status == 503 && why.contains("scheduler.requests")
        }
        let metrics = try await http.execute(HTTPRequest(url: "http://127.0.0.1:\(ops.port)/metrics"))
        #expect(String(decoding: metrics.body, as: UTF8.self).contains("gedge_consumer_stalled{consumer=\"scheduler.requests\"} 1"))
        let sent = ContinuousClock.now
        s.kill(SIGTERM)
        try await s.waitForExit(timeout: .seconds(15))
        #expect(ContinuousClock.now - sent < .seconds(12), "SIGTERM took \(ContinuousClock.now - sent)")
        await http.shutdown()
        await pg("start")
        await h.shutdown()
    }
}
