import Foundation

/// The placement policies a schedule request can name.
public enum SchedulingPolicy: String, Sendable, Hashable, CaseIterable {
    case lowLatency = "GLowLatencyPriority"
    case mostRequested = "GMostRequestedPriority"
    case selectedCluster = "GSelectedCluster"
    case setClusters = "GSetClusters"
    case mostAllocated = "GMostAllocated"

    /// Accepts the policy's full name or its short form (`low`, `most`, `select`, `set`, `binpack`).
    public init?(name: String) {
        if let exact = SchedulingPolicy(rawValue: name) {
            self = exact
            return
        }
        switch name.lowercased() {
        case "low", "lowlatency", "low-latency": self = .lowLatency
        case "most", "mostrequested", "most-requested": self = .mostRequested
        case "select", "selected", "selectedcluster", "selected-cluster": self = .selectedCluster
        case "set", "setclusters", "set-clusters": self = .setClusters
        case "binpack", "mostallocated", "most-allocated": self = .mostAllocated
        default: return nil
        }
    }
}

/// The `msg` of an hcode 100 (schedule request) envelope.
///
/// Wire form (snake_case, as GS-Scheduler's front server named its form fields):
/// `{"request_id","policy","user_name","workspace_name","project_name","fast_option",
///   "workload","parameters","callback_url"}`; `priority` is accepted for `policy`.
public struct ScheduleRequest: Sendable, Hashable {
    public var requestID: String
    public var policy: SchedulingPolicy
    public var userName: String
    public var workspaceName: String
    public var projectName: String
    public var fast: Bool
    /// The workload to place: Kubernetes manifests as JSON, or a YAML document as a string.
    public var workload: JSONValue
    /// Policy parameters (`select_clusters`, `mode`, `source_cluster`, ...), passed to the policy.
    public var parameters: JSONValue
    public var callbackURL: String?

    public init(
        requestID: String, policy: SchedulingPolicy, userName: String, workspaceName: String,
        projectName: String, fast: Bool = false, workload: JSONValue = .null,
        parameters: JSONValue = .object([:]), callbackURL: String? = nil
    ) {
        self.requestID = requestID
        self.policy = policy
        self.userName = userName
        self.workspaceName = workspaceName
        self.projectName = projectName
        self.fast = fast
        self.workload = workload
        self.parameters = parameters
        self.callbackURL = callbackURL
    }

    static let fields: Set<String> = [
        "request_id", "policy", "priority", "user_name", "workspace_name", "project_name",
        "fast_option", "workload", "parameters", "callback_url",
    ]

    /// Decodes the request from an envelope's `msg`. `key` is the Kafka key: the request ID.
    /// A `msg` with `env` is GS-Scheduler's `RequestJob` (see `decodeRequestJob`); the
    /// envelope's `work_info` fills the names it leaves out.
    public static func decode(msg: JSONValue, key: String?, workInfo: WorkInfo? = nil) throws(MessageDecodingError) -> ScheduleRequest {
        if let at = msg.pathOfNUL("msg") {
            throw MessageDecodingError(.invalidValue, field: at, reason: "a NUL character, which cannot be stored")
        }
        if msg["env"] != nil {
            return try decode(msg: try RequestJob.flatten(msg, workInfo: workInfo), key: key)
        }
        if let workInfo {
            return try decode(msg: try RequestJob.merge(msg, workInfo: workInfo, path: "msg"), key: key)
        }
        let r = try FieldReader(msg, path: "msg")
        try r.rejectUnknown(allowed: fields)
        let idInMsg = try r.optionalString("request_id")
        let id: String
        switch (key, idInMsg) {
        case (let k?, let m?) where !k.isEmpty && k != m:
            throw MessageDecodingError(.invalidValue, field: "msg.request_id", reason: "'\(m)' differs from the message key '\(k)'")
        case (let k?, _) where !k.isEmpty: id = k
        case (_, let m?): id = m
        default:
            throw MessageDecodingError(.missingField, field: "msg.request_id", reason: "no request ID: set the Kafka key or msg.request_id")
        }
        guard RequestID.isValid(id) else {
            throw MessageDecodingError(.invalidValue, field: "msg.request_id", reason: "request ID must be 1-128 characters of [A-Za-z0-9._:-]")
        }
        let policyName: String
        let policyField: String
        if r.fields["policy"] != nil || r.fields["priority"] == nil {
            policyName = try r.string("policy")
            policyField = "policy"
        } else {
            policyName = try r.string("priority")
            policyField = "priority"
        }
        guard let policy = SchedulingPolicy(name: policyName) else {
            let names = SchedulingPolicy.allCases.map(\.rawValue).joined(separator: ", ")
            throw MessageDecodingError(.invalidValue, field: r.childPath(policyField), reason: "unknown policy '\(policyName)'; one of \(names)")
        }
        let user = try r.string("user_name")
        let workspace = try r.string("workspace_name")
        let project = try r.string("project_name")
        for (name, value) in [("user_name", user), ("workspace_name", workspace), ("project_name", project)] where value.isEmpty {
            throw MessageDecodingError(.invalidValue, field: r.childPath(name), reason: "must not be empty")
        }
        let parameters = r.fields["parameters"] ?? .object([:])
        if case .object = parameters {} else if parameters != .null {
            throw MessageDecodingError(.wrongType, field: "msg.parameters", reason: "expected an object, got \(parameters.kindName)")
        }
        var callback = try r.optionalString("callback_url")
        if let given = callback {
            // A scheme-less host gets http:// as the original's users wrote it; the gateway
            // decides whether a private address may be called (gateway.callback.allow.private).
            do { callback = try CallbackURL.check(given, allowPrivate: true) } catch {
                throw MessageDecodingError(.invalidValue, field: "msg.callback_url", reason: error.reason)
            }
        }
        return ScheduleRequest(
            requestID: id, policy: policy, userName: user, workspaceName: workspace, projectName: project,
            fast: try fastOption(r),
            workload: r.fields["workload"] ?? .null,
            parameters: parameters == .null ? .object([:]) : parameters,
            callbackURL: callback)
    }

