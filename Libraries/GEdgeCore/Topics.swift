import Foundation

/// The Kafka topics of the suite. Names are configurable; these are the defaults.
public enum Topics {
    /// Schedule requests (hcode 100), keyed by request ID.
    public static let scheduleRequests = "gedge.schedule.requests"
    /// Terminal outcomes of schedule requests (hcode 100, lcode 2), keyed by request ID.
    public static let scheduleResults = "gedge.schedule.results"
    /// Cluster status reports from the agents (hcode 600), keyed by cluster.
    public static let clusterStatus = "gedge.cluster.status"
    /// Replies from agents to the scheduler (lcode 2), keyed by request ID.
    public static let schedulerReplies = "gedge.scheduler.replies"
    /// Commands for one cluster's agent (hcodes 200, 210, 300, 310, 400, 520, 530), keyed by request ID.
    public static func agentCommands(cluster: String) -> String { "gedge.agent.\(cluster)" }
    /// Pod usage reports from the agents (hcode 620), keyed by cluster.
    public static let podMetrics = "gedge.pod-metrics"
    /// Replies from agents to the autoscaler (hcodes 700 and 710, lcode 2).
    public static let autoscalerReplies = "gedge.autoscaler.replies"
    /// Agents' answers to the gateway's requests (hcode 540 pod logs), keyed by request ID.
    public static let gatewayReplies = "gedge.gateway.replies"
    /// The dead-letter topic for a topic: undecodable messages with their error.
    public static func deadLetter(for topic: String) -> String { topic + ".dlq" }
    /// GS-Scheduler's topics (GE_define.py): policy workers' requests to cluster agents, and the
    /// platform API's (520, 530). Agents read them too, for the original's requesters.
    public static let originalGSCH = "gedge-global-gsch-topic"
    public static let originalAPI = "gedge-global-api-topic"

    /// Kafka's rule for a topic name: 1 to 249 characters of ASCII letters, digits, `.`, `_`
    /// and `-`, and neither `.` nor `..`.
    public static func isLegalName(_ t: String) -> Bool {
        (1...249).contains(t.utf8.count) && t != "." && t != ".."
            && t.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 95 || $0 == 45 })
    }
}

/// A list of topics to create, `name:partitions` each (`:partitions` may be left out for 1),
/// as a configuration key or a file gives it: entries separated by commas or lines, blank
/// lines and lines starting with `#` skipped. Every name must be legal and given once, and
/// partitions lie in 1...`maxPartitions`.
public struct TopicList: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let partitions: Int32
    }

    public static let maxPartitions: Int32 = 1024
    /// The most entries a list may hold, and the largest file read.
    public static let maxEntries = 100_000
    public static let maxFileBytes = 8 << 20

    public let entries: [Entry]

    /// Parses entries; `key` names the source in errors.
    public init(_ items: some Sequence<Substring>, key: String) throws(ConfigurationError) {
        var entries: [Entry] = []
        var seen = Set<String>()
        var line = 0
        for raw in items {
            line += 1
            let item = raw.trimmingCharacters(in: .whitespaces)
            if item.isEmpty || item.hasPrefix("#") { continue }
            guard entries.count < Self.maxEntries else {
                throw ConfigurationError(key: key, reason: "more than \(Self.maxEntries) topics")
            }
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            // Quoted as it stands, but with control characters shown as `?`: it may come from any file.
            let shown = String(String.UnicodeScalarView(item.prefix(80).unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : $0 }))
            let entry = "entry \(line) '\(shown)'"
            guard parts.count <= 2 else { throw ConfigurationError(key: key, reason: "\(entry) is not name:partitions") }
            let name = String(parts[0])
            guard Topics.isLegalName(name) else {
                throw ConfigurationError(key: key, reason: "\(entry): a topic name is 1 to 249 of a-z A-Z 0-9 . _ -")
            }
            var partitions: Int32 = 1
            if parts.count == 2 {
                guard let p = Int32(parts[1]), (1...Self.maxPartitions).contains(p) else {
                    throw ConfigurationError(key: key, reason: "\(entry): partitions must be 1 to \(Self.maxPartitions)")
                }
                partitions = p
            }
            guard seen.insert(name).inserted else { throw ConfigurationError(key: key, reason: "\(entry): topic \(name) is listed twice") }
            entries.append(Entry(name: name, partitions: partitions))
        }
        self.entries = entries
    }

    /// Reads a file of entries, one a line, refusing one over `maxFileBytes`.
    public init(file path: String, key: String) throws(ConfigurationError) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ConfigurationError(key: key, reason: "cannot read \(path)")
        }
        defer { try? handle.close() }
        let data: Data
        do { data = try handle.read(upToCount: Self.maxFileBytes + 1) ?? Data() } catch {
            throw ConfigurationError(key: key, reason: "cannot read \(path): \(error)")
        }
        guard data.count <= Self.maxFileBytes else { throw ConfigurationError(key: key, reason: "\(path) is over \(Self.maxFileBytes >> 20) MiB") }
        guard let text = String(data: data, encoding: .utf8) else { throw ConfigurationError(key: key, reason: "\(path) is not UTF-8 text") }
        try self.init(text.split(separator: "\n", omittingEmptySubsequences: false), key: key)
    }
}

/// Header names the suite sets on Kafka messages.
public enum MessageHeaders {
    public static let error = "gedge-error"
    public static let errorCode = "gedge-error-code"
    public static let errorField = "gedge-error-field"
    public static let originalTopic = "gedge-original-topic"
    public static let originalPartition = "gedge-original-partition"
    public static let originalOffset = "gedge-original-offset"
    /// On a dead letter stored shortened: `true`, the original's size and SHA-256 (hex).
    public static let truncated = "gedge-dlq-truncated"
    public static let originalBytes = "gedge-original-bytes"
    public static let originalSHA256 = "gedge-original-sha256"
}
