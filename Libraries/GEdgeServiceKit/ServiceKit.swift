import Foundation
import GEdgeCore
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus
import ServiceLifecycle
import Synchronization

/// A readiness check: the service is ready when every check passes.
public struct ReadinessCheck: Sendable {
    public var name: String
    public var check: @Sendable () async -> Bool
    public init(name: String, check: @escaping @Sendable () async -> Bool) {
        self.name = name
        self.check = check
    }
}

/// Settings of a service's ops endpoints. Keys: `http.host` (default 127.0.0.1; 0.0.0.0 in
/// containers), `http.port` (each service has its own default).
public struct OpsServerConfiguration: Sendable {
    public var host: String
    public var port: Int

    public init(host: String = "127.0.0.1", port: Int) {
        self.host = host
        self.port = port
    }

    public init(_ reader: ConfigReader, defaultPort: Int) throws {
        self.init(host: reader.string("http.host", default: "127.0.0.1"), port: try reader.port("http.port", default: defaultPort))
    }
}

/// Whether a TCP port can be listened on now (bound and released at once, with the
/// SO_REUSEADDR the servers set).
public enum PortCheck {
    public static func ensureFree(host: String, port: Int, key: String) throws {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw ConfigurationError(key: "http.host", reason: "'\(host)' is not an address this machine can listen on")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 {
            let code = errno
            let why = code == EADDRINUSE ? "is taken" : code == EADDRNOTAVAIL ? "is on an address this machine does not have" : "cannot be listened on (\(String(cString: strerror(code))))"
            throw ConfigurationError(key: key, reason: "port \(port) on \(host) \(why)")
        }
    }
}

/// What every executable of the suite shares: logging and metrics set up from configuration,
/// the ops endpoints, and one `ServiceGroup` with graceful shutdown on SIGTERM and SIGINT.
public enum ServiceKit {
    /// Bootstraps logging (`log.level`, `log.format`), the decoding limits (`decode.max.*`)
    /// and the Prometheus metrics registry.
    /// Each service's listening port (`http.port`) when none is configured.
    public static let defaultPorts: [String: Int] = [
        "scheduler": 9101, "accelerator-monitor": 9102, "agent": 9103, "faas-trigger": 9104, "notifier": 9105, "autoscaler": 9106, "gedge-fleet": 9107, "gateway": 8888,
    ]

    /// Sets a service up from its configuration, before it touches anything: `--help` printed
    /// (exit 0); an argument, flag or file key it does not know refused; its listening port
    /// checked free, so that a taken port ends it before it joins any consumer group.
    public static func bootstrap(service: String, config: ConfigReader) throws -> (Logger, PrometheusCollectorRegistry) {
        try config.check(program: service)
        if let defaultPort = defaultPorts[service] {
            let host = config.string("http.host", default: "127.0.0.1")
            let port = try config.port("http.port", default: defaultPort)
            if port != 0 { try PortCheck.ensureFree(host: host, port: port, key: "http.port") }
        }
        try GEdgeLogging.bootstrap(config)
        try DecodeLimits.configure(config)
        let grace = try config.duration("shutdown.grace", default: .seconds(20))
        guard grace > .zero else { throw ConfigurationError(key: "shutdown.grace", reason: "must be positive") }
        shutdownGrace.withLock { $0 = grace }
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        // Timers start at 10 µs: a placement decision or a message's coding takes well under
        // a millisecond, and swift-prometheus's default buckets begin at 5 ms.
        factory.defaultDurationHistogramBuckets = durationBuckets
        factory.nameAndLabelSanitizer = MetricsExposition.sanitize
        MetricsSystem.bootstrap(factory)
        var logger = Logger(label: service)
        logger[metadataKey: LogKeys.service] = .string(service)
        return (logger, registry)
    }

    /// The router of the ops endpoints: `/healthz` (the process is up), `/readyz` (every
    /// readiness check passes and no consumer is stalled; 503 with the failing ones otherwise) and `/metrics`
    /// (Prometheus text format).
    public static func opsRouter(registry: PrometheusCollectorRegistry, readiness: [ReadinessCheck]) -> Router<BasicRequestContext> {
        let router = Router()
        addOpsRoutes(to: router, registry: registry, readiness: readiness)
        return router
    }

