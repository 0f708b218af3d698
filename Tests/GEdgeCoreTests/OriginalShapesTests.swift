import Foundation
import GEdgeCore
import Testing

/// GS-Scheduler's own shapes, written here from its code's field lists: the RequestJob
/// (GE_GSCH_request_job.py), the envelopes its policy workers write (`source {"type":
/// "none"}`, `work_info`), and the form values of its front server.
@Suite("Original shapes")
struct OriginalShapesTests {
    let codec = EnvelopeCodec()

    /// As GE_GSCH_low_latency.py documents a job (its docstring), with `workload` for the
    /// YAML the original kept in Redis.
    static let lowLatencyJob = """
        {"source": {"type": "none"}, "target": {"type": "cluster", "object": "scheduler"},
         "hcode": 100, "lcode": 1,
         "work_info": {"user_name": "user1", "workspace_name": "w1", "project_name": "p1", "namespace_name": "p1-w1uid"},
         "msg": {"request_id": "req-7092d391-e4a3-4f2f-8e50-0acd4a35189a", "file_id": "b2ab5fbe-e7bf-44dc-84d7-b969ad62f104",
                 "callback_url": "callback.example.com/done", "fail_count": 0, "status": "create", "cdate": "2021-10-18 13:46:30",
                 "workload": "kind: Pod\\nmetadata: {name: a}\\nspec: {containers: [{name: a, image: nginx}]}",
                 "env": {"scope": "global", "priority": "GLowLatencyPriority",
                         "option": {"user_name": "user1", "workspace_name": "w1", "project_name": "p1", "mode": "fromnode",
                                    "parameters": {"source_cluster": "c1", "source_node": "a-worker-node01",
                                                   "select_clusters": ["c1", ["c2", "c3"], "c4"]}}}}}
        """

    @Test func requestJobEnvelopeDecodes() throws {
        let env = try codec.decode(Array(Self.lowLatencyJob.utf8))
        #expect(env.source == .none)
        #expect(env.workInfo?.namespaceName == "p1-w1uid")
        // Keyless, as the original producer sends: the ID comes from msg.
        let r = try ScheduleRequest.decode(msg: env.msg, key: nil, workInfo: env.workInfo)
        #expect(r.requestID == "req-7092d391-e4a3-4f2f-8e50-0acd4a35189a")
        #expect(r.policy == .lowLatency && r.userName == "user1" && r.workspaceName == "w1" && r.projectName == "p1")
        #expect(r.parameters["mode"] == "fromnode" && r.parameters["source_node"] == "a-worker-node01")
        #expect(r.parameters["select_clusters"] == .array(["c1", .array(["c2", "c3"]), "c4"]))
        #expect(r.parameters["namespace"] == "p1-w1uid")
        #expect(r.callbackURL == "http://callback.example.com/done")
        // The suite's own encoder writes the envelope back with `source {"type":"none"}` and work_info.
        let again = try codec.decode(codec.encode(env))
        #expect(again == env)
    }

    /// The front server's most-requested job: `env` without `option`, `scope` "##global".
    @Test func olderMostRequestedJobDecodes() throws {
        let msg = try JSONValue.parse(Array("""
            {"request_id": "req-1", "file_id": "f1", "fail_count": 0, "status": "create", "cdate": "2021-10-21 12:05:54",
             "workload": {"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "nginx"}]}},
             "env": {"scope": "##global", "select_clusters": ["c1", ["c2", "c3"], "c4"], "priority": "GMostRequestedPriority"}}
            """.utf8))
        let w = WorkInfo(userName: "u1", workspaceName: "w1", projectName: "p1", namespaceName: nil)
        let r = try ScheduleRequest.decode(msg: msg, key: nil, workInfo: w)
        #expect(r.policy == .mostRequested && r.projectName == "p1")
        #expect(r.parameters["select_clusters"] == .array(["c1", .array(["c2", "c3"]), "c4"]))
    }

