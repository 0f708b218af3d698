import Foundation
import GEdgeCore
import GEdgeKafka
import GEdgeSecurity
import GEdgePlacement
import GEdgePostgres
import Logging
import Metrics
import ServiceLifecycle

public enum WorkflowError: Error, CustomStringConvertible {
    case namespaceTaken(String)
    public var description: String {
        switch self {
        case .namespaceTaken(let p): "the namespace belongs to project '\(p)'"
        }
    }
}

/// Workflows and their steps in PostgreSQL (migration 0006).
public struct WorkflowStore: Sendable {
    public let pool: PostgresPool
    public init(pool: PostgresPool) { self.pool = pool }

    /// Stores a new workflow with its steps pending. A namespace that holds another project's
    /// services or workflows is refused.
    public func create(_ spec: WorkflowSpec, source: JSONValue, project: String, user: String, workspace: String) async throws -> String {
        let id = "wf-" + RequestID.make().prefix(12)
        try await pool.transaction { c in
            let owners = try await c.query("""
                SELECT project_name FROM edge_services WHERE namespace = $1 AND project_name <> $2
                UNION SELECT project_name FROM workflows WHERE namespace = $1 AND project_name <> $2 AND state <> 'canceled' LIMIT 1
                """, [.text(spec.namespace), .text(project)])
            if let other = try owners.first?.decode("project_name", as: String.self) { throw WorkflowError.namespaceTaken(other) }
            _ = try await c.execute("""
                INSERT INTO workflows (id, name, namespace, project_name, user_name, workspace_name, spec, state)
                VALUES ($1, $2, $3, $4, $5, $6, $7, 'running')
                """, [.text(id), .text(spec.name), .text(spec.namespace), .text(project), .text(user), .text(workspace), .json(source)])
            for (i, s) in spec.steps.enumerated() {
                _ = try await c.execute("""
                    INSERT INTO workflow_steps (workflow_id, name, position, depends_on, state) VALUES ($1, $2, $3, $4::text[], 'pending')
                    """, [.text(id), .text(s.name), .int(i), .text("{" + s.dependsOn.joined(separator: ",") + "}")])
            }
        }
        return id
    }

    public struct StepRow: Sendable {
        public var name: String
        public var dependsOn: [String]
        public var state: String
        public var attempt: Int
        public var requestID: String?
        public var cluster: String?
        public var node: String?
        public var reason: String?

        public var json: JSONValue {
            .object([
                "name": .string(name), "depends_on": .array(dependsOn.map(JSONValue.string)), "state": .string(state), "attempt": .number(Double(attempt)),
                "request_id": requestID.map(JSONValue.string) ?? .null, "cluster": cluster.map(JSONValue.string) ?? .null,
                "node": node.map(JSONValue.string) ?? .null, "reason": reason.map(JSONValue.string) ?? .null,
            ])
        }
    }

