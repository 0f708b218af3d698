import Foundation
import GEdgeCore
import GEdgePlacement
import GEdgePostgres

/// Thresholds of the request queue, GS-Scheduler's defaults. Keys under `scheduler.queue.`.
public struct QueuePolicy: Sendable {
    /// A request that failed more than this many times goes to the priority retry queue.
    public var retryAfterFailures = 2
    /// A request that failed more than this many times ends as failed.
    public var maxFailures = 5
    /// Per dispatch cycle: at most this many from the retry queue...
    public var retrySlice = 2
    /// ...and this many in all (fast fills, base takes the rest).
    public var cycleSize = 256
    /// At most this many requests in scheduling or applying at once, over all workers.
    public var maxInFlight = 4096
    /// A request in scheduling or applying longer than this is re-queued.
    public var leaseTimeout: Duration = .seconds(30)
    /// Wait before an unschedulable request is tried again: this times its fail count.
    public var retryBackoff: Duration = .milliseconds(500)

    public init() {}

    public init(_ c: ConfigReader) throws {
        retryAfterFailures = try c.int("scheduler.queue.retry.after", default: retryAfterFailures)
        maxFailures = try c.int("scheduler.queue.max.failures", default: maxFailures)
        retrySlice = try c.int("scheduler.queue.retry.slice", default: retrySlice)
        cycleSize = try c.int("scheduler.queue.cycle.size", default: cycleSize)
        maxInFlight = try c.int("scheduler.queue.max.inflight", default: maxInFlight)
        leaseTimeout = try c.duration("scheduler.lease.timeout", default: leaseTimeout)
        retryBackoff = try c.duration("scheduler.retry.backoff", default: retryBackoff)
        for (key, value) in [("retry.after", retryAfterFailures), ("max.failures", maxFailures), ("retry.slice", retrySlice)] where value < 0 {
            throw ConfigurationError(key: "scheduler.queue.\(key)", reason: "must not be negative, got \(value)")
        }
        for (key, value) in [("cycle.size", cycleSize), ("max.inflight", maxInFlight)] where value < 1 {
            throw ConfigurationError(key: "scheduler.queue.\(key)", reason: "must be at least 1, got \(value)")
        }
    }
}

extension RequestQueue {
    /// Planner settings for the queue's connections. Every statement here reaches its rows
    /// by key (a batch of ids, the head of a queue index), but the tables grow by thousands
    /// of rows a second, faster than autovacuum's statistics, and a connection keeps the
    /// generic plan of a statement it prepared: on statistics of a smaller table the planner
    /// took hash joins over full scans of the placements, bitmap scans that read and sorted
    /// the whole queue for each claim, and full scans of the placements, read once and kept
    /// in memory, to match a batch of replies. Switching those off (a cost penalty, not a
    /// ban) keeps plans that probe an index for each row of a batch, whatever the
    /// statistics say.
    public static let plannerSettings: [(name: String, value: String)] = [
        ("enable_hashjoin", "off"), ("enable_mergejoin", "off"), ("enable_bitmapscan", "off"), ("enable_seqscan", "off"),
    ]
}

/// A request claimed by a worker for scheduling.
public struct ClaimedRequest: Sendable {
    public var id: String
    public var policy: SchedulingPolicy
    public var project: String
    public var workload: JSONValue
    public var parameters: JSONValue
    public var source: JSONValue
    public var sourceNode: String?
    public var podLookupAt: Date?
    public var attempt: Int
    public var failCount: Int
    public var callbackURL: String?
    public var queueClass: String
}

/// A decision to record for a claimed request.
public enum DispatchOutcome: Sendable {
    /// Send these parts now; keep `candidates` for when they fail.
    case apply(parts: [PlacementPart], candidates: [PlacementPlan], reason: String)
    case unschedulable(String)
    case rejected(String)
    /// Ask the source cluster which node runs the pod, then schedule again.
    case awaitPodLookup(cluster: String, pod: String, wait: Duration)
}

/// A placement decided for a request as it arrived, before it was stored.
public struct IngestDecision: Sendable {
    public var parts: [PlacementPart]
    public var candidates: [PlacementPlan]
    public var reason: String
    public init(parts: [PlacementPart], candidates: [PlacementPlan], reason: String) {
        self.parts = parts
        self.candidates = candidates
        self.reason = reason
    }
}

/// A request that reached an end state, to announce on the results topic.
public struct FinishedRequest: Sendable, Hashable {
    public var id: String
    public var state: RequestState
    public var reason: String
    public var placement: JSONValue
    public var failCount: Int
    public var callbackURL: String?
}

/// Placements to undo on their clusters: applied parts of an attempt that no longer counts.
public struct StrayPart: Sendable, Hashable {
    public var requestID: String
    public var attempt: Int
    public var cluster: String
    public init(requestID: String, attempt: Int, cluster: String) {
        self.requestID = requestID
        self.attempt = attempt
        self.cluster = cluster
    }
}

