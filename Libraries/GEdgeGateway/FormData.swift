import Foundation

/// HTML form bodies, as GS-Scheduler's front server took them: URL-encoded, or
/// multipart/form-data with `yaml_file` as a file part.
enum FormData {
    static func boundary(_ contentType: String) -> String? {
        for part in contentType.split(separator: ";").dropFirst() {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, kv[0].lowercased() == "boundary" else { continue }
            let b = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            return (1...70).contains(b.utf8.count) ? b : nil
        }
        return nil
    }

    static func urlEncoded(_ bytes: [UInt8]) -> [String: String]? {
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        var out: [String: String] = [:]
        for pair in text.split(separator: "&") where !pair.isEmpty {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String? { s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
            guard let k = decode(kv[0]), let v = decode(kv.count > 1 ? kv[1] : "") else { return nil }
            out[k] = v
        }
        return out
    }

    /// The parts' values by field name; nil when the body is not well-formed.
    static func multipart(_ bytes: [UInt8], boundary: String) -> [String: String]? {
        let delimiter = Array("--\(boundary)".utf8)
        var out: [String: String] = [:]
        var positions: [Int] = []
        var i = 0
        while let at = find(delimiter, in: bytes, from: i) {
            positions.append(at)
            i = at + delimiter.count
        }
        guard positions.count >= 2 else { return nil }
        for (start, end) in zip(positions, positions.dropFirst()) {
            var p = start + delimiter.count
            guard p + 1 < bytes.count, bytes[p] == 13, bytes[p + 1] == 10 else { return nil }
            p += 2
            guard let headerEnd = find(Array("\r\n\r\n".utf8), in: bytes, from: p), headerEnd < end else { return nil }
            let headers = String(decoding: bytes[p..<headerEnd], as: UTF8.self)
            var valueEnd = end
            if valueEnd >= 2, bytes[valueEnd - 2] == 13, bytes[valueEnd - 1] == 10 { valueEnd -= 2 }
            guard valueEnd >= headerEnd + 4 else { return nil }
            guard let name = dispositionName(headers) else { return nil }
            guard let value = String(validating: bytes[(headerEnd + 4)..<valueEnd], as: UTF8.self) else { return nil }
            out[name] = value
        }
        return out
    }

    static func dispositionName(_ headers: String) -> String? {
        for line in headers.split(separator: "\r\n") where line.lowercased().hasPrefix("content-disposition:") {
            for param in line.split(separator: ";").dropFirst() {
                let kv = param.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                if kv.count == 2, kv[0].lowercased() == "name" { return kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            }
        }
        return nil
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, hay.count >= needle.count, from <= hay.count - needle.count else { return nil }
        var i = from
        let first = needle[0]
        while i <= hay.count - needle.count {
            if hay[i] == first && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }
}
