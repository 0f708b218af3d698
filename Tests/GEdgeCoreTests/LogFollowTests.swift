import GEdgeCore
import Testing

@Suite("Following a log")
struct LogFollowTests {
    @Test func onlyWhatCameAfterIsNew() {
        #expect(LogFollow.newLines(after: ["a", "b", "c"], in: ["b", "c", "d", "e"]) == ["d", "e"])
        #expect(LogFollow.newLines(after: ["a", "b"], in: ["a", "b"]) == [])
        #expect(LogFollow.newLines(after: [], in: ["x"]) == ["x"])
        #expect(LogFollow.newLines(after: ["x", "y"], in: ["p", "q"]) == ["p", "q"])
        #expect(LogFollow.newLines(after: ["l", "l"], in: ["l", "l", "l"]) == [])
        #expect(LogFollow.newLines(after: ["a", "l"], in: ["a", "l", "l"]) == ["l"])
    }
}
