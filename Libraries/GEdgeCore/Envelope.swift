import Foundation

/// What a message's source or target is.
public enum EndpointType: String, Sendable, Hashable, CaseIterable {
    case cluster, node, pod
    /// GS-Scheduler's policy workers and API write `{"type": "none"}` (object absent or
    /// `"none"`) for a side that is not a cluster member.
    case none
}

/// A reference into a cluster: `{cluster, node}` / `{cluster, nodes}` / `{cluster, pod}` / `{cluster, pods}`.
public struct ClusterMemberRef: Sendable, Hashable {
    public var cluster: String
    /// Node or pod names, by the endpoint's type.
    public var members: [String]
    /// Whether the wire form used a single name (`node`) rather than a list (`nodes`).
    public var singular: Bool

    public init(cluster: String, members: [String], singular: Bool = true) {
        self.cluster = cluster
        self.members = members
        self.singular = singular
    }
}

/// The object of an endpoint: a name, a list of names, or references into clusters.
public enum EndpointObject: Sendable, Hashable {
    case name(String)
    case names([String])
    case member(ClusterMemberRef)
    case members([ClusterMemberRef])
}

/// The source or target of a message.
public struct Endpoint: Sendable, Hashable {
    public var type: EndpointType
    public var object: EndpointObject

    public init(type: EndpointType, object: EndpointObject) {
        self.type = type
        self.object = object
    }

    public static func cluster(_ name: String) -> Endpoint { Endpoint(type: .cluster, object: .name(name)) }
    /// `{"type": "none"}`, as the original writes it.
    public static let none = Endpoint(type: .none, object: .name("none"))
    public static func clusters(_ names: [String]) -> Endpoint { Endpoint(type: .cluster, object: .names(names)) }
    public static func node(cluster: String, node: String) -> Endpoint {
        Endpoint(type: .node, object: .member(ClusterMemberRef(cluster: cluster, members: [node])))
    }
    public static func pod(cluster: String, pod: String) -> Endpoint {
        Endpoint(type: .pod, object: .member(ClusterMemberRef(cluster: cluster, members: [pod])))
    }
}

/// The message envelope every Kafka message of the suite carries:
/// `{source:{type,object}, target:{type,object}, hcode, lcode, msg}`, keyed by request ID.
public struct Envelope: Sendable, Hashable {
    public var source: Endpoint
    public var target: Endpoint
    public var hcode: HCode
    public var lcode: LCode
    public var msg: JSONValue
    /// GS-Scheduler's `work_info` beside `msg`: `{user_name, workspace_name, project_name,
    /// namespace_name}` of the request the message serves. Absent in the suite's own messages.
    public var workInfo: WorkInfo?
    /// Other top-level members written as they are (the original's bare 520/530 replies).
    public var extra: [String: JSONValue] = [:]

    public init(source: Endpoint, target: Endpoint, hcode: HCode, lcode: LCode, msg: JSONValue, workInfo: WorkInfo? = nil) {
        self.source = source
        self.target = target
        self.hcode = hcode
        self.lcode = lcode
        self.msg = msg
        self.workInfo = workInfo
    }
}

/// GS-Scheduler's `work_info`: whose request a message serves, and its namespace.
public struct WorkInfo: Sendable, Hashable {
    public var userName: String?
    public var workspaceName: String?
    public var projectName: String?
    public var namespaceName: String?

    public init(userName: String? = nil, workspaceName: String? = nil, projectName: String? = nil, namespaceName: String? = nil) {
        self.userName = userName
        self.workspaceName = workspaceName
        self.projectName = projectName
        self.namespaceName = namespaceName
    }

