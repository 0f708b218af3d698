import Foundation
import GEdgeAMQP
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
import GEdgePlacement
import GEdgePostgres
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Settings of the faas-trigger. Keys in docs/configuration.md.
public struct FaaSSettings: Sendable {
    /// The cluster whose agent scales functions that name none.
    public var cluster = "edge1"
    /// How often a function at zero looks at its queues (activation).
    public var activationInterval: Duration = .milliseconds(200)
    /// How often definitions are reloaded from PostgreSQL.
    public var reloadInterval: Duration = .seconds(2)
    /// RabbitMQ's management API (`http://user:pass@host:15672`), for unacknowledged
    /// messages, publish rates and busy consumers. Without it, unacknowledged messages and
    /// busy consumers come from the replicas' in-flight reports (`InFlightReporter`).
    public var managementURL: String?
    /// The AMQP URL for triggers whose host is a management URL.
    public var amqpURL = "amqp://guest:guest@127.0.0.1:5672/"
    /// When set, every trigger's AMQP host is replaced by this URL (a deployment's own
    /// broker, whatever the ScaledObject files say).
    public var hostOverride: String?
    /// Queue for triggers that name none (the FaaS seed's object names none).
    public var defaultQueue: String?
    public var repliesTopic = "gedge.faas.replies"
    /// ScaledObject files loaded (and stored) at start.
    public var files: [String] = []

    public init() {}

    public init(_ c: ConfigReader) throws {
        cluster = c.string("faas.cluster", default: cluster)
        activationInterval = try c.duration("faas.activation.interval", default: activationInterval)
        reloadInterval = try c.duration("faas.reload.interval", default: reloadInterval)
        managementURL = c.string("faas.rabbitmq.management.url")
        amqpURL = c.string("amqp.url", default: amqpURL)
        defaultQueue = c.string("faas.queue.default")
        hostOverride = c.string("faas.trigger.host")
        repliesTopic = c.string("faas.replies.topic", default: repliesTopic)
        files = c.list("faas.scaledobjects", default: [])
        // The broker's password from a secret, into the management and trigger URLs (which
        // then carry only the user), so that no password sits in the environment.
        if let password = try c.secret("faas.rabbitmq.password") {
            managementURL = try managementURL.map { try Self.withPassword($0, password, key: "faas.rabbitmq.management.url") }
            hostOverride = try hostOverride.map { try Self.withPassword($0, password, key: "faas.trigger.host") }
        }
    }

    static func withPassword(_ url: String, _ password: String, key: String) throws -> String {
        guard var u = URLComponents(string: url), u.host != nil else { throw ConfigurationError(key: key, reason: "'\(url)' is not a URL") }
        u.password = password
        guard let out = u.string else { throw ConfigurationError(key: key, reason: "the password cannot go into '\(url)'") }
        return out
    }
}

/// Reads queue depths: AMQP passive declares (immediate, ready messages only) and the
/// management API (ready and unacknowledged, rates, consumers; refreshed by RabbitMQ every
/// few seconds).
public final class QueueReaders: Sendable {
    let http: HTTPClient
    let settings: FaaSSettings
    let logger: Logger
    /// Work in progress as the replicas report it, for triggers without the management API.
    let inFlight: InFlightTracker?
    private let clients = Mutex<[String: AMQPClient]>([:])

    public init(http: HTTPClient, settings: FaaSSettings, inFlight: InFlightTracker? = nil, logger: Logger) {
        self.http = http
        self.settings = settings
        self.inFlight = inFlight
        self.logger = logger
    }

    /// Why a trigger cannot be read now (an environment variable it names is not set).
    struct Unresolved: Error, CustomStringConvertible {
        var description: String
    }

    /// The trigger's broker URL with its credentials, and its protocol (`auto` resolved by
    /// the URL's scheme, as KEDA does).
    func endpoint(_ t: ScaledObject.Trigger) throws -> (url: String, protocol: String) {
        guard let url = t.resolvedHost() else {
            if case .environment(let name) = t.host { throw Unresolved(description: "environment variable \(name) (hostFromEnv or a TriggerAuthentication's env) is not set") }
            throw Unresolved(description: "a credential of the trigger's authentication is not set in the environment")
        }
        var proto = t.protocol
        if proto == "auto" { proto = url.lowercased().hasPrefix("amqp") ? "amqp" : "http" }
        return (url, proto)
    }

