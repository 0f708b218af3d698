import Foundation
import GEdgeAutoscaler
import GEdgeWorkflow
import GEdgeClusters
import GEdgeCore
import GEdgeFaaS
import GEdgeKafka
import GEdgePlacement
import GEdgeScheduler
import GEdgeSecurity
import GEdgeServiceSpec
import Hummingbird
import Logging
import Metrics
import NIOCore
import Synchronization

/// Settings of the gateway. Keys in docs/configuration.md.
public struct GatewaySettings: Sendable {
    public var requestsTopic = Topics.scheduleRequests
    /// Largest request body accepted, in bytes.
    public var maxBody = 1 << 20
    /// Per-token rate limit: requests a second on average, and the burst above it.
    public var rate: Double = 200
    public var burst: Double = 400
    /// How long a submitted request is answered as `submitted` before the scheduler records it.
    public var submittedTTL: Duration = .seconds(300)
    /// Where functions posted to /v1/functions are scaled, unless `?cluster=` says.
    public var functionCluster = "edge1"
    public var defaultFunctionQueue: String?
    /// Who scales services that ask for `autoscaling`: the suite's `autoscaler` (across
    /// clusters, over the edge; the HPA manifest is then not applied) or an in-cluster `hpa`.
    public var autoscalingBy = "autoscaler"
    /// Signs what the gateway writes to the requests topic (`producers.secret`), as every
    /// producer must when the scheduler checks signatures.
    public var producers: ProducerSigning?
    /// Whether callbacks may go to loopback and private addresses (link-local and metadata
    /// addresses never).
    public var callbackAllowPrivate = false
    /// One log line per request (`gateway.access.log`).
    public var accessLog = true
    /// Seals registered clusters' credentials (`cluster.credentials.key.file`); without it
    /// clusters cannot be registered here.
    public var clusterKey: ClusterCredentialsKey?

    public init() {}

    public init(_ c: ConfigReader) throws {
        requestsTopic = c.string("scheduler.topic", default: requestsTopic)
        maxBody = try c.int("gateway.body.max", default: maxBody)
        accessLog = try c.bool("gateway.access.log", default: accessLog)
        rate = try c.double("gateway.rate", default: rate)
        burst = try c.double("gateway.rate.burst", default: burst)
        submittedTTL = try c.duration("gateway.submitted.ttl", default: submittedTTL)
        functionCluster = c.string("faas.cluster", default: functionCluster)
        defaultFunctionQueue = c.string("faas.queue.default")
        autoscalingBy = c.string("gateway.autoscaling", default: autoscalingBy)
        callbackAllowPrivate = try c.bool("gateway.callback.allow.private", default: callbackAllowPrivate)
        clusterKey = try ClusterCredentialsKey(c)
        if let secret = try c.secret("producers.secret") { producers = try ProducerSigning(secret: Array(secret.utf8)) }
        guard ["autoscaler", "hpa"].contains(autoscalingBy) else {
            throw ConfigurationError(key: "gateway.autoscaling", reason: "'\(autoscalingBy)' is not autoscaler or hpa")
        }
    }
}

/// The door users knock on: GS-Engine's service API, GS-Scheduler's front API and `/v1`.
/// Schedule requests go to Kafka (acknowledged by the brokers before the answer); what
/// happens to them is read from PostgreSQL, where the scheduler records it.
public final class Gateway: Sendable {
    public let settings: GatewaySettings
    public let store: GatewayStore
    public let tokens: TokenStore
    let functions: FunctionStore
    let autoscaling: AutoscalerStore
    let workflows: WorkflowStore
    let policies: ProjectPolicyStore
    let auth: Authenticator
    let producer: KafkaProducer
    public let view: ClusterView
    let logger: Logger
    let codec = EnvelopeCodec()
    /// Requests published but perhaps not yet recorded by the scheduler: ID → project.
    private let submitted = Mutex<(byID: [String: (String, ContinuousClock.Instant)], pruned: ContinuousClock.Instant)>(([:], .now))
    let published = Counter(label: "gedge_gateway_requests_published_total")
    let openAPI: [UInt8]
    let console: [UInt8]

    /// Request and reply with agents (pod logs); without it the logs endpoint answers 503.
    let rpc: AgentRPC?
    let notifications: NotificationStore

