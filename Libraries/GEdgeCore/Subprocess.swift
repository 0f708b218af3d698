import Foundation

/// Child processes started with posix_spawn. Foundation's `Process.run()` is not used: on
/// Linux it lists /proc/self/fd with an over-read that now and then crashes the caller
/// (swift-corelibs-foundation #5472).
public enum Subprocess {
    /// Starts `executable` (looked up in PATH when it has no slash). With `captureOutput`,
    /// its standard output is a pipe whose read end is returned (close-on-exec, so other
    /// children started meanwhile do not hold it open); otherwise `output` is -1. With
    /// `quiet`, standard error goes to /dev/null. With `outputFile`, standard output and
    /// standard error both go to that file (created or emptied); with `errorFile`, standard
    /// error alone goes to that one.
    public static func spawn(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil, captureOutput: Bool, quiet: Bool = false,
        outputFile: String? = nil, errorFile: String? = nil
    ) throws -> (pid: pid_t, output: Int32) {
        var fds: [Int32] = [-1, -1]
        if captureOutput {
            guard pipe(&fds) == 0 else { throw ConfigurationError(key: executable, reason: "pipe: \(String(cString: strerror(errno)))") }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if captureOutput { posix_spawn_file_actions_adddup2(&actions, fds[1], 1) }
        if quiet { posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0) }
        if let outputFile, !captureOutput {
            posix_spawn_file_actions_addopen(&actions, 1, outputFile, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        if let errorFile { posix_spawn_file_actions_addopen(&actions, 2, errorFile, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?]? = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
        defer {
            for a in argv { free(a) }
            for e in envp ?? [] { free(e) }
        }
        // The child starts with no signal blocked and every signal at its default action,
        // whatever this process blocks or ignores (a program that ignores SIGTERM to take it
        // through a dispatch source would otherwise pass the ignoring on).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        var rc: Int32 = 0
        // "Text file busy" passes: a copy of a writer's descriptor held for a moment by another
        // process being started (or a binary being replaced). A few short retries.
        for attempt in 0..<5 {
            rc = envp.map { posix_spawnp(&pid, executable, &actions, &attributes, argv, $0) }
                ?? posix_spawnp(&pid, executable, &actions, &attributes, argv, environ)
            guard rc == ETXTBSY, attempt < 4 else { break }
            usleep(20_000)
        }
        if captureOutput { close(fds[1]) }
        guard rc == 0 else {
            if captureOutput { close(fds[0]) }
            throw ConfigurationError(key: executable, reason: "posix_spawn: \(String(cString: strerror(rc)))")
        }
        return (pid, fds[0])
    }

    /// A `waitpid` status as a shell reports it: the exit code, or 128 + the signal.
    public static func exitCode(_ status: Int32) -> Int32 {
        (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Reads `fd` until its end (or an error), handing each chunk read to `body`, which
    /// returns false to stop early. Blocks the calling thread.
    public static func readChunks(_ fd: Int32, _ body: (ArraySlice<UInt8>) -> Bool) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 || !body(buffer[..<n]) { return }
        }
    }

    /// Runs a command to its end and returns its exit code and standard output (standard
    /// error goes to /dev/null); nil if it cannot start. Blocks the calling thread.
    public static func run(_ executable: String, _ arguments: [String]) -> (status: Int32, output: [UInt8])? {
        guard let (pid, fd) = try? spawn(executable, arguments, captureOutput: true, quiet: true) else { return nil }
        var output: [UInt8] = []
        readChunks(fd) { output += $0; return true }
        close(fd)
        var s: Int32 = 0
        while waitpid(pid, &s, 0) < 0 && errno == EINTR {}
        return (exitCode(s), output)
    }
}