    func amqpURL(_ t: ScaledObject.Trigger) throws -> String {
        if let h = settings.hostOverride { return h }
        let (url, proto) = try endpoint(t)
        guard proto == "amqp" else { return settings.amqpURL }
        // vhostName replaces the URL's vhost, as KEDA does.
        guard let v = t.vhostName, var c = URLComponents(string: url) else { return url }
        c.percentEncodedPath = "/" + Self.escape(v)
        return c.string ?? url
    }

    func client(_ url: String) throws -> AMQPClient {
        // Made under the lock: a client is never created only to be dropped (its connection
        // thread would outlive it).
        try clients.withLock { d in
            if let existing = d[url] { return existing }
            let c = AMQPClient(configuration: try AMQPConfiguration(url: url), logger: logger, name: "faas-trigger")
            d[url] = c
            return c
        }
    }

    /// The reading that decides activation at zero replicas: a passive declare for AMQP
    /// triggers (immediate), the management API for HTTP ones (as KEDA reads them).
    public func ready(_ t: ScaledObject.Trigger) async -> QueueReading? {
        if settings.hostOverride == nil, let (_, proto) = try? endpoint(t), proto == "http" { return await management(t) }
        do {
            let info = try await client(amqpURL(t)).queueInfo(t.queueName)
            return QueueReading(messages: Double(info.messageCount), consumers: info.consumerCount)
        } catch let e as AMQPError where e.code == .notFound {
            // No queue yet: nothing published, nothing to do.
            return QueueReading(messages: 0)
        } catch {
            logger.warning("queue depth unavailable", metadata: ["queue": .string(t.queueName), LogKeys.error: .string(Self.anonymized("\(error)"))])
            return nil
        }
    }

    /// KEDA's HTTP reading (pkg/scalers/rabbitmq_scaler.go): the queue's `messages` (ready
    /// and unacknowledged) or `messages_ready` with excludeUnacknowledged, and its publish
    /// rate; with useRegex, the queues the expression matches on one page of `pageSize`,
    /// combined by `operation` (more than one page is an error, as in KEDA).
    func management(_ t: ScaledObject.Trigger) async -> QueueReading? {
        do {
            let (url, _) = try endpoint(t)
            guard var c = URLComponents(string: url) else { throw Unresolved(description: "the host is not a URL") }
            // The URL's last path segment is its vhost; vhostName overrides it.
            var segments = c.percentEncodedPath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            var vhost = segments.count > 1 ? segments.removeLast() : ""
            if let v = t.vhostName { vhost = Self.escape(v) }
            if vhost.isEmpty { vhost = "%2F" }
            c.percentEncodedPath = segments.joined(separator: "/")
            let base = (c.string ?? url).trimmingSuffix("/")
            let target = t.useRegex
                ? "\(base)/api/queues/\(vhost)?page=1&use_regex=true&pagination=false&name=\(Self.escape(t.queueName))&page_size=\(t.pageSize)"
                : "\(base)/api/queues/\(vhost)/\(Self.escape(t.queueName))"
            var request = HTTPRequest(url: target, timeout: t.timeout ?? .seconds(5))
            request.insecure = t.unsafeSsl
            let r = try await http.execute(request)
            if r.status == 404 && !t.useRegex { return QueueReading(messages: 0) }
            guard r.isSuccess else { throw ManagementAPIError(status: r.status) }
            let j = try r.json()
            var queues: [JSONValue] = [j]
            if t.useRegex {
                if (j["page_count"]?.numberValue ?? 1) > 1 { throw Unresolved(description: "regex matches more queues than can be recovered at once (pageSize \(t.pageSize))") }
                queues = j["items"]?.arrayValue ?? []
            }
            let counts = queues.map { q in (t.excludeUnacknowledged ? q["messages_ready"] : q["messages"])?.numberValue ?? 0 }
            let rates = queues.map { $0["message_stats"]?["publish_details"]?["rate"]?.numberValue ?? 0 }
            func combine(_ v: [Double]) -> Double {
                guard !v.isEmpty else { return 0 }
                switch t.operation {
                case .sum: return v.reduce(0, +)
                case .max: return v.max() ?? 0
                // KEDA divides integers for the counts.
                case .avg: return (v.reduce(0, +) / Double(v.count)).rounded(.down)
                }
            }
            let rate = t.operation == .avg ? (rates.isEmpty ? 0 : rates.reduce(0, +) / Double(rates.count)) : combine(rates)
            let consumers = queues.map { Int($0["consumers"]?.numberValue ?? 0) }.reduce(0, +)
            return QueueReading(messages: combine(counts), publishRate: rate, consumers: consumers)
        } catch {
            logger.warning("management API reading failed", metadata: ["queue": .string(t.queueName), LogKeys.error: .string(Self.anonymized("\(error)"))])
            return nil
        }
    }

