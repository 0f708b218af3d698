import Foundation
import GEdgeCore
import GEdgeKafka
import GEdgeSecurity
import GEdgePlacement
import GEdgeServiceSpec
import GEdgePostgres
import Logging
import Metrics
import ServiceLifecycle
import Synchronization

/// Settings of the scheduler's stages. Keys in docs/configuration.md.
public struct SchedulerSettings: Sendable {
    public var instance: String
    public var requestsTopic = Topics.scheduleRequests
    public var repliesTopic = Topics.schedulerReplies
    public var statusTopic = Topics.clusterStatus
    public var resultsTopic = Topics.scheduleResults
    public var queue = QueuePolicy()
    /// How often a worker looks at the queue when nothing woke it.
    public var pollInterval: Duration = .milliseconds(200)
    public var maxCandidates = 3
    /// How long to wait for an agent to say which node runs a source pod.
    public var podLookupWait: Duration = .seconds(2)
    /// When a project has no clusters bound: reject (the default) or allow every cluster.
    public var unboundProjectsUseAllClusters = false
    /// How often the in-flight count (for `scheduler.queue.max.inflight`) is read from
    /// PostgreSQL; in between, this worker's own claims and ends move its estimate.
    public var inFlightRefresh: Duration = .seconds(1)
    /// Place requests as they arrive when the queue holds nothing due, storing them straight
    /// in applying (one write instead of three); off, every request goes through the queue.
    public var dispatchOnArrival = true
    /// Who may write schedule requests: producers that sign for their project
    /// (`ProducerSigning`; the default), or anyone, believed as written (`trusted`: the
    /// local stack and tests only).
    public var producers: ProducerSigning?

    public init(instance: String, producers: ProducerSigning? = nil) {
        self.instance = instance
        self.producers = producers
    }

    public init(_ c: ConfigReader) throws {
        // Unique per process start: a restarted replica (pid 1 again in a container) must not
        // take its predecessor's leases for its own.
        let host = ProcessInfo.processInfo.hostName
        instance = c.string("scheduler.instance", default: "\(host)-\(getpid())") + "-" + Hex.random(bytes: 4)
        requestsTopic = c.string("scheduler.topic", default: requestsTopic)
        repliesTopic = c.string("scheduler.replies.topic", default: repliesTopic)
        statusTopic = c.string("scheduler.status.topic", default: statusTopic)
        resultsTopic = c.string("scheduler.results.topic", default: resultsTopic)
        queue = try QueuePolicy(c)
        pollInterval = try c.duration("scheduler.poll.interval", default: pollInterval)
        maxCandidates = try c.int("scheduler.candidates", default: maxCandidates)
        podLookupWait = try c.duration("scheduler.pod.lookup.wait", default: podLookupWait)
        unboundProjectsUseAllClusters = try c.bool("scheduler.projects.unbound.all", default: false)
        inFlightRefresh = try c.duration("scheduler.inflight.refresh", default: inFlightRefresh)
        dispatchOnArrival = try c.bool("scheduler.dispatch.on.arrival", default: dispatchOnArrival)
        switch c.string("scheduler.producers", default: "signed") {
        case "trusted": producers = nil
        case "signed":
            guard let secret = try c.secret("producers.secret") else {
                throw ConfigurationError(
                    key: "producers.secret",
                    reason: "required to check producers' signatures (or producers.secret.file); set scheduler.producers=trusted only on a local stack")
            }
            producers = try ProducerSigning(secret: Array(secret.utf8))
        case let other:
            throw ConfigurationError(key: "scheduler.producers", reason: "'\(other)' is not signed or trusted")
        }
    }
}

/// What the stages share: the queue in PostgreSQL, the cluster view, the producer.
public final class SchedulerContext: Sendable {
    public let settings: SchedulerSettings
    public let queue: RequestQueue
    public let view: ClusterView
    public let producer: KafkaProducer
    public let codec = EnvelopeCodec()
    public let logger: Logger
    public let wakeup = Wakeup()
    /// The projects' namespaces, kinds and Pod Security levels.
    public let policies: ProjectPolicyStore
    private let projects = Mutex<(clusters: [String: Set<String>], loaded: ContinuousClock.Instant?)>(([:], nil))
    private let inFlightEstimate = Mutex<(count: Int, taken: Int, generation: UInt64, at: ContinuousClock.Instant?)>((0, 0, 0, nil))

    /// Whether the queue may hold requests due now: set when ingest enqueues some, cleared
    /// when a claim takes less than it asked for. While set, ingest leaves placing to the
    /// queue's order.
    let queueMayHoldWork = Atomic<Bool>(true)
    /// When this replica's dispatcher last looked at the queue.
    let lastClaim = Mutex<ContinuousClock.Instant?>(nil)
    /// When this replica started, and whether its view is complete: until it is, it places
    /// nothing (a view still empty after a restart would charge requests false failures).
    let startedAt = ContinuousClock.now
    let viewComplete = Atomic<Bool>(false)
    /// Decisions rank one at a time (see `DecisionTurns`).
    let turns = DecisionTurns()

    let sent = Counter(label: "gedge_scheduler_apply_commands_total")
    let decisionTimer = Metrics.Timer(label: "gedge_scheduler_decision_seconds")
    let finishedCounter: [RequestState: Counter] = Dictionary(uniqueKeysWithValues: [RequestState.completed, .failed, .rejected, .canceled].map {
        ($0, Counter(label: "gedge_scheduler_requests_finished_total", dimensions: [("state", $0.rawValue)]))
    })

    /// Where this replica's consumers say they are stuck (the process's registry, which
    /// `/readyz` reads, unless given another).
    public let progress: ConsumerProgress

    public init(settings: SchedulerSettings, queue: RequestQueue, view: ClusterView, producer: KafkaProducer, logger: Logger,
                progress: ConsumerProgress = .shared) {
        self.progress = progress
        self.settings = settings
        self.queue = queue
        self.view = view
        self.producer = producer
        self.logger = logger
        self.policies = ProjectPolicyStore(pool: queue.pool)
    }

    /// The clusters of a project, cached for a few seconds; a project not in the cache is
    /// looked up again at once (it may have just been bound), at most every 250 ms.
    func allowedClusters(project: String) async throws -> Set<String>? {
        let now = ContinuousClock.now
        let cached = projects.withLock { p -> Set<String>?? in
            guard let at = p.loaded else { return .none }
            if let hit = p.clusters[project], now - at < .seconds(5) { return .some(hit) }
            if now - at < .milliseconds(250) { return .some(nil) }
            return .none
        }
        if let cached { return cached }
        let map = try await queue.projectClusters()
        projects.withLock { $0 = (map, now) }
        return map[project]
    }

