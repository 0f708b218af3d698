import Foundation
import GEdgeCore
import Testing

@Suite struct JSONWireTests {
    @Test(arguments: [
        #"{"a":1,"b":[true,false,null],"c":{"d":"e"},"f":-1.5e3,"g":0.25,"h":"\u00e9\ud83d\ude00\n\"\\/"}"#,
        #"[]"#, #"{}"#, #""plain""#, #"0"#, #"-0.0"#, #"  [ 1 , 2 ]  "#, #"1e2"#,
    ])
    func parsesAsFoundationDoes(text: String) throws {
        let ours = try JSONValue.parse(Array(text.utf8))
        let theirs = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        #expect(ours == theirs)
        // And back: what we write, Foundation reads as the same value.
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(ours.serialized())) == ours)
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":}", "{\"a\" 1}", "[1 2]", "01", "1.", "-", "1e", "tru", "nul", "\"a", "\"\\x\"",
        "\"\\ud800\"", "\"a\u{1}\"", "{} x", "[" + String(repeating: "[", count: 600) + String(repeating: "]", count: 601),
        "{1:2}", "NaN", "1e999",
    ])
    func refusesWhatIsNotJSON(text: String) {
        #expect(throws: MessageDecodingError.self) { try JSONValue.parse(Array(text.utf8)) }
    }

    /// Whole numbers are read without text; every number reads as Double(text) does.
    @Test(arguments: ["0", "-0", "7", "-12", "123456789012345", "-999999999999999", "1234567890123456", "9007199254740993",
                      "0.1", "-2.5", "1e3", "123456789012345678901234567890"])
    func numbersReadAsDoubleDoes(text: String) throws {
        let v = try JSONValue.parse(Array("[\(text)]".utf8))
        guard case .array(let items) = v, case .number(let d) = items.first else {
            Issue.record("not a number: \(v)")
            return
        }
        #expect(d == Double(text)!)
        #expect(d.sign == Double(text)!.sign)
    }

    @Test(arguments: [Int64(0), 1, -1, 10, -10, 1_000_000, 8_999_999_999_999_999, -8_999_999_999_999_999])
    func wholeNumbersAreWrittenAsIntegers(n: Int64) {
        #expect(String(decoding: JSONValue.number(Double(n)).serialized(), as: UTF8.self) == String(n))
    }

    @Test func rawUTF8StringsReadAndWriteBack() throws {
        let text = #"{"é":"ü 東京 😀","a":"plain"}"#
        let v = try JSONValue.parse(Array(text.utf8))
        #expect(v == .object(["é": .string("ü 東京 😀"), "a": .string("plain")]))
        #expect(String(decoding: v.serialized(), as: UTF8.self) == #"{"a":"plain","é":"ü 東京 😀"}"#)
    }

    @Test func invalidUTF8IsRefused() {
        #expect(throws: MessageDecodingError.self) { try JSONValue.parse([0x22, 0xFF, 0x22]) }
    }

    @Test func writesSortedCompactAndEscaped() {
        let v: JSONValue = .object(["b": 1, "a": .array([.string("x\"y\n\u{1}/"), 2.5, .null]), "é": true])
        #expect(String(decoding: v.serialized(), as: UTF8.self) == #"{"a":["x\"y\n\u0001/",2.5,null],"b":1,"é":true}"#)
        #expect(String(decoding: JSONValue.number(.nan).serialized(), as: UTF8.self) == "null")
        #expect(String(decoding: JSONValue.number(1e20).serialized(), as: UTF8.self) == "1e+20")
    }
}