    public init(settings: GatewaySettings, store: GatewayStore, producer: KafkaProducer, view: ClusterView, rpc: AgentRPC? = nil, logger: Logger) throws {
        self.rpc = rpc
        self.notifications = NotificationStore(pool: store.pool)
        self.settings = settings
        self.store = store
        self.tokens = TokenStore(pool: store.pool)
        self.functions = FunctionStore(pool: store.pool)
        self.autoscaling = AutoscalerStore(pool: store.pool)
        self.workflows = WorkflowStore(pool: store.pool)
        self.policies = ProjectPolicyStore(pool: store.pool)
        self.auth = Authenticator(tokens: tokens, limiter: RateLimiter(rate: settings.rate, burst: settings.burst))
        self.producer = producer
        self.view = view
        self.logger = logger
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml") else {
            throw Problem(.internalServerError, code: "internal", detail: "openapi.yaml is missing from the bundle")
        }
        openAPI = Array(try Data(contentsOf: url))
        guard let consoleURL = Bundle.module.url(forResource: "console", withExtension: "html") else {
            throw Problem(.internalServerError, code: "internal", detail: "console.html is missing from the bundle")
        }
        console = Array(try Data(contentsOf: consoleURL))
    }

    // MARK: request bodies

    enum BodyKind { case json, yaml, form, multipart(boundary: String) }

    func body(_ request: Request) async throws -> [UInt8] {
        do {
            let buffer = try await request.body.collect(upTo: settings.maxBody)
            return Array(buffer.readableBytesView)
        } catch is NIOTooManyBytesError {
            throw Problem(.contentTooLarge, code: "too_large", detail: "the body is larger than \(settings.maxBody) bytes")
        }
    }

    func kind(_ request: Request, allowed: String) throws -> BodyKind {
        let raw = request.headers[.contentType] ?? "application/json"
        let mediaType = raw.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        switch mediaType {
        case "application/json", "": return .json
        case "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml": return .yaml
        case "application/x-www-form-urlencoded": return .form
        case "multipart/form-data":
            guard let b = FormData.boundary(raw) else {
                throw Problem(.badRequest, code: "malformed_body", detail: "multipart/form-data without a boundary")
            }
            return .multipart(boundary: b)
        default:
            throw Problem(.unsupportedMediaType, code: "unsupported_media_type", detail: "'\(raw)' is not accepted here; send \(allowed)")
        }
    }

    /// A JSON or YAML body as a value.
    func document(_ request: Request) async throws -> JSONValue {
        let k = try kind(request, allowed: "application/json or application/yaml")
        let bytes = try await body(request)
        guard !bytes.isEmpty else { throw Problem(.badRequest, code: "missing_field", detail: "the body is empty", field: "") }
        do {
            let value: JSONValue
            switch k {
            case .json: value = try JSONValue.parse(bytes)
            case .yaml:
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    throw MessageDecodingError(.malformedJSON, field: "", reason: "the body is not UTF-8")
                }
                value = try YAMLText.document(text, path: "")
            default:
                throw Problem(.unsupportedMediaType, code: "unsupported_media_type", detail: "send application/json or application/yaml")
            }
            if let at = value.pathOfNUL() {
                throw MessageDecodingError(.invalidValue, field: at, reason: "a NUL character, which cannot be stored")
            }
            return value
        } catch let e as MessageDecodingError {
            throw Problem.badInput(e)
        }
    }

    // MARK: submitting

    /// Validates a schedule request as the scheduler will, checks its clusters against the
    /// principal's project, and publishes it. `fields` are the hcode 100 `msg` fields.
    func submit(_ principal: Principal, fields input: [String: JSONValue]) async throws -> ScheduleRequest {
        var fields = input
        for (key, mine) in [("user_name", principal.user), ("workspace_name", principal.workspace), ("project_name", principal.project)] {
            if let given = fields[key], given != .null {
                guard case .string(let s) = given else {
                    throw Problem(.badRequest, code: "wrong_type", detail: "expected a string, got \(given.kindName)", field: key)
                }
                if s != mine && !principal.admin {
                    throw Problem.forbidden("this token acts for \(key.replacingOccurrences(of: "_name", with: "")) '\(mine)', not '\(s)'")
                }
            } else {
                fields[key] = .string(mine)
            }
        }
        let clientID = fields["request_id"]
        if clientID == nil || clientID == .null { fields["request_id"] = .string(RequestID.make()) }
        var request: ScheduleRequest
        do {
            request = try ScheduleRequest.decode(msg: .object(fields), key: nil)
            guard request.workload != .null else {
                throw MessageDecodingError(.missingField, field: "msg.workload", reason: "required: the manifests to place (JSON, or YAML text)")
            }
            request.workload = try WorkloadText.normalize(request.workload)
            request.parameters = KubeNames.parameters(request.parameters, namespaceFrom: request.workload)
            _ = try WorkloadRequirements.extract(workload: request.workload, parameters: request.parameters)
        } catch let error as MessageDecodingError {
            var field = error.field
            if field.hasPrefix("msg.") { field.removeFirst(4) } else if field == "msg" { field = "" }
            throw Problem(.badRequest, code: error.code.description, detail: error.reason, field: field)
        } catch {
            throw Problem(.badRequest, code: "invalid_value", detail: "\(error)", field: "workload")
        }
        if let cb = request.callbackURL {
            do { request.callbackURL = try CallbackURL.check(cb, allowPrivate: settings.callbackAllowPrivate) } catch {
                throw Problem(.badRequest, code: "invalid_value", detail: "\(error)", field: "callback_url")
            }
        }
        try await checkTargets(request, principal: principal)
        try await admit(workload: request.workload, namespace: KubeNames.namespace(project: request.projectName, parameters: request.parameters), project: request.projectName)
        if case .string(let id)? = clientID {
            // Published moments ago (perhaps not recorded yet), or recorded.
            var owner = recentlySubmitted(id)
            if owner == nil { owner = try await store.request(id: id)?.project }
            if let owner {
                throw owner == request.projectName || principal.admin
                    ? Problem.conflict("request '\(id)' exists; its state is at /v1/requests/\(id)")
                    : Problem.conflict("request ID '\(id)' is taken")
            }
        }
        try await publish(request.envelope(sourceCluster: "gateway"), key: request.requestID)
        published.increment()
        remember(request.requestID, project: request.projectName)
        return request
    }

    /// The project may deploy this workload into this namespace (Admission): 403 with the
    /// rule and field otherwise.
    func admit(workload: JSONValue, namespace: String, project: String) async throws {
        _ = try await admitted(project: project) { policy throws(AdmissionError) in
            try Admission.check(workload: workload, namespace: namespace, project: project, policy: policy)
        }
    }

    /// Runs an admission check against the project's policy; a refusal on the cached policy
    /// is checked once more on what PostgreSQL says now (a namespace bound a moment ago).
    /// Returns the policy that passed; 403 with the rule and field otherwise.
    func admitted(project: String, _ check: (ProjectPolicy) throws(AdmissionError) -> Void) async throws -> ProjectPolicy {
        do {
            let cached = try await policies.policy(project: project)
            do {
                try check(cached)
                return cached
            } catch {
                let fresh = try await policies.freshPolicy(project: project)
                try check(fresh)
                return fresh
            }
        } catch let error as AdmissionError {
            throw Problem(.forbidden, code: error.rule.rawValue, detail: error.reason, field: error.field)
        } catch {
            throw Problem.unavailable("the project's policy cannot be read now")
        }
    }

    /// Clusters a request names as targets must be its project's.
    func checkTargets(_ request: ScheduleRequest, principal: Principal) async throws {
        var named: [String] = []
        func collect(_ v: JSONValue?) {
            switch v {
            case .string(let s)?: named.append(s)
            case .array(let items)?: for i in items { collect(i) }
            default: break
            }
        }
        collect(request.parameters["select_clusters"])
        collect(request.parameters["select_cluster"])
        if case .array(let weights)? = request.parameters["clusters"] {
            for w in weights { collect(w["cluster"]) }
        }
        guard !named.isEmpty else { return }
        let mine: Set<String>
        do { mine = try await store.clusters(project: request.projectName) } catch {
            throw Problem.unavailable("the project's clusters cannot be read now")
        }
        for c in named where !mine.contains(c) {
            throw Problem.forbidden("cluster '\(c)' is not one of project '\(request.projectName)''s clusters")
        }
    }

    func publish(_ envelope: Envelope, key: String) async throws {
        var record = KafkaRecord(topic: settings.requestsTopic, key: key, value: codec.encode(envelope))
        if let signing = settings.producers {
            // Signed for the request's project: a request names it; a cancel's is looked up.
            var project = envelope.msg["project_name"]?.stringValue
            if project == nil { project = try await store.request(id: key)?.project ?? recentlySubmitted(key) }
            guard let project else { throw Problem.notFound("no request '\(key)'") }
            record = record.signed(project: project, signing: signing)
        }
        do {
            _ = try await producer.send(record)
        } catch {
            logger.error("request not published", metadata: [LogKeys.requestID: .string(key), LogKeys.error: "\(error)"])
            throw Problem.unavailable("the request could not be handed to Kafka; nothing was submitted, try again")
        }
    }

    func remember(_ id: String, project: String) {
        let now = ContinuousClock.now
        submitted.withLock { s in
            s.byID[id] = (project, now)
            if now - s.pruned > .seconds(10) {
                s.byID = s.byID.filter { now - $0.value.1 < settings.submittedTTL }
                s.pruned = now
            }
        }
    }

    func recentlySubmitted(_ id: String) -> String? {
        submitted.withLock { s in
            guard let (p, at) = s.byID[id], ContinuousClock.now - at < settings.submittedTTL else { return nil }
            return p
        }
    }

    /// A request the principal may see: as recorded, or as just submitted.
    func visibleRequest(_ id: String, _ principal: Principal, history: Bool) async throws -> JSONValue {
        guard RequestID.isValid(id) else { throw Problem.notFound("no request '\(id)'") }
        if let (json, project) = try await store.request(id: id) {
            guard principal.mayAccess(project: project) else { throw Problem.notFound("no request '\(id)'") }
            guard history, case .object(var o) = json else { return json }
            o["history"] = .array(try await store.history(id: id))
            return .object(o)
        }
        if let project = recentlySubmitted(id), principal.mayAccess(project: project) {
            var o: [String: JSONValue] = ["request_id": .string(id), "state": "submitted", "project_name": .string(project)]
            if history { o["history"] = .array([]) }
            return .object(o)
        }
        throw Problem.notFound("no request '\(id)'")
    }

    func cancel(_ id: String, _ principal: Principal, withdraw: Bool, reason: String) async throws {
        _ = try await visibleRequest(id, principal, history: false)
        try await publish(CancelRequest(requestID: id, reason: reason, withdraw: withdraw).envelope, key: id)
    }

    // MARK: services

    /// What a create (or GS-Engine's apply) did.
    enum ServiceChange: String { case created, updated, unchanged }

    /// Creates a service: 409 if it exists, unless `apply`, as GS-Engine's `create` did with
    /// `kubectl apply`: the same definition again changes nothing, a changed one replaces the
    /// placement (a new request places the new manifests; the old request's objects are
    /// withdrawn, and those the new one re-applied in place are kept).
    func createService(_ principal: Principal, definitionValue: JSONValue, apply: Bool = false) async throws -> (ServiceChange, JSONValue) {
        let def: ServiceDefinition
        do { def = try ServiceDefinition.decode(definitionValue) } catch { throw Problem.badInput(error) }
        let projectPolicy = try await admitted(project: principal.project) { policy throws(AdmissionError) in
            try Admission.checkNamespace(def.namespace, project: principal.project, policy: policy)
        }
        let manifests = def.manifests(podSecurity: projectPolicy.podSecurity)
        // With the autoscaler, the HPA is not applied: the autoscaler scales the Deployment.
        let byAutoscaler = def.autoscaling != nil && settings.autoscalingBy == "autoscaler"
        let applied = manifests.applied(withAutoscaler: !byAutoscaler)
        var parameters = def.scheduleParameters
        if case .object(var p) = parameters {
            p["namespace"] = .string(def.namespace)
            parameters = .object(p)
        }
        let requestID = RequestID.make()
        var change = ServiceChange.created
        var previous: (id: String, definition: JSONValue, manifests: JSONValue)?
        let inserted = try await store.insertService(
            project: principal.project, user: principal.user, namespace: def.namespace, name: def.name,
            definition: definitionValue, manifests: .array(applied), requestID: requestID)
        switch inserted {
        case .exists:
            guard apply else { throw Problem.conflict("service \(def.namespace)/\(def.name) exists; delete it first") }
            let (current, oldID) = try await visibleService(def.namespace, def.name, principal)
            if current["definition"] == definitionValue {
                return (.unchanged, Self.serviceAnswer(def, requestID: oldID, manifests: applied, autoscaling: .null))
            }
            guard try await store.replaceService(namespace: def.namespace, name: def.name, previousRequestID: oldID, user: principal.user,
                                                 definition: definitionValue, manifests: .array(applied), requestID: requestID) else {
                throw Problem.conflict("service \(def.namespace)/\(def.name) changed meanwhile; send it again")
            }
            change = .updated
            previous = (oldID, current["definition"] ?? .null, current["manifests"] ?? .null)
        case .namespaceTaken(let p):
            throw Problem.forbidden("namespace '\(def.namespace)' belongs to another project\(principal.admin ? " ('\(p)')" : "")")
        case .created: break
        }
        do {
            _ = try await submit(principal, fields: [
                "request_id": .string(requestID), "policy": .string(def.schedulingPolicy.rawValue),
                "workload": .array(applied), "parameters": parameters,
            ])
        } catch {
            if let previous {
                _ = try? await store.replaceService(namespace: def.namespace, name: def.name, previousRequestID: requestID, user: principal.user,
                                                    definition: previous.definition, manifests: previous.manifests, requestID: previous.id)
            } else {
                _ = try? await store.deleteService(namespace: def.namespace, name: def.name)
            }
            throw error
        }
        if let previous {
            try await publish(CancelRequest(requestID: previous.id, reason: "service \(def.namespace)/\(def.name) updated by \(requestID)", withdraw: true).envelope, key: previous.id)
        }
        var policyJSON: JSONValue = .null
        if byAutoscaler, let a = def.autoscaling {
            var metrics: [AutoscalePolicy.Metric] = []
            if let t = a.targetCPUUtilization { metrics.append(.cpu(targetUtilization: Double(t))) }
            if let t = a.targetMemoryUtilization { metrics.append(.memory(targetUtilization: Double(t))) }
            let policy = AutoscalePolicy(namespace: def.namespace, name: def.name, requestID: requestID, projectName: principal.project,
                                         minReplicas: a.minReplicas, maxReplicas: a.maxReplicas, metrics: metrics)
            try await autoscaling.upsert(policy, source: "service")
            policyJSON = policy.json
        } else if previous != nil {
            _ = try await autoscaling.delete(namespace: def.namespace, name: def.name)
        }
        return (change, Self.serviceAnswer(def, requestID: requestID, manifests: applied, autoscaling: policyJSON))
    }

    static func serviceAnswer(_ def: ServiceDefinition, requestID: String, manifests: [JSONValue], autoscaling: JSONValue) -> JSONValue {
        .object([
            "name": .string(def.name), "namespace": .string(def.namespace), "request_id": .string(requestID),
            "state": "submitted", "policy": .string(def.schedulingPolicy.rawValue), "manifests": .array(manifests), "autoscaling": autoscaling,
            "links": .object(["self": .string("/v1/services/\(def.namespace)/\(def.name)"), "request": .string("/v1/requests/\(requestID)")]),
        ])
    }

    func visibleService(_ namespace: String, _ name: String, _ principal: Principal) async throws -> (JSONValue, String) {
        guard let (json, project, requestID) = try await store.service(namespace: namespace, name: name), principal.mayAccess(project: project) else {
            throw Problem.notFound("no service \(namespace)/\(name)")
        }
        return (json, requestID)
    }

    func deleteService(_ namespace: String, _ name: String, _ principal: Principal) async throws -> Response {
        let (_, requestID) = try await visibleService(namespace, name, principal)
        try await publish(CancelRequest(requestID: requestID, reason: "service \(namespace)/\(name) deleted", withdraw: true).envelope, key: requestID)
        // Replicas the autoscaler placed over the edge go with it.
        for o in try await autoscaling.placements(namespace: namespace, name: name) where !o.home {
            try await publish(CancelRequest(requestID: o.requestID, reason: "service \(namespace)/\(name) deleted", withdraw: true).envelope, key: o.requestID)
        }
        _ = try await autoscaling.delete(namespace: namespace, name: name)
        _ = try await store.deleteService(namespace: namespace, name: name)
        return Reply.json(.object(["name": .string(name), "namespace": .string(namespace), "request_id": .string(requestID), "state": "deleting"]), status: .accepted)
    }

    // MARK: clusters

    func visibleClusters(_ principal: Principal) async throws -> [(ClusterState, age: TimeInterval)] {
        let all = view.all()
        if principal.admin { return all.sorted { $0.0.name < $1.0.name } }
        let mine = try await store.clusters(project: principal.project)
        return all.filter { mine.contains($0.0.name) }.sorted { $0.0.name < $1.0.name }
    }

    static func clusterSummary(_ c: ClusterState, age: TimeInterval, stale: Bool) -> JSONValue {
        var allocatable = Resources(), requested = Resources()
        for n in c.nodes {
            allocatable = allocatable + n.allocatable
            requested = requested + n.requested
        }
        return .object([
            "name": .string(c.name), "kind": .string(c.kind.rawValue), "nodes": .number(Double(c.nodes.count)),
            "ready_nodes": .number(Double(c.nodes.filter(\.ready).count)), "reported_at": c.reportedAt.iso8601,
            "age_seconds": .number((age * 1000).rounded() / 1000), "stale": .bool(stale),
            "allocatable": allocatable.json, "requested": requested.json,
            "latency_ms": .object(c.latencySummary.mapValues(JSONValue.number)),
        ])
    }
}