    /// Takes up to `n` in-flight slots (`scheduler.queue.max.inflight`) for a claim or for
    /// requests placed as they arrive; `settle` gives back what was not used. The count of
    /// requests in scheduling or applying over all workers is read from PostgreSQL at most
    /// every `inFlightRefresh` (a count over a churning index is not cheap at thousands of
    /// requests a second) and moved by this worker's own claims and ends in between; a
    /// reading is dropped if this worker moved the count while it was taken.
    func takeInFlight(upTo n: Int) async throws -> Int {
        let now = ContinuousClock.now
        let due = inFlightEstimate.withLock { e -> UInt64? in
            guard let at = e.at, now - at < settings.inFlightRefresh else { return e.generation }
            return nil
        }
        if let generation = due {
            let counted = try await queue.inFlight()
            inFlightEstimate.withLock { e in
                if e.generation == generation { e.count = counted }
                e.at = now
            }
        }
        return inFlightEstimate.withLock { e in
            let k = max(0, min(n, settings.queue.maxInFlight - e.count - e.taken))
            e.taken += k
            return k
        }
    }

    /// Settles slots taken with `takeInFlight`: `used` of them are now in flight.
    func settleInFlight(taken: Int, used: Int) {
        inFlightEstimate.withLock { e in
            e.taken = max(0, e.taken - taken)
            e.count += used
            e.generation &+= 1
        }
    }

    /// Moves the in-flight count: ends and re-queues subtract.
    func inFlightChanged(by delta: Int) {
        guard delta != 0 else { return }
        inFlightEstimate.withLock { e in
            e.count = max(0, e.count + delta)
            e.generation &+= 1
        }
    }

    /// Whether the view may be trusted: every cluster bound to a project has reported since
    /// this replica started, or the stale window (`scheduler.cluster.stale`) has passed.
    func viewIsComplete() async -> Bool {
        if viewComplete.load(ordering: .relaxed) { return true }
        var complete = ContinuousClock.now - startedAt >= view.staleAfter
        if !complete, let bound = try? await queue.projectClusters() {
            let reported = Set(view.all().map(\.0.name))
            complete = bound.values.allSatisfy { $0.isSubset(of: reported) }
        }
        if complete {
            viewComplete.store(true, ordering: .relaxed)
            logger.info("cluster view complete; placing", metadata: ["after": "\(ContinuousClock.now - startedAt)"])
        }
        return complete
    }

    /// Requests went into the queue: the dispatcher looks at once.
    func queuedWork() {
        queueMayHoldWork.store(true, ordering: .relaxed)
        wakeup.signal()
    }

    // MARK: decisions

    /// Runs the request's policy against the fresh cluster view. The workload's requirements
    /// are kept in `requirements` for the reservation.
    func decide(_ req: ClaimedRequest, _ requirements: inout [String: WorkloadRequirements]) async throws -> DispatchOutcome {
        let start = ContinuousClock.now
        // The time deciding, not the time waiting for the decision's turn.
        var waited = Duration.zero
        defer { decisionTimer.recordNanoseconds((ContinuousClock.now - start - waited).nanoseconds) }
        let r: WorkloadRequirements
        let workload: JSONValue
        do {
            workload = try WorkloadText.normalize(req.workload)
            r = try WorkloadRequirements.extract(workload: workload, parameters: req.parameters)
        } catch {
            return .rejected(error.description)
        }
        // What the project may deploy, checked before anything reaches an agent: whoever
        // wrote the request to Kafka, it lands only in the project's own namespaces.
        let namespace = KubeNames.namespace(project: req.project, parameters: req.parameters)
        do {
            try Admission.check(workload: workload, namespace: namespace, project: req.project, policy: try await policies.policy(project: req.project))
        } catch is AdmissionError {
            // A refusal is final: checked again on what PostgreSQL says now, not on the cache
            // (a namespace bound a moment ago).
            do {
                try Admission.check(workload: workload, namespace: namespace, project: req.project, policy: try await policies.freshPolicy(project: req.project))
            } catch let e as AdmissionError {
                return .rejected("forbidden: \(e.reason) (at \(e.field))")
            }
        }
        requirements[req.id] = r
        let source = Self.source(req)
        if let pod = source.pod, let cluster = source.placement.cluster, source.placement.node == nil, req.podLookupAt == nil {
            return .awaitPodLookup(cluster: cluster, pod: pod, wait: settings.podLookupWait)
        }
        let allowed = try await allowedClusters(project: req.project)
        if allowed == nil && !settings.unboundProjectsUseAllClusters {
            return .rejected("project '\(req.project)' has no clusters bound")
        }
        let input = PlacementInput(
            policy: req.policy, requirements: r, parameters: req.parameters, source: source.placement,
            allowedClusters: allowed, maxCandidates: settings.maxCandidates)
        let asked = ContinuousClock.now
        let (began, decision) = await turns.take { [view] in (ContinuousClock.now, view.withFresh { Placer.decide(input, clusters: $0) }) }
        waited = began - asked
        switch decision {
        case .placed(let plans):
            return .apply(parts: plans[0].parts, candidates: Array(plans.dropFirst()), reason: "\(req.policy.rawValue) chose it among \(plans.count) candidate(s)")
        case .unschedulable(let why): return .unschedulable(why)
        case .rejected(let why): return .rejected(why)
        }
    }

    /// The request's source: `source_cluster` / `source_node` / `pod_name` parameters first
    /// (GS-Scheduler's form fields), else the envelope's source endpoint.
    static func source(_ req: ClaimedRequest) -> (placement: PlacementSource, pod: String?) {
        let p = req.parameters
        var cluster = p["source_cluster"]?.stringValue
        var node = p["source_node"]?.stringValue
        var pod = p["pod_name"]?.stringValue ?? p["source_pod"]?.stringValue
        if cluster == nil, case .object(let src) = req.source, let type = src["type"]?.stringValue, let object = src["object"] {
            switch (type, object) {
            case ("cluster", .string(let c)): cluster = c
            case ("node", .object(let o)):
                cluster = o["cluster"]?.stringValue
                node = o["node"]?.stringValue
            case ("pod", .object(let o)):
                cluster = o["cluster"]?.stringValue
                pod = o["pod"]?.stringValue
            default: break
            }
        }
        if node == nil { node = req.sourceNode }
        if node != nil { pod = nil }
        return (PlacementSource(cluster: cluster, node: node), pod)
    }

