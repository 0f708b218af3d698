import Foundation
import GEdgeCore
import GEdgeSecurity
import GEdgeServiceSpec
import Testing

@testable import GEdgeGateway

/// Property tests of the gateway's decoders: whatever the bytes, an answer or an error
/// with a reason, never a trap. Deterministic generators, so a failure reproduces.
@Suite struct DecoderFuzzTests {
    struct Rng {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static func mutate(_ base: [UInt8], _ rng: inout Rng, alphabet: [UInt8]) -> [UInt8] {
        var bytes = base
        for _ in 0..<(1 + rng.below(5)) where !bytes.isEmpty {
            let at = rng.below(bytes.count)
            switch rng.below(4) {
            case 0: bytes[at] = alphabet[rng.below(alphabet.count)]
            case 1: bytes.remove(at: at)
            case 2: bytes.insert(alphabet[rng.below(alphabet.count)], at: at)
            default: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
            }
        }
        return bytes
    }

    @Test func multipartFormsRoundTripAndMutationsNeverTrap() {
        let boundary = "b0undary"
        let body = Array((
            "--b0undary\r\nContent-Disposition: form-data; name=\"yaml_file\"; filename=\"w.yaml\"\r\nContent-Type: application/yaml\r\n\r\nkind: Pod\nspec: {}\r\n"
            + "--b0undary\r\nContent-Disposition: form-data; name=\"select_clusters\"\r\n\r\n[\"c1\", [\"c2\"]]\r\n--b0undary--\r\n").utf8)
        #expect(FormData.multipart(body, boundary: boundary) == ["yaml_file": "kind: Pod\nspec: {}", "select_clusters": "[\"c1\", [\"c2\"]]"])
        var rng = Rng(state: 7)
        let alphabet = Array("-\r\n\";=: abcdb0undary".utf8)
        var parsed = 0
        for _ in 0..<5000 {
            if FormData.multipart(Self.mutate(body, &rng, alphabet: alphabet), boundary: boundary) != nil { parsed += 1 }
        }
        #expect(parsed > 0)
    }

    @Test func urlEncodedFormsDecodeAndMutationsNeverTrap() {
        let body = Array("yaml_file=kind%3A+Pod&select_clusters=%5B%22c1%22%5D&fast_option=true".utf8)
        #expect(FormData.urlEncoded(body) == ["yaml_file": "kind: Pod", "select_clusters": "[\"c1\"]", "fast_option": "true"])
        #expect(FormData.urlEncoded(Array("a=%zz".utf8)) == nil)
        var rng = Rng(state: 11)
        let alphabet = Array("%&=+09afAF".utf8)
        for _ in 0..<5000 { _ = FormData.urlEncoded(Self.mutate(body, &rng, alphabet: alphabet)) }
    }

    /// The path of a `/v1/requests` body: JSON, the request decoder, the workload's YAML.
    @Test func requestBodiesDecodeOrExplain() {
        let body = Array(#"{"policy":"select","parameters":{"select_clusters":["c1",["c2"]]},"fast_option":true,"user_name":"u","workspace_name":"w","project_name":"p","request_id":"r-1","workload":"apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: i}]}\n"}"#.utf8)
        var rng = Rng(state: 13)
        let alphabet = Array("{}[]\":,\\ntrue0-9 :\n".utf8)
        var ok = 0, refused = 0
        for _ in 0..<5000 {
            do {
                let v = try JSONValue.parse(Self.mutate(body, &rng, alphabet: alphabet))
                var r = try ScheduleRequest.decode(msg: v, key: nil)
                r.workload = try WorkloadText.normalize(r.workload)
                ok += 1
            } catch {
                #expect(!error.reason.isEmpty)
                refused += 1
            }
        }
        #expect(ok > 0 && refused > 0)
    }

    @Test func cursorsAreOnlyThoseGiven() {
        #expect(Cursor.decode(Cursor.encode(micros: 1_795_426_712_467_511, id: "req-1"))! == (1_795_426_712_467_511, "req-1"))
        for bad in ["", "~", "12", "x~id", "12~", "12~a b", "12~" + String(repeating: "a", count: 200)] {
            #expect(Cursor.decode(bad) == nil, "\(bad)")
        }
    }

    @Test func tokenBucketsRefillAtTheirRate() {
        let limiter = RateLimiter(rate: 10, burst: 3)
        let t0 = ContinuousClock.now
        #expect((0..<3).allSatisfy { _ in limiter.take("a", now: t0) == nil })
        let wait = limiter.take("a", now: t0)
        #expect(wait != nil && abs(wait! - 0.1) < 0.001)
        #expect(limiter.take("b", now: t0) == nil)
        #expect(limiter.take("a", now: t0 + .milliseconds(100)) == nil)
        #expect(limiter.take("a", now: t0 + .milliseconds(100)) != nil)
        #expect(RateLimiter(rate: 0, burst: 0).take("x") == nil)
    }

    @Test func tokensAreStoredAsTheirDigest() {
        #expect(TokenStore.digest("gedge_abc") == Digests.sha256Hex(Array("gedge_abc".utf8)))
        #expect(TokenStore.digest("gedge_abc").count == 64)
    }
}
