import CCurl
import CGEdgeShims
import Foundation
import GEdgeCore
import Logging
import Synchronization

/// An HTTP request.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(String, String)]
    public var body: [UInt8]?
    /// Overrides the client's timeout for this request.
    public var timeout: Duration?
    /// Sent as `Authorization: Bearer <token>`.
    public var bearerToken: String?
    /// Skips the server certificate's check for this request (KEDA's `unsafeSsl`).
    public var insecure = false

    public init(method: String = "GET", url: String, headers: [(String, String)] = [], body: [UInt8]? = nil, timeout: Duration? = nil, bearerToken: String? = nil) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.bearerToken = bearerToken
    }

    /// A request with a JSON body and `Content-Type: application/json`.
    public static func json(_ method: String, _ url: String, _ value: JSONValue, contentType: String = "application/json", bearerToken: String? = nil) -> HTTPRequest {
        HTTPRequest(method: method, url: url, headers: [("Content-Type", contentType), ("Accept", "application/json")], body: value.serialized(), bearerToken: bearerToken)
    }
}

/// An HTTP response.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        headers.last { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
    }

    public var bodyString: String { String(decoding: body, as: UTF8.self) }

    public func json() throws -> JSONValue { try JSONValue.parse(body) }

    public var isSuccess: Bool { (200..<300).contains(status) }
}

/// Why a request got no response.
public struct HTTPClientError: Error, Sendable, CustomStringConvertible, TransientError {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let raw: String
        public static let invalidRequest = Code(raw: "invalid_request")
        public static let connect = Code(raw: "connect")
        public static let timeout = Code(raw: "timeout")
        public static let tls = Code(raw: "tls")
        public static let responseTooLarge = Code(raw: "response_too_large")
        public static let transport = Code(raw: "transport")
        public static let shutdown = Code(raw: "shutdown")
        /// The caller's task was cancelled; the transfer was dropped.
        public static let cancelled = Code(raw: "cancelled")
        public var description: String { raw }
    }
    public let code: Code
    /// libcurl's CURLcode, when it gave one.
    public let curlCode: Int
    public let message: String

    public var isRetriable: Bool { code == .connect || code == .timeout || code == .transport }
    public var description: String { "HTTPClientError(\(code)): \(message)" }
}

/// Client settings. Keys under a prefix (`kubernetes.`, `webhook.`...): `timeout` (30s),
/// `connect.timeout` (5s), `tls.ca.file`, `tls.cert.file`, `tls.key.file`,
/// `tls.insecure` (false).
public struct HTTPClientConfiguration: Sendable {
    public var timeout: Duration = .seconds(30)
    public var connectTimeout: Duration = .seconds(5)
    /// PEM bundle of the CAs to trust instead of the system's.
    public var caFile: String?
    /// Client certificate and key (PEM) for mutual TLS.
    public var clientCertFile: String?
    public var clientKeyFile: String?
    /// Skips server certificate checks. For local tests only.
    public var insecureSkipVerify = false
    public var userAgent = "gedge/1.0"
    public var maxResponseBytes = 32 << 20

    public init() {}

    public init(_ reader: ConfigReader, prefix: String) throws {
        timeout = try reader.duration(prefix + "timeout", default: .seconds(30))
        connectTimeout = try reader.duration(prefix + "connect.timeout", default: .seconds(5))
        caFile = reader.string(prefix + "tls.ca.file")
        clientCertFile = reader.string(prefix + "tls.cert.file")
        clientKeyFile = reader.string(prefix + "tls.key.file")
        insecureSkipVerify = try reader.bool(prefix + "tls.insecure", default: false)
    }
}

private let curlGlobalInit: Void = {
    curl_global_init(Int(CURL_GLOBAL_DEFAULT))
}()

/// One transfer in flight: its response as it arrives and its completion.
/// Handed from the caller to the transfer thread once; its response fields are written only
/// there, and its completion runs once (an atomic flag).
final class Transfer: @unchecked Sendable {
    var status = 0
    var headers: [(String, String)] = []
    var body: [UInt8] = []
    var tooLarge = false
    let maxBytes: Int
    var headerList: UnsafeMutablePointer<curl_slist>?
    /// For a streamed response: each chunk of a 2xx body goes here as it arrives, instead
    /// of into `body` (an error answer is still collected, bounded, into `body`).
    let onData: (@Sendable ([UInt8]) -> Void)?
    /// The easy handle, for the status while the body streams (set on the transfer thread).
    var easy: UnsafeMutableRawPointer?
    private let onCompletion: (Result<HTTPResponse, HTTPClientError>) -> Void
    /// Completed (by curl, shutdown or cancellation): the continuation is resumed once.
    private let done = Atomic<Bool>(false)

