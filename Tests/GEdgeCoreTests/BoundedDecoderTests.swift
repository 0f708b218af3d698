import Foundation
import Testing

@testable import GEdgeCore

/// The one decoder for YAML and JSON, attacked: deep nesting, alias bombs, huge scalars,
/// wide objects, invalid UTF-8, and random mutations. Each must end in a value or an error
/// naming the limit, quickly and without growing the process by more than a few MiB.
@Suite struct BoundedDecoderTests {
    /// Resident memory of this process, in bytes.
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
              let pages = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Runs `body`, which must throw a `too_large` error naming `limit`, within `seconds`
    /// and `mebibytes` of growth.
    static func refused(_ limit: String, seconds: Double = 2, mebibytes: Int = 64, _ body: () throws -> Void) {
        let before = residentBytes()
        let start = ContinuousClock.now
        do {
            try body()
            Issue.record("accepted; expected a refusal naming \(limit)")
        } catch let error as MessageDecodingError {
            #expect(error.code == .tooLarge, "\(error)")
            #expect(error.reason.contains(limit), "\(error)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed < .milliseconds(Int64(seconds * 1000)), "took \(elapsed)")
        let grown = residentBytes() - before
        #expect(grown < mebibytes << 20, "grew by \(grown >> 20) MiB")
    }

    static func billionLaughs(levels: Int) -> String {
        var lines = ["a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]"]
        for i in 1..<levels {
            let refs = Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ",")
            lines.append("a\(i): &a\(i) [\(refs)]")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    @Test func deepFlowNestingIsRefusedByDepth() {
        let flow = "a: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        Self.refused("decode.max.depth") { try _ = YAMLText.documents(flow, path: "") }
        let maps = "a: " + String(repeating: "{b: ", count: 5000) + "1" + String(repeating: "}", count: 5000)
        Self.refused("decode.max.depth") { try _ = YAMLText.documents(maps, path: "") }
    }

    @Test func deepBlockNestingIsRefusedByDepth() {
        var block = ""
        for i in 0..<5000 { block += String(repeating: " ", count: i * 2) + "- \n" }
        let dashes = String(repeating: "- ", count: 5000) + "x\n"
        Self.refused("decode.max.depth") { try _ = YAMLText.documents(dashes, path: "") }
        Self.refused("decode.max.depth") {
            var text = ""
            for i in 0..<200 { text += String(repeating: " ", count: i) + "k\(i):\n" }
            try _ = YAMLText.documents(text + String(repeating: " ", count: 200) + "v\n", path: "")
        }
        _ = block
    }

    @Test func deepJSONIsRefusedByDepth() {
        let deep = Array((String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)).utf8)
        Self.refused("decode.max.depth") { try _ = JSONValue.parse(deep) }
        let inYAML = "workload: " + String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        Self.refused("decode.max.depth") { try _ = YAMLText.documents(inYAML, path: "msg") }
        // 64 levels are fine.
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect((try? JSONValue.parse(Array(ok.utf8))) != nil)
    }

    @Test func aliasBombsStopAtTheNodeLimit() {
        for levels in [6, 9, 12] {
            Self.refused("decode.max.nodes", seconds: 1, mebibytes: 16) { try _ = YAMLText.documents(Self.billionLaughs(levels: levels), path: "") }
        }
        // A few aliases that stay small are fine, and share what they name.
        let small = try? YAMLText.document("base: &b {cpu: 1, mem: 2}\nx: *b\ny: {<<: *b, cpu: 3}\n", path: "")
        #expect(small?["x"] == .object(["cpu": 1, "mem": 2]))
        #expect(small?["y"] == .object(["cpu": 3, "mem": 2]))
    }

    @Test func aliasesCanBeRefusedOrCounted() {
        var none = DecodeLimits()
        none.maxAliases = 0
        Self.refused("decode.max.aliases") { try _ = YAMLText.documents("a: &x 1\nb: *x\n", path: "", limits: none) }
        var few = DecodeLimits()
        few.maxAliases = 3
        let text = "a: &x 1\n" + (0..<10).map { "k\($0): *x" }.joined(separator: "\n")
        Self.refused("decode.max.aliases") { try _ = YAMLText.documents(text, path: "", limits: few) }
        // An alias may not name an anchor that is still open (a cycle).
        #expect(throws: MessageDecodingError.self) { try YAMLText.documents("a: &x [*x]\n", path: "") }
        // An alias cannot smuggle depth past the limit.
        var shallow = DecodeLimits()
        shallow.maxDepth = 4
        Self.refused("decode.max.depth") { try _ = YAMLText.documents("a: &x [[[1]]]\nb: [[*x]]\n", path: "", limits: shallow) }
    }

    @Test func hugeScalarsAndDocumentsAreRefused() {
        var limits = DecodeLimits()
        limits.maxStringBytes = 1000
        let long = String(repeating: "x", count: 5000)
        Self.refused("decode.max.string.bytes") { try _ = YAMLText.documents("a: \(long)\n", path: "", limits: limits) }
        Self.refused("decode.max.string.bytes") { try _ = YAMLText.documents("\(long): 1\n", path: "", limits: limits) }
        Self.refused("decode.max.string.bytes") { try _ = JSONValue.parse(Array("{\"a\":\"\(long)\"}".utf8), limits: limits) }
        Self.refused("decode.max.string.bytes") { try _ = JSONValue.parse(Array("[\"\\n\(long)\"]".utf8), limits: limits) }
        limits.maxDocumentBytes = 4096
        Self.refused("decode.max.document.bytes") { try _ = YAMLText.documents(long, path: "", limits: limits) }
        Self.refused("decode.max.document.bytes") { try _ = JSONValue.parse(Array(long.utf8), limits: limits) }
    }

    @Test func wideObjectsAndManyValuesAreRefused() {
        var limits = DecodeLimits()
        limits.maxKeys = 100
        let wide = (0..<500).map { "k\($0): 1" }.joined(separator: "\n")
        Self.refused("decode.max.keys") { try _ = YAMLText.documents(wide, path: "", limits: limits) }
        let wideJSON = "{" + (0..<500).map { "\"k\($0)\":1" }.joined(separator: ",") + "}"
        Self.refused("decode.max.keys") { try _ = JSONValue.parse(Array(wideJSON.utf8), limits: limits) }
        limits.maxNodes = 1000
        let many = "[" + Array(repeating: "0", count: 5000).joined(separator: ",") + "]"
        Self.refused("decode.max.nodes") { try _ = JSONValue.parse(Array(many.utf8), limits: limits) }
        Self.refused("decode.max.nodes") { try _ = YAMLText.documents(many, path: "", limits: limits) }
    }

    @Test func invalidUTF8IsAnErrorNotATrap() {
        var bytes: [UInt8] = Array("a: ".utf8) + [0xC3, 0x28, 0xFF, 0xFE] + Array("\n".utf8)
        #expect(throws: MessageDecodingError.self) { try YAMLText.documents(bytes: &bytes, path: "") }
        #expect(throws: MessageDecodingError.self) { try JSONValue.parse([0x22, 0xC3, 0x28, 0x22]) }
    }

    @Test func scalarsResolveAsKubernetesReadsThem() throws {
        let v = try YAMLText.document(
            """
            n: ~
            e:
            t: yes
            f: Off
            i: 42
            h: 0x1F
            o: 0o17
            neg: -7
            fl: 2.5e3
            s: "42"
            q: 'true'
            inf: .inf
            big: 123456789012345678901234
            str: !!str 10
            ver: 1.0
            word: hello
            """, path: "")
        #expect(v["n"] == .null && v["e"] == .null)
        #expect(v["t"] == .bool(true) && v["f"] == .bool(false))
        #expect(v["i"] == 42 && v["h"] == 31 && v["o"] == 15 && v["neg"] == -7 && v["fl"] == 2500)
        #expect(v["s"] == "42" && v["q"] == "true" && v["inf"] == ".inf" && v["str"] == "10")
        // Past 64 bits, a number as go-yaml reads it: a float.
        #expect(v["big"] == .number(123456789012345678901234.0) && v["ver"] == 1.0 && v["word"] == "hello")
        #expect(throws: MessageDecodingError.self) { try YAMLText.document("a: 1\na: 2\n", path: "") }
        #expect(throws: MessageDecodingError.self) { try YAMLText.document("{a: 1}: 2\n", path: "") }
        #expect(throws: MessageDecodingError.self) { try YAMLText.document("? [a]\n: 2\n", path: "") }
        #expect(try YAMLText.documents("a: 1\n---\nb: 2\n", path: "").count == 2)
    }

    /// Random mutations of a manifest: every one decodes or is refused with a reason.
    @Test func mutatedManifestsNeverTrapOrHang() {
        let manifest = Array("""
            apiVersion: apps/v1
            kind: Deployment
            metadata: &m {name: web, labels: {app: web}}
            spec:
              replicas: 2
              selector: {matchLabels: {app: web}}
              template:
                metadata: *m
                spec:
                  containers:
                  - name: web
                    image: "nginx:1.27"
                    ports: [{containerPort: 80}]
                    args: ['-c', "echo \\u00e9"]
            ---
            - [a, {b: [c, &x d]}, *x]
            """.utf8)
        var state: UInt64 = 42
        func next() -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int(truncatingIfNeeded: (z ^ (z >> 31)) >> 1)
        }
        let alphabet = Array("[]{}-:,&*!|>'\"#?\n \t\u{00}ab1".utf8) + [0xFF, 0xC3]
        let start = ContinuousClock.now
        var decoded = 0, refused = 0
        for _ in 0..<4000 {
            var bytes = manifest
            for _ in 0..<(1 + next() % 6) {
                let at = next() % bytes.count
                switch next() % 4 {
                case 0: bytes[at] = alphabet[next() % alphabet.count]
                case 1: bytes.remove(at: at)
                case 2: bytes.insert(alphabet[next() % alphabet.count], at: at)
                default: bytes.insert(contentsOf: bytes[at..<min(bytes.count, at + 40)], at: at)
                }
            }
            do {
                _ = try YAMLText.documents(bytes: &bytes, path: "")
                decoded += 1
            } catch {
                #expect(!error.reason.isEmpty)
                refused += 1
            }
            _ = try? JSONValue.parse(bytes)
        }
        #expect(decoded > 0 && refused > 0)
        #expect(ContinuousClock.now - start < .seconds(30))
    }

    @Test func limitsComeFromConfiguration() throws {
        let c = try ConfigReader(commandLine: ["--decode-max-depth", "10", "--decode.max.nodes=500"], environment: [:])
        let l = try DecodeLimits(c)
        #expect(l.maxDepth == 10 && l.maxNodes == 500 && l.maxKeys == DecodeLimits().maxKeys)
        #expect(throws: ConfigurationError.self) { try DecodeLimits(try ConfigReader(commandLine: ["--decode.max.depth=0"], environment: [:])) }
    }
}