/// The durable queue and lifecycle transitions. Every statement is a single round trip that
/// both changes the request row and appends its history, so that a crash between any two
/// leaves a consistent picture; conditions on state, attempt and lease owner make every
/// transition happen at most once, whichever worker tries it.
public struct RequestQueue: Sendable {
    public let pool: PostgresPool
    public let policy: QueuePolicy

    public init(pool: PostgresPool, policy: QueuePolicy) {
        self.pool = pool
        self.policy = policy
    }

    static func interval(_ d: Duration) -> String { "\(d.milliseconds) milliseconds" }

    // MARK: ingest

    /// Records requests (received, then enqueued) in one statement. Duplicates — already
    /// stored, or twice in the batch — are skipped. Returns the IDs that were new.
    public func recordReceived(_ items: [(ScheduleRequest, Endpoint, MessageOrigin?)]) async throws -> Set<String> {
        try await recordReceived(items, decided: [:], owner: "").new
    }

    /// Records requests in one statement, as above. Requests in `decided` (placed by `owner`
    /// as they arrived) are stored straight in applying, attempt 1 — received, enqueued,
    /// dispatched, scheduling and applying in their history, the placement parts applying —
    /// but only when no request waits in the queue: otherwise they are enqueued like the
    /// rest, to be taken in queue order. Returns the new IDs and which of them are applying
    /// (whose apply commands the caller sends).
    public func recordReceived(
        _ items: [(ScheduleRequest, Endpoint, MessageOrigin?)], decided: [String: IngestDecision], owner: String
    ) async throws -> (new: Set<String>, applying: Set<String>) {
        guard !items.isEmpty else { return ([], []) }
        let rows: [JSONValue] = items.map { req, source, origin in
            var row: [String: JSONValue] = [
                "id": .string(req.requestID), "policy": .string(req.policy.rawValue), "user_name": .string(req.userName),
                "workspace_name": .string(req.workspaceName), "project_name": .string(req.projectName), "fast": .bool(req.fast),
                "workload": req.workload, "parameters": req.parameters, "callback_url": req.callbackURL.map(JSONValue.string) ?? .null,
                "source": EnvelopeCodec.endpointJSON(source),
                "kafka_topic": origin.map { .string($0.topic) } ?? .null,
                "kafka_partition": origin.map { .number(Double($0.partition)) } ?? .null,
                "kafka_offset": origin.map { .number(Double($0.offset)) } ?? .null,
            ]
            if let d = decided[req.requestID] {
                row["parts"] = .array(d.parts.map(\.json))
                row["candidates"] = .array(d.candidates.map(\.json))
                row["reason"] = .string("\(PlacementPlan(parts: d.parts).summary): \(d.reason)")
            }
            return .object(row)
        }
        // `idle`: nothing due in the queue (the queue index holds only enqueued rows, and a
        // request stored applying never enters it).
        let result = try await pool.query(
            """
            WITH input AS (
                SELECT DISTINCT ON (id) * FROM jsonb_to_recordset($1::jsonb) AS x(
                    id text, policy text, user_name text, workspace_name text, project_name text, fast boolean,
                    workload jsonb, parameters jsonb, callback_url text, source jsonb,
                    kafka_topic text, kafka_partition integer, kafka_offset bigint,
                    parts jsonb, candidates jsonb, reason text)
            ), queue AS (
                SELECT NOT EXISTS (SELECT 1 FROM schedule_requests WHERE state = 'enqueued' AND not_before <= now()) AS idle
            ), decided AS (
                SELECT input.*, (input.parts IS NOT NULL AND queue.idle) AS direct FROM input, queue
            ), ins AS (
                INSERT INTO schedule_requests
                    (id, policy, user_name, workspace_name, project_name, fast, state, workload, parameters,
                     callback_url, source, kafka_topic, kafka_partition, kafka_offset,
                     attempt, lease_owner, lease_until, placement, candidates, reason)
                SELECT id, policy, user_name, workspace_name, project_name, fast, CASE WHEN direct THEN 'applying' ELSE 'enqueued' END,
                       workload, parameters, callback_url, source, kafka_topic, kafka_partition, kafka_offset,
                       CASE WHEN direct THEN 1 ELSE 0 END, CASE WHEN direct THEN $2 END,
                       CASE WHEN direct THEN clock_timestamp() + $3::interval END,
                       CASE WHEN direct THEN parts END, CASE WHEN direct THEN candidates ELSE '[]' END, CASE WHEN direct THEN reason END
                FROM decided
                ON CONFLICT (id) DO NOTHING
                RETURNING id, fast, state, policy, placement, reason, kafka_topic, kafka_partition, kafka_offset
            ), direct AS (
                SELECT * FROM ins WHERE state = 'applying'
            ), parts AS (
                INSERT INTO schedule_placements (request_id, attempt, cluster, node, replicas, state)
                SELECT d.id, 1, p.cluster, p.node, p.replicas, 'applying'
                FROM direct d, jsonb_to_recordset(d.placement) AS p(cluster text, node text, replicas integer)
            ), ev AS (
                INSERT INTO schedule_request_events (request_id, state, reason)
                SELECT id, 'received', COALESCE('from ' || kafka_topic || '[' || kafka_partition || ']@' || kafka_offset, 'submitted') FROM ins
                UNION ALL
                SELECT id, 'enqueued', CASE WHEN fast THEN 'fast queue' ELSE 'base queue' END FROM ins
                UNION ALL
                SELECT id, 'dispatched', CASE WHEN fast THEN 'fast' ELSE 'base' END || ' queue (empty: at once) to ' || $2 FROM direct
                UNION ALL
                SELECT id, 'scheduling', policy || ' (attempt 1)' FROM direct
                UNION ALL
                SELECT id, 'applying', reason FROM direct
            )
            SELECT id, state FROM ins
            """,
            [.json(.array(rows)), .text(owner), .text(Self.interval(policy.leaseTimeout))])
        var new = Set<String>()
        var applying = Set<String>()
        for row in result {
            let id = try row.decode("id", as: String.self)
            new.insert(id)
            if try row.decode("state", as: String.self) == "applying" { applying.insert(id) }
        }
        return (new, applying)
    }