    static func steps(_ rows: [PostgresRow]) throws -> [StepRow] {
        try rows.map { r in
            let deps: String = try r.decode("depends_on")
            return StepRow(
                name: try r.decode("name"),
                dependsOn: deps.trimmingCharacters(in: CharacterSet(charactersIn: "{}")).split(separator: ",").map { String($0).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) },
                state: try r.decode("state"), attempt: try r.decode("attempt"), requestID: try r.decodeOptional("request_id"),
                cluster: try r.decodeOptional("cluster"), node: try r.decodeOptional("node"), reason: try r.decodeOptional("reason"))
        }
    }

    static let stepColumns = "name, depends_on::text AS depends_on, state, attempt, request_id, cluster, node, reason"

    /// A workflow with its steps, if the project may see it (any project when nil).
    public func get(id: String, project: String?) async throws -> JSONValue? {
        let rows = try await pool.query("""
            SELECT id, name, namespace, project_name, state, reason, spec, created_at, updated_at FROM workflows
            WHERE id = $1 AND ($2::text IS NULL OR project_name = $2)
            """, [.text(id), project.map(PostgresValue.text) ?? .null], retryOnConnectionLoss: true)
        guard let w = rows.first else { return nil }
        let steps = try Self.steps(try await pool.query(
            "SELECT \(Self.stepColumns) FROM workflow_steps WHERE workflow_id = $1 ORDER BY position", [.text(id)], retryOnConnectionLoss: true))
        return .object([
            "id": .string(id), "name": .string(try w.decode("name")), "namespace": .string(try w.decode("namespace")),
            "project_name": .string(try w.decode("project_name")), "state": .string(try w.decode("state")),
            "reason": (try w.decodeOptional("reason", as: String.self)).map(JSONValue.string) ?? .null,
            "placement": (try w.decode("spec", as: JSONValue.self))["placement"] ?? "chain",
            "created_at": .timestamp(try w.decode("created_at")), "updated_at": .timestamp(try w.decode("updated_at")),
            "steps": .array(steps.map(\.json)),
            "edges": .array(steps.flatMap { s in s.dependsOn.map { JSONValue.array([.string($0), .string(s.name)]) } }),
        ])
    }

    public func list(project: String?) async throws -> [JSONValue] {
        let rows = try await pool.query("""
            SELECT w.id, w.name, w.namespace, w.project_name, w.state, w.created_at,
                   count(s.*) AS steps, count(s.*) FILTER (WHERE s.state = 'completed') AS completed
            FROM workflows w LEFT JOIN workflow_steps s ON s.workflow_id = w.id
            WHERE $1::text IS NULL OR w.project_name = $1
            GROUP BY w.id ORDER BY w.created_at DESC LIMIT 200
            """, [project.map(PostgresValue.text) ?? .null], retryOnConnectionLoss: true)
        return try rows.map { r in
            .object([
                "id": .string(try r.decode("id")), "name": .string(try r.decode("name")), "namespace": .string(try r.decode("namespace")),
                "project_name": .string(try r.decode("project_name")), "state": .string(try r.decode("state")),
                "created_at": .timestamp(try r.decode("created_at")),
                "steps": .number(Double(try r.decode("steps", as: Int.self))), "completed": .number(Double(try r.decode("completed", as: Int.self))),
            ])
        }
    }

    /// Marks a running workflow canceled; returns the requests to withdraw.
    public func cancel(id: String, project: String?) async throws -> [String]? {
        try await pool.transaction { c in
            let rows = try await c.query(
                "SELECT state FROM workflows WHERE id = $1 AND ($2::text IS NULL OR project_name = $2) FOR UPDATE", [.text(id), project.map(PostgresValue.text) ?? .null])
            guard rows.first != nil else { return nil }
            _ = try await c.execute("UPDATE workflows SET state = 'canceled', reason = 'canceled by the requester', updated_at = clock_timestamp() WHERE id = $1", [.text(id)])
            let ids = try await c.query("SELECT request_id FROM workflow_steps WHERE workflow_id = $1 AND request_id IS NOT NULL", [.text(id)])
            _ = try await c.execute("""
                UPDATE workflow_steps SET state = 'canceled', updated_at = clock_timestamp() WHERE workflow_id = $1 AND state IN ('pending', 'submitted')
                """, [.text(id)])
            return try ids.map { try $0.decode("request_id", as: String.self) }
        }
    }
}

/// Settings of the workflow engine (it runs in the gateway). Keys: `workflow.*`.
public struct WorkflowSettings: Sendable {
    public var interval: Duration = .milliseconds(500)
    public var requestsTopic = Topics.scheduleRequests
    /// Signs schedule requests for their project (`producers.secret`).
    public var producers: ProducerSigning?
    public init() {}
    public init(_ c: ConfigReader) throws {
        interval = try c.duration("workflow.interval", default: interval)
        requestsTopic = c.string("scheduler.topic", default: requestsTopic)
        if let secret = try c.secret("producers.secret") { producers = try ProducerSigning(secret: Array(secret.utf8)) }
    }
}

