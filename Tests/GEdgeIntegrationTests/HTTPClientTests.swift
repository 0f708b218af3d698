import Foundation
import GEdgeCore
import GEdgeHTTPClient
import Testing

/// A fixture server of Tests/Fixtures (echo_server.py) on loopback.
final class EchoServer: @unchecked Sendable {
    let process: Spawned
    let port: Int

    convenience init(tls: (cert: String, key: String, ca: String)? = nil) throws {
        try self.init(script: "echo_server.py", arguments: tls.map { ["--tls", $0.cert, $0.key, $0.ca] } ?? [])
    }

    /// Starts a fixture script of Tests/Fixtures that prints "READY <port>".
    init(script: String, arguments: [String]) throws {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures").standardized
        process = try Spawned("python3", [fixtures.appendingPathComponent(script).path] + arguments, captureOutput: true)
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.last != 10 {
            let n = read(process.output, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("READY "), let p = Int(text.dropFirst(6).trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ConfigurationError(key: "echo_server", reason: "did not start: \(text)")
        }
        port = p
    }

    var base: String { "http://127.0.0.1:\(port)" }
}

@Suite("HTTP client", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(2)))
struct HTTPClientTests {
    let logger = TestEnv.logger

    @Test func methodsHeadersJSONBodiesAndBearerTokens() async throws {
        let server = try EchoServer()
        let client = HTTPClient(logger: logger)
        let get = try await client.execute(HTTPRequest(url: server.base + "/a?b=1", headers: [("X-Trace", "t1")]))
        #expect(get.status == 200)
        #expect(get.header("x-echo") == "yes")
        let echoed = try get.json()
        #expect(echoed["method"] == .string("GET"))
        #expect(echoed["path"] == .string("/a?b=1"))
        #expect(echoed["headers"]?["x-trace"] == .string("t1"))

        for method in ["POST", "PUT", "PATCH"] {
            let r = try await client.execute(.json(method, server.base + "/obj", .object(["k": .string("v")]), contentType: "application/merge-patch+json", bearerToken: "tok"))
            let e = try r.json()
            #expect(e["method"] == .string(method))
            #expect(e["body"] == .string(#"{"k":"v"}"#))
            #expect(e["headers"]?["content-type"] == .string("application/merge-patch+json"))
            #expect(e["headers"]?["authorization"] == .string("Bearer tok"))
        }
        let del = try await client.execute(HTTPRequest(method: "DELETE", url: server.base + "/obj"))
        #expect(try del.json()["method"] == .string("DELETE"))
        let notFound = try await client.execute(HTTPRequest(url: server.base + "/status/404"))
        #expect(notFound.status == 404)
        #expect(!notFound.isSuccess)
        await client.shutdown()
    }

    @Test func manyRequestsRunConcurrentlyOnOneThread() async throws {
        let server = try EchoServer()
        let client = HTTPClient(logger: logger)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<20 { group.addTask { try await client.execute(HTTPRequest(url: server.base + "/slow?ms=300")).status } }
            for try await status in group { #expect(status == 200) }
        }
        #expect(ContinuousClock.now - start < .seconds(5), "twenty 0.3 s requests overlap (6 s one after another)")
        await client.shutdown()
    }

    @Test func timeoutsRefusalsAndOversizedResponsesAreClearErrors() async throws {
        let server = try EchoServer()
        var config = HTTPClientConfiguration()
        config.maxResponseBytes = 1000
        let client = HTTPClient(configuration: config, logger: logger)
        do {
            _ = try await client.execute(HTTPRequest(url: server.base + "/slow?ms=2000", timeout: .milliseconds(200)))
            Issue.record("must time out")
        } catch let e as HTTPClientError {
            #expect(e.code == .timeout)
            #expect(e.isRetriable)
        }
        do {
            _ = try await client.execute(HTTPRequest(url: "http://127.0.0.1:1/"))
            Issue.record("must be refused")
        } catch let e as HTTPClientError {
            #expect(e.code == .connect)
        }
        do {
            _ = try await client.execute(HTTPRequest(url: server.base + "/big?bytes=5000"))
            Issue.record("must be too large")
        } catch let e as HTTPClientError {
            #expect(e.code == .responseTooLarge)
        }
        await #expect(throws: HTTPClientError.self) { try await client.execute(HTTPRequest(url: server.base, headers: [("X-Bad", "a\r\nInjected: 1")])) }
        #expect(try await client.execute(HTTPRequest(url: server.base + "/big?bytes=900")).body.count == 900)
        await client.shutdown()
        await #expect(throws: HTTPClientError.self) { try await client.execute(HTTPRequest(url: server.base)) }
    }

    @Test func tlsWithACustomCAAndAClientCertificate() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(TestEnv.unique("certs")).path
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/bin/bash")
        make.arguments = [URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../Fixtures/make_certs.sh").standardized.path, dir]
        try make.run()
        make.waitUntilExit()
        #expect(make.terminationStatus == 0)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try EchoServer(tls: ("\(dir)/server.pem", "\(dir)/server.key", "\(dir)/ca.pem"))
        let url = "https://127.0.0.1:\(server.port)/secure"

        var good = HTTPClientConfiguration()
        good.caFile = "\(dir)/ca.pem"
        good.clientCertFile = "\(dir)/client.pem"
        good.clientKeyFile = "\(dir)/client.key"
        let client = HTTPClient(configuration: good, logger: logger)
        let r = try await client.execute(HTTPRequest(url: url, bearerToken: "sa-token"))
        #expect(r.status == 200)
        #expect(try r.json()["headers"]?["authorization"] == .string("Bearer sa-token"))
        await client.shutdown()

        var wrongCA = good
        wrongCA.caFile = "\(dir)/other-ca.pem"
        let untrusting = HTTPClient(configuration: wrongCA, logger: logger)
        do {
            _ = try await untrusting.execute(HTTPRequest(url: url))
            Issue.record("a server signed by another CA must be refused")
        } catch let e as HTTPClientError {
            #expect(e.code == .tls)
        }
        await untrusting.shutdown()

        var noCert = good
        noCert.clientCertFile = nil
        noCert.clientKeyFile = nil
        let anonymous = HTTPClient(configuration: noCert, logger: logger)
        await #expect(throws: HTTPClientError.self, "the server requires a client certificate") {
            try await anonymous.execute(HTTPRequest(url: url))
        }
        await anonymous.shutdown()
    }
}