    // MARK: dispatch

    /// Requests in scheduling or applying now, over all workers (each holds a lease).
    public func inFlight() async throws -> Int {
        let rows = try await pool.query("SELECT count(*) AS n FROM schedule_requests WHERE lease_until IS NOT NULL AND state IN ('scheduling', 'applying')")
        return try rows[0].decode("n")
    }

    /// Claims up to `limit` requests for `owner`: first up to `retrySlice` from the retry queue,
    /// then fast requests, then base ones. Each becomes dispatched then scheduling, with a lease.
    public func claim(owner: String, limit: Int) async throws -> [ClaimedRequest] {
        guard limit > 0 else { return [] }
        // One round trip: each class picks with SKIP LOCKED, then the slice keeps retried
        // first (at most retrySlice), fast next, base last, up to the limit. (`fail_count > 0`
        // lets the retry class use its partial index; retryAfterFailures is never negative.)
        let rows = try await pool.query(
            """
            WITH r AS (
                SELECT id, 0 AS cls, queued_at FROM schedule_requests
                WHERE state = 'enqueued' AND fail_count > 0 AND fail_count > $4 AND not_before <= now()
                ORDER BY queued_at LIMIT $5 FOR UPDATE SKIP LOCKED
            ), f AS (
                SELECT id, 1 AS cls, queued_at FROM schedule_requests
                WHERE state = 'enqueued' AND not_before <= now() AND fail_count <= $4 AND fast
                ORDER BY queued_at LIMIT $1 FOR UPDATE SKIP LOCKED
            ), b AS (
                SELECT id, 2 AS cls, queued_at FROM schedule_requests
                WHERE state = 'enqueued' AND not_before <= now() AND fail_count <= $4 AND NOT fast
                ORDER BY queued_at LIMIT $1 FOR UPDATE SKIP LOCKED
            ), picked AS (
                SELECT id, cls FROM (SELECT * FROM r UNION ALL SELECT * FROM f UNION ALL SELECT * FROM b) u
                ORDER BY cls, queued_at LIMIT $1
            ), upd AS (
                UPDATE schedule_requests x
                SET state = 'scheduling', attempt = x.attempt + 1, lease_owner = $2,
                    lease_until = clock_timestamp() + $3::interval, updated_at = clock_timestamp()
                FROM picked WHERE x.id = picked.id
                RETURNING x.id, picked.cls, x.policy, x.project_name, x.workload, x.parameters, x.source, x.source_node,
                          x.pod_lookup_at, x.attempt, x.fail_count, x.callback_url, x.queued_at
            ), ev AS (
                INSERT INTO schedule_request_events (request_id, state, reason)
                SELECT id, 'dispatched', (ARRAY['retry', 'fast', 'base'])[cls + 1] || ' queue to ' || $2 FROM upd
                UNION ALL
                SELECT id, 'scheduling', policy || ' (attempt ' || attempt || ')' FROM upd
            )
            SELECT * FROM upd ORDER BY cls, queued_at
            """,
            [.int(limit), .text(owner), .text(Self.interval(policy.leaseTimeout)), .int(policy.retryAfterFailures), .int(min(policy.retrySlice, limit))])
        let classes = ["retry", "fast", "base"]
        return try rows.map { row in
            let policyName = try row.decode("policy", as: String.self)
            return ClaimedRequest(
                id: try row.decode("id"), policy: SchedulingPolicy(name: policyName) ?? .mostRequested,
                project: try row.decode("project_name"), workload: try row.decode("workload"),
                parameters: try row.decode("parameters"), source: try row.decodeOptional("source") ?? .null,
                sourceNode: try row.decodeOptional("source_node"), podLookupAt: try row.decodeOptional("pod_lookup_at"),
                attempt: try row.decode("attempt"), failCount: try row.decode("fail_count"),
                callbackURL: try row.decodeOptional("callback_url"), queueClass: classes[try row.decode("cls", as: Int.self)])
        }
    }

