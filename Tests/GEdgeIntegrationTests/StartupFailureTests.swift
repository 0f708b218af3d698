import Foundation
import GEdgeCore
import Testing

/// A service that cannot start says why in one line and ends with status 1, promptly: a
/// ScaledObject file it cannot load, a port that is taken. None hangs, none crashes. (The
/// bound is generous: a debug binary starting beside the whole test suite on 2 cores.)
@Suite("Startup failures", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(2)))
struct StartupFailureTests {
    /// Starts an executable with its output (standard output and error) in a file, waits for
    /// it to end, and returns its status and every line it wrote.
    func run(_ executable: String, _ arguments: [String], within: Duration = .seconds(45), directory: URL = TestEnv.binDir) async throws -> (status: Int32, lines: [String]) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique(executable) + ".log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try GEdgeCore.ChildProcess(executable, arguments, logFile: log, directory: directory)
        try await eventually("\(executable) exit", timeout: within) { !child.isRunning }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        return (child.exitCode ?? -1, text.split(separator: "\n").map(String.init).filter { !$0.isEmpty })
    }

    @Test func faasTriggerRefusesFilesItCannotLoad() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("so"))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let files: [(String, String, String)] = [
            ("syntax.yaml", "a: [\n", "not valid YAML"),
            ("kafka.yaml", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: y}\n  triggers: [{type: kafka, metadata: {}}]\n", "spec.triggers[0].type"),
            ("deep.yaml", "a: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + "\n", "decode.max.depth"),
            ("empty.yaml", "", "no document"),
            ("auth.yaml", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  scaleTargetRef: {name: y}\n  triggers: [{type: rabbitmq, metadata: {queueName: q}, authenticationRef: {name: nowhere}}]\n", "no TriggerAuthentication 'nowhere'"),
            ("keda-field.yaml", "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: x}\nspec:\n  initialCooldownPeriod: 5\n  scaleTargetRef: {name: y}\n  triggers: [{type: rabbitmq, metadata: {host: 'amqp://h/', queueName: q}}]\n", "spec.initialCooldownPeriod"),
            ("configmap.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "'ConfigMap' is not taken here"),
        ]
        for (name, text, reason) in files + [("missing.yaml", "", "cannot read")] {
            let path = dir.appendingPathComponent(name).path
            if name != "missing.yaml" { try text.write(toFile: path, atomically: true, encoding: .utf8) }
            let started = ContinuousClock.now
            let (status, lines) = try await run("faas-trigger", [
                "--faas-scaledobjects", path, "--http-port", "0", "--log-level", "error",
                "--postgres-url", "postgres://gedge@127.0.0.1:1/none", "--kafka-brokers", "127.0.0.1:1",
            ])
            #expect(status == 1, "\(name): status \(status)")
            #expect(lines.count == 1 && lines[0].hasPrefix("faas-trigger: configuration faas.scaledobjects:") && lines[0].contains(reason), "\(name): \(lines)")
            #expect(ContinuousClock.now - started < .seconds(30), "took \(ContinuousClock.now - started)")
        }
    }

    /// A listener on loopback that never accepts, with a way to tell whether anyone connected
    /// (the kernel completes connections into its backlog).
    final class Listener {
        let fd: Int32
        let port: Int
        init() {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.fd = fd
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
            _ = listen(fd, 16)
            _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            port = Int(UInt16(bigEndian: addr.sin_port))
        }
        /// Whether a connection is waiting (taken and closed).
        var connected: Bool {
            let c = accept(fd, nil, nil)
            if c >= 0 { close(c); return true }
            return false
        }
        deinit { close(fd) }
    }

    static let services = ["scheduler", "agent", "gateway", "autoscaler", "faas-trigger", "notifier", "accelerator-monitor"]

    /// Every service: `--help` on standard output with its keys, status 0; an unknown flag, a
    /// misspelt key, an argument: one line naming it (with the nearest key), status 1; a
    /// taken port: one line, status 1, and not one connection to Kafka or PostgreSQL made.
    @Test(arguments: services)
    func everyServiceFailsFastAndSaysWhy(service: String) async throws {
        // --help: stdout only, the program's purpose and keys.
        let out = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("help") + ".out").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let helpStatus = await runCommand(["/bin/sh", "-c", "'\(TestEnv.binDir.appendingPathComponent(service).path)' --help > '\(out)' 2> '\(out).err'"])
        let help = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        let helpErr = (try? String(contentsOfFile: out + ".err", encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(atPath: out + ".err")
        #expect(helpStatus == 0 && help.hasPrefix("\(service): ") && help.contains("--log-level  (default: info)") && helpErr.isEmpty, "\(service) --help: \(helpStatus) \(help.prefix(200)) \(helpErr)")

        let kafka = Listener(), postgres = Listener()
        let wiring = ["--kafka-brokers", "127.0.0.1:\(kafka.port)", "--postgres-url", "postgres://gedge@127.0.0.1:\(postgres.port)/gedge", "--log-level", "error"]
        for (args, expected) in [
            (["--htp-port", "18888"], "did you mean --http-port?"),
            (["--log-levl", "debug"], "did you mean --log-level?"),
            (["--no-such-thing", "1"], "unknown flag --no-such-thing"),
            (["extra"], "takes no arguments"),
        ] {
            let (status, lines) = try await run(service, args + wiring)
            #expect(status == 1 && lines.count == 1 && lines[0].hasPrefix("\(service): configuration") && lines[0].contains(expected), "\(service) \(args): \(status) \(lines)")
        }
        // A taken port.
        let taken = Listener()
        let (status, lines) = try await run(service, ["--http-port", "\(taken.port)"] + (service == "agent" ? ["--agent-cluster", "edge1"] : []) + wiring)
        #expect(status == 1 && lines.count == 1 && lines[0].contains("port \(taken.port) on 127.0.0.1 is taken"), "\(service): \(status) \(lines)")
        #expect(!kafka.connected && !postgres.connected, "\(service) reached Kafka or PostgreSQL before it checked its port")
    }

    /// The suite's other programs, each subcommand of those that have them.
    static let tools = [
        "gedge-kafka-dev", "gedge-fleet", "gedge-bench", "gedge-bench-faas", "gedge-bench-scheduler", "gedge-demo", "gedgectl",
        "gedge-faas-demo motion", "gedge-faas-demo detect", "gedge-faas-demo sink",
        "gedge-testkit kafka-consume", "gedge-testkit amqp-consume", "gedge-testkit decode-peak",
    ]

    /// Every other program, and each subcommand: `--help` prints what it does and exits 0,
    /// touching nothing (the demo used to run the demo); a flag it does not know ends it at
    /// once, naming the flag, with a status that is not 0.
    @Test(arguments: tools)
    func everyToolAnswersHelpAndRefusesWhatItDoesNotKnow(tool: String) async throws {
        let words = tool.split(separator: " ").map(String.init)
        let (program, sub) = (words[0], Array(words.dropFirst()))
        let (helpStatus, help) = try await run(program, sub + ["--help"], within: .seconds(15))
        #expect(helpStatus == 0 && help.count >= 3 && help.joined(separator: "\n").contains(program), "\(tool) --help: \(helpStatus) \(help.prefix(5))")
        let required = tool == "gedge-testkit decode-peak" ? ["--file", "/dev/null"] : []
        let (status, lines) = try await run(program, sub + required + ["--no-such-thing", "1"], within: .seconds(15))
        #expect(status != 0 && lines.contains { $0.contains("no-such-thing") }, "\(tool) --no-such-thing: \(status) \(lines.prefix(5))")
    }

    /// The scripts README and the Makefile run (and `make help` lists), each as an operator would try it first: `--help`
    /// prints what it does and exits 0 (the demo, the checks and the installer used to run, and
    /// the secrets' generator made a folder named `--help`); an option it does not take ends
    /// it with status 2 and one line naming the option.
    @Test(arguments: ["scripts/check-deploy.sh", "scripts/compose-secrets.sh", "scripts/demo.sh", "scripts/install-deps.sh", "scripts/run.sh",
                      "scripts/stack.sh", "scripts/validate-networks.py", "scripts/check-k8s.py", "bench/gateway.sh"])
    func everyScriptAnswersHelpAndRefusesWhatItDoesNotKnow(script: String) async throws {
        let path = repositoryRoot.appendingPathComponent(script).path
        let interpreter = script.hasSuffix(".py") ? "python3" : "bash"
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("scripts"))
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        // Run from a scratch folder: anything a script wrongly makes of its argument lands there.
        func run(_ argument: String) async throws -> (status: Int32, lines: [String]) {
            try await self.run("sh", ["-c", "cd '\(scratch.path)' && exec \(interpreter) '\(path)' \(argument)"], within: .seconds(15), directory: URL(fileURLWithPath: "/bin"))
        }
        let (helpStatus, help) = try await run("--help")
        #expect(helpStatus == 0 && help.count >= 2, "\(script) --help: \(helpStatus) \(help.prefix(5))")
        let (status, lines) = try await run((script.hasSuffix("validate-networks.py") ? "/dev/null " : "") + "--no-such-thing")
        #expect(status == 2 && lines.contains { $0.contains("--no-such-thing") }, "\(script) --no-such-thing: \(status) \(lines.prefix(5))")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).isEmpty, "\(script) made files of its arguments")
    }

    /// SIGTERM while a service waits on a broker and a database that accept connections and
    /// never answer: it ends promptly (the waits give way to the shutdown), whatever stage
    /// its startup is at.
    @Test(arguments: services)
    func sigtermEndsEveryServiceWhileItWaitsForItsServers(service: String) async throws {
        let blackhole = Listener()
        let topology = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/topology-seed.json").path
        let extra: [String: [String]] = [
            "scheduler": ["--scheduler-producers", "trusted"],
            "agent": ["--agent-cluster", "edge1", "--agent-driver", "simulated", "--agent-topology", topology],
            "accelerator-monitor": ["--host-root", "/nonexistent", "--kubernetes-url", "http://127.0.0.1:\(blackhole.port)"],
        ]
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("term-\(service)") + ".log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try GEdgeCore.ChildProcess(service, [
            "--http-port", "0", "--log-level", "error", "--shutdown-grace", "3s",
            "--postgres-url", "postgres://gedge@127.0.0.1:\(blackhole.port)/none", "--kafka-brokers", "127.0.0.1:\(blackhole.port)",
            "--amqp-url", "amqp://guest:guest@127.0.0.1:\(blackhole.port)/",
        ] + (extra[service] ?? []), logFile: log, directory: TestEnv.binDir)
        try await Task.sleep(for: .seconds(2))
        #expect(child.isRunning, "\(service) waits for its servers: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        let started = ContinuousClock.now
        kill(child.pid, SIGTERM)
        try await eventually("\(service) ended", timeout: .seconds(15)) { !child.isRunning }
        // The grace (3 s) and the producer's flush (at most 3 s) bound it; the watchdog (grace +
        // 5 s) is never needed: its line is not in the log (below). The time has room for a
        // loaded machine.
        #expect(ContinuousClock.now - started < .seconds(14), "\(service) took \(ContinuousClock.now - started)")
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(!text.contains("did not stop within"), "\(service): \(text.suffix(300))")
    }

    /// SIGTERM while a service's database and Kafka are up and RabbitMQ is away (nothing
    /// listens): the notifier's and faas-trigger's declares, which wait for the broker, give
    /// way to the shutdown at once, not after the grace.
    @Test(arguments: ["notifier", "faas-trigger"])
    func sigtermEndsAServiceWaitingForRabbitMQ(service: String) async throws {
        let h = try await SchedulerHarness()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("away-\(service)") + ".log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try GEdgeCore.ChildProcess(service, [
            "--http-port", "0", "--log-level", "info", "--log-format", "text", "--shutdown-grace", "20s",
            "--postgres-url", h.schemaURL, "--kafka-brokers", h.cluster.bootstrapServers, "--amqp-url", "amqp://guest:guest@127.0.0.1:1/",
        ], logFile: log, directory: TestEnv.binDir)
        // Its services started (the server listens), and the broker tried since.
        try await eventually("\(service) serves and tries the broker") {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            guard let listening = text.range(of: "listening") else { return false }
            return text[listening.upperBound...].contains("AMQP connect failed")
        }
        try await Self.expectPromptStop(child, service, log: log, within: .seconds(10))
        await h.shutdown()
    }

    /// Sends SIGTERM and expects the process to end within `bound`, its watchdog unneeded.
    static func expectPromptStop(_ child: GEdgeCore.ChildProcess, _ service: String, log: String, within bound: Duration) async throws {
        let started = ContinuousClock.now
        kill(child.pid, SIGTERM)
        try await eventually("\(service) ended", timeout: .seconds(30)) { !child.isRunning }
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(ContinuousClock.now - started < bound, "\(service) took \(ContinuousClock.now - started): \(text.suffix(600))")
        #expect(!text.contains("did not stop within"), "\(service): \(text.suffix(300))")
    }

    /// SIGTERM to a service that runs with every server up: it ends at once, not after its
    /// periodic loops' intervals (a service group stops its services one after another; the
    /// scheduler's gauges, sampled every 60 s here, used to hold the rest for up to that).
    @Test(arguments: ["scheduler", "agent", "gateway", "autoscaler", "faas-trigger", "notifier"])
    func sigtermEndsARunningServiceAtOnce(service: String) async throws {
        let h = try await SchedulerHarness()
        let topology = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/topology-seed.json").path
        let extra: [String: [String]] = [
            "scheduler": ["--scheduler-producers", "trusted", "--scheduler-gauges-interval", "60s", "--scheduler-instance", TestEnv.unique("term")],
            "agent": ["--agent-cluster", "edge1", "--agent-driver", "simulated", "--agent-topology", topology],
            "gateway": ["--gateway-admin-token", Hex.random(bytes: 16)],
        ]
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("run-\(service)") + ".log").path
        defer { try? FileManager.default.removeItem(atPath: log) }
        let child = try GEdgeCore.ChildProcess(service, [
            "--http-port", "0", "--log-level", "info", "--log-format", "text", "--shutdown-grace", "20s",
            "--postgres-url", h.schemaURL, "--kafka-brokers", h.cluster.bootstrapServers, "--amqp-url", TestEnv.amqpURL,
        ] + (extra[service] ?? []), logFile: log, directory: TestEnv.binDir)
        try await eventually("\(service) serves") { ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("listening") }
        try await Task.sleep(for: .seconds(2))
        #expect(child.isRunning)
        try await Self.expectPromptStop(child, service, log: log, within: .seconds(6))
        await h.shutdown()
    }

    @Test func aTakenPortEndsTheGatewayAtOnce() async throws {
        let taken = try PortReservation()
        defer { taken.release() }
        taken.occupy()
        let started = ContinuousClock.now
        let (status, lines) = try await run("gateway", [
            "--http-port", "\(taken.port)", "--log-level", "error", "--postgres-url", TestEnv.postgresURL,
            "--kafka-brokers", "127.0.0.1:1", "--gateway-admin-token", String(repeating: "a", count: 40),
        ])
        #expect(status == 1 && lines.count == 1 && lines.last?.hasPrefix("gateway: ") == true && lines.last?.contains("is taken") == true, "\(status): \(lines)")
        #expect(ContinuousClock.now - started < .seconds(30), "took \(ContinuousClock.now - started)")
    }
}

