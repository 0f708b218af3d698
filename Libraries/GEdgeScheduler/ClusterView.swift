import Foundation
import GEdgeCore
import GEdgePlacement
import Synchronization

/// The scheduler's in-memory picture of every cluster, from the agents' status reports.
///
/// A cluster whose last report is older than `staleAfter` (by the agent's own timestamp) is
/// left out of decisions. Placements this scheduler made and that a report may not show yet
/// are kept as reservations on the node, like kube-scheduler's assumed pods, until a report
/// generated after the agent answered arrives, or `reservationTTL` passes. Other replicas'
/// placements are checked by the agent, which refuses what no longer fits.
public final class ClusterView: Sendable {
    struct Reservation {
        var cluster: String
        var node: String?
        var resources: Resources
        var created: Date
        var confirmed: Date?
    }

    struct State {
        var reported: [String: ClusterState] = [:]
        /// Each cluster's report with this scheduler's reservations added, in name order:
        /// what decisions see, handed out without a copy or a sort while every cluster is fresh.
        var effective: [ClusterState] = []
        var position: [String: Int] = [:]
        var nodeIndex: [String: [String: Int]] = [:]
        var reservations: [String: [Reservation]] = [:]
        /// The requests holding a reservation on each cluster: a report looks only at its own
        /// cluster's, however many thousands are held.
        var reservedOn: [String: Set<String>] = [:]
        var lastExpiry: Date?
        /// No effective state was reported before this (nil: not known): a report only ever
        /// replaces an older one, so the bound holds until a state older than it is set.
        var reportedSince: Date?
        /// Decisions ranking over `effective` now (`withFresh`). While any does, changes wait
        /// here in order instead of copying all of `effective` (5,000 states at edge scale)
        /// under the reader; the next snapshot or the last reader to leave applies them.
        var readers = 0
        var pending: [Change] = []
    }

    /// A change to `effective`, applied in the order it was made.
    enum Change {
        /// A cluster's state replaced, or inserted in name order.
        case set(ClusterState)
        /// A reservation added (sign 1) or removed (-1) on a node, by its index in the
        /// cluster's state as set by then.
        case adjust(cluster: String, node: Int, resources: Resources, sign: Int)
    }

    /// Changes held while decisions read: past this many, they are applied at once (a copy).
    static let pendingLimit = 4096

    private let state = Mutex(State())
    public let staleAfter: Duration
    public let reservationTTL: Duration

    public init(staleAfter: Duration = .seconds(15), reservationTTL: Duration = .seconds(30)) {
        self.staleAfter = staleAfter
        self.reservationTTL = reservationTTL
    }

    /// Takes a report; an older one than what is held (by sequence, then time) is ignored.
    @discardableResult
    public func update(_ report: ClusterState) -> Bool {
        state.withLock { s in
            if let old = s.reported[report.name], report.reportedAt < old.reportedAt || (report.reportedAt == old.reportedAt && report.sequence <= old.sequence) {
                return false
            }
            s.reported[report.name] = report
            var idx: [String: Int] = [:]
            for (i, n) in report.nodes.enumerated() { idx[n.name] = i }
            s.nodeIndex[report.name] = idx
            // Drop reservations the report already accounts for (a request's list is copied
            // only when it holds one: thousands are held at a time).
            func accounted(_ r: Reservation) -> Bool { r.cluster == report.name && (r.confirmed.map { $0 < report.reportedAt } ?? false) }
            for id in s.reservedOn[report.name] ?? [] {
                guard let list = s.reservations[id], list.contains(where: accounted) else { continue }
                s.setReservations(id, list.filter { !accounted($0) }, was: list)
            }
            let effective = Self.apply(report, s.reservations(on: report.name), idx)
            // The capacity summary is computed here, as the report arrives, not by the next decision.
            _ = effective.capacity
            s.setEffective(effective)
            return true
        }
    }

    static func apply(_ report: ClusterState, _ reservations: some Sequence<Reservation>, _ idx: [String: Int]) -> ClusterState {
        var c = report
        for r in reservations { add(&c, r, idx, sign: 1) }
        return c
    }

