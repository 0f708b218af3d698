import GEdgeCore
import Testing

@Suite struct NULTests {
    @Test func requestsWithNULAreRefusedWithTheirPath() {
        let msg: JSONValue = .object([
            "policy": "most", "user_name": "u", "workspace_name": "w", "project_name": "p",
            "workload": .object(["metadata": .object(["name": "a\u{0}b"])]),
        ])
        do {
            _ = try ScheduleRequest.decode(msg: msg, key: "r1")
            Issue.record("accepted a NUL")
        } catch {
            #expect(error.field == "msg.workload.metadata.name")
        }
    }
}
