import Foundation

/// Runs a command to its end with posix_spawn and returns its exit code and standard output
/// (standard error goes to /dev/null). Foundation's `Process.run()` is not used: on Linux it
/// lists /proc/self/fd with an over-read that now and then crashes the caller
/// (swift-corelibs-foundation #5472). Blocks the calling thread until the command ends.
public enum Subprocess {
    public static func run(_ executable: String, _ arguments: [String]) -> (status: Int32, output: [UInt8])? {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return nil }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            return nil
        }
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fds[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            output += buffer[..<n]
        }
        close(fds[0])
        var s: Int32 = 0
        while waitpid(pid, &s, 0) < 0 && errno == EINTR {}
        return ((s & 0x7f) == 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f), output)
    }
}