    @Test func requestJobMistakesAreNamed() throws {
        func field(_ json: String, workInfo: WorkInfo? = nil) -> String? {
            do {
                _ = try ScheduleRequest.decode(msg: try JSONValue.parse(Array(json.utf8)), key: nil, workInfo: workInfo)
                return nil
            } catch { return error.field }
        }
        let base = #""request_id":"r1","workload":{"kind":"Pod"}"#
        #expect(field(#"{"request_id":"r1","file_id":"f","env":{"priority":"GMostRequestedPriority","option":{"user_name":"u","workspace_name":"w","project_name":"p"}}}"#) == "msg.workload")
        #expect(field("{\(base),\"env\":{\"priority\":\"GFastest\",\"option\":{\"user_name\":\"u\",\"workspace_name\":\"w\",\"project_name\":\"p\"}}}") == "msg.policy")
        #expect(field("{\(base),\"env\":{\"scope\":\"local\",\"priority\":\"GMostRequestedPriority\"}}") == "msg.env.scope")
        #expect(field("{\(base),\"env\":{\"priority\":\"GMostRequestedPriority\",\"colour\":1}}") == "msg.env.colour")
        #expect(field("{\(base),\"env\":{\"priority\":\"GMostRequestedPriority\",\"option\":{\"user_name\":\"u\",\"workspace_name\":\"w\",\"project_name\":\"p\",\"parameters\":[1]}}}") == "msg.env.option.parameters")
        #expect(field("{\(base),\"env\":{\"priority\":\"GMostRequestedPriority\",\"option\":{\"user_name\":\"u\",\"workspace_name\":\"w\",\"project_name\":\"p\"}}}",
                      workInfo: WorkInfo(projectName: "other")) == "work_info.project_name")
        #expect(field("{\(base),\"fail_count\":\"many\",\"env\":{\"priority\":\"GMostRequestedPriority\"}}") == "msg.fail_count")
    }

    @Test func noneEndpointsAndWorkInfoAreChecked() throws {
        func decodes(_ s: String) -> Bool { (try? codec.decode(Array(s.utf8))) != nil }
        #expect(decodes(#"{"source":{"type":"none","object":"none"},"target":{"type":"cluster","object":["c1","c2"]},"hcode":520,"lcode":1,"msg":{}}"#))
        #expect(!decodes(#"{"source":{"type":"none","object":{"cluster":"c1"}},"target":{"type":"none"},"hcode":200,"lcode":2,"msg":{}}"#))
        #expect(!decodes(#"{"source":{"type":"none"},"target":{"type":"none"},"hcode":200,"lcode":2,"work_info":{"project":"p"},"msg":{}}"#))
        #expect(!decodes(#"{"source":{"type":"none"},"target":{"type":"none"},"hcode":200,"lcode":2,"work_info":"p1","msg":{}}"#))
    }

    @Test func pythonListLiteralsAreReadNeverEvaluated() throws {
        #expect(try PythonLiteral.stringList("['c1',['c2','c3']]") == .array(["c1", .array(["c2", "c3"])]))
        #expect(try PythonLiteral.stringList(#"["c1", ["c2", "c3"], 'c4']"#) == .array(["c1", .array(["c2", "c3"]), "c4"]))
        #expect(try PythonLiteral.stringList(" [ 'a' , ] ") == .array(["a"]))
        #expect(try PythonLiteral.stringList("('a', 'b')") == .array(["a", "b"]))
        #expect(try PythonLiteral.stringList("[]") == .array([]))
        #expect(try PythonLiteral.stringList(#"['it\'s']"#) == .array(["it's"]))
        for hostile in ["__import__('os').system('id')", "['a', 1]", "['a', None]", "['a' + 'b']", "[x]", "['a'] or 1", "['a'", "'a'",
                        "[" + String(repeating: "[", count: 100) + String(repeating: "]", count: 101), "['a\\x41']", "[{'a': 1}]", "['a'];", ""] {
            #expect(throws: PythonLiteral.Failure.self, "\(hostile)") { try PythonLiteral.stringList(hostile) }
        }
    }

    @Test func callbackTargetsAreCheckedAsTheOriginalsUsersWroteThem() throws {
        #expect(try CallbackURL.check("callback.example.com:8080/done", allowPrivate: false) == "http://callback.example.com:8080/done")
        #expect(try CallbackURL.check("https://hooks.example.com/x", allowPrivate: false) == "https://hooks.example.com/x")
        #expect(try CallbackURL.check("10.0.0.7/hook", allowPrivate: true) == "http://10.0.0.7/hook")
        let alwaysRefused = ["169.254.169.254/latest/meta-data", "http://[fe80::1]/", "metadata.google.internal/computeMetadata", "ftp://example.com/x",
                             "http://user:pw@example.com/", "http://0.0.0.0/", "http://2130706433/", "http://0x7f.1/", "http://[::]/",
                             "http://[::ffff:169.254.169.254]/", "gopher://x", "http://exa mple.com", "", "http://224.0.0.1/"]
        for url in alwaysRefused {
            #expect(throws: CallbackURL.Refusal.self, "\(url)") { try CallbackURL.check(url, allowPrivate: true) }
        }
        for url in ["127.0.0.1:9/hook", "http://localhost/x", "http://10.1.2.3/", "http://192.168.0.1/", "http://172.20.0.1/", "http://[::1]/", "http://[fd00::1]/", "http://100.64.0.1/"] {
            #expect(throws: CallbackURL.Refusal.self, "\(url)") { try CallbackURL.check(url, allowPrivate: false) }
            #expect((try? CallbackURL.check(url, allowPrivate: true)) != nil, "\(url)")
        }
    }
}
