import Foundation
import GEdgeAgent
import GEdgeClusters
import GEdgeCore
import GEdgeGateway
import GEdgePlacement
import GEdgeScheduler
import Testing

/// Runs `Tests/Browser/cdp.mjs`: headless Chromium driven through the DevTools protocol as a
/// person uses the page (typing, clicking, reading); what each `eval` step returned.
func browse(_ steps: [JSONValue]) async throws -> [JSONValue] {
    let dir = FileManager.default.temporaryDirectory
    let file = dir.appendingPathComponent(TestEnv.unique("steps") + ".json"), out = dir.appendingPathComponent(TestEnv.unique("cdp") + ".json")
    defer { try? FileManager.default.removeItem(at: file); try? FileManager.default.removeItem(at: out) }
    try Data(JSONValue.array(steps).serialized()).write(to: file)
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Browser/cdp.mjs").standardized.path
    _ = await runCommand(["/bin/sh", "-c", "timeout 150 node --experimental-websocket --no-warnings '\(script)' '\(file.path)' > '\(out.path)' 2>&1"])
    let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
    guard let line = text.split(separator: "\n").last, let answer = try? JSONValue.parse(Array(line.utf8)) else {
        Issue.record("the browser driver said: \(text.suffix(2000))")
        return []
    }
    guard answer["ok"] == .bool(true) else {
        Issue.record("step \(answer["step"].map { "\($0)" } ?? "-") failed: \(answer["error"]?.stringValue ?? "") at \(answer["url"]?.stringValue ?? "") (page errors: \(answer["pageErrors"].map { "\($0)" } ?? "none")) — the page showed: \(answer["dom"]?.stringValue ?? "")")
        return []
    }
    return answer["results"]?.arrayValue ?? []
}


// The driver's steps.
func wait(_ selector: String, _ text: String? = nil, timeout: Int? = nil) -> JSONValue {
    var o: [String: JSONValue] = ["wait": .string(selector)]
    if let text { o["text"] = .string(text) }
    if let timeout { o["timeout"] = .number(Double(timeout)) }
    return .object(o)
}
func click(_ selector: String) -> JSONValue { .object(["click": .string(selector)]) }
func typeIn(_ selector: String, _ text: String) -> JSONValue { .object(["type": .array([.string(selector), .string(text)])]) }
func pick(_ selector: String, _ value: String) -> JSONValue { .object(["select": .array([.string(selector), .string(value)])]) }
func evaluate(_ js: String) -> JSONValue { .object(["eval": .string(js)]) }
func pause(_ ms: Int) -> JSONValue { .object(["sleep": .number(Double(ms))]) }
func viewport(_ w: Int, _ h: Int) -> JSONValue { .object(["viewport": .array([.number(Double(w)), .number(Double(h))])]) }

let nodeAvailable = FileManager.default.isExecutableFile(atPath: "/usr/bin/node") || FileManager.default.isExecutableFile(atPath: "/usr/local/bin/node")

