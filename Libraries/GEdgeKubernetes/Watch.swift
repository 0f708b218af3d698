import Foundation
import GEdgeCore
import GEdgeHTTPClient
import Logging
import Synchronization

/// One event of a watch: ADDED, MODIFIED, DELETED (with the object), BOOKMARK (only a
/// newer resourceVersion), or ERROR (a Status: 410 Expired when the resourceVersion is
/// too old).
public struct WatchEvent: Sendable {
    public enum Kind: String, Sendable { case added = "ADDED", modified = "MODIFIED", deleted = "DELETED", bookmark = "BOOKMARK", error = "ERROR" }
    public let kind: Kind
    public let object: JSONValue
    public var resourceVersion: String? { object["metadata"]?["resourceVersion"]?.stringValue }
}

/// Splits a watch's body into its newline-delimited JSON events, each bounded.
struct EventLines: Sendable {
    private var buffer: [UInt8] = []
    let maxLine: Int

    init(maxLine: Int) { self.maxLine = maxLine }

    /// The complete lines in `chunk` (with what came before it); throws when a line grows
    /// past the bound.
    mutating func feed(_ chunk: [UInt8]) throws -> [[UInt8]] {
        buffer.append(contentsOf: chunk)
        var lines: [[UInt8]] = []
        var start = 0
        while let nl = buffer[start...].firstIndex(of: 10) {
            if nl > start { lines.append(Array(buffer[start..<nl])) }
            start = nl + 1
        }
        buffer.removeFirst(start)
        if buffer.count > maxLine {
            throw KubernetesAPIError(status: 413, reason: "RequestEntityTooLarge", message: "a watch event longer than \(maxLine) bytes")
        }
        return lines
    }

    static func decode(_ line: [UInt8]) throws -> WatchEvent {
        let v = try JSONValue.parse(line)
        guard let type = v["type"]?.stringValue, let kind = WatchEvent.Kind(rawValue: type), let object = v["object"], case .object = object else {
            throw KubernetesAPIError(status: 500, reason: "InternalError", message: "a watch event that is not {type, object}: \(String(decoding: line.prefix(120), as: UTF8.self))")
        }
        return WatchEvent(kind: kind, object: object)
    }
}

