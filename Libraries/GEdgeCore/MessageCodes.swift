/// The high-level code of a message: what it is about. Decimal on the wire; the
/// `"0x0001"` string form that GS-Scheduler's producers send is accepted too.
/// The table is in proto/codes.md.
public struct HCode: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let rawValue: Int
    public init(_ rawValue: Int) { self.rawValue = rawValue }

    /// A schedule request submitted by a producer or the gateway (new in this suite).
    public static let scheduleRequest = HCode(100)
    /// Cancel a schedule request, or withdraw a completed one (new in this suite). Sent to
    /// the requests topic with the request ID as key, so it follows the request it names.
    public static let scheduleCancel = HCode(110)
    /// Latency between a cluster's nodes and other clusters.
    public static let clusterLatency = HCode(200)
    /// Apply a placement chosen by the low-latency policy.
    public static let applyLowLatency = HCode(210)
    /// Free and requested resources of a cluster.
    public static let clusterResources = HCode(300)
    /// Apply a placement chosen by the most-requested policy.
    public static let applyMostRequested = HCode(310)
    /// Apply a placement on user-selected clusters or nodes.
    public static let applySelectedCluster = HCode(400)
    /// Create or delete a project namespace.
    public static let projectNamespace = HCode(520)
    /// Which node hosts a pod.
    public static let nodeOfPod = HCode(530)
    /// A pod's last log lines (new in this suite): gateway → agent, for the console.
    public static let podLogs = HCode(540)
    /// A page of a cluster's objects (pods, deployments, volumes, claims, storage classes,
    /// events), or one of them (new in this suite): gateway → agent.
    public static let inventory = HCode(550)
    /// A cluster's periodic status report from its agent: nodes, resources, labels, taints,
    /// latencies (new in this suite).
    public static let clusterStatus = HCode(600)
    /// A consumer of the status reports asks an agent for a whole snapshot (new in this
    /// suite): its deltas did not follow what it held.
    public static let statusSnapshot = HCode(601)
    /// A node's accelerators, published by the accelerator monitor (new in this suite).
    public static let nodeAccelerators = HCode(610)
    /// Scale a workload to a number of replicas (new in this suite): faas-trigger and
    /// autoscaler → agent.
    public static let scaleWorkload = HCode(700)
    /// A cluster's pod usage by workload, from its agent (new in this suite): agent →
    /// autoscaler.
    public static let podMetrics = HCode(620)
    /// Set a workload's CPU and memory requests and limits (new in this suite): autoscaler →
    /// agent.
    public static let resizeWorkload = HCode(710)
    /// Offered load on a workload of a simulated cluster (new in this suite; simulated
    /// agents only): demo and tests → agent.
    public static let simulateLoad = HCode(790)
    /// An error reply.
    public static let error = HCode(900)

    /// Every code this suite understands, with its name (proto/codes.md is generated from this list's meaning).
    public static let known: [HCode: String] = [
        .scheduleRequest: "schedule-request",
        .scheduleCancel: "schedule-cancel",
        .clusterLatency: "cluster-latency",
        .applyLowLatency: "apply-low-latency",
        .clusterResources: "cluster-resources",
        .applyMostRequested: "apply-most-requested",
        .applySelectedCluster: "apply-selected-cluster",
        .projectNamespace: "project-namespace",
        .nodeOfPod: "node-of-pod",
        .podLogs: "pod-logs",
        .inventory: "inventory",
        .clusterStatus: "cluster-status",
        .statusSnapshot: "status-snapshot",
        .nodeAccelerators: "node-accelerators",
        .scaleWorkload: "scale-workload",
        .podMetrics: "pod-metrics",
        .resizeWorkload: "resize-workload",
        .simulateLoad: "simulate-load",
        .error: "error",
    ]

    public var name: String { HCode.known[self] ?? "unknown" }
    public var description: String { "\(rawValue)(\(name))" }
    public static func < (lhs: HCode, rhs: HCode) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The low-level code: 1 for a request, 2 for its reply.
public enum LCode: Int, Sendable, Hashable, CaseIterable {
    case request = 1
    case reply = 2
}

enum CodeParser {
    /// Reads a code from a JSON number, a decimal string, or a `0x`-prefixed hex string.
    static func parse(_ value: JSONValue, field: String) throws(MessageDecodingError) -> Int {
        switch value {
        case .number(let d):
            guard d.rounded() == d, d >= 0, d <= 0xFFFF else {
                throw MessageDecodingError(.invalidValue, field: field, reason: "code \(d) is not a whole number in 0...65535")
            }
            return Int(d)
        case .string(let s):
            let text = s.trimmingCharacters(in: .whitespaces)
            let parsed: Int?
            if text.lowercased().hasPrefix("0x") {
                parsed = Int(text.dropFirst(2), radix: 16)
            } else {
                parsed = Int(text)
            }
            guard let code = parsed, code >= 0, code <= 0xFFFF else {
                throw MessageDecodingError(.invalidValue, field: field, reason: "'\(s)' is not a code (decimal, or hex as \"0x0001\")")
            }
            return code
        default:
            throw MessageDecodingError(.wrongType, field: field, reason: "expected a number or a code string, got \(value.kindName)")
        }
    }
}

import Foundation