/// Moves running workflows on: a step whose dependencies completed is submitted (a schedule
/// request with a deterministic ID, so a repeat is the same request); a submitted step
/// follows its request's end state; a failed request is retried up to `retries` times, then
/// the step fails and every step after it is skipped. Each workflow is advanced under a row
/// lock (`SKIP LOCKED`), so gateway replicas share the work.
public final class WorkflowEngine: Service, Sendable {
    /// The project's Pod Security level (`project_policies`), for the steps' manifests.
    func podSecurity(project: String) async throws -> ProjectPolicy.PodSecurity {
        let rows = try await store.pool.query("SELECT pod_security FROM project_policies WHERE project_name = $1", [.text(project)], retryOnConnectionLoss: true)
        return try rows.first.flatMap { ProjectPolicy.PodSecurity(rawValue: try $0.decode("pod_security")) } ?? .baseline
    }

    let store: WorkflowStore
    let producer: KafkaProducer
    let settings: WorkflowSettings
    let logger: Logger
    let codec = EnvelopeCodec()
    let submitted = Counter(label: "gedge_workflow_steps_submitted_total")
    let finished = Counter(label: "gedge_workflows_finished_total")

    public init(store: WorkflowStore, producer: KafkaProducer, settings: WorkflowSettings = WorkflowSettings(), logger: Logger) {
        self.store = store
        self.producer = producer
        self.settings = settings
        self.logger = logger
    }

    public func run() async throws {
        let running = RunFlag(true)
        let wake = Wakeup()
        await withTaskCancellationOrGracefulShutdownHandler {
            while running.isSet {
                do { try await pass() } catch { logger.warning("workflow pass failed", metadata: [LogKeys.error: "\(error)"]) }
                await wake.wait(timeout: settings.interval)
            }
        } onCancelOrGracefulShutdown: {
            running.set(false)
            wake.signal()
        }
    }

    /// One pass over the running workflows.
    public func pass() async throws {
        let ids = try await store.pool.query("SELECT id FROM workflows WHERE state = 'running' ORDER BY created_at LIMIT 500", retryOnConnectionLoss: true)
        for row in ids {
            let id: String = try row.decode("id")
            do { try await advance(id) } catch { logger.warning("workflow not advanced", metadata: ["workflow": .string(id), LogKeys.error: "\(error)"]) }
        }
    }