    static func decode(_ value: JSONValue) throws(MessageDecodingError) -> WorkInfo {
        let r = try FieldReader(value, path: "work_info")
        try r.rejectUnknown(allowed: ["user_name", "workspace_name", "project_name", "namespace_name"])
        return WorkInfo(
            userName: try r.optionalString("user_name"), workspaceName: try r.optionalString("workspace_name"),
            projectName: try r.optionalString("project_name"), namespaceName: try r.optionalString("namespace_name"))
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = [:]
        if let userName { o["user_name"] = .string(userName) }
        if let workspaceName { o["workspace_name"] = .string(workspaceName) }
        if let projectName { o["project_name"] = .string(projectName) }
        if let namespaceName { o["namespace_name"] = .string(namespaceName) }
        return .object(o)
    }
}

/// Encodes and strictly decodes envelopes.
public struct EnvelopeCodec: Sendable {
    /// Messages larger than this are rejected before parsing.
    public var maxMessageBytes: Int
    /// Codes accepted; anything else is `unknownCode`.
    public var knownCodes: Set<HCode>

    public init(maxMessageBytes: Int = 1 << 20, knownCodes: Set<HCode> = Set(HCode.known.keys)) {
        self.maxMessageBytes = maxMessageBytes
        self.knownCodes = knownCodes
    }

    public func encode(_ envelope: Envelope) -> [UInt8] {
        toJSON(envelope).serialized()
    }

    public func toJSON(_ envelope: Envelope) -> JSONValue {
        var o = envelope.extra
        o["source"] = Self.endpointJSON(envelope.source)
        o["target"] = Self.endpointJSON(envelope.target)
        o["hcode"] = .number(Double(envelope.hcode.rawValue))
        o["lcode"] = .number(Double(envelope.lcode.rawValue))
        o["msg"] = envelope.msg
        if let w = envelope.workInfo { o["work_info"] = w.json }
        return .object(o)
    }

    public func decode(_ bytes: some Collection<UInt8>) throws(MessageDecodingError) -> Envelope {
        guard bytes.count <= maxMessageBytes else {
            throw MessageDecodingError(.tooLarge, field: "", reason: "message of \(bytes.count) bytes exceeds the limit of \(maxMessageBytes)")
        }
        guard !bytes.isEmpty else {
            throw MessageDecodingError(.malformedJSON, field: "", reason: "empty message")
        }
        return try decode(json: JSONValue.parse(bytes))
    }

    public func decode(json: JSONValue) throws(MessageDecodingError) -> Envelope {
        let root = try FieldReader(json, path: "")
        try root.rejectUnknown(allowed: ["source", "target", "hcode", "lcode", "msg", "work_info"])
        let source = try Self.decodeEndpoint(root.required("source"), path: "source")
        let target = try Self.decodeEndpoint(root.required("target"), path: "target")
        let hcode = HCode(try CodeParser.parse(root.required("hcode"), field: "hcode"))
        guard knownCodes.contains(hcode) else {
            throw MessageDecodingError(.unknownCode, field: "hcode", reason: "unknown hcode \(hcode.rawValue)")
        }
        let lraw = try CodeParser.parse(root.required("lcode"), field: "lcode")
        guard let lcode = LCode(rawValue: lraw) else {
            throw MessageDecodingError(.unknownCode, field: "lcode", reason: "unknown lcode \(lraw) (1 = request, 2 = reply)")
        }
        let msg = root.fields["msg"] ?? .null
        let workInfo = try root.fields["work_info"].flatMap { v throws(MessageDecodingError) in v == .null ? nil : try WorkInfo.decode(v) }
        return Envelope(source: source, target: target, hcode: hcode, lcode: lcode, msg: msg, workInfo: workInfo)
    }

    public static func endpointJSON(_ endpoint: Endpoint) -> JSONValue {
        let memberKey = endpoint.type == .pod ? "pod" : "node"
        func ref(_ r: ClusterMemberRef) -> JSONValue {
            var fields: [String: JSONValue] = ["cluster": .string(r.cluster)]
            if r.singular, r.members.count == 1 {
                fields[memberKey] = .string(r.members[0])
            } else {
                fields[memberKey + "s"] = .array(r.members.map(JSONValue.string))
            }
            return .object(fields)
        }
        if endpoint.type == .none { return .object(["type": "none"]) }
        let object: JSONValue
        switch endpoint.object {
        case .name(let n): object = .string(n)
        case .names(let ns): object = .array(ns.map(JSONValue.string))
        case .member(let r): object = ref(r)
        case .members(let rs): object = .array(rs.map(ref))
        }
        return .object(["type": .string(endpoint.type.rawValue), "object": object])
    }