    init(maxBytes: Int, onData: (@Sendable ([UInt8]) -> Void)? = nil, completion: @escaping (Result<HTTPResponse, HTTPClientError>) -> Void) {
        self.maxBytes = maxBytes
        self.onData = onData
        self.onCompletion = completion
    }

    func completion(_ result: Result<HTTPResponse, HTTPClientError>) {
        guard !done.exchange(true, ordering: .acquiringAndReleasing) else { return }
        onCompletion(result)
    }

    deinit { curl_slist_free_all(headerList) }
}

private let writeCallback: gedge_curl_data_cb = { ptr, size, count, userdata in
    let t = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
    let n = size * count
    if let onData = t.onData, let easy = t.easy {
        var status = 0
        gedge_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        if (200..<300).contains(status) {
            if let ptr { onData(Array(UnsafeRawBufferPointer(start: ptr, count: n))) }
            return n
        }
    }
    if t.body.count + n > t.maxBytes {
        t.tooLarge = true
        return 0
    }
    if let ptr { t.body.append(contentsOf: UnsafeRawBufferPointer(start: ptr, count: n)) }
    return n
}

private let headerCallback: gedge_curl_data_cb = { ptr, size, count, userdata in
    let t = Unmanaged<Transfer>.fromOpaque(userdata!).takeUnretainedValue()
    let n = size * count
    guard let ptr else { return n }
    let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: n), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    if line.hasPrefix("HTTP/") {
        t.headers = []  // a new response (after 100-continue or a redirect)
    } else if let colon = line.firstIndex(of: ":") {
        t.headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
    }
    return n
}

/// An HTTP client over libcurl's multi interface: one thread of its own drives every
/// transfer, so many requests run at once without holding a thread each, and no blocking
/// call runs on Swift's cooperative pool. For the Kubernetes API, Prometheus and webhooks.
///
/// The thread lives from `init` to `shutdown()` and holds only its `Driver`. Callers talk
/// to it through a `WorkQueue` of commands behind one lock: a request after shutdown is
/// refused at once (`.shutdown`), a cancelled caller's transfer is dropped, and the
/// transfers in flight or queued when the thread ends fail with `.shutdown`: no caller is
/// left waiting.
public final class HTTPClient: Sendable {
    public let configuration: HTTPClientConfiguration
    private let driver: Driver

    enum Command: Sendable {
        case start(HTTPRequest, Transfer)
        case cancel(ObjectIdentifier)
    }

    public init(configuration: HTTPClientConfiguration = HTTPClientConfiguration(), logger: Logger) {
        _ = curlGlobalInit
        self.configuration = configuration
        let driver = Driver(configuration: configuration, logger: logger)
        self.driver = driver
        let thread = Thread { driver.loop() }
        thread.name = "http-client"
        thread.start()
    }

    deinit {
        // Dropped without shutdown: the thread ends on its own, failing what is in flight.
        if driver.inbox.withLock({ $0.stop() }) == .wakeAndWait { curl_multi_wakeup(driver.multi) }
    }

    /// Sends a request and returns the response, whatever its status. A cancelled caller stops
    /// waiting at once (CancellationError) and its transfer is dropped.
    public func execute(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await perform(request, onData: nil)
    }

    /// Sends a request whose 2xx body is handed to `onData` chunk by chunk as it arrives (on
    /// the client's thread: keep it short), for long-lived answers such as a Kubernetes
    /// watch. Returns the response (with an empty body when it streamed) when the server
    /// ends it, the request's timeout passes, or the caller is cancelled. `request.timeout`
    /// bounds the whole transfer: set it to how long the stream may last.
    public func stream(_ request: HTTPRequest, onData: @escaping @Sendable ([UInt8]) -> Void) async throws -> HTTPResponse {
        try await perform(request, onData: onData)
    }

    /// Where a call stands with respect to its caller's cancellation, which may come before
    /// its transfer is handed over (then it is never sent) or after (then it is dropped).
    enum CallState: Sendable {
        case preparing
        case sent(ObjectIdentifier)
        case cancelled
    }

