import Foundation
import GEdgeCore
import Hummingbird
import Logging
import Synchronization

/// What the access log learns while a request is served: the token's project, once the
/// handler has authenticated it. Reached through a task-local, so that authentication need
/// not know about logging.
final class AccessRecord: Sendable {
    @TaskLocal static var current: AccessRecord?
    let project = Mutex<String?>(nil)
}

/// One line per request, JSON like every other log line: method, route template (never the
/// path with its names and IDs), status, duration, the token's project, and the request
/// ID (the client's `X-Request-ID` when it sent a sane one, else a new one; echoed in the
/// answer). Outermost, so that refusals by the other middleware are logged with their status.
struct AccessLogMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger

    static func requestID(_ request: Request) -> String {
        if let given = request.headers[.init("X-Request-ID")!], (1...128).contains(given.utf8.count),
           given.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            return given
        }
        return UUID().uuidString.lowercased()
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let id = Self.requestID(request)
        let record = AccessRecord()
        func log(_ status: Int) {
            var metadata: Logger.Metadata = [
                "http.method": .string(request.method.rawValue),
                "http.route": .string(context.endpointPath ?? "(no route)"),
                "http.status": .stringConvertible(status),
                "duration_ms": .string(String(format: "%.3f", Double((ContinuousClock.now - started).nanoseconds) / 1e6)),
                "request.id": .string(id),
            ]
            if let p = record.project.withLock({ $0 }) { metadata["project"] = .string(p) }
            logger.info("request", metadata: metadata)
        }
        do {
            var response = try await AccessRecord.$current.withValue(record) { try await next(request, context) }
            response.headers[.init("X-Request-ID")!] = id
            log(Int(response.status.code))
            return response
        } catch let e as any HTTPResponseError {
            // Answered here, so that refusals carry the request ID too.
            var response = try e.response(from: request, context: context)
            response.headers[.init("X-Request-ID")!] = id
            log(Int(response.status.code))
            return response
        } catch {
            log(500)
            throw error
        }
    }
}
