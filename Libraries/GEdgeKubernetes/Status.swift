import Foundation
import GEdgeCore
import GEdgeHTTPClient

/// An error answer from the Kubernetes API, read from its `Status` object (kind Status,
/// apiVersion v1): the HTTP code, the machine-readable reason (`NotFound`, `Conflict`,
/// `Forbidden`, `Expired`, `TooManyRequests`...), the message, and the server's
/// `details.retryAfterSeconds` when it gave one.
public struct KubernetesAPIError: Error, Sendable, CustomStringConvertible, TransientError {
    public let status: Int
    public let reason: String
    public let message: String
    public let retryAfterSeconds: Int?

    public init(status: Int, reason: String? = nil, message: String, retryAfterSeconds: Int? = nil) {
        self.status = status
        self.reason = reason ?? Self.defaultReason(status)
        self.message = message
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// From an error response: its Status when the body is one, else the body's first
    /// 200 bytes (a proxy's HTML page, say). `context` names the call ("GET /api/v1/...").
    public init(response: HTTPResponse, context: String) {
        let body = try? response.json()
        if let body, body["kind"]?.stringValue == "Status" {
            self.init(status: Int(body["code"]?.numberValue ?? Double(response.status)), reason: body["reason"]?.stringValue,
                      message: "\(context): \(body["message"]?.stringValue ?? "")",
                      retryAfterSeconds: body["details"]?["retryAfterSeconds"]?.numberValue.map { Int($0) }
                        ?? response.header("Retry-After").flatMap { Int($0) })
        } else {
            self.init(status: response.status, message: "\(context): \(response.bodyString.prefix(200))",
                      retryAfterSeconds: response.header("Retry-After").flatMap { Int($0) })
        }
    }

    /// From a watch's ERROR event, whose object is a Status.
    public init(status object: JSONValue, context: String) {
        self.init(status: Int(object["code"]?.numberValue ?? 500), reason: object["reason"]?.stringValue,
                  message: "\(context): \(object["message"]?.stringValue ?? "watch error")")
    }

    /// The reasons the API server gives for each code when the body names none
    /// (k8s.io/apimachinery/pkg/api/errors).
    static func defaultReason(_ status: Int) -> String {
        switch status {
        case 400: "BadRequest"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "NotFound"
        case 405: "MethodNotAllowed"
        case 406: "NotAcceptable"
        case 409: "Conflict"
        case 410: "Expired"
        case 413: "RequestEntityTooLarge"
        case 415: "UnsupportedMediaType"
        case 422: "Invalid"
        case 429: "TooManyRequests"
        case 500: "InternalError"
        case 503: "ServiceUnavailable"
        case 504: "Timeout"
        default: "Unknown"
        }
    }

    public var isNotFound: Bool { status == 404 }
    public var isConflict: Bool { status == 409 }
    /// A watch or list from a resourceVersion the server no longer has: relist.
    public var isGone: Bool { status == 410 || reason == "Expired" || reason == "Gone" }

    /// Worth sending again as it was: the server was busy, overloaded or timed out
    /// (`ServerTimeout`, `Timeout`, `TooManyRequests`, `InternalError` with a 5xx,
    /// `ServiceUnavailable`). A 4xx is the request's own fault and is not.
    public var isRetriable: Bool {
        switch reason {
        case "ServerTimeout", "Timeout", "TooManyRequests", "ServiceUnavailable": return true
        default: return status == 429 || status >= 500
        }
    }

    public var description: String { "Kubernetes API \(status) \(reason): \(message)" }
}