extension KubernetesClient {
    /// Watches a kind from `resourceVersion`: events as the server sends them, bookmarks
    /// asked for, until the server ends the watch (after about `timeout`, which it is
    /// asked for) or the caller stops reading. An answer that is not 200 (410 Gone for an
    /// expired version, 403) throws its Status.
    public func watch(apiVersion: String, kind: String, namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil,
                      resourceVersion: String, timeout: Duration = .seconds(300)) -> AsyncThrowingStream<WatchEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<WatchEvent, any Error>.makeStream()
        let task = Task {
            do {
                let seconds = max(1, Int(timeout.components.seconds))
                var q: [(String, String)] = [("watch", "1"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", "\(seconds)")]
                if !resourceVersion.isEmpty { q.append(("resourceVersion", resourceVersion)) }
                if let labelSelector { q.append(("labelSelector", labelSelector)) }
                if let fieldSelector { q.append(("fieldSelector", fieldSelector)) }
                let path = try await path(ObjectReference(apiVersion: apiVersion, kind: kind, namespace: namespace))
                let lines = Mutex(EventLines(maxLine: configuration.http.maxResponseBytes))
                let request = HTTPRequest(method: "GET", url: configuration.url + path + Self.queryString(q), headers: [("Accept", "application/json")],
                                          timeout: .seconds(Int64(seconds + 30)), bearerToken: configuration.token())
                let response = try await http.stream(request) { chunk in
                    do {
                        for line in try lines.withLock({ try $0.feed(chunk) }) { continuation.yield(try EventLines.decode(line)) }
                    } catch {
                        continuation.finish(throwing: error)
                    }
                }
                guard response.isSuccess else { throw KubernetesAPIError(response: response, context: "watch \(path)") }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}

/// Keeps a live copy of the objects of a kind that match a selector, as client-go's
/// reflector does: list, then watch from the list's resourceVersion; bookmarks move the
/// version on; a watch that ends is started again from the last version; a 410 Gone (as
/// the answer or as an ERROR event) lists again. Transient errors back off and retry; a
/// permanent one (403, say) is kept in `lastError` and retried more slowly.
public final class Reflector: Sendable {
    public let apiVersion: String
    public let kind: String
    let client: KubernetesClient
    let namespace: String?
    let labelSelector: String?
    let fieldSelector: String?
    let watchTimeout: Duration
    let logger: Logger
    let onChange: Wakeup?

    struct State {
        var objects: [String: JSONValue] = [:]
        var resourceVersion = ""
        var synced = false
        var lists = 0
        var lastError: KubernetesAPIError?
    }
    private let state = Mutex(State())

    public init(client: KubernetesClient, apiVersion: String, kind: String, namespace: String? = nil, labelSelector: String? = nil,
                fieldSelector: String? = nil, watchTimeout: Duration = .seconds(300), onChange: Wakeup? = nil, logger: Logger) {
        self.client = client
        self.apiVersion = apiVersion
        self.kind = kind
        self.namespace = namespace
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.watchTimeout = watchTimeout
        self.onChange = onChange
        self.logger = logger
    }

    /// The objects now, by namespace/name.
    public var objects: [JSONValue] { state.withLock { s in s.objects.keys.sorted().compactMap { s.objects[$0] } } }
    /// Whether a first list has been taken.
    public var synced: Bool { state.withLock { $0.synced } }
    /// How many times it listed (1 + relists after 410 Gone).
    public var lists: Int { state.withLock { $0.lists } }
    /// The last error the API answered, until the next success.
    public var lastError: KubernetesAPIError? { state.withLock { $0.lastError } }

    static func key(_ o: JSONValue) -> String {
        "\(o["metadata"]?["namespace"]?.stringValue ?? "")/\(o["metadata"]?["name"]?.stringValue ?? "")"
    }

    /// Lists and watches until cancelled.
    public func run() async {
        var failures = 0
        var needList = true
        while !Task.isCancelled {
            do {
                if needList {
                    let list = try await client.list(apiVersion: apiVersion, kind: kind, namespace: namespace, labelSelector: labelSelector, fieldSelector: fieldSelector)
                    state.withLock { s in
                        s.objects = Dictionary(list.items.map { (Self.key($0), $0) }, uniquingKeysWith: { _, b in b })
                        s.resourceVersion = list.resourceVersion
                        s.synced = true
                        s.lists += 1
                        s.lastError = nil
                    }
                    onChange?.signal()
                    needList = false
                }
                let from = state.withLock { $0.resourceVersion }
                let started = ContinuousClock.now
                var events = 0
                for try await event in client.watch(apiVersion: apiVersion, kind: kind, namespace: namespace, labelSelector: labelSelector,
                                                    fieldSelector: fieldSelector, resourceVersion: from, timeout: watchTimeout) {
                    if event.kind == .error { throw KubernetesAPIError(status: event.object, context: "watch \(kind)") }
                    state.withLock { s in
                        switch event.kind {
                        case .added, .modified: s.objects[Self.key(event.object)] = event.object
                        case .deleted: s.objects[Self.key(event.object)] = nil
                        case .bookmark, .error: break
                        }
                        if let rv = event.resourceVersion { s.resourceVersion = rv }
                        s.lastError = nil
                    }
                    if event.kind != .bookmark { onChange?.signal() }
                    failures = 0
                    events += 1
                }
                // A server that ends watches at once is not asked again in a tight loop.
                if events == 0 && ContinuousClock.now - started < .seconds(1) { try await Task.sleep(for: .seconds(1)) }
            } catch is CancellationError {
                return
            } catch let e as KubernetesAPIError where e.isGone {
                logger.info("watch expired; listing again", metadata: ["kind": "\(kind)", LogKeys.error: "\(e)"])
                needList = true
            } catch {
                if Task.isCancelled { return }
                failures += 1
                let api = error as? KubernetesAPIError
                state.withLock { $0.lastError = api }
                onChange?.signal()
                let retriable = Retry.isTransient(error)
                let delay = Duration.milliseconds(min(retriable ? 5000 : 30000, 200 << min(failures, 7)))
                logger.warning("watch failed; retrying", metadata: ["kind": "\(kind)", LogKeys.error: "\(error)", "retry.in": "\(delay)"])
                try? await Task.sleep(for: delay)
                needList = needList || !retriable
            }
        }
    }
}