    // MARK: messages out

    func send(_ envelope: Envelope, topic: String, key: String) {
        let record = KafkaRecord(topic: topic, key: key, value: codec.encode(envelope))
        do {
            try producer.enqueue(record) { [logger] result in
                if case .failure(let e) = result {
                    logger.error("message not delivered; the lease will retry it", metadata: [LogKeys.kafkaTopic: .string(topic), LogKeys.requestID: .string(key), LogKeys.error: "\(e)"])
                }
            }
        } catch {
            logger.error("message not queued; the lease will retry it", metadata: [LogKeys.kafkaTopic: .string(topic), LogKeys.requestID: .string(key), LogKeys.error: "\(error)"])
        }
    }

    func sendApply(requestID: String, attempt: Int, policy: SchedulingPolicy, namespace: String, workload: JSONValue, part: PlacementPart) {
        let cmd = ApplyCommand(
            requestID: requestID, attempt: attempt, namespace: namespace, workload: workload,
            node: part.node, replicas: part.replicas, deadline: Date().addingTimeInterval(Double(settings.queue.leaseTimeout.milliseconds) / 1000),
            replyTo: settings.repliesTopic)
        let target: Endpoint = part.node.map { .node(cluster: part.cluster, node: $0) } ?? .cluster(part.cluster)
        send(Envelope(source: .cluster("scheduler"), target: target, hcode: applyCode(for: policy), lcode: .request, msg: cmd.msg),
             topic: Topics.agentCommands(cluster: part.cluster), key: requestID)
        sent.increment()
    }

    /// Asks a cluster to remove what it applied for a request (a stale or partial attempt).
    func sendRemove(_ stray: StrayPart) {
        let cmd = ApplyCommand(requestID: stray.requestID, attempt: stray.attempt, action: .delete, namespace: "", workload: .null, node: nil,
                               replicas: 0, deadline: nil, replyTo: settings.repliesTopic)
        send(Envelope(source: .cluster("scheduler"), target: .cluster(stray.cluster), hcode: .applySelectedCluster, lcode: .request, msg: cmd.msg),
             topic: Topics.agentCommands(cluster: stray.cluster), key: stray.requestID)
        logger.info("removing a stray placement", metadata: [LogKeys.requestID: .string(stray.requestID), LogKeys.cluster: .string(stray.cluster)])
    }

    func sendPodLookup(requestID: String, cluster: String, pod: String) {
        let msg: JSONValue = .object(["request_id": .string(requestID), "pod": .string(pod), "reply_to": .string(settings.repliesTopic)])
        send(Envelope(source: .cluster("scheduler"), target: .pod(cluster: cluster, pod: pod), hcode: .nodeOfPod, lcode: .request, msg: msg),
             topic: Topics.agentCommands(cluster: cluster), key: requestID)
    }

    /// Announces an end state on the results topic (hcode 100, lcode 2).
    func publish(_ f: FinishedRequest) {
        finishedCounter[f.state]?.increment()
        var msg: [String: JSONValue] = [
            "request_id": .string(f.id), "state": .string(f.state.rawValue), "reason": .string(f.reason),
            "placement": f.placement, "fail_count": .number(Double(f.failCount)),
        ]
        if let cb = f.callbackURL { msg["callback_url"] = .string(cb) }
        send(Envelope(source: .cluster("scheduler"), target: .cluster("requester"), hcode: .scheduleRequest, lcode: .reply, msg: .object(msg)),
             topic: settings.resultsTopic, key: f.id)
        logger.info("request \(f.state.rawValue)", metadata: [LogKeys.requestID: .string(f.id), LogKeys.state: .string(f.state.rawValue), "reason": .string(f.reason)])
    }
}

/// Decisions of one replica (the ingest workers' and the dispatcher's), one at a time. Each
/// ranks over the whole view; two at once would share its states, and every report or
/// reservation landing meanwhile would copy all of them (5,000 at edge scale) for the next
/// decision. One at a time, those changes wait in the view and are applied in place as the
/// decision ends. A decision waiting its turn holds no thread (an actor, not a lock).
actor DecisionTurns {
    func take<R: Sendable>(_ body: @Sendable () -> R) -> R { body() }
}

// MARK: - Ingest

/// Consumes schedule requests in batches, records each (received, enqueued) in PostgreSQL,
/// and only then stores the offsets. Undecodable messages go to the dead-letter topic. A
/// database outage holds the batch (retrying with backoff) rather than skipping anything.
public struct RequestIngest: Service {
    let consumer: KafkaConsumer
    let context: SchedulerContext
    let deadLetters: KafkaDeadLetterPublisher
    let batchSize: Int
    let received = Counter(label: "gedge_scheduler_requests_received_total")
    let duplicates = Counter(label: "gedge_scheduler_requests_duplicate_total")
    let deadLettered = Counter(label: "gedge_scheduler_messages_dead_lettered_total")
    let onArrival = Counter(label: "gedge_scheduler_requests_dispatched_on_arrival_total")
    let ingestTimer = Metrics.Timer(label: "gedge_scheduler_ingest_seconds")
    let unauthenticated = Counter(label: "gedge_scheduler_messages_unauthenticated_total")

    public init(consumer: KafkaConsumer, context: SchedulerContext, deadLetters: KafkaDeadLetterPublisher, batchSize: Int = 500) {
        self.consumer = consumer
        self.context = context
        self.deadLetters = deadLetters
        self.batchSize = batchSize
    }

    public func run() async throws {
        try await withTaskCancellationOrGracefulShutdownHandler {
            while true {
                let batch = await consumer.nextBatch(max: batchSize)
                if batch.isEmpty { break }
                await handle(batch)
            }
        } onCancelOrGracefulShutdown: {
            consumer.stopPolling()
        }
        try await consumer.close()
        context.logger.info("request ingest stopped; offsets committed")
    }

    static let consumerName = "scheduler.requests"