    /// Records the decisions for claimed requests. Returns which applies to send (the lease
    /// was still this worker's) and which requests ended.
    public func record(owner: String, _ decisions: [(ClaimedRequest, DispatchOutcome)]) async throws -> (send: Set<String>, finished: [FinishedRequest]) {
        var applies: [JSONValue] = []
        var finished: [FinishedRequest] = []
        var send = Set<String>()
        for (req, outcome) in decisions {
            switch outcome {
            case .apply(let parts, let candidates, let reason):
                let summary = PlacementPlan(parts: parts).summary
                applies.append(.object([
                    "id": .string(req.id), "attempt": .number(Double(req.attempt)),
                    "placement": .array(parts.map(\.json)), "candidates": .array(candidates.map(\.json)),
                    "parts": .array(parts.map(\.json)), "reason": .string("\(summary): \(reason)"),
                ]))
            case .unschedulable(let reason):
                if let f = try await requeueOrFail(id: req.id, attempt: req.attempt, owner: owner, reason: reason, from: "scheduling") { finished.append(f) }
            case .rejected(let reason):
                let rows = try await pool.query(
                    """
                    WITH upd AS (
                        UPDATE schedule_requests SET state = 'rejected', reason = $3, lease_owner = NULL, lease_until = NULL,
                            updated_at = clock_timestamp(), finished_at = clock_timestamp()
                        WHERE id = $1 AND attempt = $2 AND state = 'scheduling' AND lease_owner = $4
                        RETURNING id, fail_count, callback_url
                    ), ev AS (INSERT INTO schedule_request_events (request_id, state, reason) SELECT id, 'rejected', $3 FROM upd)
                    SELECT * FROM upd
                    """,
                    [.text(req.id), .int(req.attempt), .text(reason), .text(owner)])
                if let row = rows.first {
                    finished.append(FinishedRequest(id: req.id, state: .rejected, reason: reason, placement: .null,
                                                    failCount: try row.decode("fail_count"), callbackURL: try row.decodeOptional("callback_url")))
                }
            case .awaitPodLookup(let cluster, let pod, let wait):
                _ = try await pool.execute(
                    """
                    WITH upd AS (
                        UPDATE schedule_requests SET state = 'enqueued', pod_lookup_at = clock_timestamp(), lease_owner = NULL,
                            lease_until = NULL, not_before = clock_timestamp() + $3::interval, updated_at = clock_timestamp()
                        WHERE id = $1 AND attempt = $2 AND state = 'scheduling' AND lease_owner = $5
                        RETURNING id
                    )
                    INSERT INTO schedule_request_events (request_id, state, reason) SELECT id, 'enqueued', $4 FROM upd
                    """,
                    [.text(req.id), .int(req.attempt), .text(Self.interval(wait)), .text("asked \(cluster) which node runs pod \(pod)"), .text(owner)])
            }
        }
        if !applies.isEmpty {
            let rows = try await pool.query(
                """
                WITH input AS (
                    SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(id text, attempt integer, placement jsonb, candidates jsonb, parts jsonb, reason text)
                ), upd AS (
                    -- Each request is found by key (LATERAL: on statistics outgrown by a burst,
                    -- a join here was planned as a walk of every request for each batch) and
                    -- updated by its row address. A row changed meanwhile is skipped: it left
                    -- scheduling under this lease. The input's columns come back with the row,
                    -- so the inserts below join nothing.
                    UPDATE schedule_requests r
                    SET state = 'applying', placement = t.placement, candidates = t.candidates, reason = t.reason,
                        lease_until = clock_timestamp() + $2::interval, updated_at = clock_timestamp()
                    FROM (
                        SELECT i.*, q.ctid AS tid FROM input i
                        CROSS JOIN LATERAL (SELECT ctid FROM schedule_requests q WHERE q.id = i.id LIMIT 1) q
                    ) t
                    WHERE r.ctid = t.tid AND r.attempt = t.attempt AND r.state = 'scheduling' AND r.lease_owner = $3
                    RETURNING r.id, r.attempt, t.parts, t.reason
                ), parts AS (
                    INSERT INTO schedule_placements (request_id, attempt, cluster, node, replicas, state)
                    SELECT u.id, u.attempt, p.cluster, p.node, p.replicas, 'applying'
                    FROM upd u, jsonb_to_recordset(u.parts) AS p(cluster text, node text, replicas integer)
                ), ev AS (
                    INSERT INTO schedule_request_events (request_id, state, reason)
                    SELECT id, 'applying', reason FROM upd
                )
                SELECT id FROM upd
                """,
                [.json(.array(applies)), .text(Self.interval(policy.leaseTimeout)), .text(owner)])
            for row in rows { send.insert(try row.decode("id")) }
        }
        return (send, finished)
    }

