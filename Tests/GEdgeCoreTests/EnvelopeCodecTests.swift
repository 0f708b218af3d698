import Foundation
import GEdgeCore
import Testing

@Suite("Envelope codec")
struct EnvelopeCodecTests {
    let codec = EnvelopeCodec()

    func decode(_ json: String) throws(MessageDecodingError) -> Envelope {
        try codec.decode(Array(json.utf8))
    }

    func expectError(_ json: String, code: MessageDecodingError.Code, field: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let e = try decode(json)
            Issue.record("expected \(code) at \(field), decoded \(e)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
            #expect(error.field == field, "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func roundTripsEveryEndpointForm() throws {
        let endpoints: [Endpoint] = [
            .cluster("c1"),
            .clusters(["c1", "c2"]),
            .node(cluster: "c1", node: "n1"),
            .pod(cluster: "c1", pod: "p1"),
            Endpoint(type: .node, object: .member(ClusterMemberRef(cluster: "c1", members: ["n1", "n2"], singular: false))),
            Endpoint(type: .pod, object: .members([ClusterMemberRef(cluster: "c1", members: ["p1"]), ClusterMemberRef(cluster: "c2", members: ["p2"])])),
        ]
        for source in endpoints {
            let e = Envelope(source: source, target: .cluster("scheduler"), hcode: .clusterLatency, lcode: .reply, msg: .object(["ms": .number(1.5)]))
            #expect(try codec.decode(codec.encode(e)) == e)
        }
    }

    @Test func acceptsTheSeedsWireForms() throws {
        // Codes as GS-Scheduler's producers send them: hex strings, decimal strings, numbers.
        let e = try decode(#"{"source":{"type":"cluster","object":"c1"},"target":{"type":"clusters","object":["c1","c2"]},"hcode":"0x00C8","lcode":"0x0001","msg":null}"#)
        #expect(e.hcode == .clusterLatency)
        #expect(e.lcode == .request)
        #expect(e.target.object == .names(["c1", "c2"]))
        let n = try decode(#"{"source":{"type":"node","object":{"cluster":"c1","nodes":"n1"}},"target":{"type":"cluster","object":"c2"},"hcode":"530","lcode":2}"#)
        #expect(n.source.object == .member(ClusterMemberRef(cluster: "c1", members: ["n1"])))
        #expect(n.hcode == .nodeOfPod)
    }

    @Test(arguments: [
        (#"{"source":{"type":"cluster","object":"c1"},"target":"#, "", MessageDecodingError.Code.malformedJSON),
        ("", "", .malformedJSON),
        ("[1,2]", "", .wrongType),
        (#"{"target":{"type":"cluster","object":"c1"},"hcode":200,"lcode":1}"#, "source", .missingField),
        (#"{"source":{"type":"cluster","object":7},"target":{"type":"cluster","object":"c1"},"hcode":200,"lcode":1}"#, "source.object", .wrongType),
        (#"{"source":{"type":"rack","object":"c1"},"target":{"type":"cluster","object":"c1"},"hcode":200,"lcode":1}"#, "source.type", .invalidValue),
        (#"{"source":{"type":"node","object":{"cluster":"c1"}},"target":{"type":"cluster","object":"c1"},"hcode":200,"lcode":1}"#, "source.object.node", .missingField),
        (#"{"source":{"type":"pod","object":[{"cluster":"c1","pod":3}]},"target":{"type":"cluster","object":"c1"},"hcode":200,"lcode":1}"#, "source.object[0].pod", .wrongType),
        (#"{"source":{"type":"cluster","object":["c1",2]},"target":{"type":"cluster","object":"c1"},"hcode":200,"lcode":1}"#, "source.object[1]", .wrongType),
        (#"{"source":{"type":"cluster","object":"c1"},"target":{"type":"cluster","object":"c1"},"hcode":777,"lcode":1}"#, "hcode", .unknownCode),
        (#"{"source":{"type":"cluster","object":"c1"},"target":{"type":"cluster","object":"c1"},"hcode":"0xZZ","lcode":1}"#, "hcode", .invalidValue),
        (#"{"source":{"type":"cluster","object":"c1"},"target":{"type":"cluster","object":"c1"},"hcode":true,"lcode":1}"#, "hcode", .wrongType),
        (#"{"source":{"type":"cluster","object":"c1"},"target":{"type":"cluster","object":"c1"},"hcode":200,"lcode":3}"#, "lcode", .unknownCode),
        (#"{"source":{"type":"cluster","object":"c1"},"target":{"type":"cluster","object":"c1"},"hcode":200.5,"lcode":1}"#, "hcode", .invalidValue),
        (#"{"source":{"type":"cluster","object":"c1"},"target":{"type":"cluster","object":"c1"},"hcode":200,"lcode":1,"extra":1}"#, "extra", .unknownField),
        (#"{"source":{"type":"cluster","object":"c1","where":"x"},"target":{"type":"cluster","object":"c1"},"hcode":200,"lcode":1}"#, "source.where", .unknownField),
    ])
    func malformedInputNamesTheField(json: String, field: String, code: MessageDecodingError.Code) {
        expectError(json, code: code, field: field)
    }

    @Test func oversizedPayloadIsRejectedBeforeParsing() {
        let small = EnvelopeCodec(maxMessageBytes: 64)
        let big = Array(repeating: UInt8(ascii: " "), count: 65)
        #expect(throws: MessageDecodingError(.tooLarge, field: "", reason: "message of 65 bytes exceeds the limit of 64")) {
            try small.decode(big)
        }
    }

    @Test func deeplyNestedGarbageNeverCrashes() {
        let deep = String(repeating: "[", count: 5000)
        #expect(throws: MessageDecodingError.self) { try codec.decode(Array(deep.utf8)) }
        let binary: [UInt8] = (0..<512).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        #expect(throws: MessageDecodingError.self) { try codec.decode(binary) }
    }
}

@Suite("Schedule request payload")
struct ScheduleRequestTests {
    func msg(_ fields: [String: JSONValue]) -> JSONValue { .object(fields) }
    let base: [String: JSONValue] = [
        "policy": .string("GLowLatencyPriority"), "user_name": .string("user1"),
        "workspace_name": .string("w1"), "project_name": .string("p1"),
    ]

    @Test func keyIsTheRequestID() throws {
        let r = try ScheduleRequest.decode(msg: msg(base), key: "req-1")
        #expect(r.requestID == "req-1")
        #expect(r.policy == .lowLatency)
        #expect(r.fast == false)
    }

    @Test func roundTripsThroughTheEnvelope() throws {
        let r = ScheduleRequest(
            requestID: "r-2", policy: .selectedCluster, userName: "u", workspaceName: "w", projectName: "p", fast: true,
            workload: .string("kind: Deployment"), parameters: .object(["select_clusters": .array([.string("c1"), .array([.string("c2")])])]),
            callbackURL: "http://127.0.0.1:1/cb")
        let codec = EnvelopeCodec()
        let e = try codec.decode(codec.encode(r.envelope()))
        #expect(try ScheduleRequest.decode(msg: e.msg, key: "r-2") == r)
    }

    @Test(arguments: [
        ("low", SchedulingPolicy.lowLatency), ("most", .mostRequested), ("select", .selectedCluster),
        ("set", .setClusters), ("binpack", .mostAllocated), ("GMostRequestedPriority", .mostRequested),
    ])
    func policyNames(name: String, policy: SchedulingPolicy) throws {
        var f = base
        f["policy"] = .string(name)
        #expect(try ScheduleRequest.decode(msg: msg(f), key: "k").policy == policy)
    }

    @Test func priorityIsAcceptedForPolicy() throws {
        var f = base
        f.removeValue(forKey: "policy")
        f["priority"] = .string("GSelectedCluster")
        #expect(try ScheduleRequest.decode(msg: msg(f), key: "k").policy == .selectedCluster)
    }

    @Test(arguments: [
        ("policy", JSONValue.string("GFastest"), "msg.policy", MessageDecodingError.Code.invalidValue),
        ("user_name", .number(7), "msg.user_name", .wrongType),
        ("project_name", .string(""), "msg.project_name", .invalidValue),
        ("fast_option", .string("maybe"), "msg.fast_option", .invalidValue),
        ("callback_url", .string("ftp://x"), "msg.callback_url", .invalidValue),
        ("parameters", .array([]), "msg.parameters", .wrongType),
        ("surprise", .bool(true), "msg.surprise", .unknownField),
        ("request_id", .string("other"), "msg.request_id", .invalidValue),
    ])
    func badFields(field: String, value: JSONValue, path: String, code: MessageDecodingError.Code) {
        var f = base
        f[field] = value
        do {
            _ = try ScheduleRequest.decode(msg: msg(f), key: "k")
            Issue.record("expected an error at \(path)")
        } catch {
            #expect(error.field == path)
            #expect(error.code == code)
        }
    }

    @Test func missingIDAndBadIDs() {
        #expect(throws: MessageDecodingError.self) { try ScheduleRequest.decode(msg: msg(base), key: nil) }
        #expect(throws: MessageDecodingError.self) { try ScheduleRequest.decode(msg: msg(base), key: "has space") }
        #expect(throws: MessageDecodingError.self) { try ScheduleRequest.decode(msg: msg(base), key: String(repeating: "a", count: 129)) }
    }
}
