import Foundation

/// The suite's configuration keys (`ConfigKeyTable.swift`, checked against
/// docs/configuration.md by a test): what `--help` prints, and what a flag or configuration
/// file may name. A key no section names is refused, with the nearest known key.
public enum ConfigKeys {
    public struct Key: Sendable {
        /// The key and the keys documented with it (`gateway.callback.backoff`, `….max`).
        public let names: [String]
        /// As the documentation writes it (Markdown).
        public let defaultValue: String
        public let meaning: String
    }

    public struct Section: Sendable {
        public let title: String
        public let programs: [String]
        public let keys: [Key]
    }

    /// What each program is for, the first lines of its `--help`.
    public static let purposes: [String: String] = [
        "scheduler": "Places schedule requests from Kafka on clusters and nodes by policy, and records every step in PostgreSQL.",
        "agent": "Reports one cluster's nodes, resources and latencies, and applies placements to it (Kubernetes or simulated).",
        "gateway": "The HTTP door: GS-Engine's service API, GS-Scheduler's front API, /v1, the console and callbacks.",
        "autoscaler": "Scales workloads out and in as the HPA would, and over the edge into a neighbour cluster.",
        "faas-trigger": "Scales functions from zero on RabbitMQ queue depth, reading KEDA ScaledObjects.",
        "notifier": "Turns detection events from RabbitMQ into stored, delivered notifications.",
        "accelerator-monitor": "Finds a node's GPUs, Jetson and Coral TPUs, labels the node and publishes its inventory.",
        "gedge-kafka-dev": "A local Kafka broker (librdkafka's mock cluster) on a fixed port, for development and tests.",
        "gedge-fleet": "Thousands of simulated edge clusters in one process: reports, coordinates and applies, against a real stack.",
        "gedge-demo": "The demo's producer and reporter: schedule requests under each policy to Kafka, each one's lifecycle from PostgreSQL; or load offered to the simulated clusters.",
        "gedge-bench": "Kafka produce and consume through this library beside kcat, and PostgreSQL inserts row by row beside pipelined batches.",
        "gedge-bench-faas": "Scale-from-zero latency and the notifier's throughput against the local stack.",
        "gedge-bench-scheduler": "The scheduler's benchmarks in one run: decision time, end to end, message coding, edge scale over a simulated fleet.",
    ]

    /// The HTTP client key prefixes (docs/configuration.md, "HTTP clients").
    static let httpClientPrefixes = ["kubernetes.", "gateway.callback.http.", "notifier.webhook.http."]
    /// Keys every program takes.
    static let builtIn = ["config", "help"]

    /// The keys a documented name stands for: itself, or a prefix (`kafka.rdkafka.<property>`,
    /// `gateway.callback.http.*`) that any key under it matches.
    enum Pattern { case exact(String), prefix(String) }

    static func patterns(_ name: String) -> [Pattern] {
        var n = name
        if n.hasPrefix("--") { n.removeFirst(2) }
        if n.hasPrefix("<prefix>") {
            let rest = String(n.dropFirst("<prefix>".count))
            return httpClientPrefixes.map { .exact($0 + rest) }
        }
        if let lt = n.firstIndex(of: "<") { return [.prefix(String(n[..<lt]))] }
        if n.hasSuffix(".*") { return [.prefix(String(n.dropLast()))] }
        return [.exact(n)]
    }

    static func matches(_ key: String, _ p: Pattern) -> Bool {
        switch p {
        case .exact(let e): return key == e
        case .prefix(let pre): return key.hasPrefix(pre) && key.count > pre.count
        }
    }

    static func sections(for program: String?) -> [Section] {
        guard let program else { return table }
        return table.filter { $0.programs.contains(program) }
    }

    /// Whether a key is one of the suite's (any program's): a documented key, one under a
    /// documented prefix, or a secret's `.file`.
    public static func isKnown(_ key: String) -> Bool {
        let k = key.lowercased()
        if builtIn.contains(k) { return true }
        if k.hasSuffix(".file"), isKnown(String(k.dropLast(5))) { return true }
        return table.contains { s in s.keys.contains { $0.names.contains { patterns($0).contains { p in matches(k, p) } } } }
    }

    /// The documented key nearest to `key`, preferring the program's own.
    public static func suggestion(for key: String, program: String?) -> String? {
        func names(_ sections: [Section]) -> [String] {
            sections.flatMap { $0.keys.flatMap { $0.names.flatMap { patterns($0) } } }.map {
                switch $0 { case .exact(let e): return e; case .prefix(let p): return p }
            }
        }
        let k = key.lowercased()
        for candidates in [names(sections(for: program)), names(table)] {
            let scored = candidates.map { ($0, distance(k, $0)) }.filter { $0.1 <= max(2, $0.0.count / 4) }
            if let best = scored.min(by: { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }) { return best.0 }
        }
        return nil
    }

    /// Levenshtein distance.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }

    /// The program's `--help`: what it is for, how keys are given, and its keys with their
    /// defaults, section by section.
    public static func help(program: String, usage: String? = nil) -> String {
        func plain(_ s: String) -> String { s.replacingOccurrences(of: "`", with: "") }
        var out = "\(program): \(purposes[program] ?? "")\n\n"
        out += "Usage: \(usage ?? "\(program) [--KEY VALUE | --KEY=VALUE]...")\n\n"
        out += "Every key is a flag (--kafka-brokers X or --kafka.brokers=X), an environment variable\n"
        out += "(GEDGE_KAFKA_BROKERS) or a line of the file named by --config (key = value, or JSON).\n"
        out += "A secret key K may be read from the file named by K.file. Keys: docs/configuration.md.\n"
        for s in sections(for: program) {
            out += "\n\(plain(s.title)):\n"
            for k in s.keys {
                let flags = k.names.map { n in n.hasPrefix("--") ? n : "--" + n.replacingOccurrences(of: ".", with: "-") }.joined(separator: ", ")
                let def = plain(k.defaultValue)
                out += "  \(flags)\(def.isEmpty ? "" : "  (default: \(def))")\n"
                if !k.meaning.isEmpty { out += "      \(plain(k.meaning))\n" }
            }
        }
        return out
    }
}
