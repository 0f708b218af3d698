import Foundation
import GEdgeAgent
import GEdgeCore
import GEdgeFaaS
import GEdgePlacement
import GEdgeScheduler
import Testing

/// Chromium, headless, as the browser: runs the page's script, waits for its requests
/// (virtual time stops while they are in flight), and prints the DOM or takes a screenshot.
func chromium(_ args: [String], timeout: Duration = .seconds(60)) async throws -> (Int32, String) {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("chromium") + ".html")
    let profile = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("chromium-profile"))
    // Bounded: a browser that hangs fails the test instead of holding the run.
    let cmd = ["timeout", "90", "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--user-data-dir=\(profile.path)", "--virtual-time-budget=15000"] + args
    let rc = await runCommand(["/bin/sh", "-c", cmd.map { "'\($0)'" }.joined(separator: " ") + " > '\(out.path)' 2>/dev/null"])
    let dom = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
    try? FileManager.default.removeItem(at: out)
    try? FileManager.default.removeItem(at: profile)
    return (rc, dom)
}

let chromiumAvailable = FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium")

/// The web console in headless Chromium, against a gateway with live data: clusters with
/// their accelerators, a request's lifecycle, a workflow drawn as a graph, a function's
/// replicas over time, notifications, pod logs through the agent; then a screenshot.
@Suite("Console", .enabled(if: TestEnv.integration && chromiumAvailable), .timeLimit(.minutes(4)))
struct ConsoleTests {
    @Test func pagesShowLiveDataInChromium() async throws {
        let g = try await GatewayHarness()
        let edge = SimulatedCluster(name: "edge1", nodes: [
            SimulatedNode(name: "gpu-node", allocatable: Resources(cpuMilli: 8000, memory: 16 << 30, gpu: 1), labels: ["accelerator.gedge.io/nvidia-gpu.count": "1"]),
            SimulatedNode(name: "plain", allocatable: Resources(cpuMilli: 8000, memory: 16 << 30)),
        ], podStartDelay: .milliseconds(20))
        try g.world.startAgent("edge1", driver: edge)
        let ctx = try g.world.startScheduler(instance: "s1")
        try await eventually("edge1 in view") { !ctx.view.fresh().isEmpty }
        _ = try await g.json("PUT", "/v1/projects/p1/clusters", token: g.adminToken, .object(["clusters": .array(["edge1"])]))
        let token = try await g.token(project: "p1")
        try await g.bindNamespaces("p1", ["fn"])

        // Live data: a request, a workflow, a function with scale events, a notification.
        try await g.world.submit(request("console-1", .selectedCluster, ["select_clusters": .array(["edge1"])]))
        let done = try await g.world.waitFor("console-1", .completed)
        let node = try #require(done.placement.arrayValue?.first?["node"]?.stringValue)
        let workflow = """
            name: pipeline
            namespace: p1
            steps:
            - {name: decode, service: {containers: ["decode:1"], ports: [80], type: ClusterIP}}
            - {name: infer, dependsOn: [decode], service: {containers: ["infer:1"], ports: [80], type: ClusterIP}}
            - {name: report, dependsOn: [infer], service: {containers: ["report:1"], ports: [80], type: ClusterIP}}
            """
        let (_, wf) = try await g.call("POST", "/v1/workflows", token: token, body: workflow, contentType: "application/yaml")
        let wfID = try #require(wf["id"]?.stringValue)
        try await eventually("the workflow completed", timeout: .seconds(30)) {
            try await g.call("GET", "/v1/workflows/\(wfID)", token: token).1["state"] == "completed"
        }
        let fn = try ScaledObject.parseAll("""
            apiVersion: keda.sh/v1alpha1
            kind: ScaledObject
            metadata: {name: detector, namespace: fn}
            spec:
              scaleTargetRef: {name: detector-worker}
              triggers: [{type: rabbitmq, metadata: {host: "amqp://127.0.0.1", queueName: motion, mode: QueueLength, value: "5"}}]
            """)[0]
        try await FunctionStore(pool: g.world.pool).upsert(fn, definition: .object([:]), cluster: "edge1")
        for (from, to) in [(0, 1), (1, 3), (3, 0)] {
            _ = try await g.world.pool.execute(
                "INSERT INTO function_scale_events (namespace, name, from_replicas, to_replicas, metric, reason) VALUES ('fn', 'detector', $1, $2, 7, 'test')",
                [.int(from), .int(to)])
        }
        _ = try await g.world.pool.execute("INSERT INTO notifications (event_id, queue, payload) VALUES ('det-console-1', 'fire', '{}')")
        let (svcStatus, svc) = try await g.call("POST", "/v1/services", token: token,
                                                body: "{name: shop-web, namespace: p1, containers: [nginx], ports: [80], type: ClusterIP}", contentType: "application/yaml")
        #expect(svcStatus == 202, "\(svc)")

        // Pod logs through the agent, as the API gives them.
        let (logStatus, logs) = try await g.call("GET", "/v1/clusters/edge1/pods/p1/w-console-1-0/logs?tail=50", token: token)
        #expect(logStatus == 200, "\(logs)")
        #expect(logs["lines"]?.arrayValue?.contains { $0.stringValue?.contains("scheduled on node \(node)") == true } == true, "\(logs)")
        #expect(try await g.call("GET", "/v1/clusters/edge1/pods/p1/nope/logs", token: token).0 == 404)
        #expect(try await g.call("GET", "/v1/clusters/edge1/pods/other-ns/w-console-1-0/logs", token: token).0 == 404)

        let (pageStatus, _) = try await g.call("GET", "/console", token: nil)
        #expect(pageStatus == 200)
        func page(_ go: String, as who: String? = nil) async throws -> String {
            let (rc, dom) = try await chromium(["--dump-dom", "\(g.base)/console#token=\(who ?? token)&go=\(go)"])
            #expect(rc == 0)
            return dom
        }
        let clusters = try await page("/clusters/edge1")
        #expect(clusters.contains("gpu-node") && clusters.contains("nvidia-gpu.count=1"), "\(clusters.suffix(2000))")
        let req = try await page("/requests/console-1")
        #expect(req.contains("lifecycle timeline") && req.contains("completed") && req.contains("received"), "\(req.suffix(2000))")
        let wfPage = try await page("/workflows/\(wfID)")
        #expect(wfPage.contains("workflow-graph") && wfPage.contains("data-step=\"infer\"") && wfPage.contains("class=\"edge\""), "\(wfPage.suffix(2000))")
        let fnPage = try await page("/functions/fn/detector")
        #expect(fnPage.contains("replica-chart") && fnPage.contains("detector-worker"), "\(fnPage.suffix(2000))")
        let services = try await page("/services")
        #expect(services.contains("shop-web"), "\(services.suffix(2000))")
        let projectPage = try await page("/project")
        #expect(projectPage.contains("id=\"namespaces\"") && projectPage.contains(">fn<") && projectPage.contains("baseline"), "\(projectPage.suffix(2000))")
        // Notifications belong to no project: the admin reads them.
        let notes = try await page("/notifications", as: g.adminToken)
        #expect(notes.contains("det-console-1"), "\(notes.suffix(2000))")
        let podLogs = try await page("/logs/edge1/p1/w-console-1-0")
        #expect(podLogs.contains("scheduled on node \(node)"), "\(podLogs.suffix(2000))")
        // A wrong token gets the sign-in form, not data.
        let refused = try await chromium(["--dump-dom", "\(g.base)/console#token=wrong&go=/clusters"]).1
        #expect(refused.contains("Sign in") && !refused.contains("gpu-node"))

        // A screenshot of the workflow graph.
        let shot = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("console") + ".png")
        _ = try await chromium(["--screenshot=\(shot.path)", "--window-size=1280,800", "\(g.base)/console#token=\(token)&go=/workflows/\(wfID)"])
        let png = try Data(contentsOf: shot)
        #expect(png.count > 10_000 && png.prefix(4) == Data([0x89, 0x50, 0x4E, 0x47]))
        print("console screenshot: \(shot.path) (\(png.count) bytes)")
        await g.shutdown()
    }
}
