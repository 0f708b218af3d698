import Foundation
import GEdgeCore
import GEdgeKafka
import GEdgePostgres
import Logging

// Benchmarks, printed side by side in one run (`make bench`, release build):
//   1. Kafka produce and consume of 1 KB messages through this library and through kcat,
//      on the same messages and the same broker: a dev broker process (librdkafka's mock
//      cluster) started for the run, with topics of bench.partitions partitions (the mock
//      keeps only the newest ~20,000 1 KB messages readable, so the consume test stays under
//      that). Produce runs in alternating rounds; the medians are compared..
//   2. PostgreSQL inserts row by row versus pipelined batches.
//
// Keys: bench.messages (300000, produced per round), bench.rounds (5), bench.consume.messages (10000), bench.message.bytes (1024), bench.partitions (32),
// bench.kafka.port (19092), postgres.url, bench.rows (20000).

func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }

/// Runs a command, feeding it a file on standard input; returns its wall time.
func timeCommand(_ path: String, _ args: [String], stdin: URL? = nil, stdout: URL? = nil) throws -> Duration {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let stdin { p.standardInput = try FileHandle(forReadingFrom: stdin) }
    if let stdout {
        _ = FileManager.default.createFile(atPath: stdout.path, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: stdout)
    } else {
        p.standardOutput = FileHandle.nullDevice
    }
    let start = ContinuousClock.now
    try p.run()
    p.waitUntilExit()
    let elapsed = ContinuousClock.now - start
    guard p.terminationStatus == 0 else { throw ConfigurationError(key: "bench", reason: "\(path) \(args) exited \(p.terminationStatus)") }
    return elapsed
}

func row(_ name: String, _ n: Int, _ d: Duration, bytes: Int? = nil) -> (String, Double) {
    let rate = Double(n) / seconds(d)
    let mb = bytes.map { String(format: "  %7.1f MB/s", Double($0) * rate / 1e6) } ?? ""
    // (String(format:) does not pad a `%@` argument on Linux.)
    Console.line("  " + name.padding(toLength: max(34, name.count), withPad: " ", startingAt: 0)
        + String(format: " %9d in %7.3f s  %10.0f /s", n, seconds(d), rate) + mb)
    return (name, rate)
}