    /// Credentials out of error text, as KEDA masks them (`user:password@`).
    static func anonymized(_ text: String) -> String {
        text.replacingOccurrences(of: #"[^ /:]+:[^/:@ ]+@"#, with: "user:password@", options: .regularExpression)
    }

    func managementBase(_ t: ScaledObject.Trigger) -> String? {
        if let (url, proto) = try? endpoint(t), proto == "http", var c = URLComponents(string: url) {
            // Without the vhost, the URL's last path segment.
            var segments = c.percentEncodedPath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            if segments.count > 1 { segments.removeLast() }
            c.percentEncodedPath = segments.joined(separator: "/")
            return c.string ?? url
        }
        return settings.managementURL
    }

    func vhost(_ t: ScaledObject.Trigger) -> String {
        if let v = t.vhostName { return v }
        if let h = t.resolvedHost(), let u = URLComponents(string: h), u.path.count > 1 { return String(u.path.dropFirst()) }
        return "/"
    }

    static func escape(_ s: String) -> String { s.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? s }

    /// The full reading. HTTP triggers: KEDA's management-API reading. AMQP triggers: ready
    /// messages from a passive declare (exact and immediate), plus, when the operator gives the
    /// management API (`faas.rabbitmq.management.url`), the unacknowledged messages, the
    /// publish rate and the consumers (its figures lag by RabbitMQ's statistics interval, so
    /// its ready count is used only when the declare fails).
    public func read(_ t: ScaledObject.Trigger) async -> QueueReading? {
        if settings.hostOverride == nil, let (_, proto) = try? endpoint(t), proto == "http" { return await management(t) }
        let declared = await ready(t)
        guard let base = settings.managementURL else {
            // Without the management API: the replicas' own reports of what they hold.
            guard var r = declared, let inFlight else { return declared }
            r.unacknowledged = inFlight.unacknowledged(t.queueName)
            r.busyConsumerIPs = inFlight.busyIPs(t.queueName)
            return r
        }
        do {
            let r = try await http.execute(HTTPRequest(url: "\(base.trimmingSuffix("/"))/api/queues/\(Self.escape(vhost(t)))/\(Self.escape(t.queueName))", timeout: .seconds(5)))
            if r.status == 404 { return declared }
            guard r.isSuccess else { throw ManagementAPIError(status: r.status) }
            let j = try r.json()
            return QueueReading(
                messages: declared?.messages ?? j["messages_ready"]?.numberValue ?? 0,
                unacknowledged: j["messages_unacknowledged"]?.numberValue ?? 0,
                publishRate: j["message_stats"]?["publish_details"]?["rate"]?.numberValue ?? 0,
                consumers: declared?.consumers ?? Int(j["consumers"]?.numberValue ?? 0))
        } catch {
            logger.warning("management API unavailable; counting ready messages only", metadata: ["queue": .string(t.queueName), LogKeys.error: .string(Self.anonymized("\(error)"))])
            return declared
        }
    }

    /// IPs of the queue's consumers whose channels hold unacknowledged messages.
    public func busyConsumers(_ t: ScaledObject.Trigger) async -> [String] {
        guard let base = managementBase(t)?.trimmingSuffix("/") else { return inFlight?.busyIPs(t.queueName) ?? [] }
        do {
            let q = try await http.execute(HTTPRequest(url: "\(base)/api/queues/\(Self.escape(vhost(t)))/\(Self.escape(t.queueName))", timeout: .seconds(5))).json()
            var busy: [String] = []
            for c in q["consumer_details"]?.arrayValue ?? [] {
                guard let channel = c["channel_details"]?["name"]?.stringValue, let ip = c["channel_details"]?["peer_host"]?.stringValue else { continue }
                let ch = try await http.execute(HTTPRequest(url: "\(base)/api/channels/\(Self.escape(channel))", timeout: .seconds(5))).json()
                if (ch["messages_unacknowledged"]?.numberValue ?? 0) > 0 { busy.append(ip) }
            }
            return busy
        } catch {
            return []
        }
    }

    public func close() async {
        for c in clients.withLock({ Array($0.values) }) { await c.close() }
    }
}

struct ManagementAPIError: Error, CustomStringConvertible {
    var status: Int
    var description: String { "the management API answered \(status)" }
}

extension String {
    func trimmingSuffix(_ s: String) -> String { hasSuffix(s) ? String(dropLast(s.count)) : self }
}

/// Functions and their scale events in PostgreSQL.
public struct FunctionStore: Sendable {
    public let pool: PostgresPool
    public init(pool: PostgresPool) { self.pool = pool }

