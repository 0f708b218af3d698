import FakeKubernetes
import Foundation
import Synchronization
import GEdgeAgent
import GEdgeClusters
import GEdgeCore
import GEdgeGateway
import GEdgeKafka
import GEdgeKubernetes
import GEdgePlacement
import GEdgeScheduler
import Testing

/// Push mode, as Karmada's: clusters registered with their API server, token and CA (sealed
/// at rest), served by push agents that share them by leases, never twice; unregistering
/// stops the serving; an agent that dies is replaced when its leases run out.
@Suite("Push-mode clusters", .enabled(if: TestEnv.integration), .timeLimit(.minutes(4)))
struct PushModeTests {
    static let keyHex = String(repeating: "5a", count: 32)

    func pushAgents(_ g: GatewayHarness, _ instance: String) throws -> PushAgents {
        var template = AgentSettings(cluster: "-")
        template.statusInterval = .milliseconds(300)
        template.statusMinInterval = .milliseconds(50)
        var settings = PushSettings(
            instance: instance, key: try ClusterCredentialsKey(hex: Self.keyHex), agent: template,
            directory: FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("push")))
        settings.interval = .milliseconds(300)
        settings.leaseTTL = .seconds(2)
        settings.applyTimeout = .seconds(20)
        settings.podFailureGrace = .seconds(2)
        let world = g.world
        return PushAgents(settings: settings, registry: ClusterRegistry(pool: world.pool), producer: world.producer,
                          consumer: { cluster in try world.consumer(group: "gedge-agent-\(cluster)", topic: Topics.agentCommands(cluster: cluster)) },
                          logger: world.logger)
    }

    @Test func registeredClustersAreSharedServedAndUnregistered() async throws {
        var settings = GatewayHarness.loopbackCallbacks
        settings.clusterKey = try ClusterCredentialsKey(hex: Self.keyHex)
        let g = try await GatewayHarness(settings: settings)
        let ctx = try g.world.startScheduler(instance: "s1")
        var servers: [FakeKubernetesServer] = []
        for _ in 0..<3 {
            let s = try await FakeKubernetesServer(manifests: manifestsDirectory, logger: TestEnv.logger)
            s.addNamespace("p1", labels: ["gedge.io/managed": "true"])
            servers.append(s)
        }
        // Registration: validated, stored sealed, answered without the token.
        for (i, s) in servers.enumerated() {
            let (status, answer) = try await g.call("PUT", "/v1/registered-clusters/push\(i)", token: g.adminToken,
                                                    body: #"{"server": "\#(s.url)", "token": "\#(FakeKubernetesServer.agentToken)"}"#)
            #expect(status == 201 && answer["name"] == .string("push\(i)") && answer["token"] == nil, "\(answer)")
        }
        let (again, replaced) = try await g.call("PUT", "/v1/registered-clusters/push2", token: g.adminToken,
                                                 body: #"{"server": "\#(servers[2].url)", "token": "\#(FakeKubernetesServer.agentToken)"}"#)
        #expect(again == 200 && replaced["generation"] == 2)
        let listed = try await g.call("GET", "/v1/registered-clusters", token: g.adminToken)
        #expect(listed.0 == 200 && listed.1["clusters"]?.arrayValue?.count == 3)
        let everything = String(decoding: listed.1.serialized(), as: UTF8.self)
        #expect(!everything.contains(FakeKubernetesServer.agentToken))
        let stored = try await g.world.pool.query("SELECT credentials FROM cluster_registrations").map { try $0.decode("credentials", as: String.self) }
        #expect(stored.count == 3 && stored.allSatisfy { !$0.contains(FakeKubernetesServer.agentToken) && !(Data(base64Encoded: $0).map { String(decoding: $0, as: UTF8.self).contains("agent-token") } ?? true) })
        let project = try await g.token(project: "p1")
        #expect(try await g.call("PUT", "/v1/registered-clusters/x", token: project, body: #"{"server": "https://a", "token": "t"}"#).0 == 403)
        for (body, field) in [(#"{"server": "http://10.0.0.1:6443", "token": "t"}"#, "server"), (#"{"server": "https://k:6443", "token": "a b"}"#, "token"),
                              (#"{"server": "https://k:6443", "token": "t", "ca": "not a pem"}"#, "ca"), (#"{"server": "https://k:6443"}"#, "token"),
                              (#"{"server": "https://k:6443", "token": "t", "extra": 1}"#, "extra")] {
            let (status, problem) = try await g.call("PUT", "/v1/registered-clusters/bad", token: g.adminToken, body: body)
            #expect(status == 400 && problem["field"]?.stringValue == field, "\(body): \(problem)")
        }
        // A wrong key names itself; it never opens the box.
        await #expect(throws: SealError.self) {
            _ = try await ClusterRegistry(pool: g.world.pool).connection(name: "push0", key: try ClusterCredentialsKey(hex: String(repeating: "11", count: 32)))
        }

        // Two push agents share the three clusters: each served once, none twice.
        let a = try pushAgents(g, "pa"), b = try pushAgents(g, "pb")
        let groupA = g.world.run([a])
        let groupB = g.world.run([b])
        let seen = Mutex("")
        func served() async -> ([String], [String]) {
            let now = (await a.clusters, await b.clusters)
            seen.withLock { $0 = "pa \(now.0), pb \(now.1)" }
            return now
        }
        try await eventually("all three served, none twice", timeout: .seconds(60), detail: { seen.withLock { $0 } }) {
            let (x, y) = await served()
            return Set(x + y) == ["push0", "push1", "push2"] && Set(x).isDisjoint(with: y) && !x.isEmpty && !y.isEmpty
        }
        // Their status reaches the view, and a placement applies through the registered token.
        try await eventually("the scheduler sees them", timeout: .seconds(30)) { ctx.view.fresh().count == 3 }
        try await g.world.bind("p1", ["push0", "push1", "push2"])
        try await g.world.submit(request("push-req", .selectedCluster, cpu: "100m", ["select_clusters": .array(["push1"])]))
        let done = try await g.world.waitFor("push-req", .completed, timeout: .seconds(60))
        #expect(done.placement.arrayValue?.first?["cluster"] == "push1", "\(done.placement)")
        #expect(servers[1].objects("deployments", namespace: "p1").count == 1)
        #expect(servers.allSatisfy { $0.denied == [] })
        // The listing names who serves each (a lease of 2 s here, renewed as it runs: on a
        // loaded machine one may lapse for a moment before its agent takes it again).
        let listing = Mutex("")
        try await eventually("every registered cluster listed as served", timeout: .seconds(20), detail: { listing.withLock { $0 } }) {
            let registered = try await g.call("GET", "/v1/registered-clusters", token: g.adminToken).1["clusters"]?.arrayValue ?? []
            listing.withLock { $0 = "\(registered)" }
            return registered.count == 3 && registered.allSatisfy { ["pa", "pb"].contains($0["served_by"]?.stringValue ?? "") }
        }

        // Unregistered: no agent serves it any more.
        #expect(try await g.call("DELETE", "/v1/registered-clusters/push0", token: g.adminToken).0 == 200)
        #expect(try await g.call("DELETE", "/v1/registered-clusters/push0", token: g.adminToken).0 == 404)
        try await eventually("push0 no longer served", timeout: .seconds(30), detail: { seen.withLock { $0 } }) {
            let (x, y) = await served()
            return !(x + y).contains("push0") && Set(x + y) == ["push1", "push2"]
        }
        // An agent stopped lets go of its clusters; the other takes them.
        await g.world.stop(groupA)
        try await eventually("pb serves the rest", timeout: .seconds(30), detail: { seen.withLock { $0 } }) {
            await b.clusters == ["push1", "push2"]
        }
        // The agents stop before the API servers they call.
        await g.world.stop(groupB)
        for s in servers { s.stop() }
        await g.shutdown()
    }

    /// gedgectl project create|list|delete and cluster register|list|unregister, as an
    /// administrator types them; a project token is refused.
    @Test func gedgectlManagesProjectsAndRegisteredClusters() async throws {
        var settings = GatewayHarness.loopbackCallbacks
        settings.clusterKey = try ClusterCredentialsKey(hex: Self.keyHex)
        let g = try await GatewayHarness(settings: settings)
        func ctl(_ args: [String], env: [String: String] = [:]) async throws -> (Int32, [String]) {
            let envs = env.map { "\($0.key)='\($0.value)'" }.joined(separator: " ")
            let out = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("ctl")).path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let quoted = args.map { "'" + $0 + "'" }.joined(separator: " ")
            let rc = await runCommand(["/bin/sh", "-c", "\(envs) '\(TestEnv.binDir.appendingPathComponent("gedgectl").path)' \(quoted) > '\(out)' 2>&1"])
            return (rc, ((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init))
        }
        let admin = ["--server", g.base, "--token", g.adminToken]
        #expect(try await ctl(admin + ["project", "create", "vision"]) == (0, ["project/vision created"]))
        #expect(try await ctl(admin + ["project", "create", "vision"]).0 == 1)
        #expect(try await ctl(admin + ["project", "create", "Bad_Name"]).0 == 1)
        let (_, projects) = try await ctl(admin + ["project", "list"])
        #expect(projects.first?.hasPrefix("PROJECT") == true && projects.contains { $0.hasPrefix("vision") && $0.contains("vision") }, "\(projects)")
        let token = try await g.token(project: "vision")
        #expect(try await ctl(["--server", g.base, "--token", token, "project", "create", "other"]).0 == 4)
        #expect(try await ctl(admin + ["project", "delete", "vision"]) == (0, ["project/vision deleted (1 token(s) revoked)"]))
        #expect(try await ctl(admin + ["project", "delete", "vision"]).0 == 1)
        // kubectl's verbs for the same: get projects, delete project NAME (the global options anywhere).
        #expect(try await ctl(admin + ["project", "create", "vision2"]) == (0, ["project/vision2 created"]))
        let (gotProjects, projectTable) = try await ctl(["get", "projects"] + admin)
        #expect(gotProjects == 0 && projectTable.contains { $0.hasPrefix("vision2") }, "\(projectTable)")
        #expect(try await ctl(["delete", "project", "vision2"] + admin) == (0, ["project/vision2 deleted (0 token(s) revoked)"]))
        #expect(try await ctl(admin + ["delete", "projects", "vision2"]).0 == 1)
        #expect(try await ctl(["--server", g.base, "--token", "gedge_nope", "delete", "project", "vision2"]).0 == 4)
        #expect(try await ctl(admin + ["delete", "gizmo", "x"]).0 == 64)

        let tokenFile = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("sa-token")).path
        try "cluster-secret-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let gatewayEnv = ["GEDGE_SERVER": g.base, "GEDGE_TOKEN": g.adminToken]
        let (r1, registered) = try await ctl(["cluster", "register", "edge7", "--server", "https://10.1.2.3:6443", "--token-file", tokenFile], env: gatewayEnv)
        #expect(r1 == 0 && registered == ["cluster/edge7 registered (generation 1)"], "\(registered)")
        let (r2, listed) = try await ctl(["cluster", "list", "-o", "json"], env: gatewayEnv)
        #expect(r2 == 0 && !listed.joined().contains("cluster-secret-token") && listed.joined().contains("https://10.1.2.3:6443"), "\(listed)")
        #expect(try await ctl(["cluster", "unregister", "edge7"], env: gatewayEnv) == (0, ["cluster/edge7 unregistered"]))
        #expect(try await ctl(["cluster", "unregister", "edge7"], env: gatewayEnv).0 == 1)
        await g.shutdown()
    }

    @Test func credentialsAreSealedToTheirCluster() throws {
        let key = try ClusterCredentialsKey(hex: Self.keyHex)
        let creds = ClusterCredentials(token: "secret-token", caPEM: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
        let box = try creds.sealed(for: "edge1", with: key)
        #expect(try ClusterCredentials.open(box, for: "edge1", keyID: key.id, with: key) == creds)
        // Moved to another cluster's row, or with another key: refused.
        #expect(throws: SealError.self) { try ClusterCredentials.open(box, for: "edge2", keyID: key.id, with: key) }
        let other = try ClusterCredentialsKey(hex: String(repeating: "ab", count: 32))
        #expect(throws: SealError.self) { try ClusterCredentials.open(box, for: "edge1", keyID: key.id, with: other) }
        #expect(!"\(creds)".contains("secret-token"))
        #expect(throws: ConfigurationError.self) { try ClusterCredentialsKey(hex: "short") }
        var api = KubernetesAPIConfiguration(url: "https://k:6443", tokenFile: nil)
        api.inlineToken = "secret-token"
        #expect(!"\(api)".contains("secret-token"))
    }
}