    /// Back to the queue with one more failure (the retry queue past the threshold), or failed
    /// past the maximum. `from` is the state the request must still be in.
    func requeueOrFail(id: String, attempt: Int, owner: String?, reason: String, from: String) async throws -> FinishedRequest? {
        let rows = try await pool.query(
            """
            WITH upd AS (
                UPDATE schedule_requests
                SET fail_count = fail_count + 1,
                    state = CASE WHEN fail_count + 1 > $4 THEN 'failed' ELSE 'enqueued' END,
                    reason = $3, queued_at = clock_timestamp(), lease_owner = NULL, lease_until = NULL,
                    not_before = clock_timestamp() + ($6::interval * (fail_count + 1)), updated_at = clock_timestamp(),
                    finished_at = CASE WHEN fail_count + 1 > $4 THEN clock_timestamp() END
                WHERE id = $1 AND attempt = $2 AND state = $7 AND ($8::text IS NULL OR lease_owner = $8)
                RETURNING id, state, fail_count, callback_url, placement
            ), ev AS (
                INSERT INTO schedule_request_events (request_id, state, reason)
                SELECT id, state, $3 || CASE WHEN state = 'failed' THEN ' (failed ' || fail_count || ' times)'
                                             WHEN fail_count > $5 THEN ' (retry queue, failure ' || fail_count || ')'
                                             ELSE ' (failure ' || fail_count || ')' END
                FROM upd
            )
            SELECT * FROM upd
            """,
            [.text(id), .int(attempt), .text(reason), .int(policy.maxFailures), .int(policy.retryAfterFailures),
             .text(Self.interval(policy.retryBackoff)), .text(from), .optional(owner)])
        guard let row = rows.first, try row.decode("state", as: String.self) == "failed" else { return nil }
        return FinishedRequest(id: id, state: .failed, reason: reason, placement: try row.decodeOptional("placement") ?? .null,
                               failCount: try row.decode("fail_count"), callbackURL: try row.decodeOptional("callback_url"))
    }

    // MARK: replies

