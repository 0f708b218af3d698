import GEdgeCore
import Testing

@Suite struct SubprocessTests {
    @Test func outputAndExitCodeComeBack() throws {
        let ok = try #require(Subprocess.run("/bin/sh", ["-c", "printf 'a\\nb'; echo oops >&2"]))
        #expect(ok.status == 0)
        #expect(String(decoding: ok.output, as: UTF8.self) == "a\nb")
        #expect(Subprocess.run("/bin/sh", ["-c", "exit 3"])?.status == 3)
        #expect(Subprocess.run("/bin/sh", ["-c", "kill -9 $$"])?.status == 137)
        #expect(Subprocess.run("/nonexistent/tool", []) == nil)
    }
}
