import Foundation
import GEdgeClusters
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
import GEdgeKubernetes
import Logging
import ServiceLifecycle

/// Push mode, as Karmada's: the agent runs outside the clusters it serves and reaches their
/// API servers with the credentials an administrator registered (`ClusterRegistry`). Every
/// push agent serves the registered clusters whose lease it holds: it renews them each
/// `interval`, takes free or expired ones up to its fair share (registered clusters over
/// live push agents, rounded up), lets go of those beyond it for another agent to take, and
/// stops serving a cluster unregistered, re-registered (new credentials) or lost to
/// another agent. A cluster is served by one agent at a time; one that dies is taken over
/// when its leases run out (`leaseTTL`).
public struct PushSettings: Sendable {
    public var instance: String
    public var interval: Duration = .seconds(2)
    public var leaseTTL: Duration = .seconds(15)
    public var key: ClusterCredentialsKey
    /// What every served cluster's agent runs with (its cluster name set per cluster).
    public var agent: AgentSettings
    public var applyTimeout: Duration = .seconds(120)
    public var podFailureGrace: Duration = .seconds(30)
    public var namespaces: KubernetesCluster.NamespacePolicy = .requireManaged
    /// Where registered clusters' CA certificates are written for libcurl (0700).
    public var directory: URL

    public init(instance: String, key: ClusterCredentialsKey, agent: AgentSettings, directory: URL) {
        self.instance = instance
        self.key = key
        self.agent = agent
        self.directory = directory
    }
}

public actor PushAgents: Service {
    public let settings: PushSettings
    let registry: ClusterRegistry
    let producer: KafkaProducer
    let consumer: @Sendable (_ cluster: String) throws -> KafkaConsumer
    let logger: Logger

    struct Served {
        var generation: Int64
        var group: ServiceGroup
        var task: Task<Void, Never>
        var http: HTTPClient
        var caFile: URL?
    }
    var served: [String: Served] = [:]

    public init(settings: PushSettings, registry: ClusterRegistry, producer: KafkaProducer,
                consumer: @escaping @Sendable (_ cluster: String) throws -> KafkaConsumer, logger: Logger) {
        self.settings = settings
        self.registry = registry
        self.producer = producer
        self.consumer = consumer
        self.logger = logger
    }

    /// The clusters this agent serves now.
    public var clusters: [String] { served.keys.sorted() }

    public func run() async throws {
        try FileManager.default.createDirectory(at: settings.directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        logger.info("push agent starting", metadata: ["instance": .string(settings.instance)])
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await sync()
            } catch {
                logger.error("registered clusters not read; serving on", metadata: [LogKeys.error: "\(error)"])
            }
            await Task.sleepUnlessShuttingDown(for: self.settings.interval)
        }
        // Leaving: every cluster stopped cleanly and its lease let go for another agent.
        let names = Array(served.keys)
        for name in names { await stop(name, reason: "the push agent is stopping") }
        try? await registry.release(instance: settings.instance, names: names)
        try? await registry.forget(instance: settings.instance)
        logger.info("push agent stopped", metadata: ["instance": .string(settings.instance)])
    }

    /// One round: renew, stop what was lost, keep to the fair share, take what is free.
    func sync() async throws {
        let live = try await registry.heartbeat(instance: settings.instance, window: settings.interval * 3 + .seconds(1))
        var held = try await registry.renew(instance: settings.instance, ttl: settings.leaseTTL)
        for (name, s) in served where held[name] != s.generation {
            await stop(name, reason: held[name] == nil ? "unregistered or taken by another agent" : "registered again with new credentials")
        }
        let registered = try await registry.list()
        let share = (registered.count + live - 1) / max(1, live)
        if held.count > share {
            let extra = held.keys.sorted().suffix(held.count - share)
            for name in extra {
                await stop(name, reason: "more than this agent's share (\(share) of \(registered.count) over \(live) agents)")
                held[name] = nil
            }
            try await registry.release(instance: settings.instance, names: Array(extra))
        }
        // Free ones, in an order of this instance's own, so agents starting together spread out.
        let free = registered.filter { $0.servedBy == nil && held[$0.name] == nil }
            .sorted { ($0.name + settings.instance).hashValue < ($1.name + settings.instance).hashValue }
        for r in free where held.count < share {
            if let generation = try await registry.claim(name: r.name, instance: settings.instance, ttl: settings.leaseTTL) {
                held[r.name] = generation
            }
        }
        for (name, generation) in held where served[name] == nil {
            do {
                try await start(name, generation: generation)
            } catch {
                logger.error("registered cluster not served", metadata: [LogKeys.cluster: .string(name), LogKeys.error: "\(error)"])
                try? await registry.release(instance: settings.instance, names: [name])
            }
        }
    }

    func start(_ name: String, generation: Int64) async throws {
        guard let (server, credentials, current) = try await registry.connection(name: name, key: settings.key), current == generation else { return }
        var http = HTTPClientConfiguration()
        var caFile: URL?
        if let ca = credentials.caPEM {
            let file = settings.directory.appendingPathComponent("\(name).ca.pem")
            FileManager.default.createFile(atPath: file.path, contents: Data(ca.utf8), attributes: [.posixPermissions: 0o600])
            http.caFile = file.path
            caFile = file
        }
        var api = KubernetesAPIConfiguration(url: server, tokenFile: nil, http: http)
        api.inlineToken = credentials.token
        let client = HTTPClient(configuration: http, logger: logger)
        var agentSettings = settings.agent
        agentSettings.cluster = name
        agentSettings.originalTopics = []
        var clusterLogger = logger
        clusterLogger[metadataKey: LogKeys.cluster] = .string(name)
        let driver = KubernetesCluster(client: client, configuration: api, applyTimeout: settings.applyTimeout, podFailureGrace: settings.podFailureGrace,
                                       namespaces: settings.namespaces, logger: clusterLogger)
        let agent = Agent(settings: agentSettings, driver: driver, producer: producer, logger: clusterLogger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: AgentCommandLoop(agent: agent, consumer: try consumer(name))), .init(service: AgentStatusLoop(agent: agent))],
            logger: clusterLogger))
        let task = Task {
            do { try await group.run() } catch { clusterLogger.error("registered cluster's agent failed", metadata: [LogKeys.error: "\(error)"]) }
            await self.ended(name, generation: generation)
        }
        served[name] = Served(generation: generation, group: group, task: task, http: client, caFile: caFile)
        logger.info("serving registered cluster", metadata: [LogKeys.cluster: .string(name), "server": .string(server), "generation": "\(generation)"])
    }

    /// A cluster's services ended by themselves (a broker gone for good, say): let go of
    /// its lease, so that it is served again (by this agent or another) next round.
    func ended(_ name: String, generation: Int64) async {
        guard let s = served[name], s.generation == generation, !Task.isShuttingDownGracefully else { return }
        served[name] = nil
        await s.http.shutdown()
        try? await registry.release(instance: settings.instance, names: [name])
        logger.warning("registered cluster's agent ended; its lease let go", metadata: [LogKeys.cluster: .string(name)])
    }

    func stop(_ name: String, reason: String) async {
        guard let s = served.removeValue(forKey: name) else { return }
        await s.group.triggerGracefulShutdown()
        await s.task.value
        await s.http.shutdown()
        if let ca = s.caFile { try? FileManager.default.removeItem(at: ca) }
        logger.info("stopped serving registered cluster", metadata: [LogKeys.cluster: .string(name), "reason": .string(reason)])
    }
}
