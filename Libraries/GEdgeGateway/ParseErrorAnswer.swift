import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers a request the HTTP parser itself rejects (a bad byte in a header, an unknown
/// method, a malformed request line) with problem+json, as every other 4xx of the gateway,
/// then closes the connection. Sits after the HTTP codec, so the routes never see it.
final class ParseErrorAnswer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parse = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        let body: JSONSummary = .init(detail: "the request could not be parsed as HTTP/1.1: \(Self.describe(parse))")
        var buffer = context.channel.allocator.buffer(capacity: body.bytes.count)
        buffer.writeBytes(body.bytes)
        var fields = HTTPFields()
        fields[.contentType] = "application/problem+json"
        fields[.contentLength] = String(buffer.readableBytes)
        fields[.connection] = "close"
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .badRequest, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(buffer)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    static func describe(_ e: HTTPParserError) -> String {
        switch e {
        case .invalidMethod: "an unknown method"
        case .invalidHeaderToken: "a character not allowed in a header"
        case .invalidURL: "a malformed request target"
        case .invalidVersion: "a malformed HTTP version"
        case .headerOverflow: "headers too large"
        case .invalidContentLength: "a malformed Content-Length"
        case .unexpectedContentLength: "a Content-Length where none may be"
        default: "\(e)"
        }
    }

    /// The problem document, written without the JSON layer (this runs on the event loop).
    struct JSONSummary {
        let bytes: [UInt8]
        init(detail: String) {
            let escaped = detail.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            bytes = Array(#"{"code":"bad_request","detail":"\#(escaped)","status":400,"title":"Bad Request","type":"about:blank"}"#.utf8)
        }
    }
}

extension Gateway {
    /// The gateway's HTTP/1.1 server: requests the parser rejects get problem+json, and idle
    /// connections close after `idleTimeout`.
    public static func httpServer(idleTimeout: Duration = .seconds(60)) -> HTTPServerBuilder {
        .http1(configuration: .init(
            additionalChannelHandlers: [ParseErrorAnswer()],
            idleTimeout: .milliseconds(idleTimeout.milliseconds)))
    }
}