    /// Successful applies, in one statement: each part becomes applied, and a request whose
    /// parts of its current attempt are all applied becomes completed. Returns the completed
    /// requests and the stray parts (success for an attempt that no longer counts).
    public func recordApplied(_ outcomes: [ApplyOutcome]) async throws -> (completed: [FinishedRequest], strays: [StrayPart]) {
        guard !outcomes.isEmpty else { return ([], []) }
        let input: [JSONValue] = outcomes.map { o in
            .object(["request_id": .string(o.requestID), "attempt": .number(Double(o.attempt)), "cluster": .string(o.cluster), "reason": .string(o.reason)])
        }
        let rows = try await pool.query(
            """
            WITH input AS (
                SELECT DISTINCT ON (request_id, attempt, cluster) * FROM jsonb_to_recordset($1::jsonb) AS x(request_id text, attempt integer, cluster text, reason text)
            ), part AS (
                -- Each reply's placement is found by key (LATERAL: whatever the statistics,
                -- never a scan of all placements) and updated by its row address. A row
                -- changed meanwhile is skipped: it left applying.
                UPDATE schedule_placements p SET state = 'applied', reason = t.reason, updated_at = clock_timestamp()
                FROM (
                    SELECT i.reason, q.ctid AS tid FROM input i
                    CROSS JOIN LATERAL (
                        SELECT ctid FROM schedule_placements q
                        WHERE q.request_id = i.request_id AND q.attempt = i.attempt AND q.cluster = i.cluster AND q.state = 'applying'
                        LIMIT 1) q
                ) t
                WHERE p.ctid = t.tid AND p.state = 'applying'
                RETURNING p.request_id, p.attempt, p.cluster
            ), d AS MATERIALIZED (
                SELECT request_id, attempt, count(*) AS n FROM part GROUP BY request_id, attempt
            ), done AS (
                -- Complete when the parts applied now are all the attempt had left: the count
                -- below reads the statement's snapshot, from before `part`.
                UPDATE schedule_requests r
                SET state = 'completed', lease_owner = NULL, lease_until = NULL, updated_at = clock_timestamp(),
                    finished_at = clock_timestamp(), reason = NULL
                FROM d
                WHERE r.id = d.request_id AND r.attempt = d.attempt AND r.state = 'applying'
                  AND (SELECT count(*) FROM schedule_placements q
                       WHERE q.request_id = r.id AND q.attempt = r.attempt AND q.state <> 'applied') = d.n
                RETURNING r.id, r.placement, r.fail_count, r.callback_url
            ), ev AS (
                INSERT INTO schedule_request_events (request_id, state, reason, detail)
                SELECT id, 'completed', 'applied on ' || (SELECT string_agg(e->>'cluster' || COALESCE('/' || (e->>'node'), ''), ', ') FROM jsonb_array_elements(placement) e), placement FROM done
            ), stray AS (
                -- Probed by key for each reply (a join here could scan every placement).
                SELECT i.request_id, i.attempt, i.cluster FROM input i
                CROSS JOIN LATERAL (
                    SELECT 1 FROM schedule_placements p
                    WHERE p.request_id = i.request_id AND p.attempt = i.attempt AND p.cluster = i.cluster
                      AND p.state IN ('expired', 'failed', 'removed')
                    LIMIT 1) gone
            )
            SELECT 'done' AS kind, id, placement, fail_count, callback_url, NULL::integer AS attempt, NULL AS cluster FROM done
            UNION ALL
            SELECT 'stray', request_id, NULL, NULL, NULL, attempt, cluster FROM stray
            """,
            [.json(.array(input))])
        var completed: [FinishedRequest] = []
        var strays: [StrayPart] = []
        for row in rows {
            if try row.decode("kind", as: String.self) == "done" {
                completed.append(FinishedRequest(
                    id: try row.decode("id"), state: .completed, reason: "applied", placement: try row.decodeOptional("placement") ?? .null,
                    failCount: try row.decode("fail_count"), callbackURL: try row.decodeOptional("callback_url")))
            } else {
                strays.append(StrayPart(requestID: try row.decode("id"), attempt: try row.decode("attempt"), cluster: try row.decode("cluster")))
            }
        }
        return (completed, strays)
    }

    /// What to do after a failed apply.
    public enum FailureStep: Sendable {
        /// Nothing: the reply was stale or a duplicate.
        case ignore
        /// Try the next candidate: a new attempt, already recorded as applying.
        case next(attempt: Int, parts: [PlacementPart], policy: SchedulingPolicy, workload: JSONValue, namespace: String)
        /// Back in the queue.
        case requeued
        case finished(FinishedRequest)
    }

