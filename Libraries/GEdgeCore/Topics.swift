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