    private func perform(_ request: HTTPRequest, onData: (@Sendable ([UInt8]) -> Void)?) async throws -> HTTPResponse {
        try Task.checkCancellation()
        let call = Mutex<CallState>(.preparing)
        let driver = self.driver
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (cont: CheckedContinuation<HTTPResponse, any Error>) in
                let transfer = Transfer(maxBytes: configuration.maxResponseBytes, onData: onData) { cont.resume(with: $0.mapError { $0 as any Error }) }
                let go = call.withLock { state -> Bool in
                    guard case .preparing = state else { return false }
                    state = .sent(ObjectIdentifier(transfer))
                    return true
                }
                guard go else {
                    transfer.completion(.failure(HTTPClientError(code: .cancelled, curlCode: 0, message: "the caller was cancelled")))
                    return
                }
                switch driver.inbox.withLock({ $0.submit(.start(request, transfer)) }) {
                case .queued: curl_multi_wakeup(driver.multi)
                case .refused: transfer.completion(.failure(HTTPClientError(code: .shutdown, curlCode: 0, message: "HTTP client is shut down")))
                }
            }
        } onCancel: {
            let sent = call.withLock { state -> ObjectIdentifier? in
                if case .sent(let id) = state { return id }
                state = .cancelled
                return nil
            }
            guard let t = sent else { return }
            // Refused only once shutting down, which fails the transfer anyway.
            if case .queued = driver.inbox.withLock({ $0.submit(.cancel(t)) }) { curl_multi_wakeup(driver.multi) }
        }
    }

    /// Ends the transfer thread; transfers in flight fail with `.shutdown`. Every caller
    /// returns once the thread has ended.
    public func shutdown() async {
        if driver.inbox.withLock({ $0.stop() }) == .wakeAndWait { curl_multi_wakeup(driver.multi) }
        await driver.ended.wait()
    }
}

/// The transfer thread's side: the multi handle and the transfers in flight, confined to
/// the thread; the inbox and the end, shared.
final class Driver: @unchecked Sendable {
    let configuration: HTTPClientConfiguration
    let logger: Logger
    let multi: UnsafeMutableRawPointer
    let inbox = Mutex(WorkQueue<HTTPClient.Command>())
    let ended = ThreadEnd()
    // Confined to the transfer thread.
    private var active: [UnsafeMutableRawPointer: Unmanaged<Transfer>] = [:]

    init(configuration: HTTPClientConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.multi = curl_multi_init()
    }

    deinit { curl_multi_cleanup(multi) }

