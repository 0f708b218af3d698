import Foundation
import GEdgeCore
import Hummingbird
import NIOCore

/// An error answer as RFC 9457 problem details (`application/problem+json`), with two
/// extension members: `code` (stable, for scripts) and, for bad input, `field` (the path
/// of the offending field, `containers[0].image`).
public struct Problem: Error, HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var code: String
    public var detail: String
    public var field: String?
    public var headers: HTTPFields = [:]
    /// How the error is written: problem+json, or the original API's own error body.
    public var dialect: Dialect = .problem

    public enum Dialect: Sendable {
        case problem
        /// GS-Scheduler's front server: `{"Error": {"ErrorCode", "Message"}}` (GE_define.py's
        /// ERROR_CODES), with `Detail` and `Field` added.
        case gsch
        /// GS-Engine: `{"err": "<reason>", "res": null}`.
        case gse
    }

    public init(_ status: HTTPResponse.Status, code: String, detail: String, field: String? = nil) {
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
    }

    public var description: String { "\(status.code) \(code): \(detail)" + (field.map { " (\($0))" } ?? "") }

    public var json: JSONValue {
        var o: [String: JSONValue] = [
            "type": "about:blank", "title": .string(status.reasonPhrase), "status": .number(Double(status.code)),
            "detail": .string(detail), "code": .string(code),
        ]
        if let field { o["field"] = .string(field) }
        return .object(o)
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var h = headers
        let body: JSONValue
        switch dialect {
        case .problem:
            h[.contentType] = "application/problem+json"
            body = json
        case .gsch:
            h[.contentType] = "application/json"
            let (code, message) = gschErrorCode
            var e: [String: JSONValue] = ["ErrorCode": .string(code), "Message": .string(message), "Detail": .string(detail)]
            if let field { e["Field"] = .string(field) }
            body = .object(["Error": .object(e)])
        case .gse:
            h[.contentType] = "application/json"
            body = .object(["err": .string(field.map { "\(detail) (\($0))" } ?? detail), "res": .null])
        }
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: body.serialized())))
    }

    /// The front server's ErrorCode and Message for this status (GE_define.py ERROR_CODES).
    var gschErrorCode: (String, String) {
        switch status.code {
        case 401: return ("InvalidToken", "The provided token is malformed or otherwise invalid.")
        case 403: return ("InvalidSecurity", "The provided security credentials are not valid.")
        case 404: return ("ResourceNotFoundException", "The resource (for example, a GEdge service or access policy statement) specified in the request does not exist.")
        case 405: return ("MethodNotAllowed", "The specified method is not allowed against this resource.")
        case 411: return ("MissingContentLength", "You must provide the Content-Length HTTP header.")
        case 413: return ("MaxMessageLengthExceeded", "Your request was too big.")
        case 415: return ("UnsupportedMediaTypeException", "The content type of the Invoke request body is not JSON.")
        case 400..<500: return ("InvalidRequestContentException", "The request body could not be parsed as JSON.")
        default: return ("ServiceInternalException", "The GEdge service encountered an internal error.")
        }
    }

    // MARK: the usual ones

    public static func badInput(_ e: MessageDecodingError, prefix: String = "") -> Problem {
        let field = prefix.isEmpty ? e.field : (e.field.isEmpty ? prefix : "\(prefix).\(e.field)")
        return Problem(.badRequest, code: e.code.description, detail: e.reason, field: field)
    }

    public static func unauthorized(_ detail: String) -> Problem {
        var p = Problem(.unauthorized, code: "unauthorized", detail: detail)
        p.headers[.wwwAuthenticate] = "Bearer realm=\"gedge\""
        return p
    }

    public static func forbidden(_ detail: String) -> Problem { Problem(.forbidden, code: "forbidden", detail: detail) }
    public static func notFound(_ detail: String) -> Problem { Problem(.notFound, code: "not_found", detail: detail) }
    public static func conflict(_ detail: String) -> Problem { Problem(.conflict, code: "conflict", detail: detail) }
    public static func unavailable(_ detail: String) -> Problem {
        var p = Problem(.serviceUnavailable, code: "unavailable", detail: detail)
        p.headers[.retryAfter] = "1"
        return p
    }
}

/// JSON answers.
enum Reply {
    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
        var h = extra
        h[.contentType] = "application/json"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: value.serialized())))
    }
}

extension Date {
    var iso8601: JSONValue { .timestamp(self) }
}
