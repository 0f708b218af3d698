import CGEdgeShims
import CRabbitMQ
import Crypto
import Foundation
import GEdgeCore

// Method IDs (class << 16 | method), written out because the C macros are casts.
enum AMQPMethod {
    static let connectionClose: UInt32 = 0x000A_0032
    static let connectionCloseOK: UInt32 = 0x000A_0033
    static let channelClose: UInt32 = 0x0014_0028
    static let channelCloseOK: UInt32 = 0x0014_0029
    static let basicCancel: UInt32 = 0x003C_001E
    static let basicReturn: UInt32 = 0x003C_0032
    static let basicDeliver: UInt32 = 0x003C_003C
    static let basicAck: UInt32 = 0x003C_0050
    static let basicNack: UInt32 = 0x003C_0078
}

/// Owns C copies of strings for the length of a call.
final class CStrings {
    private var pointers: [UnsafeMutablePointer<CChar>] = []
    deinit { pointers.forEach { free($0) } }

    func bytes(_ s: String) -> amqp_bytes_t {
        let p = strdup(s)!
        pointers.append(p)
        return amqp_bytes_t(len: strlen(p), bytes: UnsafeMutableRawPointer(p))
    }

    func raw(_ b: [UInt8]) -> amqp_bytes_t {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(b.count, 1))
        b.withUnsafeBytes { if let base = $0.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: b.count) } }
        pointers.append(p)
        return amqp_bytes_t(len: b.count, bytes: UnsafeMutableRawPointer(p))
    }

    /// A field table of string values. The entries live as long as this object.
    func table(_ values: [String: String]) -> amqp_table_t {
        if values.isEmpty { return amqp_table_t(num_entries: 0, entries: nil) }
        let entries = UnsafeMutablePointer<amqp_table_entry_t>.allocate(capacity: values.count)
        for (i, (k, v)) in values.sorted(by: { $0.key < $1.key }).enumerated() {
            var value = amqp_field_value_t()
            value.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
            value.value.bytes = bytes(v)
            entries[i] = amqp_table_entry_t(key: bytes(k), value: value)
        }
        tables.append(entries)
        return amqp_table_t(num_entries: Int32(values.count), entries: entries)
    }
    private var tables: [UnsafeMutablePointer<amqp_table_entry_t>] = []
    func releaseTables() { tables.forEach { $0.deallocate() } }
}

extension amqp_bytes_t {
    var string: String {
        guard let bytes, len > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: bytes, count: len), as: UTF8.self)
    }
    var array: [UInt8] {
        guard let bytes, len > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: len))
    }
}

func readHeaders(_ table: amqp_table_t) -> [String: String] {
    var out: [String: String] = [:]
    guard let entries = table.entries else { return out }
    for i in 0..<Int(table.num_entries) {
        let e = entries[i]
        let key = e.key.string
        let kind = UInt32(e.value.kind)
        switch kind {
        case AMQP_FIELD_KIND_UTF8.rawValue, AMQP_FIELD_KIND_BYTES.rawValue: out[key] = e.value.value.bytes.string
        case AMQP_FIELD_KIND_I8.rawValue: out[key] = String(e.value.value.i8)
        case AMQP_FIELD_KIND_U8.rawValue: out[key] = String(e.value.value.u8)
        case AMQP_FIELD_KIND_I16.rawValue: out[key] = String(e.value.value.i16)
        case AMQP_FIELD_KIND_U16.rawValue: out[key] = String(e.value.value.u16)
        case AMQP_FIELD_KIND_I32.rawValue: out[key] = String(e.value.value.i32)
        case AMQP_FIELD_KIND_U32.rawValue: out[key] = String(e.value.value.u32)
        case AMQP_FIELD_KIND_I64.rawValue: out[key] = String(e.value.value.i64)
        case AMQP_FIELD_KIND_U64.rawValue, AMQP_FIELD_KIND_TIMESTAMP.rawValue: out[key] = String(e.value.value.u64)
        case AMQP_FIELD_KIND_BOOLEAN.rawValue: out[key] = e.value.value.boolean != 0 ? "true" : "false"
        default: continue
        }
    }
    return out
}

/// A message's properties, as the content header carries them, with its body.
func message(properties p: amqp_basic_properties_t, body: [UInt8]) -> AMQPMessage {
    let flags = p._flags
    return AMQPMessage(
        body: body,
        headers: flags & UInt32(AMQP_BASIC_HEADERS_FLAG) != 0 ? readHeaders(p.headers) : [:],
        messageID: flags & UInt32(AMQP_BASIC_MESSAGE_ID_FLAG) != 0 ? p.message_id.string : nil,
        contentType: flags & UInt32(AMQP_BASIC_CONTENT_TYPE_FLAG) != 0 ? p.content_type.string : nil,
        persistent: flags & UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG) != 0 && p.delivery_mode == 2)
}

