import Foundation
import GEdgeCore

/// A cluster's status report (hcode 600) as it travels: a whole snapshot when an agent
/// starts, when a consumer asks (hcode 601), and every `agent.status.snapshot.every`
/// reports; between them a delta of the nodes that changed since the report before.
///
/// Both carry the agent's `epoch` (new at each start) and `sequence` (one more each
/// report); a delta also `base_sequence`, the report it follows. A consumer applies a
/// delta only onto the report it follows; otherwise (a lost report, a restarted agent, a
/// consumer that started mid-stream) it asks for a snapshot and keeps what it had, which
/// grows stale as it would if the agent had stopped.
public enum ClusterReport: Sendable {
    case snapshot(ClusterState, epoch: String)
    case delta(ClusterDelta)

    public var cluster: String {
        switch self {
        case .snapshot(let s, _): s.name
        case .delta(let d): d.cluster
        }
    }

    /// A report without `mode` is a snapshot (agents before deltas, and GS-Scheduler-era tools).
    public static func decode(_ msg: JSONValue) throws(MessageDecodingError) -> ClusterReport {
        var fields: [String: JSONValue] = [:]
        if case .object(let o) = msg { fields = o }
        let mode = fields["mode"]?.stringValue ?? "snapshot"
        let epoch = fields["epoch"]?.stringValue ?? ""
        guard epoch.utf8.count <= 64 else { throw MessageDecodingError(.invalidValue, field: "msg.epoch", reason: "at most 64 characters") }
        for k in ["mode", "epoch", "base_sequence", "removed"] { fields[k] = nil }
        switch mode {
        case "snapshot":
            return .snapshot(try ClusterState.decode(.object(fields)), epoch: epoch)
        case "delta":
            // The changed nodes are read as a snapshot's nodes are, with the same limits.
            let partial = try ClusterState.decode(.object(fields))
            let r = try FieldReader(msg, path: "msg")
            guard let base = try r.optionalInt("base_sequence") else {
                throw MessageDecodingError(.missingField, field: "msg.base_sequence", reason: "a delta names the report it follows")
            }
            let removed = try r.optionalStringList("removed") ?? []
            guard removed.count <= 100_000 else { throw MessageDecodingError(.invalidValue, field: "msg.removed", reason: "too many names") }
            return .delta(ClusterDelta(
                cluster: partial.name, kind: partial.kind, epoch: epoch, sequence: partial.sequence, baseSequence: Int64(base),
                reportedAt: partial.reportedAt, changed: partial.nodes, removed: removed, coordinate: partial.coordinate,
                measuredLatencyMs: partial.measuredLatencyMs))
        default:
            throw MessageDecodingError(.invalidValue, field: "msg.mode", reason: "'\(mode)' is not snapshot or delta")
        }
    }

    public static func snapshotJSON(_ state: ClusterState, epoch: String) -> JSONValue {
        guard case .object(var o) = state.json else { return state.json }
        o["mode"] = "snapshot"
        o["epoch"] = .string(epoch)
        return .object(o)
    }
}

/// The nodes that changed (added or different) and those that went, since `baseSequence`.
public struct ClusterDelta: Sendable, Hashable {
    public var cluster: String
    public var kind: ClusterKind
    public var epoch: String
    public var sequence: Int64
    public var baseSequence: Int64
    public var reportedAt: Date
    public var changed: [NodeState]
    public var removed: [String]
    public var coordinate: VivaldiCoordinate?
    /// The cluster's own measurements, whole in every report (a few peers).
    public var measuredLatencyMs: [String: Double]

    public init(cluster: String, kind: ClusterKind, epoch: String, sequence: Int64, baseSequence: Int64, reportedAt: Date,
                changed: [NodeState], removed: [String], coordinate: VivaldiCoordinate?, measuredLatencyMs: [String: Double] = [:]) {
        self.cluster = cluster
        self.kind = kind
        self.epoch = epoch
        self.sequence = sequence
        self.baseSequence = baseSequence
        self.reportedAt = reportedAt
        self.changed = changed
        self.removed = removed
        self.coordinate = coordinate
        self.measuredLatencyMs = measuredLatencyMs
    }

    /// From the report before (`previous`, by node name) to `current`.
    public static func between(_ previous: [NodeState], _ current: ClusterState, epoch: String, baseSequence: Int64) -> ClusterDelta {
        let before = Dictionary(previous.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let now = Set(current.nodes.map(\.name))
        return ClusterDelta(
            cluster: current.name, kind: current.kind, epoch: epoch, sequence: current.sequence, baseSequence: baseSequence,
            reportedAt: current.reportedAt, changed: current.nodes.filter { before[$0.name] != $0 },
            removed: previous.map(\.name).filter { !now.contains($0) }, coordinate: current.coordinate, measuredLatencyMs: current.measuredLatencyMs)
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "cluster": .string(cluster), "kind": .string(kind.rawValue), "mode": "delta", "epoch": .string(epoch),
            "sequence": .number(Double(sequence)), "base_sequence": .number(Double(baseSequence)),
            "reported_at": .number((reportedAt.timeIntervalSince1970 * 1000).rounded()),
            "nodes": .array(changed.map(\.json)), "removed": .array(removed.map(JSONValue.string)),
        ]
        if let coordinate { o["coordinate"] = coordinate.json }
        if !measuredLatencyMs.isEmpty { o["latency_ms"] = .object(measuredLatencyMs.mapValues(JSONValue.number)) }
        return .object(o)
    }
}

/// A consumer's side: each cluster's state rebuilt from its snapshot and the deltas after it.
public struct StatusAssembler: Sendable {
    public enum Outcome: Sendable, Equatable {
        /// The cluster's state, up to date.
        case updated(ClusterState)
        /// A delta that does not follow what is held: ask the agent for a snapshot.
        case needSnapshot(String)
        /// Older than what is held, or the same again.
        case ignored
    }

    struct Held: Sendable {
        var epoch: String
        var state: ClusterState
    }
    var held: [String: Held] = [:]

    public init() {}

    public mutating func apply(_ report: ClusterReport) -> Outcome {
        switch report {
        case .snapshot(let state, let epoch):
            if let h = held[state.name], h.epoch == epoch, state.sequence <= h.state.sequence { return .ignored }
            held[state.name] = Held(epoch: epoch, state: state)
            return .updated(state)
        case .delta(let d):
            guard var h = held[d.cluster], h.epoch == d.epoch else { return .needSnapshot(d.cluster) }
            if d.sequence <= h.state.sequence { return .ignored }
            guard d.baseSequence == h.state.sequence else { return .needSnapshot(d.cluster) }
            var nodes = h.state.nodes
            if !d.removed.isEmpty {
                let gone = Set(d.removed)
                nodes.removeAll { gone.contains($0.name) }
            }
            var index: [String: Int] = [:]
            for (i, n) in nodes.enumerated() { index[n.name] = i }
            for n in d.changed {
                if let i = index[n.name] { nodes[i] = n } else { index[n.name] = nodes.count; nodes.append(n) }
            }
            var state = ClusterState(name: d.cluster, kind: d.kind, nodes: nodes, sequence: d.sequence, reportedAt: d.reportedAt)
            state.coordinate = d.coordinate
            state.measuredLatencyMs = d.measuredLatencyMs
            h.state = state
            held[d.cluster] = h
            return .updated(state)
        }
    }
}