    /// Records the batch, then stores its offsets. Transient failures (PostgreSQL down) hold
    /// the batch and retry; a permanent one (a request PostgreSQL refuses) splits the batch so
    /// that only the message at fault is dead-lettered. On shutdown nothing more is stored:
    /// the next owner of the partitions reads the rest again (recording is idempotent).
    func handle(_ batch: [KafkaMessage]) async {
        let start = ContinuousClock.now
        var items: [(ScheduleRequest, Endpoint, MessageOrigin?)] = []
        var itemMessages: [String: KafkaMessage] = [:]
        var cancels: [(CancelRequest, KafkaMessage, String?)] = []
        for message in batch {
            do {
                // Its size first, then its signature, before anything of the message is read.
                if let o = message.oversize { throw o.error }
                var signer: String?
                if let signing = context.settings.producers {
                    do { signer = try message.signer(signing) } catch {
                        unauthenticated.increment()
                        throw MessageDecodingError(.invalidValue, field: "headers", reason: error.description)
                    }
                }
                let envelope = try context.codec.decode(message)
                if envelope.hcode == .scheduleCancel, envelope.lcode == .request {
                    cancels.append((try CancelRequest.decode(msg: envelope.msg, key: message.keyString), message, signer))
                    continue
                }
                guard envelope.hcode == .scheduleRequest, envelope.lcode == .request else {
                    throw MessageDecodingError(
                        .unknownCode, field: "hcode",
                        reason: "the requests topic takes hcode \(HCode.scheduleRequest.rawValue) lcode 1, got \(envelope.hcode.rawValue) lcode \(envelope.lcode.rawValue)")
                }
                var request = try ScheduleRequest.decode(msg: envelope.msg, key: message.keyString, workInfo: envelope.workInfo)
                // The project is the signer's, whatever the message says.
                if let signer, request.projectName != signer {
                    throw MessageDecodingError(.invalidValue, field: "msg.project_name", reason: "the message is signed for project '\(signer)', not '\(request.projectName)'")
                }
                // YAML becomes JSON here (bounded by decode.max.*); a workload that cannot be read
                // is recorded anyway and rejected by the policy worker with the reason, where the
                // requester can see it.
                if let json = try? WorkloadText.normalize(request.workload) {
                    request.workload = json
                    request.parameters = KubeNames.parameters(request.parameters, namespaceFrom: json)
                }
                if let at = request.workload.pathOfNUL() ?? request.parameters.pathOfNUL() {
                    throw MessageDecodingError(.invalidValue, field: "msg." + at, reason: "a NUL character, which cannot be stored")
                }
                items.append((request, envelope.source, MessageOrigin(topic: message.topic, partition: message.partition, offset: message.offset)))
                itemMessages[request.requestID] = message
            } catch let error as MessageDecodingError {
                guard await deadLetter(message, error) else { return }
            } catch {
                guard await deadLetter(message, MessageDecodingError(.invalidValue, field: "", reason: "\(error)")) else { return }
            }
        }
        let (decided, placed, taken) = await decideOnArrival(items)
        switch await record(items, decided: decided, placed: placed, taken: taken) {
        case .done: break
        case .stopped: return
        case .permanent(let error):
            // One by one, without the decisions on arrival: each request goes through the queue.
            context.logger.warning("a batch of requests was refused; recording them one by one", metadata: [LogKeys.error: "\(error)"])
            for item in items {
                switch await record([item], decided: [:], placed: [:], taken: 0) {
                case .done: continue
                case .stopped: return
                case .permanent(let e):
                    guard let message = itemMessages[item.0.requestID],
                          await deadLetter(message, MessageDecodingError(.invalidValue, field: "", reason: "refused by the database: \(e)")) else { return }
                }
            }
        }
        // Cancels after the batch's requests: a cancel follows its request on the same partition.
        for (cancel, message, signer) in cancels {
            if let signer {
                // A signed cancel acts on its own project's requests only.
                switch await Retry.run("cancel owner", consumer: Self.consumerName, logger: context.logger, progress: context.progress, { try await context.queue.project(of: cancel.requestID) }) {
                case .done(let owner?) where owner != signer:
                    guard await deadLetter(message, MessageDecodingError(.invalidValue, field: "msg.request_id", reason: "the request belongs to another project than the signer '\(signer)'")) else { return }
                    continue
                case .stopped: return
                default: break
                }
            }
            let outcome = await Retry.run("cancel", consumer: Self.consumerName, logger: context.logger, progress: context.progress) {
                if let (finished, strays) = try await context.queue.cancel(id: cancel.requestID, reason: cancel.reason, withdraw: cancel.withdraw) {
                    context.view.release(requestID: cancel.requestID)
                    for s in strays { context.sendRemove(s) }
                    context.publish(finished)
                    context.wakeup.signal()
                } else {
                    context.logger.info("cancel of an unknown or ended request ignored", metadata: [LogKeys.requestID: .string(cancel.requestID)])
                }
            }
            switch outcome {
            case .done: continue
            case .stopped: return
            case .permanent(let e):
                guard await deadLetter(message, MessageDecodingError(.invalidValue, field: "", reason: "refused by the database: \(e)")) else { return }
            }
        }
        for message in batch {
            do { try consumer.storeOffset(message) } catch {
                // The partition moved to another member, which reads the message again; recording is idempotent.
                context.logger.warning("offset not stored", metadata: [LogKeys.error: "\(error)"])
            }
        }
        ingestTimer.recordNanoseconds((ContinuousClock.now - start).nanoseconds)
    }

    /// Records requests as received (and those decided on arrival as applying), then sends
    /// the decided ones' apply commands.
    func record(
        _ items: [(ScheduleRequest, Endpoint, MessageOrigin?)], decided: [String: IngestDecision],
        placed: [String: (ClaimedRequest, [PlacementPart])], taken: Int
    ) async -> Retry.Outcome<Void> {
        guard !items.isEmpty else {
            context.settleInFlight(taken: taken, used: 0)
            return .done(())
        }
        let outcome = await Retry.run("recording requests", consumer: Self.consumerName, logger: context.logger, progress: context.progress) {
            try await context.queue.recordReceived(items, decided: decided, owner: context.settings.instance)
        }
        guard case .done(let (new, applying)) = outcome else {
            context.settleInFlight(taken: taken, used: 0)
            for id in placed.keys { context.view.release(requestID: id) }
            if case .permanent(let e) = outcome { return .permanent(e) }
            return .stopped
        }
        received.increment(by: new.count)
        duplicates.increment(by: items.count - new.count)
        onArrival.increment(by: applying.count)
        context.settleInFlight(taken: taken, used: applying.count)
        for (id, (req, parts)) in placed {
            guard applying.contains(id) else {
                context.view.release(requestID: id)
                continue
            }
            let namespace = KubeNames.namespace(project: req.project, parameters: req.parameters)
            for part in parts {
                context.sendApply(requestID: id, attempt: 1, policy: req.policy, namespace: namespace, workload: req.workload, part: part)
            }
        }
        if new.count > applying.count { context.queuedWork() }
        return .done(())
    }

