import Foundation
import GEdgeCore
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A fake Kubernetes API server on loopback for the tests, stricter than a kind one: see
/// `FakeCluster` for what it models. Tokens map to users; service accounts are allowed
/// what the ClusterRoles of the suite's k8s/ manifests grant them, and nothing else.
public final class FakeKubernetesServer: Sendable {
    /// The tokens tests use, and who they are.
    public static let agentToken = "agent-token"
    public static let monitorToken = "monitor-token"
    public static let adminToken = "admin-token"

    let cluster = FakeCluster()
    private let task = Mutex<Task<Void, Never>?>(nil)
    final class Port: Sendable {
        let value = Mutex(0)
    }
    private let port = Port()

    public var url: String { "http://127.0.0.1:\(port.value.withLock { $0 })" }

    /// Starts the server with the roles of `manifests` (the k8s/ directory), three ready
    /// nodes (n1: 4 CPU, n2: 8 CPU with one GPU, n3: 2 CPU) and one that is not (n4).
    public init(manifests: String, bookmarkInterval: Duration = .seconds(1), logger: Logger) async throws {
        var rbac = try RBAC.load(directory: manifests)
        rbac.admins = ["admin"]
        let tokens = [Self.agentToken: "system:serviceaccount:gedge:agent", Self.monitorToken: "system:serviceaccount:gedge:accelerator-monitor",
                      Self.adminToken: "admin"]
        cluster.addNode("n1", cpu: "4", memory: "8Gi")
        cluster.addNode("n2", cpu: "8", memory: "16Gi", labels: ["accelerator.gedge.io/nvidia-gpu.count": "1"], extra: ["nvidia.com/gpu": "1"])
        cluster.addNode("n3", cpu: "2", memory: "4Gi")
        cluster.addNode("n4", cpu: "4", memory: "8Gi", ready: false)
        let router = Router()
        let cluster = self.cluster
        let frozen = rbac
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            let body = try await request.body.collect(upTo: 8 << 20)
            var query: [String: String] = [:]
            for (k, v) in request.uri.queryParameters { query[String(k)] = String(v).removingPercentEncoding ?? String(v) }
            var token: String?
            if let auth = request.headers[.authorization], auth.hasPrefix("Bearer ") { token = String(auth.dropFirst(7)) }
            let call = APICall(method: request.method.rawValue, path: request.uri.path, query: query, contentType: request.headers[.contentType],
                               token: token, body: Array(buffer: body))
            switch cluster.handle(call, tokens: tokens, rbac: frozen, bookmarkInterval: bookmarkInterval) {
            case .json(let code, let value):
                return Response(status: .init(code: code), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: value.serialized())))
            case .text(let code, let text):
                return Response(status: .init(code: code), headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: text)))
            case .watch(let events):
                return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody { writer in
                    for await e in events {
                        try await writer.write(ByteBuffer(bytes: e.serialized() + [10]))
                    }
                    try await writer.finish(nil)
                })
            }
        }
        for method in [HTTPRequest.Method.get, .patch, .delete, .post, .put] {
            router.on("**", method: method, use: handler)
        }
        let port = self.port
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in port.value.withLock { $0 = channel.localAddress?.port ?? 0 } }, logger: logger)
        task.withLock {
            $0 = Task {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { try? await app.runService() }
                    group.addTask {
                        while !Task.isCancelled {
                            cluster.reconcile()
                            try? await Task.sleep(for: .milliseconds(30))
                        }
                    }
                }
            }
        }
        // Generous: on a loaded two-core machine the tests' cooperative threads may be busy.
        let deadline = ContinuousClock.now + .seconds(90)
        while self.port.value.withLock({ $0 }) == 0 {
            guard ContinuousClock.now < deadline else {
                stop()
                throw FakeServerError(message: "the fake Kubernetes API did not start listening within 90 s")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    public func stop() {
        task.withLock { $0?.cancel() }
    }

    public struct FakeServerError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    // MARK: what tests arrange and read

    public func addNamespace(_ name: String, labels: [String: String] = [:]) { cluster.addNamespace(name, labels: labels) }

    /// A ready node with 4 CPUs and these labels (the hostname label is added).
    public func addNode(_ name: String, labels: [String: String] = [:]) { cluster.addNode(name, cpu: "4", memory: "8Gi", labels: labels) }

    /// Forgets the watch history: a watch from an older version is answered 410 Gone.
    public func compactHistory() { cluster.lock.withLock { cluster.compactedBelow = cluster.rv + 1 } }

    /// Whether the metrics API answers (false: 503, as without a metrics server).
    public func serveMetrics(_ on: Bool) { cluster.lock.withLock { cluster.serveMetrics = on } }

    public func setPodStartDelay(_ seconds: Double) { cluster.lock.withLock { cluster.podStartDelay = seconds } }

    /// An object as stored (`resource` as in its path: `deployments`, `pods`...).
    public func object(_ resource: String, namespace: String = "", name: String) -> JSONValue? {
        cluster.lock.withLock { cluster.objects[FakeCluster.Key(resource: resource, namespace: namespace, name: name)] }
    }

    public func objects(_ resource: String, namespace: String? = nil) -> [JSONValue] {
        cluster.lock.withLock { cluster.objects(resource, namespace: namespace).map(\.1) }
    }

    /// Every call so far as "user verb resource", and the refused ones as "DENIED ...".
    public var calls: [String] { cluster.lock.withLock { cluster.calls } }
    public var denied: [String] { calls.filter { $0.hasPrefix("DENIED") } }

    /// A change by someone else (kubectl, an operator), as a merge patch under their
    /// field manager.
    public func externalPatch(_ resource: String, namespace: String, name: String, _ patch: JSONValue, manager: String) {
        cluster.lock.withLock {
            let key = FakeCluster.Key(resource: resource, namespace: namespace, name: name)
            guard let o = cluster.objects[key] else { return }
            cluster.write(key, o.mergePatched(patch), manager: "\(manager)/Update", paths: Set(patch.leaves().keys))
        }
    }
}
