import GEdgeCore
import GEdgeSecurity
import Testing

/// The suite's digests come from swift-crypto; these pin the wrapper (hex, keys as bytes,
/// constant-time checks) to the standards' vectors.
@Suite struct DigestTests {
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ])
    func sha256MatchesFIPSVectors(input: String, digest: String) {
        #expect(Digests.sha256Hex(Array(input.utf8)) == digest)
    }

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
    @Test func hmacMatchesRFC4231() {
        #expect(Digests.hmacSHA256Hex(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8))
            == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(Digests.hmacSHA256Hex(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(Digests.hmacSHA256Hex(key: [UInt8](repeating: 0xaa, count: 131), message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))
            == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    @Test func signaturesAreCheckedNotJustCompared() {
        let key = Array("k".utf8), msg = Array("body".utf8)
        let good = Digests.hmacSHA256Hex(key: key, message: msg)
        #expect(Digests.isValidHMACSHA256(signatureHex: good, key: key, message: msg))
        #expect(Digests.isValidHMACSHA256(signatureHex: good.uppercased(), key: key, message: msg))
        #expect(!Digests.isValidHMACSHA256(signatureHex: String(good.dropLast()) + "0", key: key, message: msg) || good.hasSuffix("0"))
        #expect(!Digests.isValidHMACSHA256(signatureHex: "zz", key: key, message: msg))
        #expect(!Digests.isValidHMACSHA256(signatureHex: good, key: key, message: msg + [0]))
        #expect(Digests.constantTimeEquals([1, 2, 3], [1, 2, 3]) && !Digests.constantTimeEquals([1, 2, 3], [1, 2, 4]) && !Digests.constantTimeEquals([1], [1, 2]))
    }
}