    public func upsert(_ o: ScaledObject, definition: JSONValue, cluster: String) async throws {
        try await pool.execute(
            """
            INSERT INTO functions (namespace, name, cluster, target, definition) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (namespace, name) DO UPDATE SET cluster = $3, target = $4, definition = $5, updated_at = clock_timestamp()
            """,
            [.text(o.namespace), .text(o.name), .text(cluster), .text(o.target.name), .json(definition)])
    }

    /// Removes a function and its scale events; the faas-trigger stops watching it at its next
    /// reload and leaves the workload at the replicas it has (as KEDA does when a ScaledObject
    /// is deleted). False when there was none.
    /// Its scale events stay (the replicas before the first one are what
    /// restoreToOriginalReplicaCount restores).
    public func delete(namespace: String, name: String) async throws -> Bool {
        try await pool.execute("DELETE FROM functions WHERE namespace = $1 AND name = $2", [.text(namespace), .text(name)]) > 0
    }

    /// The replicas a workload had before the trigger first scaled it.
    public func originalReplicas(namespace: String, name: String) async throws -> Int? {
        try await pool.query(
            "SELECT from_replicas FROM function_scale_events WHERE namespace = $1 AND name = $2 ORDER BY id LIMIT 1",
            [.text(namespace), .text(name)], retryOnConnectionLoss: true
        ).first?.decode("from_replicas", as: Int.self)
    }

    public struct Stored: Sendable {
        public var object: ScaledObject
        public var definition: JSONValue
        public var cluster: String
        public var replicas: Int
    }

    public func all(defaultQueue: String?) async throws -> [Stored] {
        try await pool.query("SELECT namespace, name, cluster, definition, replicas FROM functions ORDER BY namespace, name", retryOnConnectionLoss: true)
            .compactMap { r in
                let def: JSONValue = try r.decode("definition")
                guard let o = try? ScaledObject.decodeDefinition(def, defaultQueue: defaultQueue) else { return nil }
                return Stored(object: o, definition: def, cluster: try r.decode("cluster"), replicas: try r.decode("replicas"))
            }
    }

    public func recordScale(_ o: ScaledObject, from: Int, to: Int, decision: ScalingDecision) async throws {
        try await pool.transaction { c in
            try await c.execute(
                "INSERT INTO function_scale_events (namespace, name, from_replicas, to_replicas, metric, reason) VALUES ($1, $2, $3, $4, $5, $6)",
                [.text(o.namespace), .text(o.name), .int(from), .int(to), .double(decision.metric), .text(decision.reason)])
            try await c.execute(
                "UPDATE functions SET replicas = $3, last_metric = $4, last_reason = $5, updated_at = clock_timestamp() WHERE namespace = $1 AND name = $2",
                [.text(o.namespace), .text(o.name), .int(to), .double(decision.metric), .text(decision.reason)])
        }
    }