    static func add(_ c: inout ClusterState, _ r: Reservation, _ idx: [String: Int], sign: Int) {
        guard let node = r.node, let i = idx[node], i < c.nodes.count else { return }
        c.nodes[i].requested = sign > 0 ? c.nodes[i].requested + r.resources : c.nodes[i].requested - r.resources
    }

    /// Adds or removes a reservation in the held state, in place (no copy of the node list
    /// when no snapshot of it is alive).
    static func adjust(_ s: inout State, _ r: Reservation, sign: Int) {
        guard let node = r.node, let i = s.nodeIndex[r.cluster]?[node] else { return }
        s.change(.adjust(cluster: r.cluster, node: i, resources: r.resources, sign: sign))
    }

    /// Clusters with a fresh report, with this scheduler's reservations added: a snapshot,
    /// which the view's next change copies whole while it is alive (prefer `withFresh`).
    public func fresh(now: Date = Date()) -> [ClusterState] {
        let oldest = now.addingTimeInterval(-Double(staleAfter.milliseconds) / 1000)
        return state.withLock { s in s.fresh(since: oldest) }
    }

    /// Runs `body` over the fresh clusters (as `fresh`) without holding the view: reports
    /// and reservations never wait for a decision (a blocking wait would hold one of the
    /// few threads every task shares). Changes made while it runs are held in order and
    /// applied in place once no decision reads, so a decision does not make the next
    /// report or reservation copy every cluster's state. `body` must not keep the array.
    public func withFresh<R>(now: Date = Date(), _ body: ([ClusterState]) -> R) -> R {
        let oldest = now.addingTimeInterval(-Double(staleAfter.milliseconds) / 1000)
        let result: R
        do {
            let snapshot = state.withLock { s in
                s.readers += 1
                return s.fresh(since: oldest)
            }
            result = body(snapshot)
        }
        state.withLock { s in
            s.readers -= 1
            if s.readers == 0 { s.applyPending() }
        }
        return result
    }

    /// Every cluster reported, fresh or not, with the age of its report.
    public func all(now: Date = Date()) -> [(ClusterState, age: TimeInterval)] {
        state.withLock { s in s.reported.values.sorted { $0.name < $1.name }.map { ($0, now.timeIntervalSince($0.reportedAt)) } }
    }

    /// How many clusters have reported, fresh or not (without copying or sorting them).
    public var reportedCount: Int { state.withLock { $0.reported.count } }

    public func reserve(requestID: String, parts: [PlacementPart], perReplica: Resources, now: Date = Date()) {
        state.withLock { s in
            for p in parts where p.node != nil {
                let r = Reservation(cluster: p.cluster, node: p.node, resources: perReplica * p.replicas, created: now)
                s.reservations[requestID, default: []].append(r)
                s.reservedOn[r.cluster, default: []].insert(requestID)
                Self.adjust(&s, r, sign: 1)
            }
        }
    }

    /// Drops a request's reservations at once (its decision was not recorded).
    public func release(requestID: String) {
        state.withLock { s in
            guard let list = s.reservations[requestID] else { return }
            s.setReservations(requestID, [], was: list)
            for r in list { Self.adjust(&s, r, sign: -1) }
        }
    }

    /// The agent answered: success keeps the reservation until a later report shows the pods;
    /// failure drops it at once.
    public func confirm(requestID: String, cluster: String, ok: Bool, now: Date = Date()) {
        state.withLock { s in
            guard let held = s.reservations[requestID] else { return }
            var list = held
            for i in list.indices where list[i].cluster == cluster {
                if ok {
                    list[i].confirmed = now
                } else {
                    Self.adjust(&s, list[i], sign: -1)
                }
            }
            if !ok { list.removeAll { $0.cluster == cluster } }
            s.setReservations(requestID, list, was: held)
        }
    }