    /// A failed apply: the part fails; parts of the same attempt already applied must be
    /// undone (returned as strays); then the next stored candidate is tried, or the request
    /// goes back to the queue, or fails past the maximum.
    public func recordFailed(_ o: ApplyOutcome) async throws -> (FailureStep, [StrayPart]) {
        try await pool.transaction { c in
            let part = try await c.query(
                """
                UPDATE schedule_placements SET state = 'failed', reason = $4, updated_at = clock_timestamp()
                WHERE request_id = $1 AND attempt = $2 AND cluster = $3 AND state = 'applying'
                RETURNING request_id
                """,
                [.text(o.requestID), .int(o.attempt), .text(o.cluster), .text(o.reason)])
            guard !part.isEmpty else { return (.ignore, []) }
            let reqRows = try await c.query(
                """
                SELECT policy, project_name, workload, parameters, candidates, fail_count, callback_url, placement FROM schedule_requests
                WHERE id = $1 AND attempt = $2 AND state = 'applying' FOR UPDATE
                """,
                [.text(o.requestID), .int(o.attempt)])
            guard let req = reqRows.first else { return (.ignore, []) }
            // Undo the attempt's other parts: applied ones are removed on their clusters.
            let others = try await c.query(
                """
                UPDATE schedule_placements SET state = CASE WHEN state = 'applied' THEN 'removed' ELSE 'failed' END,
                    reason = 'another part of the attempt failed', updated_at = clock_timestamp()
                WHERE request_id = $1 AND attempt = $2 AND state IN ('applying', 'applied')
                RETURNING cluster, state
                """,
                [.text(o.requestID), .int(o.attempt)])
            let strays = try others.compactMap { row in
                try row.decode("state", as: String.self) == "removed"
                    ? StrayPart(requestID: o.requestID, attempt: o.attempt, cluster: try row.decode("cluster")) : nil
            }
            let failCount = try req.decode("fail_count", as: Int.self) + 1
            let reason = "\(o.cluster): \(o.reason)"
            let policyName = try req.decode("policy", as: String.self)
            let candidatesJSON: JSONValue = try req.decode("candidates")
            var candidates: [PlacementPlan] = []
            if case .array(let items) = candidatesJSON { candidates = items.compactMap { try? PlacementPlan.decode($0) } }
            if failCount <= policy.maxFailures, let next = candidates.first {
                let attempt = o.attempt + 1
                let rest = Array(candidates.dropFirst())
                try await c.execute(
                    """
                    UPDATE schedule_requests SET attempt = $2, fail_count = $3, placement = $4::jsonb, candidates = $5::jsonb, reason = $6,
                        lease_until = clock_timestamp() + $7::interval, updated_at = clock_timestamp()
                    WHERE id = $1
                    """,
                    [.text(o.requestID), .int(attempt), .int(failCount), .json(.array(next.parts.map(\.json))), .json(.array(rest.map(\.json))),
                     .text(reason), .text(Self.interval(policy.leaseTimeout))])
                for p in next.parts {
                    try await c.execute(
                        "INSERT INTO schedule_placements (request_id, attempt, cluster, node, replicas, state) VALUES ($1, $2, $3, $4, $5, 'applying')",
                        [.text(o.requestID), .int(attempt), .text(p.cluster), .optional(p.node), .int(p.replicas)])
                }
                try await c.execute(
                    "INSERT INTO schedule_request_events (request_id, state, reason) VALUES ($1, 'applying', $2)",
                    [.text(o.requestID), .text("\(next.summary): next candidate after \(reason) (failure \(failCount))")])
                return (.next(attempt: attempt, parts: next.parts, policy: SchedulingPolicy(name: policyName) ?? .mostRequested,
                              workload: try req.decode("workload"),
                              namespace: KubeNames.namespace(project: try req.decode("project_name"), parameters: try req.decode("parameters"))), strays)
            }
            let ended = failCount > policy.maxFailures
            try await c.execute(
                """
                UPDATE schedule_requests SET fail_count = $2::integer, state = $3, reason = $4, queued_at = clock_timestamp(), lease_owner = NULL,
                    lease_until = NULL, not_before = clock_timestamp() + ($5::interval * $2::integer), updated_at = clock_timestamp(),
                    finished_at = CASE WHEN $3 = 'failed' THEN clock_timestamp() END
                WHERE id = $1
                """,
                [.text(o.requestID), .int(failCount), .text(ended ? "failed" : "enqueued"), .text(reason), .text(Self.interval(policy.retryBackoff))])
            let note = ended ? " (failed \(failCount) times)" : failCount > policy.retryAfterFailures ? " (retry queue, failure \(failCount))" : " (failure \(failCount))"
            try await c.execute(
                "INSERT INTO schedule_request_events (request_id, state, reason) VALUES ($1, $2, $3)",
                [.text(o.requestID), .text(ended ? "failed" : "enqueued"), .text(reason + note)])
            if ended {
                return (.finished(FinishedRequest(id: o.requestID, state: .failed, reason: reason, placement: try req.decodeOptional("placement") ?? .null,
                                                  failCount: failCount, callbackURL: try req.decodeOptional("callback_url"))), strays)
            }
            return (.requeued, strays)
        }
    }

    /// The answer to a pod lookup (hcode 530): the node is kept and the request is due now.
    public func recordPodNode(requestID: String, node: String?) async throws {
        _ = try await pool.execute(
            """
            WITH upd AS (
                UPDATE schedule_requests SET source_node = $2, not_before = clock_timestamp(), updated_at = clock_timestamp()
                WHERE id = $1 AND state = 'enqueued' AND pod_lookup_at IS NOT NULL RETURNING id
            )
            INSERT INTO schedule_request_events (request_id, state, reason)
            SELECT id, 'enqueued', COALESCE('source pod runs on ' || $2, 'source pod not found; ranking from its cluster') FROM upd
            """,
            [.text(requestID), .optional(node)])
    }

    // MARK: leases