/// The console as a tool: each action done through the page in Chromium (typed, clicked) and
/// its effect checked through the API; screenshots of each page at 1280 and 1920 px.
@Suite("Console actions", .enabled(if: TestEnv.integration && chromiumAvailable && nodeAvailable), .timeLimit(.minutes(8)))
struct ConsoleActionsTests {
    @Test func everyActionThroughThePage() async throws {
        var settings = GatewayHarness.loopbackCallbacks
        settings.clusterKey = try ClusterCredentialsKey(hex: String(repeating: "7e", count: 32))
        let g = try await GatewayHarness(settings: settings)
        let edge = SimulatedCluster(name: "edge1", nodes: [
            SimulatedNode(name: "n1", allocatable: Resources(cpuMilli: 16000, memory: 32 << 30)),
            SimulatedNode(name: "n2", allocatable: Resources(cpuMilli: 16000, memory: 32 << 30)),
        ], podStartDelay: .milliseconds(10))
        try g.world.startAgent("edge1", driver: edge)
        let ctx = try g.world.startScheduler(instance: "s1")
        try await eventually("edge1 in view") { !ctx.view.fresh().isEmpty }
        _ = try await g.json("PUT", "/v1/projects/p1/clusters", token: g.adminToken, .object(["clusters": .array(["edge1"])]))
        let token = try await g.token(project: "p1")
        try await g.world.submit(request("cons-a", .selectedCluster, cpu: "100m", ["select_clusters": .array(["edge1"]), "replicas": 2]))
        _ = try await g.world.waitFor("cons-a", .completed)
        try await g.world.submit(request("cons-b", .mostRequested, cpu: "100m"))
        _ = try await g.world.waitFor("cons-b", .completed)
        try await eventually("the gateway sees edge1") { try await g.call("GET", "/v1/clusters/edge1", token: token).0 == 200 }
        let console = "\(g.base)/console"
        let shots = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("console-shots"))
        try FileManager.default.createDirectory(at: shots, withIntermediateDirectories: true)
        func shot(_ name: String) -> [JSONValue] {
            [1280, 1920].flatMap { w -> [JSONValue] in
                [viewport(w, 900), pause(300), .object(["screenshot": .string(shots.appendingPathComponent("\(name)-\(w).png").path)])]
            }
        }
        func go(_ page: String, as who: String) -> JSONValue { .object(["go": .string("\(console)#token=\(who)&go=\(page)")]) }

        // Cluster tabs; a pod's logs opened from its row, followed, paused, resumed.
        _ = try await browse([
            viewport(1280, 900), go("/clusters/edge1/pods/p1", as: token),
            wait("table.pods", "w-cons-a-0"),
        ] + shot("pods") + [
            click("a[data-tab=deployments]"), wait("table.deployments", "2/2"),
            click("a[data-tab=volumes]"), wait("#main h3", "Persistent volumes"),
            click("a[data-tab=storageclasses]"), wait("table.storageclasses", "standard"),
            click("a[data-tab=nodes]"), wait("#main table", "n2"),
        ] + shot("nodes") + [
            click("a[data-tab=pods]"), wait("table.pods", "w-cons-a-1"),
            click("table.pods a[href*='/logs/edge1/p1/w-cons-a-0']"), wait("#log-lines", "scheduled on node"),
            click("#follow-toggle"), wait("#follow-state", "paused"),
            click("#follow-toggle"), wait("#follow-state", "following"),
        ] + shot("logs"))
        // Following shows a line the pod printed after the page opened, once.
        await edge.setLoad(SimulatedLoad(namespace: "p1", name: "w-cons-a", cpuMilli: 300, memory: 0))
        let followed = try await browse([
            go("/logs/edge1/p1/w-cons-a-0", as: token), wait("#log-lines", "container started"),
            wait("#log-lines", "serving its share", timeout: 15000), pause(4500),
            evaluate("document.getElementById('log-lines').textContent.split('serving its share').length - 1"),
        ])
        #expect(followed == [1], "\(followed)")

        // Requests filtered by state, policy, cluster and name; the workload and reason shown.
        let filtered = try await browse([
            go("/requests", as: token), wait("table.requests", "cons-b"),
            pick("#request-filter select[name=state]", "completed"),
            pick("#request-filter select[name=policy]", "GSelectedCluster"),
            typeIn("#request-filter input[name=cluster]", "edge1"),
            typeIn("#request-filter input[name=name]", "CONS-A"),
            click("#request-filter button"), wait("table.requests", "w-cons-a"),
            // The rows once the filtered answer replaced the list (the list holds w-cons-a too).
            evaluate("""
                new Promise(ok => {
                  const end = Date.now() + 15000;
                  const rows = () => [...document.querySelectorAll('table.requests tbody tr')].map(r => r.cells[0].textContent + '|' + r.cells[1].textContent);
                  (function poll() { const r = rows(); if (!r.some(x => x.startsWith('cons-b')) || Date.now() > end) ok(r); else setTimeout(poll, 100); })();
                })
                """),
        ] + shot("requests"))
        #expect(filtered == [.array(["cons-a|w-cons-a"])], "\(filtered)")
        let (_, apiFiltered) = try await g.call("GET", "/v1/requests?cluster=edge1&name=cons-b", token: token)
        #expect(apiFiltered["requests"]?.arrayValue?.map { $0["request_id"] } == ["cons-b"], "\(apiFiltered)")