    static func decodeEndpoint(_ value: JSONValue, path: String) throws(MessageDecodingError) -> Endpoint {
        let reader = try FieldReader(value, path: path)
        try reader.rejectUnknown(allowed: ["type", "object"])
        let typeName = try reader.string("type")
        // The original sends plurals ("clusters", "nodes") for lists; both mean the same type.
        let normalized = typeName.lowercased().hasSuffix("s") ? String(typeName.lowercased().dropLast()) : typeName.lowercased()
        guard let type = EndpointType(rawValue: normalized) else {
            throw MessageDecodingError(.invalidValue, field: reader.childPath("type"), reason: "'\(typeName)' is not one of cluster, node, pod, none")
        }
        if type == .none {
            // The original writes {"type": "none"} or {"type": "none", "object": "none"}.
            switch reader.fields["object"] {
            case nil, .null?, .string("none")?, .string("")?: return .none
            case let other?:
                throw MessageDecodingError(.invalidValue, field: reader.childPath("object"), reason: "a 'none' endpoint has no object, got \(other.kindName)")
            }
        }
        let objectPath = reader.childPath("object")
        let objectValue = try reader.required("object")
        switch (type, objectValue) {
        case (.cluster, .string(let name)):
            guard !name.isEmpty else {
                throw MessageDecodingError(.invalidValue, field: objectPath, reason: "cluster name is empty")
            }
            return Endpoint(type: type, object: .name(name))
        case (.cluster, .array(let items)):
            var names: [String] = []
            for (i, item) in items.enumerated() {
                guard case .string(let s) = item, !s.isEmpty else {
                    throw MessageDecodingError(.wrongType, field: "\(objectPath)[\(i)]", reason: "expected a cluster name, got \(item.kindName)")
                }
                names.append(s)
            }
            return Endpoint(type: type, object: .names(names))
        case (.cluster, _):
            throw MessageDecodingError(.wrongType, field: objectPath, reason: "a cluster object is a name or a list of names, got \(objectValue.kindName)")
        case (_, .object):
            return Endpoint(type: type, object: .member(try decodeRef(objectValue, type: type, path: objectPath)))
        case (_, .array(let items)):
            var refs: [ClusterMemberRef] = []
            for (i, item) in items.enumerated() {
                refs.append(try decodeRef(item, type: type, path: "\(objectPath)[\(i)]"))
            }
            return Endpoint(type: type, object: .members(refs))
        default:
            throw MessageDecodingError(
                .wrongType, field: objectPath,
                reason: "a \(type.rawValue) object is {\"cluster\":..., \"\(type.rawValue)\":...} or a list of them, got \(objectValue.kindName)")
        }
    }

    static func decodeRef(_ value: JSONValue, type: EndpointType, path: String) throws(MessageDecodingError) -> ClusterMemberRef {
        let reader = try FieldReader(value, path: path)
        let one = type.rawValue
        let many = one + "s"
        try reader.rejectUnknown(allowed: ["cluster", one, many])
        let cluster = try reader.string("cluster")
        if let single = try reader.optionalString(one) {
            return ClusterMemberRef(cluster: cluster, members: [single], singular: true)
        }
        // The seed writes "node(s)": a single name or a list under either key.
        if let value = reader.fields[many], case .string(let s) = value {
            return ClusterMemberRef(cluster: cluster, members: [s], singular: true)
        }
        if let list = try reader.optionalStringList(many) {
            return ClusterMemberRef(cluster: cluster, members: list, singular: false)
        }
        throw MessageDecodingError(.missingField, field: reader.childPath(one), reason: "required field '\(one)' (or '\(many)') is missing")
    }
}
