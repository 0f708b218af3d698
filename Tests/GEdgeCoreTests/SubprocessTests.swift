import Foundation
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

    /// A child starts with every signal at its default action and none blocked, whatever this
    /// process ignores or blocks when it spawns the child.
    @Test func childrenStartWithDefaultSignals() throws {
        // This process ignores SIGUSR2 and blocks SIGWINCH for the duration of the spawn.
        let old = signal(SIGUSR2, SIG_IGN)
        var winch = sigset_t()
        sigemptyset(&winch)
        sigaddset(&winch, SIGWINCH)
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &winch, &previous)
        let result = Subprocess.run("/bin/cat", ["/proc/self/status"])
        pthread_sigmask(SIG_SETMASK, &previous, nil)
        signal(SIGUSR2, old)

        let status = String(decoding: try #require(result).output, as: UTF8.self)
        func mask(_ field: String) throws -> UInt64 {
            let line = try #require(status.split(separator: "\n").first { $0.hasPrefix(field + ":") })
            return try #require(UInt64(line.split(separator: "\t").last ?? "", radix: 16))
        }
        #expect(try mask("SigIgn") & (1 << (UInt64(SIGUSR2) - 1)) == 0, "SIGUSR2 is not ignored in the child")
        #expect(try mask("SigBlk") & (1 << (UInt64(SIGWINCH) - 1)) == 0, "SIGWINCH is not blocked in the child")
    }
}