    /// Places the batch's requests at once when the queue holds nothing due and in-flight
    /// slots are free (fast ones first, as the queue would take them). Only placements are
    /// kept; anything else (unschedulable, rejected, a pod to look up) goes through the
    /// queue, whose worker decides again and records the outcome. Placements are reserved
    /// in the view like a claimed request's.
    func decideOnArrival(_ items: [(ScheduleRequest, Endpoint, MessageOrigin?)]) async
        -> (decided: [String: IngestDecision], placed: [String: (ClaimedRequest, [PlacementPart])], taken: Int)
    {
        guard context.settings.dispatchOnArrival, !items.isEmpty, !context.queueMayHoldWork.load(ordering: .relaxed),
              await context.viewIsComplete() else { return ([:], [:], 0) }
        var seen = Set<String>()
        let unique = items.filter { seen.insert($0.0.requestID).inserted }
        let ordered = unique.filter { $0.0.fast } + unique.filter { !$0.0.fast }
        guard let taken = try? await context.takeInFlight(upTo: ordered.count), taken > 0 else { return ([:], [:], 0) }
        context.view.expireReservations()
        var decided: [String: IngestDecision] = [:]
        var placed: [String: (ClaimedRequest, [PlacementPart])] = [:]
        var requirements: [String: WorkloadRequirements] = [:]
        for (req, source, _) in ordered.prefix(taken) {
            let claim = ClaimedRequest(
                id: req.requestID, policy: req.policy, project: req.projectName, workload: req.workload, parameters: req.parameters,
                source: EnvelopeCodec.endpointJSON(source), sourceNode: nil, podLookupAt: nil, attempt: 1, failCount: 0,
                callbackURL: req.callbackURL, queueClass: req.fast ? "fast" : "base")
            guard case .apply(let parts, let candidates, let reason)? = try? await context.decide(claim, &requirements) else { continue }
            if let r = requirements[req.requestID] { context.view.reserve(requestID: req.requestID, parts: parts, perReplica: r.perReplica) }
            decided[req.requestID] = IngestDecision(parts: parts, candidates: candidates, reason: reason)
            placed[req.requestID] = (claim, parts)
        }
        return (decided, placed, taken)
    }

    /// Dead-letters a message, retrying until the broker takes it; false when the service
    /// stops first (then nothing after it may be acknowledged).
    func deadLetter(_ message: KafkaMessage, _ error: MessageDecodingError) async -> Bool {
        guard await deadLetters.deadLetterRetrying(message, error: error, code: error.code.description, field: error.field, consumer: Self.consumerName, progress: context.progress) else {
            return false
        }
        deadLettered.increment()
        return true
    }
}

// MARK: - Dispatcher

/// A policy worker: claims requests from the queue (retry slice, then fast, then base, within
/// the in-flight cap), runs the policy against the fresh cluster view, records the decision
/// and sends the apply commands. Woken by ingest and replies; otherwise polls.
public struct Dispatcher: Service {
    let context: SchedulerContext
    let cycleCounter = Counter(label: "gedge_scheduler_dispatch_cycles_total")
    public init(context: SchedulerContext) { self.context = context }

    public func run() async throws {
        let running = RunFlag(true)
        await withTaskCancellationOrGracefulShutdownHandler {
            while running.isSet {
                do {
                    var more = true
                    while more && running.isSet { more = try await cycle() }
                } catch {
                    context.logger.error("dispatch cycle failed", metadata: [LogKeys.error: "\(error)"])
                    try? await Task.sleep(for: .milliseconds(500))
                }
                await context.wakeup.wait(timeout: context.settings.pollInterval)
            }
        } onCancelOrGracefulShutdown: {
            running.set(false)
            context.wakeup.signal()
        }
        context.logger.info("dispatcher stopped")
    }

    /// One cycle. Returns true when the queue may hold more work right now.
    func cycle() async throws -> Bool {
        guard await context.viewIsComplete() else { return false }
        // Woken with nothing queued here (completions freeing slots): the queue is looked at
        // only on the poll, which also finds what other replicas queued or backoffs released.
        let now = ContinuousClock.now
        if !context.queueMayHoldWork.load(ordering: .relaxed),
           let last = context.lastClaim.withLock({ $0 }), now - last < context.settings.pollInterval {
            return false
        }
        context.lastClaim.withLock { $0 = now }
        let budget = try await context.takeInFlight(upTo: context.settings.queue.cycleSize)
        guard budget > 0 else { return false }
        let claimed: [ClaimedRequest]
        do {
            claimed = try await context.queue.claim(owner: context.settings.instance, limit: budget)
        } catch {
            context.settleInFlight(taken: budget, used: 0)
            throw error
        }
        context.settleInFlight(taken: budget, used: claimed.count)
        if claimed.count < budget { context.queueMayHoldWork.store(false, ordering: .relaxed) }
        guard !claimed.isEmpty else { return false }
        cycleCounter.increment()
        context.view.expireReservations()
        var decisions: [(ClaimedRequest, DispatchOutcome)] = []
        var requirements: [String: WorkloadRequirements] = [:]
        var lookups: [(String, String, String)] = []
        for req in claimed {
            let outcome = try await context.decide(req, &requirements)
            if case .awaitPodLookup(let cluster, let pod, _) = outcome { lookups.append((req.id, cluster, pod)) }
            // Reserved at once, so that the next decision of this cycle sees it.
            if case .apply(let parts, _, _) = outcome, let r = requirements[req.id] {
                context.view.reserve(requestID: req.id, parts: parts, perReplica: r.perReplica)
            }
            decisions.append((req, outcome))
        }
        let send: Set<String>
        let finished: [FinishedRequest]
        do {
            (send, finished) = try await context.queue.record(owner: context.settings.instance, decisions)
        } catch {
            for (req, _) in decisions { context.view.release(requestID: req.id) }
            throw error
        }
        for (req, outcome) in decisions {
            guard case .apply(let parts, _, _) = outcome else { continue }
            guard send.contains(req.id) else {
                context.view.release(requestID: req.id)
                continue
            }
            for part in parts {
                context.sendApply(
                    requestID: req.id, attempt: req.attempt, policy: req.policy,
                    namespace: KubeNames.namespace(project: req.project, parameters: req.parameters), workload: req.workload, part: part)
            }
        }
        for (id, cluster, pod) in lookups { context.sendPodLookup(requestID: id, cluster: cluster, pod: pod) }
        for f in finished { context.publish(f) }
        // Whatever was not sent left scheduling: rejected, or back in the queue.
        context.inFlightChanged(by: -(claimed.count - send.count))
        return claimed.count >= budget
    }
}