    /// `true`/`false`, or the front server's form value: `fast` (checked) or empty.
    static func fastOption(_ r: FieldReader) throws(MessageDecodingError) -> Bool {
        switch r.fields["fast_option"] {
        case .string(let s)?:
            switch s.lowercased() {
            case "fast", "true": return true
            case "", "false", "normal": return false
            default: throw MessageDecodingError(.invalidValue, field: "msg.fast_option", reason: "'\(s)' is not fast, true or false")
            }
        default: return try r.optionalBool("fast_option") ?? false
        }
    }

    public var msg: JSONValue {
        var fields: [String: JSONValue] = [
            "request_id": .string(requestID),
            "policy": .string(policy.rawValue),
            "user_name": .string(userName),
            "workspace_name": .string(workspaceName),
            "project_name": .string(projectName),
            "fast_option": .bool(fast),
            "workload": workload,
            "parameters": parameters,
        ]
        if let callbackURL { fields["callback_url"] = .string(callbackURL) }
        return .object(fields)
    }

    /// The envelope a producer publishes for this request: from the requester's cluster (or
    /// `gateway`) to the scheduler, keyed by `requestID`.
    public func envelope(sourceCluster: String = "gateway") -> Envelope {
        Envelope(
            source: .cluster(sourceCluster), target: .cluster("scheduler"),
            hcode: .scheduleRequest, lcode: .request, msg: msg)
    }
}

public enum RequestID {
    /// Request IDs are Kafka keys and database keys: short, printable, no spaces.
    public static func isValid(_ id: String) -> Bool {
        guard (1...128).contains(id.utf8.count) else { return false }
        return id.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 45 || c == 46 || c == 95 || c == 58
        }
    }

    public static func make() -> String { UUID().uuidString.lowercased() }
}

/// The `msg` of an hcode 110 (cancel) envelope: `{"request_id","reason","withdraw"}`.
/// `withdraw` also removes a completed request's placements (a deleted service).
public struct CancelRequest: Sendable, Hashable {
    public var requestID: String
    public var reason: String
    public var withdraw: Bool

    public init(requestID: String, reason: String, withdraw: Bool = false) {
        self.requestID = requestID
        self.reason = reason
        self.withdraw = withdraw
    }

    public static func decode(msg: JSONValue, key: String?) throws(MessageDecodingError) -> CancelRequest {
        let r = try FieldReader(msg, path: "msg")
        try r.rejectUnknown(allowed: ["request_id", "reason", "withdraw"])
        let id = try r.optionalString("request_id") ?? key ?? ""
        guard RequestID.isValid(id) else {
            throw MessageDecodingError(.invalidValue, field: "msg.request_id", reason: "request ID must be 1-128 characters of [A-Za-z0-9._:-]")
        }
        if let key, !key.isEmpty, key != id {
            throw MessageDecodingError(.invalidValue, field: "msg.request_id", reason: "'\(id)' differs from the message key '\(key)'")
        }
        return CancelRequest(requestID: id, reason: try r.optionalString("reason") ?? "canceled by the requester", withdraw: try r.optionalBool("withdraw") ?? false)
    }

    public var envelope: Envelope {
        Envelope(
            source: .cluster("gateway"), target: .cluster("scheduler"), hcode: .scheduleCancel, lcode: .request,
            msg: .object(["request_id": .string(requestID), "reason": .string(reason), "withdraw": .bool(withdraw)]))
    }
}