/// The decoder's peak memory on the densest documents the default limits let it build before
/// refusing them (100,000 tiny objects in under 1 MB), each decoded alone in a process of its
/// own so that nothing else in the test run counts.
@Suite("Decoder memory", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(1)))
struct DecoderMemoryTests {
    @Test(arguments: ["json", "yaml"])
    func densestDocumentsPeakUnder16MiB(format: String) async throws {
        let text = format == "json"
            ? "[" + Array(repeating: #"{"a":0}"#, count: 120_000).joined(separator: ",") + "]"
            : Array(repeating: "- {a: 0}", count: 120_000).joined(separator: "\n")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("dense") + "." + format).path
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let child = try ChildProcess("gedge-testkit", ["decode-peak", "--file", file, "--format", format])
        try await child.waitForExit(timeout: .seconds(30))
        try await eventually("the figure") { child.lines.contains { $0.hasPrefix("PEAK ") } }
        let line = try #require(child.lines.first { $0.hasPrefix("PEAK ") })
        print("decoder memory, \(format), \(text.utf8.count) bytes: \(line)")
        let parts = line.split(separator: " ", maxSplits: 2)
        #expect(parts.count == 3 && parts[2].contains("decode.max.nodes"), "\(line)")
        #expect((Int(parts[1]) ?? .max) < 16 << 10, "\(line)")
    }
}
