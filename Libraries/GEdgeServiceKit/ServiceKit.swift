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

/// What every executable of the suite shares: logging and metrics set up from configuration,
/// the ops endpoints, and one `ServiceGroup` with graceful shutdown on SIGTERM and SIGINT.
public enum ServiceKit {
    /// Bootstraps logging (`log.level`, `log.format`), the decoding limits (`decode.max.*`)
    /// and the Prometheus metrics registry.
    public static func bootstrap(service: String, config: ConfigReader) throws -> (Logger, PrometheusCollectorRegistry) {
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
                body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
    }

    /// An HTTP server of the ops endpoints alone, for services that serve nothing else.
    public static func opsServer(
        _ configuration: OpsServerConfiguration, registry: PrometheusCollectorRegistry, readiness: [ReadinessCheck], logger: Logger
    ) -> some Service {
        Application(
            router: opsRouter(registry: registry, readiness: readiness),
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
    /// cancelled, and 5 s after that the process ends whatever they are doing.
    public static func run(_ services: [any Service], logger: Logger) async throws {
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        configuration.maximumGracefulShutdownDuration = shutdownGrace.withLock { $0 }
        configuration.maximumCancellationDuration = .seconds(5)
        let group = ServiceGroup(configuration: configuration)
        try await group.run()
    }
}
