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
        h[.contentType] = "application/problem+json"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: json.serialized())))
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
