import GEdgeCore

/// Workloads arrive as JSON manifests or, as GS-Scheduler's `yaml_file` had them, as YAML
/// text (one or more documents). Stored and sent on as JSON.
public enum WorkloadText {
    public static func normalize(_ workload: JSONValue) throws(MessageDecodingError) -> JSONValue {
        guard case .string(let text) = workload else { return workload }
        let docs = try YAMLText.documents(text, path: "msg.workload").filter { $0 != .null }
        switch docs.count {
        case 0: throw MessageDecodingError(.missingField, field: "msg.workload", reason: "the YAML holds no document")
        case 1: return docs[0]
        default: return .array(docs)
        }
    }
}