// MARK: - Replies

/// Consumes the agents' replies (shared by every replica in one group): successes complete
/// requests in batches; a failure moves the request to its next candidate, back to the queue
/// or to failed. Stale successes are undone on their cluster.
public struct ReplyHandler: Service {
    let consumer: KafkaConsumer
    let context: SchedulerContext
    let deadLetters: KafkaDeadLetterPublisher
    let replies = Counter(label: "gedge_scheduler_replies_total")

    public init(consumer: KafkaConsumer, context: SchedulerContext, deadLetters: KafkaDeadLetterPublisher) {
        self.consumer = consumer
        self.context = context
        self.deadLetters = deadLetters
    }

    public func run() async throws {
        try await withTaskCancellationOrGracefulShutdownHandler {
            while true {
                let batch = await consumer.nextBatch(max: 500)
                if batch.isEmpty { break }
                await handle(batch)
            }
        } onCancelOrGracefulShutdown: {
            consumer.stopPolling()
        }
        try await consumer.close()
        context.logger.info("reply handler stopped; offsets committed")
    }

    static let consumerName = "scheduler.replies"

    func handle(_ batch: [KafkaMessage]) async {
        var applied: [(ApplyOutcome, KafkaMessage)] = []
        var failed: [(ApplyOutcome, KafkaMessage)] = []
        var podNodes: [(String, String?, KafkaMessage)] = []
        for message in batch {
            replies.increment()
            do {
                let env = try context.codec.decode(message)
                guard env.lcode == .reply else {
                    throw MessageDecodingError(.invalidValue, field: "lcode", reason: "the replies topic takes lcode 2")
                }
                switch env.hcode {
                case .applyLowLatency, .applyMostRequested, .applySelectedCluster:
                    let o = try ApplyOutcome.decode(env.msg)
                    guard o.action == .apply else { continue }
                    context.view.confirm(requestID: o.requestID, cluster: o.cluster, ok: o.ok)
                    if o.ok { applied.append((o, message)) } else { failed.append((o, message)) }
                case .nodeOfPod:
                    let r = try FieldReader(env.msg, path: "msg")
                    podNodes.append((try r.string("request_id"), try r.optionalString("node"), message))
                case .error:
                    context.logger.warning("agent error", metadata: ["msg": "\(env.msg)", LogKeys.requestID: .string(message.keyString ?? "")])
                default:
                    context.logger.debug("reply ignored", metadata: ["hcode": "\(env.hcode)"])
                }
            } catch let error as MessageDecodingError {
                guard await deadLetter(message, error) else { return }
            } catch {
                guard await deadLetter(message, MessageDecodingError(.invalidValue, field: "", reason: "\(error)")) else { return }
            }
        }
        guard await perform("record applies", applied, { list in
            let (completed, strays) = try await context.queue.recordApplied(list)
            for f in completed { context.publish(f) }
            context.inFlightChanged(by: -completed.count)
            // Completions free in-flight slots: a dispatcher held by the cap may go on.
            if !completed.isEmpty { context.wakeup.signal() }
            for s in strays { context.sendRemove(s) }
        }) else { return }
        for (o, message) in failed {
            guard await perform("record a failed apply", [(o, message)], { _ in
                let (step, strays) = try await context.queue.recordFailed(o)
                for s in strays { context.sendRemove(s) }
                switch step {
                case .ignore: break
                case .next(let attempt, let parts, let policy, let workload, let namespace):
                    for p in parts { context.sendApply(requestID: o.requestID, attempt: attempt, policy: policy, namespace: namespace, workload: workload, part: p) }
                case .requeued:
                    context.inFlightChanged(by: -1)
                    context.queuedWork()
                case .finished(let f):
                    context.inFlightChanged(by: -1)
                    context.publish(f)
                }
            }) else { return }
        }
        for (id, node, message) in podNodes {
            guard await perform("record a pod's node", [((id, node), message)], { _ in
                try await context.queue.recordPodNode(requestID: id, node: node)
            }) else { return }
            context.queuedWork()
        }
        for m in batch { try? consumer.storeOffset(m) }
    }

    /// Runs `body` over `items` with the retry policy. A permanent error splits them: each is
    /// tried alone, and one that still fails is dead-lettered with the reason. False when the
    /// service stops first (nothing more may be acknowledged).
    func perform<T>(_ what: String, _ items: [(T, KafkaMessage)], _ body: ([T]) async throws -> Void) async -> Bool {
        guard !items.isEmpty else { return true }
        switch await Retry.run(what, consumer: Self.consumerName, logger: context.logger, progress: context.progress, { try await body(items.map(\.0)) }) {
        case .done: return true
        case .stopped: return false
        case .permanent(let error):
            guard items.count > 1 else {
                return await deadLetter(items[0].1, MessageDecodingError(.invalidValue, field: "", reason: "refused by the database: \(error)"))
            }
            for item in items {
                guard await perform(what, [item], body) else { return false }
            }
            return true
        }
    }

    func deadLetter(_ message: KafkaMessage, _ error: MessageDecodingError) async -> Bool {
        await deadLetters.deadLetterRetrying(message, error: error, code: error.code.description, field: error.field, consumer: Self.consumerName, progress: context.progress)
    }
}

// MARK: - Cluster status and leases

