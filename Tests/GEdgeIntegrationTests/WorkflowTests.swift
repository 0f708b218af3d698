import Foundation
import GEdgeAgent
import GEdgeCore
import GEdgePlacement
import GEdgeScheduler
import GEdgeServiceSpec
import GEdgeWorkflow
import Testing

let aieyeYAML: String = {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/workflows/aieye.yaml")
    return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
}()

/// Workflows through the gateway: the seed's AI service as a DAG, deployed in dependency
/// order, chain-aware placement against placing each stage on its own, and a failed step
/// that skips its successors after its retries.
@Suite("Workflows", .enabled(if: TestEnv.integration), .timeLimit(.minutes(3)))
struct WorkflowTests {
    /// Three clusters: two edge clusters 5 ms apart (the GS-Scheduler seed's edge distance), and
    /// a big cloud 25 ms from both.
    func topology(_ g: GatewayHarness) async throws {
        let a = SimulatedCluster(name: "edge-a", nodes: simNodes("a", count: 2, cpu: 8000, mem: 16 << 30, latency: ["edge-b": 5, "cloud": 25]), podStartDelay: .milliseconds(20))
        let b = SimulatedCluster(name: "edge-b", nodes: simNodes("b", count: 2, cpu: 8000, mem: 16 << 30, latency: ["edge-a": 5, "cloud": 25]), podStartDelay: .milliseconds(20))
        let cloud = SimulatedCluster(name: "cloud", nodes: simNodes("c", count: 4, cpu: 32000, mem: 64 << 30, latency: ["edge-a": 25, "edge-b": 25]), podStartDelay: .milliseconds(20))
        for (n, d) in [("edge-a", a), ("edge-b", b), ("cloud", cloud)] { try g.world.startAgent(n, driver: d) }
        let ctx = try g.world.startScheduler(instance: "s1")
        try await eventually("three clusters in view") { ctx.view.fresh().count == 3 }
        _ = try await g.json("PUT", "/v1/projects/p1/clusters", token: g.adminToken, .object(["clusters": .array(["edge-a", "edge-b", "cloud"])]))
    }

    func waitDone(_ g: GatewayHarness, _ id: String, token: String) async throws -> JSONValue {
        var last: JSONValue = .null
        try await eventually("workflow \(id) ended (last: \(last["state"]?.stringValue ?? "?"))", timeout: .seconds(60)) {
            last = try await g.call("GET", "/v1/workflows/\(id)", token: token).1
            return ["completed", "failed", "canceled"].contains(last["state"]?.stringValue ?? "")
        }
        return last
    }

