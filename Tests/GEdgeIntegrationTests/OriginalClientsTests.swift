import Foundation
import GEdgeAgent
import GEdgeCore
import GEdgeKafka
import GEdgePlacement
import GEdgeScheduler
import Synchronization
import Testing

/// The original GEdge clients, unchanged: forms posted to GS-Scheduler's front server
/// (GE_GSCH_server.py), GS-Engine's service API (gse_api_server/service.py), producers
/// writing GS-Scheduler's Kafka envelopes and requesters waiting on a topic named by the
/// request ID (GE_kafka.py, GE_GSCH_cluster_agent.py). Every shape here is written from the
/// originals' field lists, not with the suite's encoders.
@Suite("Original clients", .enabled(if: TestEnv.integration), .timeLimit(.minutes(3)))
struct OriginalClientsTests {
    static let deployment = """
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: web}
        spec:
          replicas: 1
          template:
            spec:
              containers:
              - {name: web, image: nginx, resources: {requests: {cpu: 100m}}}

        """

    /// A multipart form as `requests.post(url, files={'yaml_file': f}, data=...)` sends it.
    static func form(_ fields: [(String, String)], yaml: String = deployment, boundary: String = "5d1c0ffee") -> (String, String) {
        var body = ""
        body += "--\(boundary)\r\nContent-Disposition: form-data; name=\"yaml_file\"; filename=\"web.yaml\"\r\n\r\n\(yaml)\r\n"
        for (k, v) in fields { body += "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(k)\"\r\n\r\n\(v)\r\n" }
        body += "--\(boundary)--\r\n"
        return (body, "multipart/form-data; boundary=\(boundary)")
    }