    func loop() {
        var stillRunning: Int32 = 0
        while true {
            let (commands, running) = inbox.withLock { ($0.take(), $0.isRunning) }
            guard running else {
                handle(commands, shuttingDown: true)
                break
            }
            handle(commands, shuttingDown: false)
            curl_multi_perform(multi, &stillRunning)
            var left: Int32 = 0
            while let msg = curl_multi_info_read(multi, &left) {
                guard msg.pointee.msg == CURLMSG_DONE, let easy = msg.pointee.easy_handle else { continue }
                finish(easy, code: msg.pointee.data.result)
            }
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
        let shutdownError = HTTPClientError(code: .shutdown, curlCode: 0, message: "HTTP client is shut down")
        for (easy, t) in active {
            curl_multi_remove_handle(multi, easy)
            curl_easy_cleanup(easy)
            t.takeRetainedValue().completion(.failure(shutdownError))
        }
        active = [:]
        handle(inbox.withLock { $0.finish() }, shuttingDown: true)
        ended.signal()
    }

    private func handle(_ commands: [HTTPClient.Command], shuttingDown: Bool) {
        var drop: Set<ObjectIdentifier> = []
        for command in commands {
            switch command {
            case .start(let request, let transfer):
                if shuttingDown {
                    transfer.completion(.failure(HTTPClientError(code: .shutdown, curlCode: 0, message: "HTTP client is shut down")))
                } else {
                    start(request, transfer)
                }
            case .cancel(let id): drop.insert(id)
            }
        }
        guard !drop.isEmpty else { return }
        for (easy, box) in active where drop.contains(ObjectIdentifier(box.takeUnretainedValue())) {
            curl_multi_remove_handle(multi, easy)
            curl_easy_cleanup(easy)
            active[easy] = nil
            box.takeRetainedValue().completion(.failure(HTTPClientError(code: .cancelled, curlCode: 0, message: "the caller was cancelled")))
        }
    }

    private func start(_ request: HTTPRequest, _ transfer: Transfer) {
        guard let easy = curl_easy_init() else {
            transfer.completion(.failure(HTTPClientError(code: .transport, curlCode: 0, message: "curl_easy_init failed")))
            return
        }
        let cfg = configuration
        gedge_curl_setopt_string(easy, CURLOPT_URL, request.url)
        gedge_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        gedge_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, Int((request.timeout ?? cfg.timeout).milliseconds))
        gedge_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, Int(cfg.connectTimeout.milliseconds))
        gedge_curl_setopt_string(easy, CURLOPT_USERAGENT, cfg.userAgent)
        gedge_curl_setopt_long(easy, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS))
        if let ca = cfg.caFile { gedge_curl_setopt_string(easy, CURLOPT_CAINFO, ca) }
        if let cert = cfg.clientCertFile { gedge_curl_setopt_string(easy, CURLOPT_SSLCERT, cert) }
        if let key = cfg.clientKeyFile { gedge_curl_setopt_string(easy, CURLOPT_SSLKEY, key) }
        if cfg.insecureSkipVerify || request.insecure {
            gedge_curl_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 0)
            gedge_curl_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 0)
        }
        let method = request.method.uppercased()
        if let body = request.body {
            gedge_curl_setopt_long(easy, CURLOPT_POSTFIELDSIZE, body.count)
            body.withUnsafeBytes { buf in
                _ = gedge_curl_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: buf.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
            if method != "POST" { gedge_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method) }
        } else if method == "HEAD" {
            gedge_curl_setopt_long(easy, CURLOPT_NOBODY, 1)
        } else if method != "GET" {
            gedge_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, method)
        }
        var list: UnsafeMutablePointer<curl_slist>?
        var headers = request.headers
        if let token = request.bearerToken { headers.append(("Authorization", "Bearer \(token)")) }
        // No "Expect: 100-continue" round trip for bodies.
        headers.append(("Expect", ""))
        for (name, value) in headers {
            guard !name.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 58 }), !value.utf8.contains(where: { $0 == 13 || $0 == 10 }) else {
                curl_easy_cleanup(easy)
                curl_slist_free_all(list)
                transfer.completion(.failure(HTTPClientError(code: .invalidRequest, curlCode: 0, message: "header '\(name)' has a line break or colon")))
                return
            }
            list = curl_slist_append(list, value.isEmpty ? "\(name):" : "\(name): \(value)")
        }
        transfer.headerList = list
        gedge_curl_setopt_pointer(easy, CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list))
        let box = Unmanaged.passRetained(transfer)
        transfer.easy = easy
        gedge_curl_setopt_write_cb(easy, CURLOPT_WRITEFUNCTION, writeCallback)
        gedge_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, box.toOpaque())
        gedge_curl_setopt_write_cb(easy, CURLOPT_HEADERFUNCTION, headerCallback)
        gedge_curl_setopt_pointer(easy, CURLOPT_HEADERDATA, box.toOpaque())
        active[easy] = box
        curl_multi_add_handle(multi, easy)
    }

    private func finish(_ easy: UnsafeMutableRawPointer, code: CURLcode) {
        curl_multi_remove_handle(multi, easy)
        guard let box = active.removeValue(forKey: easy) else {
            curl_easy_cleanup(easy)
            return
        }
        let t = box.takeRetainedValue()
        var status = 0
        gedge_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        curl_easy_cleanup(easy)
        if code == CURLE_OK {
            t.completion(.success(HTTPResponse(status: status, headers: t.headers, body: t.body)))
            return
        }
        let message = String(cString: curl_easy_strerror(code))
        let kind: HTTPClientError.Code
        switch code {
        case CURLE_OPERATION_TIMEDOUT: kind = .timeout
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: kind = .connect
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CIPHER, CURLE_SSL_ENGINE_NOTFOUND:
            kind = .tls
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: kind = .invalidRequest
        case CURLE_WRITE_ERROR where t.tooLarge: kind = .responseTooLarge
        default: kind = .transport
        }
        t.completion(.failure(HTTPClientError(code: kind, curlCode: Int(code.rawValue), message: message)))
    }
}