        // A service: refused at its field, then created; then deleted, each through the page.
        let created = try await browse([
            go("/services", as: token), wait("#service-create"),
            typeIn("#service-create input[name=name]", "web-1"), typeIn("#service-create input[name=ports]", "80"),
            click("#service-create button"), wait("#service-create .field-error"),
            evaluate("document.querySelector('#service-create .field-error').dataset.field + '|' + document.querySelector('#service-create .field-error').previousElementSibling.name"),
            typeIn("#service-create input[name=containers]", "nginx:1.25"),
            click("#service-create button"), wait("#note", "submitted"),
        ] + shot("services"))
        #expect(created.first?.stringValue?.hasPrefix("containers") == true && created.first?.stringValue?.hasSuffix("|containers") == true, "\(created)")
        try await eventually("the service stored") {
            try await g.call("GET", "/v1/services", token: token).1["services"]?.arrayValue?.contains { $0["name"] == "web-1" } == true
        }
        _ = try await browse([
            go("/services", as: token), wait("table.services", "web-1"),
            click("button[data-action=service-delete][data-name=web-1]"), wait("#note", "deleted"),
        ])
        #expect(try await g.call("GET", "/v1/services/p1/web-1", token: token).0 == 404)

        // Projects (admin): created and deleted through the page.
        _ = try await browse([
            go("/projects", as: g.adminToken), wait("#project-create"),
            typeIn("#project-create input[name=name]", "vision"), click("#project-create button"),
            wait("table.projects", "vision"),
        ] + shot("projects"))
        #expect(try await g.call("GET", "/v1/projects", token: g.adminToken).1["projects"]?.arrayValue?.contains { $0["name"] == "vision" } == true)
        _ = try await browse([
            go("/projects", as: g.adminToken), wait("table.projects", "vision"),
            click("button[data-action=project-delete][data-name=vision]"), wait("#note", "deleted"),
        ])
        #expect(try await g.call("GET", "/v1/projects", token: g.adminToken).1["projects"]?.arrayValue?.contains { $0["name"] == "vision" } == false)

        // A cluster registered with the seed's fields (name, master IP, API port, token), never shown again; then unregistered.
        let registered = try await browse([
            go("/clusters", as: g.adminToken), wait("#register"),
            typeIn("#register input[name=cluster]", "edge9"), typeIn("#register input[name=master]", "10.9.9.9"),
            typeIn("#register input[name=token]", "tok-very-secret"), click("#register button"),
            wait("table.registered", "edge9"),
            evaluate("document.documentElement.outerHTML.includes('tok-very-secret')"),
        ] + shot("clusters"))
        #expect(registered == [false], "\(registered)")
        let stored = try await g.call("GET", "/v1/registered-clusters", token: g.adminToken).1["clusters"]?.arrayValue ?? []
        #expect(stored.map { $0["server"] } == ["https://10.9.9.9:6443"], "\(stored)")
        _ = try await browse([
            go("/clusters", as: g.adminToken), wait("table.registered", "edge9"),
            click("button[data-action=unregister][data-name=edge9]"), wait("#note", "unregistered"),
        ])
        #expect(try await g.call("GET", "/v1/registered-clusters", token: g.adminToken).1["clusters"]?.arrayValue?.isEmpty == true)