    public func list() async throws -> [JSONValue] {
        try await pool.query(
            "SELECT namespace, name, cluster, target, replicas, last_metric, last_reason, updated_at FROM functions ORDER BY namespace, name",
            retryOnConnectionLoss: true
        ).map { r in
            .object([
                "namespace": .string(try r.decode("namespace")), "name": .string(try r.decode("name")),
                "cluster": .string(try r.decode("cluster")), "target": .string(try r.decode("target")),
                "replicas": .number(Double(try r.decode("replicas", as: Int.self))),
                "metric": (try r.decodeOptional("last_metric", as: Double.self)).map(JSONValue.number) ?? .null,
                "reason": (try r.decodeOptional("last_reason", as: String.self)).map(JSONValue.string) ?? .null,
            ])
        }
    }

    public func events(namespace: String, name: String, limit: Int = 100) async throws -> [JSONValue] {
        try await pool.query(
            "SELECT from_replicas, to_replicas, metric, reason, at FROM function_scale_events WHERE namespace = $1 AND name = $2 ORDER BY id DESC LIMIT $3",
            [.text(namespace), .text(name), .int(limit)], retryOnConnectionLoss: true
        ).map { r in
            .object([
                "from": .number(Double(try r.decode("from_replicas", as: Int.self))), "to": .number(Double(try r.decode("to_replicas", as: Int.self))),
                "metric": (try r.decodeOptional("metric", as: Double.self)).map(JSONValue.number) ?? .null,
                "reason": .string(try r.decode("reason")),
                "at": .timestamp(try r.decode("at", as: Date.self)),
            ])
        }
    }
}

/// Scales functions from their queues. One loop per ScaledObject: at zero replicas it looks
/// every `activationInterval` (a passive declare, so activation takes well under a second
/// whatever `pollingInterval` says); above zero it decides every `pollingInterval` with
/// KEDA's semantics. Scale commands go to the function's cluster agent (hcode 700); every
/// change is stored. Run one replica (it leads every function).
public struct FaaSTrigger: Service {
    let settings: FaaSSettings
    let store: FunctionStore
    let readers: QueueReaders
    let producer: KafkaProducer
    let logger: Logger
    let codec = EnvelopeCodec()
    let commands = Counter(label: "gedge_faas_scale_commands_total")

    public init(settings: FaaSSettings, store: FunctionStore, readers: QueueReaders, producer: KafkaProducer, logger: Logger) {
        self.settings = settings
        self.store = store
        self.readers = readers
        self.producer = producer
        self.logger = logger
    }

    /// Reads and checks the ScaledObject files (`faas.scaledobjects`), touching nothing else:
    /// a file that cannot be read or holds anything KEDA's rabbitmq scaler would not take is
    /// a configuration error naming the file and the field.
    public static func readFiles(_ settings: FaaSSettings) throws(ConfigurationError) -> [(path: String, object: ScaledObject, definition: JSONValue)] {
        var out: [(path: String, object: ScaledObject, definition: JSONValue)] = []
        for path in settings.files {
            let text: String
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw ConfigurationError(key: "faas.scaledobjects", reason: "cannot read \(path)")
            }
            do {
                let docs = try YAMLDocuments.read(text)
                guard !docs.isEmpty else { throw MessageDecodingError(.missingField, field: "", reason: "the file holds no document") }
                for (o, d) in try ScaledObject.parseSet(docs, defaultQueue: settings.defaultQueue) { out.append((path, o, d)) }
            } catch let e as MessageDecodingError {
                throw ConfigurationError(key: "faas.scaledobjects", reason: "\(path): \(e)")
            } catch {
                throw ConfigurationError(key: "faas.scaledobjects", reason: "\(path): \(error)")
            }
        }
        return out
    }

    /// Loads ScaledObject files into the store (the gateway is the other way in).
    public func loadFiles() async throws {
        for (path, o, d) in try Self.readFiles(settings) {
            for n in o.notes { logger.notice("\(path): \(n)") }
            try await store.upsert(o, definition: d, cluster: settings.cluster)
            logger.info("function loaded", metadata: ["function": .string(o.key), "file": .string(path)])
        }
    }