    @Test func theSeedsServiceDeploysInDependencyOrderAndChainPlacementWins() async throws {
        let g = try await GatewayHarness()
        try await topology(g)
        let token = try await g.token(project: "p1")
        try await g.bindNamespaces("p1", ["aieye-chain", "aieye-independent"])
        var results: [String: JSONValue] = [:]
        for placement in ["chain", "independent"] {
            // The media server runs where the cameras are: edge-a.
            let text = aieyeYAML.replacingOccurrences(of: "placement: chain", with: "placement: \(placement)")
                .replacingOccurrences(of: "namespace: aieye", with: "namespace: aieye-\(placement)")
                .replacingOccurrences(of: "ports: [8554], type: ClusterIP", with: "ports: [8554], type: ClusterIP, scheduleHint: {selectClusters: [edge-a]}")
            let (status, body) = try await g.call("POST", "/v1/workflows", token: token, body: text, contentType: "application/yaml")
            #expect(status == 202, "\(body)")
            let id = try #require(body["id"]?.stringValue)
            let done = try await waitDone(g, id, token: token)
            #expect(done["state"] == "completed", "\(done)")
            results[placement] = done

            // Dependency order: no step's request was received before each of its dependencies completed.
            let steps = done["steps"]?.arrayValue ?? []
            var requestOf: [String: String] = [:]
            for s in steps { requestOf[s["name"]?.stringValue ?? ""] = s["request_id"]?.stringValue }
            for s in steps {
                guard let rid = s["request_id"]?.stringValue else { continue }
                let received = try await g.world.store.lifecycle(id: rid).first { $0.state == .received }?.at
                for d in s["depends_on"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                    let depDone = try await g.world.store.lifecycle(id: requestOf[d] ?? "").first { $0.state == .completed }?.at
                    #expect(received != nil && depDone != nil && received! >= depDone!, "\(s["name"] ?? "") before \(d)")
                }
            }
            #expect(done["edges"]?.arrayValue?.count == 7)
        }

        // The inference stage's manifests mount its runtime and pass the Kubernetes schemas.
        let inference = try WorkflowSpec.parse(text: aieyeYAML).steps.first { $0.name == "aieye-inference" }
        let manifests = try #require(inference).service.manifests()
        try await validateWithKubernetesSchemas([manifests.deployment, manifests.service])

        // Chain-aware placement against each stage on its own: the per-frame cost of the
        // media -> inference -> post-processing chain on the clusters' measured latencies.
        let view = Dictionary(g.gateway.view.fresh().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func chainCost(_ w: JSONValue) -> Double {
            let parts = ["aieye-media-server", "aieye-inference", "aieye-postprocessing"].map { name -> PlacementPart in
                let s = w["steps"]?.arrayValue?.first { $0["name"]?.stringValue == name }
                return PlacementPart(cluster: s?["cluster"]?.stringValue ?? "?", node: s?["node"]?.stringValue, replicas: 1)
            }
            // Processing per frame as the seed's stages take it: decode 8 ms, inference 25 ms, post 7 ms.
            return ChainLatency.perFrame(parts, processingMs: [8, 25, 7], clusters: view)
        }
        let chain = chainCost(results["chain"]!), independent = chainCost(results["independent"]!)
        let gain = (independent - chain) / independent * 100
        func where_(_ w: JSONValue) -> String {
            (w["steps"]?.arrayValue ?? []).map { "\($0["name"]?.stringValue ?? "")@\($0["cluster"]?.stringValue ?? "")/\($0["node"]?.stringValue ?? "")" }.joined(separator: " ")
        }
        print("workflow chain cost per frame: chain-aware \(chain) ms (\(where_(results["chain"]!))), independent \(independent) ms (\(where_(results["independent"]!))): \(String(format: "%.0f", gain)) % less")
        #expect(chain < independent, "chain-aware \(chain) ms against \(independent) ms")
        await g.shutdown()
    }

    @Test func aFailedStepSkipsItsSuccessorsAfterItsRetries() async throws {
        let g = try await GatewayHarness()
        try await topology(g)
        let token = try await g.token(project: "p1")
        try await g.bindNamespaces("p1", ["broken"])
        let text = """
            name: broken
            namespace: broken
            retries: 1
            steps:
            - {name: base, service: {containers: ["redis:7"], ports: [6379], type: ClusterIP}}
            - {name: bad, dependsOn: [base], service: {containers: [x:1], ports: [80], type: ClusterIP, scheduleHint: {selectClusters: [elsewhere]}}}
            - {name: after-bad, dependsOn: [bad], service: {containers: [y:1], ports: [80], type: ClusterIP}}
            - {name: last, dependsOn: [after-bad], service: {containers: [z:1], ports: [80], type: ClusterIP}}
            - {name: beside, dependsOn: [base], service: {containers: [w:1], ports: [80], type: ClusterIP}}
            """
        let (status, body) = try await g.call("POST", "/v1/workflows", token: token, body: text, contentType: "application/yaml")
        #expect(status == 202, "\(body)")
        let done = try await waitDone(g, try #require(body["id"]?.stringValue), token: token)
        #expect(done["state"] == "failed")
        var state: [String: String] = [:], attempts: [String: Int] = [:]
        for s in done["steps"]?.arrayValue ?? [] {
            state[s["name"]?.stringValue ?? ""] = s["state"]?.stringValue
            attempts[s["name"]?.stringValue ?? ""] = Int(s["attempt"]?.numberValue ?? 0)
        }
        #expect(state == ["base": "completed", "bad": "failed", "after-bad": "skipped", "last": "skipped", "beside": "completed"])
        #expect(attempts["bad"] == 2)

        // Mistakes in a definition name the field; a cycle is named; the list and delete work.
        let (bad, badBody) = try await g.call("POST", "/v1/workflows", token: token,
                                              body: "name: c\nnamespace: c\nsteps:\n- {name: a, dependsOn: [b], service: {containers: [a], ports: [1], type: ClusterIP}}\n- {name: b, dependsOn: [a], service: {containers: [a], ports: [1], type: ClusterIP}}",
                                              contentType: "application/yaml")
        #expect(bad == 400 && badBody["detail"]?.stringValue?.contains("cycle") == true, "\(badBody)")
        let (bad2, bad2Body) = try await g.call("POST", "/v1/workflows", token: token,
                                                body: "name: c\nnamespace: c\nsteps:\n- {name: a, service: {containers: [a], ports: [99999], type: ClusterIP}}", contentType: "application/yaml")
        #expect(bad2 == 400 && bad2Body["field"] == "steps[0].service.ports[0]", "\(bad2Body)")
        let other = try await g.token(project: "p2")
        #expect(try await g.call("GET", "/v1/workflows/\(done["id"]?.stringValue ?? "")", token: other).0 == 404)
        #expect(try await g.call("POST", "/v1/workflows", token: other, body: text, contentType: "application/yaml").0 == 403)
        #expect(try await g.call("GET", "/v1/workflows", token: token).1["workflows"]?.arrayValue?.count == 1)
        let (deleted, _) = try await g.call("DELETE", "/v1/workflows/\(done["id"]?.stringValue ?? "")", token: token)
        #expect(deleted == 202)
        await g.shutdown()
    }
}
