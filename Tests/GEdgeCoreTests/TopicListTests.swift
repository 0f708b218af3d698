import Foundation
import Testing

@testable import GEdgeCore

/// The dev broker's topic lists (`kafka.dev.topics`, `kafka.dev.topics.file`): what Kafka
/// accepts as a name, partitions within bounds, each topic once, and files of bounded size.
@Suite struct TopicListTests {
    static func parse(_ text: String) throws(ConfigurationError) -> [TopicList.Entry] {
        try TopicList(text.split(separator: "\n", omittingEmptySubsequences: false), key: "kafka.dev.topics.file").entries
    }

    @Test func entriesWithAndWithoutPartitions() throws {
        let entries = try Self.parse("# the fleet\ngedge.agent.edge-1:1\n\n  gedge.agent.edge-2  \ngedge.cluster.status:16\n")
        #expect(entries == [
            .init(name: "gedge.agent.edge-1", partitions: 1), .init(name: "gedge.agent.edge-2", partitions: 1),
            .init(name: "gedge.cluster.status", partitions: 16),
        ])
    }

    @Test(arguments: [
        "bad topic:1", "a/b:1", ".:1", "..", "topic:0", "topic:-3", "topic:1025", "topic:x", "topic:1:2", ":4",
        String(repeating: "t", count: 250), "tópico:1", "a:1\na:2",
    ])
    func refused(_ text: String) {
        #expect(throws: ConfigurationError.self) { try Self.parse(text) }
    }

    @Test func errorsNameTheKeyAndTheEntry() {
        do {
            _ = try Self.parse("ok:1\nnot ok:1")
            Issue.record("a name with a space was taken")
        } catch {
            #expect(error.key == "kafka.dev.topics.file")
            #expect(error.reason.contains("entry 2"))
        }
    }

    @Test func controlCharactersAreNotEchoed() {
        do {
            _ = try Self.parse("bad\u{1B}[31mname:1")
            Issue.record("a name with an escape was taken")
        } catch {
            #expect(!error.reason.contains("\u{1B}"))
            #expect(error.reason.contains("bad?[31mname"))
        }
    }

    @Test func longestLegalNameIsTaken() throws {
        let name = String(repeating: "a", count: 249)
        #expect(try Self.parse(name + ":3") == [.init(name: name, partitions: 3)])
    }

    @Test func tooManyEntriesAreRefused() {
        let text = (0...TopicList.maxEntries).map { "t\($0)" }.joined(separator: "\n")
        #expect(throws: ConfigurationError.self) { try Self.parse(text) }
    }

    @Test func files() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("topic-list-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        let good = dir.appendingPathComponent("good")
        try (0..<5_000).map { "gedge.agent.fleet-\($0):1\n" }.joined().write(to: good, atomically: true, encoding: .utf8)
        #expect(try TopicList(file: good.path, key: "k").entries.count == 5_000)

        let binary = dir.appendingPathComponent("binary")
        try Data([0x61, 0xFF, 0xFE, 0x0A]).write(to: binary)
        #expect(throws: ConfigurationError.self) { try TopicList(file: binary.path, key: "k") }

        let huge = dir.appendingPathComponent("huge")
        try Data(repeating: 0x61, count: TopicList.maxFileBytes + 1).write(to: huge)
        #expect(throws: ConfigurationError.self) { try TopicList(file: huge.path, key: "k") }

        #expect(throws: ConfigurationError.self) { try TopicList(file: dir.appendingPathComponent("absent").path, key: "k") }
        #expect(throws: ConfigurationError.self) { try TopicList(file: dir.path, key: "k") }
    }
}