    public func run() async throws {
        try await loadFiles()
        var running: [String: (definition: JSONValue, task: Task<Void, Never>, object: ScaledObject, cluster: String)] = [:]
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let stored = try await store.all(defaultQueue: settings.defaultQueue)
                let keys = Set(stored.map(\.object.key))
                for (k, r) in running where !keys.contains(k) {
                    r.task.cancel()
                    await r.task.value
                    running[k] = nil
                    logger.info("function deleted; no longer watched", metadata: ["function": .string(k)])
                    if r.object.restoreToOriginalReplicaCount, let original = try? await store.originalReplicas(namespace: r.object.namespace, name: r.object.name) {
                        do {
                            try await scale(r.object, cluster: r.cluster, to: original, busy: [])
                            logger.info("restored to its original replicas", metadata: ["function": .string(k), "replicas": "\(original)"])
                        } catch {
                            logger.error("original replicas not restored", metadata: ["function": .string(k), LogKeys.error: "\(error)"])
                        }
                    }
                }
                for s in stored {
                    if let r = running[s.object.key], r.definition == s.definition { continue }
                    running[s.object.key]?.task.cancel()
                    let task = Task { await self.loop(s) }
                    running[s.object.key] = (s.definition, task, s.object, s.cluster)
                }
            } catch {
                logger.error("functions not loaded", metadata: [LogKeys.error: "\(error)"])
            }
            await Task.sleepUnlessShuttingDown(for: settings.reloadInterval)
        }
        for r in running.values { r.task.cancel() }
        for r in running.values { await r.task.value }
        await readers.close()
    }

    func loop(_ s: FunctionStore.Stored) async {
        var engine = ScalingEngine(object: s.object)
        var current = s.replicas
        let o = s.object
        // Functions are ScaledObjects the operator or a project registered: one series each.
        let replicasGauge = Gauge(label: "gedge_faas_function_replicas", dimensions: [("namespace", o.namespace), ("function", o.name)])
        replicasGauge.record(current)
        logger.info("watching", metadata: ["function": .string(o.key), "replicas": "\(current)", "queues": .string(o.triggers.map(\.queueName).joined(separator: ","))])
        while !Task.isCancelled {
            var readings: [QueueReading?] = []
            for t in o.triggers {
                readings.append(current == 0 ? await readers.ready(t) : await readers.read(t))
            }
            let decision = engine.decide(now: Date(), current: current, readings: readings)
            if decision.replicas != current {
                let busy = decision.replicas < current ? await readers.busyConsumers(o.triggers[0]) : []
                do {
                    try await scale(o, cluster: s.cluster, to: decision.replicas, busy: busy)
                    try await store.recordScale(o, from: current, to: decision.replicas, decision: decision)
                    logger.info("scaled \(current) -> \(decision.replicas)", metadata: ["function": .string(o.key), "reason": .string(decision.reason)])
                    current = decision.replicas
                    replicasGauge.record(current)
                } catch {
                    logger.error("scale not sent; trying again", metadata: ["function": .string(o.key), LogKeys.error: "\(error)"])
                }
            }
            let wait: Duration = current == 0 ? settings.activationInterval : .seconds(max(1, o.pollingInterval))
            try? await Task.sleep(for: wait)
        }
    }

    func scale(_ o: ScaledObject, cluster: String, to replicas: Int, busy: [String]) async throws {
        let cmd = ScaleCommand(
            requestID: "faas-\(o.namespace)-\(o.name)-\(UInt64(Date().timeIntervalSince1970 * 1000))", namespace: o.namespace,
            kind: o.target.kind, name: o.target.name, replicas: replicas, busyPodIPs: busy, replyTo: settings.repliesTopic)
        let env = Envelope(source: .cluster("faas-trigger"), target: .cluster(cluster), hcode: .scaleWorkload, lcode: .request, msg: cmd.msg)
        // Keyed by the workload: its scale commands share a partition, so the agent reads them
        // in the order they were sent (and applies them in that order).
        _ = try await producer.send(KafkaRecord(topic: Topics.agentCommands(cluster: cluster), key: o.key, value: codec.encode(env)))
        commands.increment()
    }
}

import GEdgeServiceSpec

public enum YAMLDocuments {
    public static func read(_ text: String) throws(MessageDecodingError) -> [JSONValue] {
        try YAMLText.documents(text, path: "").filter { $0 != .null }
    }
}