/// Reads a delivery's content (its header frame, then its body frames) on `channel`, keeping
/// at most `limit` bytes of the body: a longer body is read through, its prefix kept and
/// its size and digest taken as it passes, so that no sender decides what is held in memory
/// (rabbitmq-c's `amqp_read_message` allocates the size the header declares).
func readContent(_ c: OpaquePointer, channel: amqp_channel_t, limit: Int, prefix: Int, timeout: Duration) -> Result<(AMQPMessage, AMQPDelivery.Oversize?), AMQPError> {
    var frame = amqp_frame_t()
    // The next frame of the channel (heartbeats are served by rabbitmq-c); a content that
    // stops arriving midway, or a frame of another channel in it, ends the connection.
    func next() -> AMQPError? {
        var wait = timeval(tv_sec: Int(timeout.components.seconds), tv_usec: 0)
        let status = amqp_simple_wait_frame_noblock(c, &frame, &wait)
        if status != 0 { return AMQPError(.connection, replyCode: Int(status), message: "read delivery: \(String(cString: amqp_error_string2(status)))") }
        if frame.channel != channel { return AMQPError(.connection, message: "read delivery: a frame of channel \(frame.channel) inside a content of channel \(channel)") }
        return nil
    }
    if let e = next() { return .failure(e) }
    guard frame.frame_type == UInt8(AMQP_FRAME_HEADER), let decoded = frame.payload.properties.decoded else {
        return .failure(AMQPError(.connection, message: "read delivery: a content header was expected, got frame type \(frame.frame_type)"))
    }
    let bodySize = frame.payload.properties.body_size
    // The properties are read before the next frame is waited for.
    let properties = decoded.assumingMemoryBound(to: amqp_basic_properties_t.self).pointee
    var message = message(properties: properties, body: [])
    let keep = bodySize > UInt64(limit) ? prefix : Int(bodySize)
    var body: [UInt8] = []
    body.reserveCapacity(keep)
    var digest = bodySize > UInt64(limit) ? SHA256() : nil
    var received: UInt64 = 0
    while received < bodySize {
        if let e = next() { return .failure(e) }
        guard frame.frame_type == UInt8(AMQP_FRAME_BODY) else {
            return .failure(AMQPError(.connection, message: "read delivery: a body frame was expected, got frame type \(frame.frame_type)"))
        }
        let fragment = frame.payload.body_fragment
        let bytes = UnsafeRawBufferPointer(start: fragment.bytes, count: fragment.bytes == nil ? 0 : fragment.len)
        received += UInt64(bytes.count)
        guard received <= bodySize else { return .failure(AMQPError(.connection, message: "read delivery: more body than the header declared")) }
        if body.count < keep { body.append(contentsOf: bytes.prefix(keep - body.count)) }
        digest?.update(bufferPointer: bytes)
        // Frames read so far are let go as the body passes (a long body is not held whole).
        amqp_maybe_release_buffers_on_channel(c, channel)
    }
    message.body = body
    guard let digest else { return .success((message, nil)) }
    let hex = Hex.encode(Array(digest.finalize()))
    let error = MessageDecodingError(.tooLarge, field: "", reason: "a message of \(bodySize) bytes exceeds the limit of \(limit)")
    return .success((message, AMQPDelivery.Oversize(bodyBytes: Int(bodySize), bodySHA256: hex, error: error)))
}

/// Turns an RPC reply into an error, or nil when it is normal.
func replyError(_ reply: amqp_rpc_reply_t, _ what: String) -> AMQPError? {
    switch reply.reply_type {
    case AMQP_RESPONSE_NORMAL:
        return nil
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        let status = reply.library_error
        let text = String(cString: amqp_error_string2(status))
        let code: AMQPError.Code = status == AMQP_STATUS_TIMEOUT.rawValue ? .timeout : .connection
        return AMQPError(code, replyCode: Int(status), message: "\(what): \(text)")
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if reply.reply.id == AMQPMethod.channelClose, let d = reply.reply.decoded {
            let close = d.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            let code = Int(close.reply_code)
            return AMQPError(code == 404 ? .notFound : .channel, replyCode: code, message: "\(what): \(close.reply_text.string)")
        }
        if reply.reply.id == AMQPMethod.connectionClose, let d = reply.reply.decoded {
            let close = d.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            return AMQPError(.connection, replyCode: Int(close.reply_code), message: "\(what): \(close.reply_text.string)")
        }
        return AMQPError(.connection, message: "\(what): server exception \(reply.reply.id)")
    default:
        return AMQPError(.connection, message: "\(what): no reply")
    }
}
