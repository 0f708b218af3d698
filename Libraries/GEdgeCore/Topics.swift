/// The Kafka topics of the suite. Names are configurable; these are the defaults.
public enum Topics {
    /// Schedule requests (hcode 100), keyed by request ID.
    public static let scheduleRequests = "gedge.schedule.requests"
    /// The dead-letter topic for a topic: undecodable messages with their error.
    public static func deadLetter(for topic: String) -> String { topic + ".dlq" }
}

/// Header names the suite sets on Kafka messages.
public enum MessageHeaders {
    public static let error = "gedge-error"
    public static let errorCode = "gedge-error-code"
    public static let errorField = "gedge-error-field"
    public static let originalTopic = "gedge-original-topic"
    public static let originalPartition = "gedge-original-partition"
    public static let originalOffset = "gedge-original-offset"
}
