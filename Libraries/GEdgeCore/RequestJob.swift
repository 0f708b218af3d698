/// GS-Scheduler's `RequestJob` (`GE_GSCH_request_job.py`) as a schedule request's `msg`:
///
///     {"request_id": "req-…", "callback_url": …, "file_id": …, "fail_count": 0,
///      "status": "create", "cdate": "2021-10-18 13:46:30",
///      "env": {"scope": "global", "priority": "GLowLatencyPriority",
///              "option": {"user_name", "workspace_name", "project_name", "mode",
///                         "parameters": {"source_cluster", "source_node", "pod_name",
///                                        "select_clusters", "select_cluster", "select_node"}}}}
///
/// and the older most-requested form `env: {scope, priority, select_clusters}`. The original
/// kept the YAML in Redis under `file_id`; here the manifests travel in `workload` (JSON or
/// YAML text). `fail_count`, `status` and `cdate` are the original queue's bookkeeping: read,
/// checked for type, and left to the suite's own queue.
public enum RequestJob {
    static let fields: Set<String> = [
        "request_id", "callback_url", "file_id", "fail_count", "status", "cdate", "env", "workload", "fast_option", "method",
    ]

    /// The job as the suite's flat `msg` fields.
    static func flatten(_ msg: JSONValue, workInfo: WorkInfo?) throws(MessageDecodingError) -> JSONValue {
        let r = try FieldReader(msg, path: "msg")
        try r.rejectUnknown(allowed: fields)
        _ = try r.optionalInt("fail_count")
        _ = try r.optionalString("status")
        _ = try r.optionalString("cdate")
        _ = try r.optionalString("method")
        let env = try FieldReader(try r.required("env"), path: "msg.env")
        try env.rejectUnknown(allowed: ["scope", "priority", "option", "select_clusters", "type"])
        if let scope = try env.optionalString("scope") {
            // The front server wrote "##global" for most-requested jobs.
            guard scope.trimmingCharacters(in: ["#"]) == "global" else {
                throw MessageDecodingError(.invalidValue, field: "msg.env.scope", reason: "'\(scope)' is not global: the scheduler places global requests only")
            }
        }
        var out: [String: JSONValue] = [:]
        out["policy"] = .string(try env.string("priority"))
        for k in ["request_id", "callback_url", "workload", "fast_option"] { if let v = r.fields[k], v != .null { out[k] = v } }
        var parameters: [String: JSONValue] = [:]
        if let optionValue = env.fields["option"], optionValue != .null {
            let option = try FieldReader(optionValue, path: "msg.env.option")
            try option.rejectUnknown(allowed: ["user_name", "workspace_name", "project_name", "mode", "parameters"])
            for k in ["user_name", "workspace_name", "project_name"] { if let v = try option.optionalString(k) { out[k] = .string(v) } }
            if let p = option.fields["parameters"], p != .null {
                guard case .object(let o) = p else {
                    throw MessageDecodingError(.wrongType, field: "msg.env.option.parameters", reason: "expected an object, got \(p.kindName)")
                }
                parameters = o
            }
            if let mode = try option.optionalString("mode") { parameters["mode"] = .string(mode) }
        }
        if let sc = env.fields["select_clusters"], sc != .null, parameters["select_clusters"] == nil { parameters["select_clusters"] = sc }
        out["parameters"] = .object(parameters)
        if out["workload"] == nil {
            let hint = r.fields["file_id"] != nil
                ? "file_id names a YAML file in GS-Scheduler's Redis, which this suite does not have; put the manifests in msg.workload"
                : "required: the manifests to place (JSON, or YAML text)"
            throw MessageDecodingError(.missingField, field: "msg.workload", reason: hint)
        }
        return try merge(.object(out), workInfo: workInfo, path: "msg.env.option")
    }

    /// Fills names the message leaves out from `work_info`; a name given in both must agree.
    static func merge(_ msg: JSONValue, workInfo: WorkInfo?, path: String) throws(MessageDecodingError) -> JSONValue {
        guard let w = workInfo, case .object(var o) = msg else { return msg }
        for (key, given) in [("user_name", w.userName), ("workspace_name", w.workspaceName), ("project_name", w.projectName)] {
            guard let given else { continue }
            if case .string(let mine)? = o[key], mine != given {
                throw MessageDecodingError(.invalidValue, field: "work_info.\(key)", reason: "'\(given)' differs from \(path).\(key) '\(mine)'")
            }
            if o[key] == nil || o[key] == .null { o[key] = .string(given) }
        }
        if let ns = w.namespaceName {
            var p: [String: JSONValue] = [:]
            if case .object(let existing)? = o["parameters"] { p = existing }
            if case .string(let mine)? = p["namespace"], mine != ns {
                throw MessageDecodingError(.invalidValue, field: "work_info.namespace_name", reason: "'\(ns)' differs from parameters.namespace '\(mine)'")
            }
            p["namespace"] = .string(ns)
            o["parameters"] = .object(p)
        }
        return .object(o)
    }
}