    /// Adds the ops endpoints to a service's own router.
    public static func addOpsRoutes<Context: RequestContext>(to router: Router<Context>, registry: PrometheusCollectorRegistry, readiness: [ReadinessCheck]) {
        router.get("/healthz") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok\n")))
        }
        router.get("/readyz") { _, _ in
            var failing: [String] = []
            for check in readiness where !(await check.check()) { failing.append(check.name) }
            // A consumer that cannot make progress (ConsumerProgress) makes the service unready.
            for s in ConsumerProgress.shared.stuck { failing.append("consumer \(s.consumer) stalled for \(s.for.milliseconds / 1000) s") }
            if failing.isEmpty {
                return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ready\n")))
            }
            return Response(
                status: .serviceUnavailable, headers: [.contentType: "text/plain"],
                body: .init(byteBuffer: ByteBuffer(string: "not ready: \(failing.joined(separator: ", "))\n")))
        }
        router.get("/metrics") { _, _ in
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(bytes: MetricsExposition.render(buffer))))
        }
    }

    /// An HTTP server of the ops endpoints alone, for services that serve nothing else.
    public static func opsServer(
        _ configuration: OpsServerConfiguration, registry: PrometheusCollectorRegistry, readiness: [ReadinessCheck], logger: Logger,
        routes: (Router<BasicRequestContext>) -> Void = { _ in }
    ) -> some Service {
        let router = opsRouter(registry: registry, readiness: readiness)
        routes(router)
        return Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: logger.label),
            logger: logger)
    }

    /// Every timer's histogram buckets: 10 µs to 10 s.
    public static let durationBuckets: [Duration] = [
        .microseconds(10), .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
    ]

    /// How long services may take to stop gracefully (`shutdown.grace`).
    static let shutdownGrace = Mutex<Duration>(.seconds(20))

    /// Runs the services in one group, in order (dependencies first); SIGTERM or SIGINT
    /// shuts them down gracefully in reverse order. Past `shutdown.grace` they are
    /// cancelled; should any still not end, the process exits (status 1, one line on
    /// standard error) 5 s later, rather than hang. The same holds when a service fails
    /// and the others are cancelled.
    public static func run(_ services: [any Service], logger: Logger) async throws {
        let grace = shutdownGrace.withLock { $0 }
        let watchdog = Watchdog(name: logger.label)
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: Watched(inner: $0, watchdog: watchdog)) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        configuration.maximumGracefulShutdownDuration = grace
        let group = ServiceGroup(configuration: configuration)
        watchdog.armOnSignals(after: grace + .seconds(5))
        try await group.run()
    }
}

/// Ends a process that does not stop: armed by SIGTERM/SIGINT (after the grace period and a
/// little more) or by a failed service (the others are cancelled; 5 s), it writes one line
/// and exits with status 1. A process that stops in time never hears from it.
final class Watchdog: @unchecked Sendable {
    let name: String
    private let queue = DispatchQueue(label: "gedge.watchdog")
    private var sources: [any DispatchSourceSignal] = []
    private let armed = Mutex(false)

    init(name: String) { self.name = name }

    func armOnSignals(after delay: Duration) {
        for sig in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { [weak self] in self?.arm(after: delay, because: sig == SIGTERM ? "SIGTERM" : "SIGINT") }
            source.resume()
            sources.append(source)
        }
    }

    func arm(after delay: Duration, because reason: String) {
        guard !armed.withLock({ a in defer { a = true }; return a }) else { return }
        let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
        let name = self.name
        queue.asyncAfter(deadline: .now() + seconds) {
            FileHandle.standardError.write(Data("\(name): services did not stop within \(Int(seconds)) s after \(reason); exiting\n".utf8))
            _exit(1)
        }
    }
}

/// A service whose failure arms the watchdog: the group cancels the others, which must end.
struct Watched: Service, CustomStringConvertible {
    let inner: any Service
    let watchdog: Watchdog

    var description: String { String(describing: inner) }

    func run() async throws {
        do {
            try await inner.run()
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            watchdog.arm(after: .seconds(5), because: "\(String(describing: type(of: inner))) failed: \(error)")
            throw error
        }
    }
}
