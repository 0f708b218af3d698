import Foundation
import GEdgeHTTPClient
import Synchronization
import Testing

/// A loopback socket that takes connections and never answers.
final class SilentListener: Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        listen(fd, 128)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.port = Int(UInt16(bigEndian: addr.sin_port))
    }

    deinit { close(fd) }
}

final class Codes: Sendable {
    private let m = Mutex<[String]>([])
    func add(_ s: String) { m.withLock { $0.append(s) } }
    var all: [String] { m.withLock { $0 } }
}

/// The HTTP client's lifecycle without a real server: requests in flight or racing a
/// shutdown all get an answer, requests after it are refused, a cancelled caller stops
/// waiting at once.
@Suite struct HTTPClientLifecycleTests {
    @Test func shutdownAnswersEveryCallerInFlightOrRacing() async throws {
        let server = try SilentListener()
        let client = HTTPClient(logger: .init(label: "test"))
        let codes = Codes()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<30 {
                group.addTask {
                    do {
                        _ = try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(server.port)/", timeout: .seconds(60)))
                        Issue.record("a server that never answers cannot give a response")
                    } catch let e as HTTPClientError {
                        codes.add("\(e.code)")
                    }
                }
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(200))
                await client.shutdown()
            }
            group.addTask {
                try await Task.sleep(for: .milliseconds(200))
                await client.shutdown()
            }
            try await group.waitForAll()
        }
        #expect(codes.all.count == 30)
        #expect(codes.all.allSatisfy { $0 == "shutdown" })
        let late = await #expect(throws: HTTPClientError.self) { try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(server.port)/")) }
        #expect(late?.code == .shutdown)
        await client.shutdown()
    }

    @Test func aCancelledCallerStopsWaitingAtOnce() async throws {
        let server = try SilentListener()
        let client = HTTPClient(logger: .init(label: "test"))
        let call = Task { try await client.execute(HTTPRequest(url: "http://127.0.0.1:\(server.port)/", timeout: .seconds(60))) }
        try await Task.sleep(for: .milliseconds(100))
        call.cancel()
        // Cancelled before or after its transfer was handed over: either way it ends as
        // cancelled, never by the request's 60 s timeout.
        do {
            _ = try await call.value
            Issue.record("a server that never answers cannot give a response")
        } catch let e as HTTPClientError {
            #expect(e.code == .cancelled, "\(e)")
        } catch {
            #expect(error is CancellationError, "\(error)")
        }
        await client.shutdown()
    }

    /// A streamed answer arrives chunk by chunk, and ends when the caller is cancelled.
    @Test func aStreamStopsWhenItsCallerIsCancelled() async throws {
        let server = try SilentListener()
        let client = HTTPClient(logger: .init(label: "test"))
        let call = Task { try await client.stream(HTTPRequest(url: "http://127.0.0.1:\(server.port)/", timeout: .seconds(60))) { _ in } }
        try await Task.sleep(for: .milliseconds(100))
        call.cancel()
        await #expect(throws: (any Error).self) { try await call.value }
        await client.shutdown()
    }
}