func run() async throws {
    let config = try ConfigReader()
    try config.check(program: "gedge-bench")
    GEdgeLogging.bootstrapConsole(level: .error)
    let logger = Logger(label: "gedge-bench")
    let count = try config.int("bench.messages", default: 300_000)
let consumeCount = try config.int("bench.consume.messages", default: 10_000)
let rounds = try config.int("bench.rounds", default: 5)
    let size = try config.int("bench.message.bytes", default: 1024)
    let rowsWanted = try config.int("bench.rows", default: 20_000)
    let runID = String(RequestID.make().prefix(8))

    // One payload, the same bytes for kcat (one message per line) and for the library.
    let line = Array(repeating: UInt8(ascii: "x"), count: size - 1)
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("gedge-bench-\(runID).txt")
    var blob = [UInt8]()
    blob.reserveCapacity(count * size)
    for i in 0..<count {
        var m = line
        let tag = Array(String(i).utf8)
        m.replaceSubrange(0..<tag.count, with: tag)
        blob += m
        blob.append(10)
    }
    try Data(blob).write(to: file)
    let messages: [[UInt8]] = (0..<count).map { i in Array(blob[(i * size)..<(i * size + size - 1)]) }

    let kcat = "/usr/bin/kcat"
    let kcatTopic = "bench-kcat-\(runID)"
    let libTopic = "bench-lib-\(runID)"
    let consumeTopic = "bench-consume-\(runID)"
    let partitions = try config.int("bench.partitions", default: 32)
    let port = try config.port("bench.kafka.port", default: 19092)
    let bootstrapFile = FileManager.default.temporaryDirectory.appendingPathComponent("gedge-bench-\(runID).bootstrap")
    let broker = try ChildProcess(
        "gedge-kafka-dev",
        [
            "--kafka-dev-port", String(port), "--kafka-dev-brokers", "1", "--log-level", "error",
            "--kafka-dev-topics", "\(consumeTopic):\(partitions)", "--kafka-dev-bootstrap-file", bootstrapFile.path,
        ],
        logFile: FileManager.default.temporaryDirectory.appendingPathComponent("gedge-bench-\(runID).kafka.log").path)
    defer { broker.stop() }
    try await broker.waitForFile(bootstrapFile.path)
    let brokers = "127.0.0.1:\(port)"
    Console.line("Kafka: \(count) messages of \(size) bytes, dev broker process on \(brokers), \(partitions) partitions per topic")

    // Produce, in alternating rounds, each to a fresh topic: kcat, then the library with
    // kcat's settings (acks=all, no idempotence), then the library as the suite runs it
    // (idempotent).
    var plainConfig = KafkaProducerConfiguration(client: KafkaConfiguration(brokers: brokers, clientID: "bench"))
    plainConfig.idempotent = false
    plainConfig.client["acks"] = "all"
    let plain = try KafkaProducer(configuration: plainConfig, logger: logger)
    let idempotent = try KafkaProducer(configuration: KafkaProducerConfiguration(client: KafkaConfiguration(brokers: brokers, clientID: "bench")), logger: logger)

    func produceAll(_ producer: KafkaProducer, topic: String) async throws -> Duration {
        // Warm the connection and the topic's metadata, as kcat does before its first message.
        _ = try await producer.send(KafkaRecord(topic: topic, key: nil, value: Array("warmup".utf8)))
        let delivered = RunFlag(false)
        let done = Counter()
        let start = ContinuousClock.now
        for m in messages {
            while true {
                do {
                    try producer.enqueue(KafkaRecord(topic: topic, key: nil, value: m)) { result in
                        if case .failure(let e) = result { Console.line("delivery failed: \(e)") }
                        if done.increment() == count { delivered.set(true) }
                    }
                    break
                } catch let k {
                    guard k.isQueueFull else { throw k }
                    try await Task.sleep(for: .microseconds(200))
                }
            }
        }
        while !delivered.isSet { try await Task.sleep(for: .milliseconds(1)) }
        return ContinuousClock.now - start
    }

    var kcatTimes: [Duration] = []
    var plainTimes: [Duration] = []
    var idemTimes: [Duration] = []
    for round in 0..<rounds {
        kcatTimes.append(try timeCommand(kcat, ["-P", "-b", brokers, "-t", "\(kcatTopic)-\(round)", "-X", "linger.ms=5"], stdin: file))
        plainTimes.append(try await produceAll(plain, topic: "\(libTopic)-plain-\(round)"))
        idemTimes.append(try await produceAll(idempotent, topic: "\(libTopic)-idem-\(round)"))
    }
    func median(_ xs: [Duration]) -> Duration { xs.sorted()[xs.count / 2] }
    func list(_ xs: [Duration]) -> String { xs.map { String(format: "%.3f", seconds($0)) }.joined(separator: " ") }
    Console.line("  produce, median of \(rounds) alternating rounds (s: kcat \(list(kcatTimes)); library \(list(plainTimes)); idempotent \(list(idemTimes)))")
    let (_, kp) = row("kcat -P (acks=all)", count, median(kcatTimes), bytes: size)
    let (_, lp) = row("KafkaProducer (acks=all)", count, median(plainTimes), bytes: size)
    let (_, ip) = row("KafkaProducer (idempotent)", count, median(idemTimes), bytes: size)
    Console.line(String(format: "  library / kcat: %.0f%% with kcat's settings, %.0f%% idempotent", lp / kp * 100, ip / kp * 100))
    await plain.shutdown()
    let producer = idempotent

    // Consume: kcat writes the first consumeCount messages to one topic, then kcat and the
    // library each read that same topic from the beginning.
    let consumeFile = FileManager.default.temporaryDirectory.appendingPathComponent("gedge-bench-\(runID)-c.txt")
    try Data(blob[0..<(consumeCount * size)]).write(to: consumeFile)
    _ = try timeCommand(kcat, ["-P", "-b", brokers, "-t", consumeTopic], stdin: consumeFile)
    try? FileManager.default.removeItem(at: consumeFile)
    // How many the broker still holds (the mock drops its oldest batches).
    let probe = FileManager.default.temporaryDirectory.appendingPathComponent("gedge-bench-\(runID)-out.txt")
    _ = try timeCommand(kcat, ["-C", "-b", brokers, "-t", consumeTopic, "-o", "beginning", "-e", "-q", "-f", "%o\n"], stdout: probe)
    let kcatSeen = (try String(contentsOf: probe, encoding: .utf8)).split(separator: "\n").count
    try? FileManager.default.removeItem(at: probe)
    // Both as members of a consumer group of their own, from start to the last message.
    let kcatConsume = try timeCommand(kcat, ["-G", "bench-kcat-\(runID)", "-b", brokers, "-X", "auto.offset.reset=earliest", "-c", String(kcatSeen), "-q", "-f", "%o\n", consumeTopic])
    var consumerConfig = KafkaConsumerConfiguration(client: KafkaConfiguration(brokers: brokers, clientID: "bench"), groupID: "bench-\(runID)", topics: [consumeTopic])
    consumerConfig.bufferCapacity = 4096
    let consumeStart = ContinuousClock.now
    let consumer = try KafkaConsumer(configuration: consumerConfig, logger: logger)
    let watchdog = Task {
        try await Task.sleep(for: .seconds(60))
        Console.line("!! consume did not finish in 60 s")
        consumer.stopPolling()
    }
    var seen = 0
    var firstAt: ContinuousClock.Instant?
    for await m in consumer {
        if firstAt == nil { firstAt = ContinuousClock.now }
        seen += 1
        if seen % 1000 == 0 { try consumer.storeOffset(m) }
        if seen == kcatSeen { break }
    }
    watchdog.cancel()
    let libConsume = ContinuousClock.now - consumeStart
    let libSteady = ContinuousClock.now - firstAt!
    Console.line("  consume: \(consumeCount) written, \(kcatSeen) readable on the mock broker; both read those from the beginning")
    let (_, kc) = row("kcat -G (group join included)", kcatSeen, kcatConsume, bytes: size)
    let (_, lc) = row("GEdgeKafka KafkaConsumer (same)", seen, libConsume, bytes: size)
    Console.line(String(format: "  library / kcat: %.0f%%  (library after its first message: %.0f /s)", lc / kc * 100, Double(seen) / seconds(libSteady)))
    try await consumer.close()
    await producer.shutdown()

    // PostgreSQL.
    Console.line("PostgreSQL: \(rowsWanted) rows of (bigint, text, jsonb)")
    let pool = PostgresPool(configuration: try PostgresConfiguration(config, applicationName: "gedge-bench"), logger: logger)
    let table = "bench_\(runID)"
    try await pool.execute("CREATE TABLE \(table) (id bigint PRIMARY KEY, name text, doc jsonb)")
    let rows: [[PostgresValue]] = (0..<rowsWanted).map { [.int(Int64($0)), .text("name-\($0)"), .json(.object(["i": .number(Double($0))]))] }
    let insert = "INSERT INTO \(table) VALUES ($1, $2, $3::jsonb)"
    let oneStart = ContinuousClock.now
    try await pool.withConnection { c in
        for r in rows { try await c.execute(insert, r) }
    }
    let oneByOne = ContinuousClock.now - oneStart
    try await pool.execute("TRUNCATE \(table)")
    let batchStart = ContinuousClock.now
    _ = try await pool.withConnection { c in try await c.executeBatch(insert, rows: rows) }
    let batched = ContinuousClock.now - batchStart
    let (_, r1) = row("row by row (autocommit)", rowsWanted, oneByOne)
    let (_, r2) = row("pipelined batch (one transaction)", rowsWanted, batched)
    Console.line(String(format: "  batched / row by row: %.1fx", r2 / r1))
    try await pool.execute("DROP TABLE \(table)")
    pool.shutdown()


    try? FileManager.default.removeItem(at: file)
}

ChildProcess.stopAllOnInterrupt()
await Console.runMain("gedge-bench") { try await run() }

/// A counter shared with delivery callbacks.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