    @Test func frontServerFormsAtTheOriginalPaths() async throws {
        let g = try await GatewayHarness()
        for name in ["edge1", "edge2", "edge3"] {
            try g.world.startAgent(name, driver: SimulatedCluster(name: name, nodes: simNodes(name, count: 2), podStartDelay: .milliseconds(20)))
        }
        let ctx = try g.world.startScheduler(instance: "s1")
        try await eventually("clusters in view") { ctx.view.fresh().count == 3 }
        try await g.world.bind("p1", ["edge1", "edge2", "edge3"])
        let token = try await g.token(project: "p1")
        let who = [("user_name", "u1"), ("workspace_name", "w1"), ("project_name", "p1")]

        // GSelectedCluster, mode default (= cluster), the list as the slides write it, fast,
        // and a callback URL without a scheme, as the original's form took it.
        let (body, type) = Self.form(who + [
            ("mode", "default"), ("select_clusters", "['edge2',['edge3','edge1']]"), ("fast_option", "fast"),
            ("callback_url", "127.0.0.1:9/hook"),
        ])
        let (status, answer) = try await g.call("POST", "/GEP/GSCH/test/select", token: token, body: body, contentType: type)
        #expect(status == 200, "\(answer)")
        let result = try #require(answer["result"]?.stringValue)
        #expect(result.hasPrefix("request_id:req-"), "IDs as the original's RequestJob made them")
        let id = String(result.dropFirst("request_id:".count))
        let done = try await g.world.waitFor(id, .completed)
        #expect(done.placement.arrayValue?.first?["cluster"] == "edge2")
        let (_, st) = try await g.call("GET", "/GEP/GSCH/dispatchedqueue/requestjobs/\(id)/status", token: token)
        #expect(st["result"] == "completed", "\(st)")
        let (_, recorded) = try await g.call("GET", "/v1/requests/\(id)", token: token)
        #expect(recorded["callback_url"] == "http://127.0.0.1:9/hook" && recorded["fast_option"] == true, "\(recorded)")

        // GMostRequestedPriority with a nested level only: never outside it.
        let (mb, mt) = Self.form(who + [("select_clusters", "[['edge1','edge3']]")])
        let (ms, ma) = try await g.call("POST", "/GEP/GSCH/test/most", token: token, body: mb, contentType: mt)
        #expect(ms == 200, "\(ma)")
        let mid = String(try #require(ma["result"]?.stringValue).dropFirst("request_id:".count))
        let most = try await g.world.waitFor(mid, .completed)
        #expect(["edge1", "edge3"].contains(most.placement.arrayValue?.first?["cluster"]?.stringValue ?? ""), "\(most.placement)")

        // GLowLatencyPriority from a node, limited to two clusters.
        let (lb, lt) = Self.form(who + [
            ("mode", "fromnode"), ("source_cluster", "edge1"), ("source_node", "edge1-1"), ("select_clusters", "['edge3', 'edge2']"),
        ])
        let (ls, la) = try await g.call("POST", "/GEP/GSCH/test/low", token: token, body: lb, contentType: lt)
        #expect(ls == 200, "\(la)")
        let lid = String(try #require(la["result"]?.stringValue).dropFirst("request_id:".count))
        let low = try await g.world.waitFor(lid, .completed)
        #expect(["edge2", "edge3"].contains(low.placement.arrayValue?.first?["cluster"]?.stringValue ?? ""), "\(low.placement)")

        // A manifest that names its namespace goes there, as `kubectl apply -f` puts it,
        // when the project owns it; one it does not own, or a system one, is refused.
        try await g.bindNamespaces("p1", ["edge"])
        let named = Self.deployment.replacingOccurrences(of: "metadata: {name: web}", with: "metadata: {name: web, namespace: edge}")
        let (nb, nt) = Self.form(who + [("select_clusters", "['edge1']")], yaml: named)
        let (ns, na) = try await g.call("POST", "/GEP/GSCH/test/select", token: token, body: nb, contentType: nt)
        #expect(ns == 200, "\(na)")
        let nid = String(try #require(na["result"]?.stringValue).dropFirst("request_id:".count))
        _ = try await g.world.waitFor(nid, .completed)
        let (_, nrec) = try await g.call("GET", "/v1/requests/\(nid)", token: token)
        #expect(nrec["namespace"] == "edge", "\(nrec)")
        #expect(recorded["namespace"] == "p1", "a manifest naming none goes to the project's own: \(recorded)")
        for (other, why) in [("kube-system", "system namespace"), ("p2", "not bound to project 'p1'")] {
            let (ob, ot) = Self.form(who + [("select_clusters", "['edge1']")], yaml: named.replacingOccurrences(of: "namespace: edge", with: "namespace: \(other)"))
            let (os, oa) = try await g.call("POST", "/GEP/GSCH/test/select", token: token, body: ob, contentType: ot)
            #expect(os == 403 && oa["Error"]?["Detail"]?.stringValue?.contains(why) == true, "\(other): \(os) \(oa)")
        }

        let (_, names) = try await g.call("GET", "/GEP/GSCH/policyNameList", token: token)
        let listed = Set(names["result"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        #expect(listed.isSuperset(of: ["GLowLatencyPriority", "GMostRequestedPriority", "GSelectedCluster"]), "\(names)")

        // Errors in the front server's own form.
        let refusals: [(String, String?, [(String, String)], Int, String, String?)] = [
            ("no token", nil, who, 401, "InvalidToken", nil),
            ("unknown mode", token, who + [("mode", "sideways")], 400, "InvalidRequestContentException", "mode"),
            ("code, not a list", token, who + [("select_clusters", "__import__('os').system('id')")], 400, "InvalidRequestContentException", "select_clusters"),
            ("a number in the list", token, who + [("select_clusters", "['edge1', 7]")], 400, "InvalidRequestContentException", "select_clusters"),
            ("metadata callback", token, who + [("callback_url", "169.254.169.254/latest/meta-data")], 400, "InvalidRequestContentException", "callback_url"),
            ("frompod without a pod", token, who + [("mode", "frompod"), ("source_cluster", "edge1")], 400, "InvalidRequestContentException", "pod_name"),
        ]
        for (what, tok, fields, code, errorCode, field) in refusals {
            let (b, t) = Self.form(fields)
            let (s, a) = try await g.call("POST", "/GEP/GSCH/test/low", token: tok, body: b, contentType: t)
            #expect(s == code && a["Error"]?["ErrorCode"]?.stringValue == errorCode, "\(what): \(s) \(a)")
            #expect(a["Error"]?["Message"]?.stringValue?.isEmpty == false, "\(what): \(a)")
            if let field { #expect(a["Error"]?["Field"]?.stringValue == field, "\(what): \(a)") }
        }
        let (nf, nfa) = try await g.call("POST", "/GEP/GSCH/test/fastest", token: token, body: body, contentType: type)
        #expect(nf == 404 && nfa["Error"]?["ErrorCode"] == "ResourceNotFoundException", "\(nfa)")
        let (unknownJob, uj) = try await g.call("GET", "/GEP/GSCH/dispatchedqueue/requestjobs/req-nope/status", token: token)
        #expect(unknownJob == 404 && uj["Error"] != nil)
        await g.shutdown()
    }

    /// GS-Engine's create is `kubectl apply`: the same definition twice succeeds, a changed
    /// one updates; list, get and status by query; delete with the YAML body.
    @Test func gsEngineServiceAPIAsTheOriginalServedIt() async throws {
        let g = try await GatewayHarness()
        let edge1 = SimulatedCluster(name: "edge1", nodes: simNodes("e1", count: 2), podStartDelay: .milliseconds(20))
        try g.world.startAgent("edge1", driver: edge1)
        let ctx = try g.world.startScheduler(instance: "s1")
        try await eventually("edge1 in view") { !ctx.view.fresh().isEmpty }
        try await g.world.bind("p1", ["edge1"])
        try await g.bindNamespaces("p1", ["shop"])
        let token = try await g.token(project: "p1")
        let v1 = "name: cart\nnamespace: shop\ncontainers: [nginx:1.25]\nports: [80]\ntype: ClusterIP\n"
        // `curl --data-binary @cart.yaml` sends it form-encoded; the original read request.data.
        let (s1, a1) = try await g.call("POST", "/gse/service/create", token: token, body: v1, contentType: "application/x-www-form-urlencoded")
        #expect(s1 == 200 && a1["err"] == .null && a1["res"]?["action"] == "created", "\(a1)")
        let first = try #require(a1["res"]?["request_id"]?.stringValue)
        _ = try await g.world.waitFor(first, .completed)

        let (s2, a2) = try await g.call("POST", "/gse/service/create", token: token, body: v1, contentType: "application/yaml")
        #expect(s2 == 200 && a2["err"] == .null && a2["res"]?["action"] == "unchanged" && a2["res"]?["request_id"]?.stringValue == first, "\(a2)")

        let v2 = v1.replacingOccurrences(of: "ports: [80]", with: "ports: [80, 8080]")
        let (s3, a3) = try await g.call("POST", "/gse/service/create", token: token, body: v2, contentType: "application/yaml")
        #expect(s3 == 200 && a3["res"]?["action"] == "updated", "\(a3)")
        let second = try #require(a3["res"]?["request_id"]?.stringValue)
        #expect(second != first)
        _ = try await g.world.waitFor(second, .completed)
        _ = try await g.world.waitFor(first, .canceled)

        let (_, list) = try await g.call("GET", "/gse/service/list?namespace=shop", token: token)
        #expect(list == .object(["err": .null, "res": .array(["cart"])]), "\(list)")
        let (_, got) = try await g.call("GET", "/gse/service/get?name=cart&namespace=shop", token: token)
        #expect(got["err"] == .null && got["res"]?["ports"]?.arrayValue?.count == 2 && got["res"]?["name"] == "cart", "\(got)")
        let (_, status) = try await g.call("GET", "/gse/service/status?name=cart&namespace=shop", token: token)
        #expect(status["res"]?["replicas"] == 1 && status["res"]?["readyReplicas"] == 1, "\(status)")

        let (missing, ma) = try await g.call("GET", "/gse/service/get?name=cart", token: token)
        #expect(missing == 400 && ma["res"] == .null && ma["err"]?.stringValue?.contains("namespace") == true, "\(ma)")
        let (del, da) = try await g.call("DELETE", "/gse/service/delete", token: token, body: "name: cart\nnamespace: shop\n", contentType: "application/yaml")
        #expect(del == 200 && da == .object(["err": .null, "res": .null]), "\(da)")
        _ = try await g.world.waitFor(second, .canceled)
        try await eventually("the pods removed") { await edge1.podCount == 0 }
        let (gone, ga) = try await g.call("GET", "/gse/service/get?name=cart&namespace=shop", token: token)
        #expect(gone == 404 && ga["err"]?.stringValue?.isEmpty == false && ga["res"] == .null, "\(ga)")
        await g.shutdown()
    }
}

/// Reads a topic in the background; `until` waits for a condition on what arrived.
final class TopicReader: @unchecked Sendable {
    let consumer: KafkaConsumer
    let seen = Mutex<[KafkaMessage]>([])
    var task: Task<Void, Never>?

    init(_ world: SchedulerHarness, topic: String) throws {
        consumer = try world.consumer(group: TestEnv.unique("reader"), topic: topic)
        task = Task { [self] in for await m in consumer { seen.withLock { $0.append(m) } } }
    }

    var messages: [KafkaMessage] { seen.withLock { $0 } }

    func close() async {
        consumer.stopPolling()
        await task?.value
        try? await consumer.close()
    }
}

@Suite("Original Kafka clients", .enabled(if: TestEnv.integration), .timeLimit(.minutes(3)))
struct OriginalKafkaClientsTests {
    /// A producer as GE_kafka.py configured its KafkaProducer: gzip, no key.
    static func originalProducer(_ world: SchedulerHarness) throws -> KafkaProducer {
        var pc = KafkaProducerConfiguration(client: KafkaConfiguration(brokers: world.cluster.bootstrapServers, clientID: "gs-scheduler", properties: ["compression.type": "gzip"]))
        pc.lingerMs = 1
        return try KafkaProducer(configuration: pc, logger: TestEnv.logger)
    }

    static func send(_ producer: KafkaProducer, _ topic: String, _ json: String) async throws {
        _ = try await producer.send(KafkaRecord(topic: topic, key: nil, value: Array(json.utf8)))
    }

    @Test func requestJobsAndAgentRequestsAsTheOriginalWritesThem() async throws {
        let world = try await SchedulerHarness()
        for t in [Topics.originalGSCH, Topics.originalAPI] { try world.cluster.createTopic(t, partitions: 1) }
        let edge1 = SimulatedCluster(name: "edge1", nodes: simNodes("edge1", count: 2, latency: ["edge2": 5, "edge3": 2]), podStartDelay: .milliseconds(20))
        try world.startAgent("edge1", driver: edge1, original: true)
        try world.startAgent("edge2", driver: SimulatedCluster(name: "edge2", nodes: simNodes("edge2", count: 1), podStartDelay: .milliseconds(20)), original: true)
        try world.startAgent("edge3", driver: SimulatedCluster(name: "edge3", nodes: simNodes("edge3", count: 1), podStartDelay: .milliseconds(20)))
        let ctx = try world.startScheduler(instance: "s1")
        try await eventually("clusters in view") { ctx.view.fresh().count == 3 }
        try await world.bind("p1", ["edge1", "edge2", "edge3"])
        // work_info's namespace is where the workload goes: the project's, bound by an admin.
        try await ProjectPolicyStore(pool: world.pool).bind(project: "p1", namespaces: ["p1-w1"], replace: false)
        let producer = try Self.originalProducer(world)

        // 1. A RequestJob, keyless and gzip, with work_info beside msg.
        let jobID = "req-" + UUID().uuidString.lowercased()
        try await Self.send(producer, Topics.scheduleRequests, """
            {"source": {"type": "none"}, "target": {"type": "cluster", "object": "scheduler"}, "hcode": 100, "lcode": 1,
             "work_info": {"user_name": "user1", "workspace_name": "w1", "project_name": "p1", "namespace_name": "p1-w1"},
             "msg": {"request_id": "\(jobID)", "callback_url": null, "file_id": "b2ab5fbe", "fail_count": 0, "status": "create",
                     "cdate": "2021-10-18 13:46:30",
                     "workload": "apiVersion: apps/v1\\nkind: Deployment\\nmetadata: {name: yolo}\\nspec:\\n  replicas: 1\\n  template:\\n    spec:\\n      containers:\\n      - {name: yolo, image: yolo, resources: {requests: {cpu: 100m}}}\\n",
                     "env": {"scope": "global", "priority": "GSelectedCluster",
                             "option": {"user_name": "user1", "workspace_name": "w1", "project_name": "p1", "mode": "default",
                                        "parameters": {"select_clusters": ["edge3", ["edge1", "edge2"]]}}}}}
            """)
        let placed = try await world.waitFor(jobID, .completed)
        #expect(placed.placement.arrayValue?.first?["cluster"] == "edge3", "\(placed.placement)")
        #expect(placed.projectName == "p1" && placed.policy == "GSelectedCluster")

        // 2. The low-latency worker's 200 to edge1, answered on the request ID's topic.
        func ask(_ topic: String, _ id: String, _ body: String) async throws -> TopicReader {
            try world.cluster.createTopic(id, partitions: 1)
            let reader = try TopicReader(world, topic: id)
            try await Self.send(producer, topic, body)
            return reader
        }
        let latencyID = "req-" + UUID().uuidString.lowercased()
        let latency = try await ask(Topics.originalGSCH, latencyID, """
            {"source": {"type": "none"}, "target": {"type": "cluster", "object": "edge1"}, "hcode": 200, "lcode": 1,
             "work_info": {"user_name": "user1", "workspace_name": "w1", "project_name": "p1", "namespace_name": "p1-w1"},
             "msg": {"request_id": "\(latencyID)", "source_node": "edge1-1", "select_clusters": ["edge2", "edge3"]}}
            """)
        try await eventually("the latency answer") { !latency.messages.isEmpty }
        let answer = try JSONValue.parse(latency.messages[0].value)
        #expect(latency.messages[0].keyString == latencyID)
        #expect(answer["hcode"] == 200 && answer["lcode"] == 2 && answer["source"] == .object(["type": "cluster", "object": "edge1"]))
        #expect(answer["target"] == .object(["type": "none"]))
        #expect(answer["msg"]?["result"] == .array([.object(["cluster": "edge3", "latency": 2]), .object(["cluster": "edge2", "latency": 5])]), "\(answer)")
        #expect(answer["msg"]?["request_id"] == .string(latencyID))

        // 3. The most-requested worker's 300, to a list of clusters: each named agent answers.
        let resourcesID = "req-" + UUID().uuidString.lowercased()
        let resources = try await ask(Topics.originalGSCH, resourcesID, """
            {"source": {"type": "none"}, "target": {"type": "cluster", "object": ["edge1", "edge2"]}, "hcode": 300, "lcode": 1,
             "msg": {"request_id": "\(resourcesID)", "GPUFilter": "unnecessary"}}
            """)
        try await eventually("two resource answers") { resources.messages.count == 2 }
        let byCluster = Dictionary(uniqueKeysWithValues: try resources.messages.map { m in
            let v = try JSONValue.parse(m.value)
            return (v["msg"]?["result"]?["cluster_name"]?.stringValue ?? "", v)
        })
        #expect(Set(byCluster.keys) == ["edge1", "edge2"])
        let best = try #require(byCluster["edge2"]?["msg"]?["result"])
        #expect(best["node_name"] == "edge2-1" && best["nvidia.com/gpu"] == 0 && (best["score"]?.numberValue ?? 0) > 0, "\(best)")

        // 4. The platform API's 520 (namespace project_name-workspace_uid) and 530 (a pod's node).
        let nsID = UUID().uuidString.lowercased()
        let ns = try await ask(Topics.originalAPI, nsID, """
            {"source": {"type": "none", "object": "none"}, "target": {"type": "cluster", "object": ["edge1"]}, "hcode": 520, "lcode": 1,
             "msg": {"request_id": "\(nsID)", "method": "create", "mode": "default", "parameters": {"workspace_uid": "w1uid", "project_name": "shop"}}}
            """)
        try await eventually("the namespace answer") { !ns.messages.isEmpty }
        let nsAnswer = try JSONValue.parse(ns.messages[0].value)
        // GE_resource.py reads return_msg['result']['status']; envelope readers read msg.result.
        #expect(nsAnswer["result"]?["status"] == "success" && nsAnswer["msg"]?["result"]?["status"] == "success", "\(nsAnswer)")
        #expect(await edge1.hasNamespace("shop-w1uid"))
        let podID = UUID().uuidString.lowercased()
        let pod = try await ask(Topics.originalAPI, podID, """
            {"source": {"type": "none", "object": "none"}, "target": {"type": "cluster", "object": "edge1"}, "hcode": 530, "lcode": 1,
             "work_info": {"user_name": "user1", "workspace_name": "w1", "project_name": "p1", "namespace_name": "p1-w1"},
             "msg": {"request_id": "\(podID)", "method": "read", "mode": "frompod", "parameters": {"namespace_name": "p1-w1", "pod_name": "nobody"}}}
            """)
        try await eventually("the pod answer") { !pod.messages.isEmpty }
        let podAnswer = try JSONValue.parse(pod.messages[0].value)
        #expect(podAnswer["result"]?["status"] == "fail" && podAnswer["result"]?["source_node"] == .null, "\(podAnswer)")

        // 5. What cannot be answered is a 900 on the same topic.
        let badID = "req-" + UUID().uuidString.lowercased()
        let bad = try await ask(Topics.originalGSCH, badID, """
            {"source": {"type": "none"}, "target": {"type": "cluster", "object": "edge1"}, "hcode": 200, "lcode": 1,
             "msg": {"request_id": "\(badID)", "source_node": "no-such-node", "select_clusters": ["edge2"]}}
            """)
        try await eventually("the error") { !bad.messages.isEmpty }
        let badAnswer = try JSONValue.parse(bad.messages[0].value)
        #expect(badAnswer["hcode"] == 900 && badAnswer["msg"]?["result"] == "error" && badAnswer["msg"]?["message"]?.stringValue?.contains("no-such-node") == true, "\(badAnswer)")
        // Only the addressed cluster answered anything.
        try await Task.sleep(for: .milliseconds(500))
        #expect(latency.messages.count == 1 && ns.messages.count == 1 && bad.messages.count == 1)

        for r in [latency, resources, ns, pod, bad] { await r.close() }
        await producer.shutdown()
        await world.shutdown()
    }
}