        // Refresh control and sign-out.
        let refreshed = try await browse([
            go("/clusters", as: token), wait("#main table"),
            // A project's token: no Projects page in the menu.
            evaluate("getComputedStyle(document.getElementById('nav-projects')).display"),
            pick("#refresh", "0"), evaluate("sessionStorage.getItem('gedge-refresh')"),
            click("#refresh-now"), wait("#main table", "edge1"),
            click("#sign-out"), wait("#main h2", "Sign in"),
            evaluate("sessionStorage.getItem('gedge-token')"),
        ])
        #expect(refreshed == ["none", "0", .null], "\(refreshed)")

        // A workflow of 50 steps with edges that skip columns: drawn whole, no edge under a box.
        var steps: [String] = []
        for i in 0..<50 {
            var deps: [String] = []
            if i > 0 { deps.append("s\(i - 1)") }
            if i >= 7, i % 3 == 0 { deps.append("s\(i - 7)") }
            if i >= 20, i % 5 == 0 { deps.append("s\(i - 19)") }
            if i % 10 == 4 { deps = i >= 2 ? ["s\(i - 2)"] : [] }
            steps.append("- {name: s\(i), \(deps.isEmpty ? "" : "dependsOn: [\(deps.joined(separator: ", "))], ")service: {containers: [\"x:1\"], ports: [80], type: ClusterIP}}")
        }
        let (wfStatus, wf) = try await g.call("POST", "/v1/workflows", token: token, body: "name: big\nnamespace: p1\nsteps:\n" + steps.joined(separator: "\n"),
                                              contentType: "application/yaml")
        #expect(wfStatus == 202, "\(wf)")
        let wfID = try #require(wf["id"]?.stringValue)
        let check = """
            (() => {
              const svg = document.querySelector('svg.workflow-graph');
              const rects = [...svg.querySelectorAll('g.step')].map(g => { const r = g.querySelector('rect');
                return { name: g.dataset.step, x: +r.getAttribute('x'), y: +r.getAttribute('y'), w: +r.getAttribute('width'), h: +r.getAttribute('height') }; });
              const hits = [];
              const cross = (a, b, r) => { // a segment against a box's inside (its border excluded)
                const eps = 0.5, x0 = r.x + eps, x1 = r.x + r.w - eps, y0 = r.y + eps, y1 = r.y + r.h - eps;
                for (let t = 0; t <= 1; t += 1 / 200) { const x = a[0] + (b[0] - a[0]) * t, y = a[1] + (b[1] - a[1]) * t; if (x > x0 && x < x1 && y > y0 && y < y1) return true; }
                return false; };
              for (const e of svg.querySelectorAll('polyline.edge')) {
                const pts = e.getAttribute('points').trim().split(' ').map(p => p.split(',').map(Number));
                for (let i = 1; i < pts.length; i++) for (const r of rects) if (cross(pts[i - 1], pts[i], r)) hits.push(e.dataset.from + '->' + e.dataset.to + ' under ' + r.name);
              }
              const w = +svg.getAttribute('width'), h = +svg.getAttribute('height');
              const clipped = rects.filter(r => r.x + r.w > w || r.y + r.h > h).map(r => r.name);
              return JSON.stringify({ steps: rects.length, edges: svg.querySelectorAll('polyline.edge').length, hits, clipped });
            })()
            """
        let drawn = try await browse([go("/workflows/\(wfID)", as: token), wait("svg.workflow-graph"), evaluate(check)] + shot("workflow"))
        let report = try JSONValue.parse(Array((drawn.first?.stringValue ?? "{}").utf8))
        #expect(report["steps"] == 50 && (report["edges"]?.numberValue ?? 0) >= 49, "\(report)")
        #expect(report["hits"] == .array([]) && report["clipped"] == .array([]), "\(report)")
        print("console screenshots: \(shots.path)")
        await g.shutdown()
    }
}