/// Keeps the cluster view from the agents' reports (hcode 600). Every replica reads every
/// report: its own group, from the end of the topic (`consumerConfiguration`), committing
/// nothing. Snapshots replace a cluster's state; deltas are applied onto the report they
/// follow (`StatusAssembler`); a delta that does not follow (a lost report, a restarted
/// agent, this replica started mid-stream) asks the agent for a snapshot (hcode 601, at most
/// once a second per cluster) with `snapshots`, and the cluster keeps what it had, growing
/// stale as it would had the agent stopped.
public struct ClusterStatusListener: Service {
    /// The consumer a view reads the reports with: a group of its own, `group`, that starts at
    /// the end of `topic`. A view is whole a round trip after it starts for the clusters it
    /// knows (`known`, asked at once) and one report interval after it for the others (their
    /// next report is a snapshot, or a delta that asks for one). Reading what the
    /// topic retains instead would grow with its retention (an hour of a fleet's reports in
    /// the shipped topics) and, on the local broker, which drops a partition's oldest batch
    /// at every append past about 5 MB, would start on a batch about to go: out of range,
    /// reset to the new start after `fetch.error.backoff.ms`, out of range again, and
    /// nothing read while agents report.
    public static func consumerConfiguration(client: KafkaConfiguration, group: String, topic: String) -> KafkaConsumerConfiguration {
        var c = KafkaConsumerConfiguration(client: client, groupID: group, topics: [topic])
        c.autoOffsetReset = "latest"
        return c
    }

    let consumer: KafkaConsumer
    let view: ClusterView
    let logger: Logger
    let snapshots: KafkaProducer?
    let source: String
    /// The clusters the view should hold (those bound to a project), asked for a snapshot as
    /// soon as the consumer reads: the view is whole within a round trip of its start, not
    /// at each cluster's next report. Others are asked at their first delta.
    let known: (@Sendable () async throws -> [String])?
    let codec = EnvelopeCodec()
    /// Reports by cluster, for a cluster that stops reporting to be seen; the names come
    /// from messages, so past `maxLabelledClusters` they are counted as `other`.
    static let maxLabelledClusters = 1024
    /// Snapshots asked of agents a second, at most: a view (which starts at the end of the
    /// topic) is whole a few seconds after a start at a few thousand clusters (each asked
    /// once, at the start or at its first delta), and a 5,000-cluster fleet of 20-node clusters
    /// answers with about 6 MB a second for those seconds.
    static let snapshotAsksPerSecond = 1_000
    let snapshotRequests = Counter(label: "gedge_cluster_snapshot_requests_total")

    public init(consumer: KafkaConsumer, view: ClusterView, snapshots: KafkaProducer? = nil, source: String = "scheduler",
                known: (@Sendable () async throws -> [String])? = nil, logger: Logger) {
        self.consumer = consumer
        self.view = view
        self.snapshots = snapshots
        self.source = source
        self.known = known
        self.logger = logger
    }

    /// A scheduler replica's: the clusters bound to projects are asked for at its start.
    public init(consumer: KafkaConsumer, context: SchedulerContext) {
        self.init(consumer: consumer, view: context.view, snapshots: context.producer, source: "scheduler",
                  known: Self.boundClusters(context.queue), logger: context.logger)
    }

    /// The clusters bound to any project (`project_clusters`), for `known`.
    public static func boundClusters(_ queue: RequestQueue) -> @Sendable () async throws -> [String] {
        { Array(Set(try await queue.projectClusters().values.flatMap { $0 })) }
    }

    /// Whom was asked when, and the asks of the current second: at most once a second per
    /// cluster, `snapshotAsksPerSecond` in all. Shared by the reports' loop and the asks at
    /// start.
    final class Pacing: Sendable {
        private let state = Mutex<(asked: [String: ContinuousClock.Instant], window: ContinuousClock.Instant, count: Int)>(([:], .now, 0))

        /// Whether `cluster` may be asked now (and if so, it counts as asked); else how long
        /// until the next second's asks, or nil when it was asked within the second.
        func take(_ cluster: String, perSecond: Int) -> (granted: Bool, retryIn: Duration?) {
            state.withLock { s in
                let now = ContinuousClock.now
                if let last = s.asked[cluster], now - last < .seconds(1) { return (false, nil) }
                if now - s.window >= .seconds(1) { (s.window, s.count) = (now, 0) }
                guard s.count < perSecond else { return (false, s.window + .seconds(1) - now) }
                s.count += 1
                // Names come from messages: the memory of whom was asked stays bounded.
                if s.asked.count >= 10_000 { s.asked = s.asked.filter { now - $0.value < .seconds(1) } }
                s.asked[cluster] = now
                return (true, nil)
            }
        }
    }

    /// Asks `cluster`'s agent for a whole snapshot (hcode 601 on its command topic). Not
    /// waited for: a scheduler that restarts among thousands of clusters asks them all while
    /// it reads on.
    func ask(_ cluster: String, producer: KafkaProducer) async {
        snapshotRequests.increment()
        let ask = Envelope(source: .cluster(source), target: .cluster(cluster), hcode: .statusSnapshot, lcode: .request,
                           msg: .object(["cluster": .string(cluster)]))
        let record = KafkaRecord(topic: Topics.agentCommands(cluster: cluster), key: cluster, value: codec.encode(ask))
        let onDelivery: @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void = { [logger] result in
            if case .failure(let error) = result {
                logger.warning("snapshot not asked for", metadata: [LogKeys.cluster: .string(cluster), LogKeys.error: "\(error)"])
            }
        }
        do {
            try producer.enqueue(record, onDelivery: onDelivery)
        } catch {
            // The producer's queue is full: wait for room this once.
            do { _ = try await producer.send(record) } catch {
                logger.warning("snapshot not asked for", metadata: [LogKeys.cluster: .string(cluster), LogKeys.error: "\(error)"])
            }
        }
    }

    /// The known clusters, asked once the consumer holds its partitions (and has had a moment
    /// to find their end, where it starts): a snapshot written before that would not be read.
    /// Paced as the other asks, waiting for the next second rather than dropping any.
    func askKnown(_ known: @Sendable () async throws -> [String], producer: KafkaProducer, pacing: Pacing) async {
        while (try? consumer.assignment())?.isEmpty ?? true {
            guard (try? await Task.sleep(for: .milliseconds(50))) != nil else { return }
        }
        guard (try? await Task.sleep(for: .milliseconds(250))) != nil else { return }
        let names: [String]
        do { names = try await known() } catch {
            logger.warning("the clusters to ask for snapshots could not be read; each is asked at its first report", metadata: [LogKeys.error: "\(error)"])
            return
        }
        let held = Set(view.all().map(\.0.name))
        var asked = 0
        for cluster in names.sorted() where KubeNames.isDNSLabel(cluster) && !held.contains(cluster) {
            while true {
                let (granted, retryIn) = pacing.take(cluster, perSecond: Self.snapshotAsksPerSecond)
                if granted {
                    await ask(cluster, producer: producer)
                    asked += 1
                }
                guard let retryIn else { break }
                guard (try? await Task.sleep(for: retryIn)) != nil else { return }
            }
        }
        logger.info("snapshots asked of the known clusters", metadata: ["clusters": "\(asked)"])
    }