    /// Re-queues requests whose lease passed (a worker died, an agent never answered). Each
    /// counts as a failure. Parts still applying become expired (a late success is undone);
    /// applied parts of the attempt are returned to be removed.
    public func reapExpired(limit: Int = 500) async throws -> (requeued: Int, finished: [FinishedRequest], strays: [StrayPart]) {
        let rows = try await pool.query(
            """
            WITH expired AS (
                SELECT id, state AS was, attempt FROM schedule_requests
                WHERE state IN ('scheduling', 'applying') AND lease_until < clock_timestamp()
                ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED
            ), parts AS (
                UPDATE schedule_placements p SET state = CASE WHEN p.state = 'applied' THEN 'removed' ELSE 'expired' END,
                    reason = 'lease expired', updated_at = clock_timestamp()
                FROM expired e WHERE p.request_id = e.id AND p.attempt = e.attempt AND p.state IN ('applying', 'applied')
                RETURNING p.request_id, p.attempt, p.cluster, p.state
            ), upd AS (
                UPDATE schedule_requests r
                SET fail_count = r.fail_count + 1,
                    state = CASE WHEN r.fail_count + 1 > $2 THEN 'failed' ELSE 'enqueued' END,
                    reason = 'lease expired in ' || e.was, queued_at = clock_timestamp(), lease_owner = NULL, lease_until = NULL,
                    not_before = clock_timestamp(), updated_at = clock_timestamp(),
                    finished_at = CASE WHEN r.fail_count + 1 > $2 THEN clock_timestamp() END
                FROM expired e WHERE r.id = e.id
                RETURNING r.id, r.state, r.fail_count, r.callback_url, r.placement, e.was
            ), ev AS (
                INSERT INTO schedule_request_events (request_id, state, reason)
                SELECT id, state, 'lease expired in ' || was || ' (failure ' || fail_count || ')' FROM upd
            )
            SELECT 'req' AS kind, id, state, fail_count, callback_url, placement, NULL::integer AS attempt, NULL AS cluster FROM upd
            UNION ALL
            SELECT 'stray', request_id, NULL, NULL, NULL, NULL, attempt, cluster FROM parts WHERE state = 'removed'
            """,
            [.int(limit), .int(policy.maxFailures)])
        var requeued = 0
        var finished: [FinishedRequest] = []
        var strays: [StrayPart] = []
        for row in rows {
            if try row.decode("kind", as: String.self) == "req" {
                if try row.decode("state", as: String.self) == "failed" {
                    finished.append(FinishedRequest(
                        id: try row.decode("id"), state: .failed, reason: "lease expired", placement: try row.decodeOptional("placement") ?? .null,
                        failCount: try row.decode("fail_count"), callbackURL: try row.decodeOptional("callback_url")))
                } else {
                    requeued += 1
                }
            } else {
                strays.append(StrayPart(requestID: try row.decode("id"), attempt: try row.decode("attempt"), cluster: try row.decode("cluster")))
            }
        }
        return (requeued, finished, strays)
    }

    // MARK: cancel, projects

    /// Cancels a request that has not ended; with `withdraw`, a completed one too (its
    /// placements are removed). Returns the parts to remove, or nil if the request is
    /// unknown or already ended.
    public func cancel(id: String, reason: String, withdraw: Bool = false) async throws -> (FinishedRequest, [StrayPart])? {
        try await pool.transaction { c in
            let rows = try await c.query(
                """
                UPDATE schedule_requests SET state = 'canceled', reason = $2, lease_owner = NULL, lease_until = NULL,
                    updated_at = clock_timestamp(), finished_at = clock_timestamp()
                WHERE id = $1 AND (state NOT IN ('completed', 'failed', 'canceled', 'rejected') OR ($3 AND state = 'completed'))
                RETURNING fail_count, callback_url, placement
                """,
                [.text(id), .text(reason), .bool(withdraw)])
            guard let row = rows.first else { return nil }
            let parts = try await c.query(
                """
                UPDATE schedule_placements SET state = CASE WHEN state = 'applied' THEN 'removed' ELSE 'expired' END,
                    reason = 'canceled', updated_at = clock_timestamp()
                WHERE request_id = $1 AND state IN ('applying', 'applied') RETURNING attempt, cluster
                """,
                [.text(id)])
            try await c.execute("INSERT INTO schedule_request_events (request_id, state, reason) VALUES ($1, 'canceled', $2)", [.text(id), .text(reason)])
            let strays = try parts.map { StrayPart(requestID: id, attempt: try $0.decode("attempt"), cluster: try $0.decode("cluster")) }
            return (FinishedRequest(id: id, state: .canceled, reason: reason, placement: try row.decodeOptional("placement") ?? .null,
                                    failCount: try row.decode("fail_count"), callbackURL: try row.decodeOptional("callback_url")), strays)
        }
    }

    /// Every project's clusters.
    /// The project of a request, if it is recorded.
    public func project(of requestID: String) async throws -> String? {
        try await pool.query("SELECT project_name FROM schedule_requests WHERE id = $1", [.text(requestID)], retryOnConnectionLoss: true)
            .first.map { try $0.decode("project_name") }
    }

    public func projectClusters() async throws -> [String: Set<String>] {
        var out: [String: Set<String>] = [:]
        for row in try await pool.query("SELECT project_name, cluster FROM project_clusters", retryOnConnectionLoss: true) {
            out[try row.decode("project_name"), default: []].insert(try row.decode("cluster"))
        }
        return out
    }

    public func bind(project: String, clusters: [String]) async throws {
        for c in clusters {
            try await pool.execute(
                "INSERT INTO project_clusters (project_name, cluster) VALUES ($1, $2) ON CONFLICT DO NOTHING", [.text(project), .text(c)])
        }
    }
}