    func advance(_ id: String) async throws {
        try await store.pool.transaction { c in
            let rows = try await c.query("""
                SELECT spec, project_name, user_name, workspace_name FROM workflows WHERE id = $1 AND state = 'running' FOR UPDATE SKIP LOCKED
                """, [.text(id)])
            guard let w = rows.first else { return }
            let spec = try WorkflowSpec.decode(try w.decode("spec"))
            let project: String = try w.decode("project_name"), user: String = try w.decode("user_name"), workspace: String = try w.decode("workspace_name")
            var steps = Dictionary(uniqueKeysWithValues: try WorkflowStore.steps(try await c.query(
                "SELECT \(WorkflowStore.stepColumns) FROM workflow_steps WHERE workflow_id = $1", [.text(id)])).map { ($0.name, $0) })
            var changed: Set<String> = []

            // Submitted steps follow their requests.
            let pendingIDs = steps.values.filter { $0.state == "submitted" }.compactMap(\.requestID)
            var requestStates: [String: (state: String, reason: String?, placement: JSONValue)] = [:]
            if !pendingIDs.isEmpty {
                for r in try await c.query(
                    "SELECT id, state, reason, placement FROM schedule_requests WHERE id = ANY($1::text[])", [.text("{" + pendingIDs.joined(separator: ",") + "}")]) {
                    requestStates[try r.decode("id")] = (try r.decode("state"), try r.decodeOptional("reason"), try r.decodeOptional("placement") ?? .null)
                }
            }
            var toSubmit: [String] = []
            for name in steps.keys.sorted() {
                guard var s = steps[name], s.state == "submitted", let rid = s.requestID, let r = requestStates[rid] else { continue }
                switch r.state {
                case "completed":
                    s.state = "completed"
                    let part = r.placement.arrayValue?.first
                    s.cluster = part?["cluster"]?.stringValue
                    s.node = part?["node"]?.stringValue
                    s.reason = r.reason
                case "failed", "rejected", "canceled":
                    if s.attempt <= spec.retries {
                        s.reason = "attempt \(s.attempt) \(r.state): \(r.reason ?? "")"
                        toSubmit.append(name)
                    } else {
                        s.state = "failed"
                        s.reason = "\(r.state) after \(s.attempt) attempt(s): \(r.reason ?? "")"
                    }
                default: continue
                }
                steps[name] = s
                changed.insert(name)
            }
            // A failed step's successors are skipped.
            for s in steps.values where s.state == "failed" {
                for t in spec.successors(of: s.name) where steps[t]?.state == "pending" {
                    steps[t]?.state = "skipped"
                    steps[t]?.reason = "skipped: \(s.name) failed"
                    changed.insert(t)
                }
            }
            // Steps whose dependencies completed go now, in dependency order.
            for step in spec.steps where steps[step.name]?.state == "pending" {
                if step.dependsOn.allSatisfy({ steps[$0]?.state == "completed" }) { toSubmit.append(step.name) }
            }
            for name in toSubmit {
                guard let step = spec.steps.first(where: { $0.name == name }), var s = steps[name] else { continue }
                s.attempt += 1
                s.state = "submitted"
                let rid = "\(id)-\(name)-a\(s.attempt)"
                s.requestID = rid
                let up = step.dependsOn.first.flatMap { steps[$0] }.flatMap { u in u.cluster.map { ($0, u.node) } }
                let (policy, params) = spec.placement(of: step, upstream: up)
                let manifests = step.service.manifests(podSecurity: try await podSecurity(project: project))
                let request = ScheduleRequest(
                    requestID: rid, policy: policy, userName: user, workspaceName: workspace, projectName: project,
                    workload: .array(manifests.all), parameters: params)
                // Published before the step is marked: a crash in between submits the same ID again,
                // which the scheduler records once.
                var record = KafkaRecord(topic: settings.requestsTopic, key: rid, value: codec.encode(request.envelope(sourceCluster: "workflow")))
                if let signing = settings.producers { record = record.signed(project: request.projectName, signing: signing) }
                _ = try await producer.send(record)
                submitted.increment()
                logger.info("workflow step submitted", metadata: ["workflow": .string(id), "step": .string(name), LogKeys.requestID: .string(rid), "policy": .string(policy.rawValue)])
                steps[name] = s
                changed.insert(name)
            }
            for name in changed {
                guard let s = steps[name] else { continue }
                _ = try await c.execute("""
                    UPDATE workflow_steps SET state = $3, attempt = $4, request_id = $5, cluster = $6, node = $7, reason = $8, updated_at = clock_timestamp()
                    WHERE workflow_id = $1 AND name = $2
                    """, [.text(id), .text(name), .text(s.state), .int(s.attempt), s.requestID.map(PostgresValue.text) ?? .null,
                          s.cluster.map(PostgresValue.text) ?? .null, s.node.map(PostgresValue.text) ?? .null, s.reason.map(PostgresValue.text) ?? .null])
            }
            let states = steps.values.map(\.state)
            if states.allSatisfy({ $0 == "completed" }) {
                _ = try await c.execute("UPDATE workflows SET state = 'completed', reason = NULL, updated_at = clock_timestamp() WHERE id = $1", [.text(id)])
                finished.increment()
                logger.info("workflow completed", metadata: ["workflow": .string(id)])
            } else if !states.contains(where: { $0 == "submitted" || $0 == "pending" }) {
                let failed = steps.values.filter { $0.state == "failed" }.map(\.name).sorted()
                _ = try await c.execute("UPDATE workflows SET state = 'failed', reason = $2, updated_at = clock_timestamp() WHERE id = $1",
                                        [.text(id), .text("failed: \(failed.joined(separator: ", "))")])
                finished.increment()
                logger.warning("workflow failed", metadata: ["workflow": .string(id), "steps": .string(failed.joined(separator: ","))])
            } else if !changed.isEmpty {
                _ = try await c.execute("UPDATE workflows SET updated_at = clock_timestamp() WHERE id = $1", [.text(id)])
            }
        }
    }
}