    public func run() async throws {
        var counters: [String: Counter] = [:]
        func reportCounter(_ cluster: String) -> Counter {
            if let counter = counters[cluster] { return counter }
            let name = counters.count < Self.maxLabelledClusters ? cluster : "other"
            let counter = counters[name] ?? Counter(label: "gedge_cluster_reports_total", dimensions: [("cluster", name)])
            counters[name] = counter
            return counter
        }
        var assembler = StatusAssembler()
        let pacing = Pacing()
        let atStart = snapshots.flatMap { producer in known.map { known in Task { await askKnown(known, producer: producer, pacing: pacing) } } }
        defer { atStart?.cancel() }
        try await withTaskCancellationOrGracefulShutdownHandler {
            for await message in consumer {
                do {
                    let env = try codec.decode(message)
                    guard env.hcode == .clusterStatus else { continue }
                    switch assembler.apply(try ClusterReport.decode(env.msg)) {
                    case .updated(let state):
                        if view.update(state) { reportCounter(state.name).increment() }
                    case .needSnapshot(let cluster):
                        guard KubeNames.isDNSLabel(cluster), let producer = snapshots else { continue }
                        // At most once a second per cluster and `snapshotAsksPerSecond` in all: a
                        // restart among thousands of clusters asks them over a few seconds, not in
                        // one burst that the broker and the agents take all at once; a cluster not
                        // asked now is asked at its next delta.
                        guard pacing.take(cluster, perSecond: Self.snapshotAsksPerSecond).granted else { continue }
                        await ask(cluster, producer: producer)
                    case .ignored:
                        break
                    }
                } catch {
                    logger.warning("cluster report ignored", metadata: [LogKeys.error: "\(error)"])
                }
            }
        } onCancelOrGracefulShutdown: {
            consumer.stopPolling()
        }
        atStart?.cancel()
        try await consumer.close()
    }
}

/// Re-queues requests whose lease passed, every `interval`.
public struct LeaseReaper: Service {
    let context: SchedulerContext
    let interval: Duration
    let expired = Counter(label: "gedge_scheduler_leases_expired_total")

    public init(context: SchedulerContext, interval: Duration = .seconds(1)) {
        self.context = context
        self.interval = interval
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let (requeued, finished, strays) = try await context.queue.reapExpired()
                if requeued + finished.count > 0 {
                    expired.increment(by: requeued + finished.count)
                    context.logger.warning("leases expired", metadata: ["requeued": "\(requeued)", "failed": "\(finished.count)"])
                    context.queuedWork()
                }
                for f in finished { context.publish(f) }
                for s in strays { context.sendRemove(s) }
            } catch {
                context.logger.error("lease check failed", metadata: [LogKeys.error: "\(error)"])
            }
            await Task.sleepUnlessShuttingDown(for: interval)
        }
    }
}

/// The scheduler's state as gauges, sampled every `interval`: the queue's depth by class
/// (`retry`, `fast`, `base`; the same for every replica: the queue is shared), requests in
/// scheduling or applying, each cluster's report age, and each consumer group's lag.
public struct SchedulerGauges: Service {
    let context: SchedulerContext
    let lag: [(reader: KafkaLagReader, topic: String)]
    let interval: Duration

    public init(context: SchedulerContext, lag: [(reader: KafkaLagReader, topic: String)], interval: Duration = .seconds(15)) {
        self.context = context
        self.lag = lag
        self.interval = interval
    }

    public func run() async throws {
        var reportAges: [String: Gauge] = [:]
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await sample(&reportAges)
            await Task.sleepUnlessShuttingDown(for: interval)
        }
    }

    func sample(_ reportAges: inout [String: Gauge]) async {
        do {
            let rows = try await context.queue.pool.query(
                """
                SELECT CASE WHEN fail_count > $1 THEN 'retry' WHEN fast THEN 'fast' ELSE 'base' END AS class, count(*) AS n
                FROM schedule_requests WHERE state = 'enqueued' GROUP BY 1
                """, [.int(context.queue.policy.retryAfterFailures)])
            var depth: [String: Int] = ["retry": 0, "fast": 0, "base": 0]
            for r in rows { depth[try r.decode("class", as: String.self)] = try r.decode("n", as: Int.self) }
            for (cls, n) in depth { Gauge(label: "gedge_scheduler_queue_depth", dimensions: [("class", cls)]).record(n) }
            Gauge(label: "gedge_scheduler_in_flight").record(try await context.queue.inFlight())
        } catch {
            context.logger.debug("queue gauges not sampled", metadata: [LogKeys.error: "\(error)"])
        }
        let all = context.view.all()
        let limit = Double(context.view.staleAfter.milliseconds) / 1000
        let ages = all.map(\.age).sorted()
        Gauge(label: "gedge_cluster_view_clusters", dimensions: [("state", "fresh")]).record(ages.filter { $0 <= limit }.count)
        Gauge(label: "gedge_cluster_view_clusters", dimensions: [("state", "stale")]).record(ages.filter { $0 > limit }.count)
        for (q, name) in [(0.5, "0.5"), (0.99, "0.99"), (1.0, "1")] where !ages.isEmpty {
            let at = min(ages.count - 1, max(0, Int((Double(ages.count) * q).rounded(.up)) - 1))
            Gauge(label: "gedge_cluster_view_report_age_seconds", dimensions: [("quantile", name)]).record(ages[at])
        }
        for (state, age) in all {
            // Names come from reports: a bounded number of them get a series.
            guard reportAges[state.name] != nil || reportAges.count < ClusterStatusListener.maxLabelledClusters else { continue }
            let g = reportAges[state.name] ?? Gauge(label: "gedge_cluster_report_age_seconds", dimensions: [("cluster", state.name)])
            reportAges[state.name] = g
            g.record(age)
        }
        for (reader, topic) in lag {
            do {
                let n = try await reader.lag(topic: topic)
                Gauge(label: "gedge_kafka_consumer_lag", dimensions: [("group", reader.group), ("topic", topic)]).record(n)
            } catch {
                context.logger.debug("lag not sampled", metadata: [LogKeys.error: "\(error)", "kafka.group": .string(reader.group)])
            }
        }
    }
}