    /// Drops reservations older than the TTL (their answer went to another replica, or never
    /// came). Looks at most every `expiryCheck` (every decision batch calls it; a TTL of
    /// seconds needs no finer check).
    public func expireReservations(now: Date = Date()) {
        let ttl = Double(reservationTTL.milliseconds) / 1000
        state.withLock { s in
            if let last = s.lastExpiry, now >= last, now.timeIntervalSince(last) < Self.expiryCheck { return }
            s.lastExpiry = now
            func expired(_ r: Reservation) -> Bool { now.timeIntervalSince(r.created) >= ttl }
            var touched = Set<String>()
            for (id, list) in s.reservations where list.contains(where: expired) {
                for r in list where expired(r) { touched.insert(r.cluster) }
                s.setReservations(id, list.filter { !expired($0) }, was: list)
            }
            for name in touched {
                if let rep = s.reported[name], let idx = s.nodeIndex[name] {
                    s.setEffective(Self.apply(rep, s.reservations(on: name), idx))
                }
            }
        }
    }

    static let expiryCheck: TimeInterval = 0.25

    public var reservationCount: Int { state.withLock { $0.reservations.values.reduce(0) { $0 + $1.count } } }
}


extension ClusterView.State {
    /// This scheduler's reservations on one cluster.
    func reservations(on cluster: String) -> [ClusterView.Reservation] {
        var out: [ClusterView.Reservation] = []
        for id in reservedOn[cluster] ?? [] {
            for r in reservations[id] ?? [] where r.cluster == cluster { out.append(r) }
        }
        return out
    }

    /// Replaces a request's reservations (`was`, what it held) and keeps the index by
    /// cluster in step; an empty list drops the request.
    mutating func setReservations(_ id: String, _ list: [ClusterView.Reservation], was: [ClusterView.Reservation]) {
        reservations[id] = list.isEmpty ? nil : list
        for cluster in Set(was.map(\.cluster)) where !list.contains(where: { $0.cluster == cluster }) {
            reservedOn[cluster]?.remove(id)
            if reservedOn[cluster]?.isEmpty == true { reservedOn[cluster] = nil }
        }
    }

    /// The effective states reported at `oldest` or later, every change made so far applied.
    mutating func fresh(since oldest: Date) -> [ClusterState] {
        applyPending()
        return allReported(since: oldest) ? effective : effective.filter { $0.reportedAt >= oldest }
    }

    /// Makes a change now, or holds it while decisions read `effective`.
    mutating func change(_ c: ClusterView.Change) {
        if readers > 0 && pending.count < ClusterView.pendingLimit {
            pending.append(c)
            return
        }
        applyPending()
        apply(c)
    }

    /// Applies the held changes in order (in place unless a snapshot is alive).
    mutating func applyPending() {
        guard !pending.isEmpty else { return }
        let changes = pending
        pending.removeAll(keepingCapacity: true)
        for c in changes { apply(c) }
    }

    mutating func apply(_ c: ClusterView.Change) {
        switch c {
        case .set(let state): setEffectiveNow(state)
        case .adjust(let cluster, let node, let resources, let sign):
            guard let at = position[cluster], node < effective[at].nodes.count else { return }
            effective[at].nodes[node].requested.add(resources, sign: sign)
        }
    }

    /// Whether every effective state was reported at `oldest` or later; walks the states
    /// only when the kept bound does not answer.
    mutating func allReported(since oldest: Date) -> Bool {
        if let since = reportedSince, since >= oldest { return true }
        guard let first = effective.first?.reportedAt else { return true }
        let earliest = effective.reduce(first) { min($0, $1.reportedAt) }
        reportedSince = earliest
        return earliest >= oldest
    }

    /// Replaces a cluster's effective state, or inserts it in name order (see `change`).
    mutating func setEffective(_ c: ClusterState) { change(.set(c)) }

    mutating func setEffectiveNow(_ c: ClusterState) {
        if let since = reportedSince, c.reportedAt < since { reportedSince = c.reportedAt }
        if let at = position[c.name] {
            effective[at] = c
            return
        }
        var lo = 0, hi = effective.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if effective[mid].name < c.name { lo = mid + 1 } else { hi = mid }
        }
        effective.insert(c, at: lo)
        for i in lo..<effective.count { position[effective[i].name] = i }
    }
}
