import Foundation
import GEdgeCore
import Testing

@Suite("Configuration")
struct ConfigurationTests {
    @Test func flagsBeatEnvironmentWhichBeatsTheFile() throws {
        let r = try ConfigReader(
            commandLine: ["--kafka-brokers", "flag:1", "--log.level=debug", "run"],
            environment: ["GEDGE_KAFKA_BROKERS": "env:1", "GEDGE_POSTGRES_URL": "postgres://env"],
            fileValues: ["kafka.brokers": "file:1", "postgres.url": "postgres://file", "http.port": "8080"])
        #expect(r.string("kafka.brokers") == "flag:1")
        #expect(r.string("postgres.url") == "postgres://env")
        #expect(try r.int("http.port", default: 1) == 8080)
        #expect(r.string("log.level") == "debug")
        #expect(r.arguments == ["run"])
        #expect(r.string("missing", default: "d") == "d")
    }

    @Test func typedValuesAndErrorsNameTheKey() throws {
        let r = try ConfigReader(commandLine: ["--a", "12x", "--b", "250ms", "--c", "3m", "--d", "yes", "--once"], environment: [:])
        #expect(throws: ConfigurationError.self) { try r.int("a", default: 0) }
        #expect(try r.duration("b", default: .zero) == .milliseconds(250))
        #expect(try r.duration("c", default: .zero) == .seconds(180))
        #expect(try r.bool("d", default: false))
        #expect(r.flag("once"))
        do {
            _ = try r.int("a", default: 0)
        } catch let e as ConfigurationError {
            #expect(e.key == "a")
        }
    }

    @Test func portsAreTCPPorts() throws {
        let r = try ConfigReader(commandLine: ["--p1", "8080", "--p2", "0", "--p3", "99999", "--p4", "-1"], environment: [:])
        #expect(try r.port("p1", default: 1) == 8080)
        #expect(try r.port("p2", default: 1) == 0)
        #expect(try r.port("none", default: 9092) == 9092)
        #expect(throws: ConfigurationError.self) { try r.port("p3", default: 0) }
        #expect(throws: ConfigurationError.self) { try r.port("p4", default: 0) }
    }

    @Test func jsonAndKeyValueFilesAndSecrets() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gedge-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = dir.appendingPathComponent("c.json")
        try #"{"kafka": {"brokers": ["a:1", "b:2"]}, "http": {"port": 9000}}"#.write(to: json, atomically: true, encoding: .utf8)
        let r = try ConfigReader(commandLine: ["--config", json.path], environment: [:])
        #expect(r.list("kafka.brokers", default: []) == ["a:1", "b:2"])
        #expect(try r.int("http.port", default: 0) == 9000)

        let kv = dir.appendingPathComponent("c.conf")
        try "# comment\npostgres.url = postgres://x\n\n".write(to: kv, atomically: true, encoding: .utf8)
        let secret = dir.appendingPathComponent("pw")
        try "s3cret\n".write(to: secret, atomically: true, encoding: .utf8)
        let r2 = try ConfigReader(commandLine: [], environment: ["GEDGE_CONFIG": kv.path, "GEDGE_POSTGRES_PASSWORD_FILE": secret.path])
        #expect(r2.string("postgres.url") == "postgres://x")
        #expect(try r2.secret("postgres.password") == "s3cret")

        let bad = dir.appendingPathComponent("bad.conf")
        try "no equals sign here\n".write(to: bad, atomically: true, encoding: .utf8)
        #expect(throws: ConfigurationError.self) { try ConfigReader(commandLine: ["--config", bad.path], environment: [:]) }
    }
}

@Suite("Bounded channel")
struct BoundedChannelTests {
    @Test func aFullChannelHoldsTheProducerAndLosesNothing() async {
        let channel = BoundedChannel<Int>(capacity: 4)
        let producer = DedicatedThread(name: "test-producer")
        producer.submit {
            for i in 0..<1000 { channel.push(i) }
            channel.close()
        }
        var got: [Int] = []
        while let v = await channel.next() {
            got.append(v)
        }
        #expect(got == Array(0..<1000))
        producer.stop()
    }

    @Test func closingReleasesABlockedProducer() async throws {
        let channel = BoundedChannel<Int>(capacity: 1)
        let thread = DedicatedThread(name: "test-blocked")
        let result = RunFlag(true)
        thread.submit {
            channel.push(1)
            result.set(channel.push(2))  // blocks: the channel is full
        }
        try await Task.sleep(for: .milliseconds(50))
        channel.close()
        thread.stop()
        #expect(result.isSet == false)
        #expect(await channel.next() == 1)
        #expect(await channel.next() == nil)
    }
}
