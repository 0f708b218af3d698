import Foundation
import Testing

@testable import GEdgeCore

/// The keys' table and docs/configuration.md say the same, and a program refuses what no
/// section names, with the nearest key.
@Suite("Configuration keys")
struct ConfigKeysTests {
    /// docs/configuration.md's tables, read as a reader would: `## section`, then rows of
    /// `| key | default | meaning |`.
    static func documented() throws -> [(title: String, rows: [(names: [String], defaultValue: String, meaning: String)])] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../docs/configuration.md")
        var out: [(title: String, rows: [(names: [String], defaultValue: String, meaning: String)])] = []
        for line in try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("## ") { out.append((String(line.dropFirst(3)), [])); continue }
            guard line.hasPrefix("| `"), !out.isEmpty else { continue }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast().map { $0.trimmingCharacters(in: .whitespaces) }
            let names = cells[0].split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
            out[out.count - 1].rows.append((names, cells.count > 1 ? cells[1] : "", cells.count > 2 ? cells[2] : ""))
        }
        return out.filter { !$0.rows.isEmpty }
    }

    @Test func theTableIsTheDocumentation() throws {
        let doc = try Self.documented()
        #expect(doc.map(\.title) == ConfigKeys.table.map(\.title))
        for (d, t) in zip(doc, ConfigKeys.table) {
            #expect(d.rows.map(\.names) == t.keys.map(\.names), "\(d.title)")
            #expect(d.rows.map(\.defaultValue) == t.keys.map(\.defaultValue), "\(d.title)")
            #expect(d.rows.map(\.meaning) == t.keys.map(\.meaning), "\(d.title)")
        }
    }

    @Test func unknownFlagsAreRefusedWithTheNearestKey() throws {
        func refusal(_ args: [String], program: String = "gateway") -> String? {
            do {
                try ConfigReader(commandLine: args, environment: [:], fileValues: [:]).check(program: program)
                return nil
            } catch { return "\(error)" }
        }
        #expect(refusal(["--htp-port", "18888"])?.contains("did you mean --http-port?") == true)
        #expect(refusal(["--kafka-brokrs", "x"])?.contains("did you mean --kafka-brokers?") == true)
        #expect(refusal(["--gateway.rate.brust=4"])?.contains("--gateway-rate-burst") == true)
        #expect(refusal(["--zzzzzzzzzz", "1"])?.contains("unknown flag --zzzzzzzzzz") == true)
        #expect(refusal(["stray"])?.contains("takes no arguments") == true)
        // Documented keys, prefixes and secret files pass.
        for ok in [["--http-port", "1"], ["--kafka.rdkafka.security.protocol", "SSL"], ["--postgres-password-file", "/x"],
                   ["--gateway-callback-http-tls-ca-file", "/ca"], ["--notifier-webhooks-fire", "http://h/"], ["--config", "/dev/null"]] {
            #expect(refusal(ok) == nil, "\(ok)")
        }
        #expect(refusal(["--once"], program: "accelerator-monitor") == nil)
    }

    @Test func helpListsTheProgramsKeysWithDefaults() {
        let help = ConfigKeys.help(program: "scheduler")
        #expect(help.hasPrefix("scheduler: Places schedule requests"))
        #expect(help.contains("--scheduler-cluster-stale  (default: 15s)"))
        #expect(help.contains("--kafka-brokers  (default: 127.0.0.1:9092)"))
        #expect(!help.contains("--gateway-rate"), "another program's keys are not listed")
        #expect(ConfigKeys.help(program: "agent").contains("--agent-original-topics"))
    }
}
