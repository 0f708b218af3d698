import Foundation
import GEdgeCore
import Yams

/// YAML text to JSON values. Composed to nodes and converted here, never to `Any`: a
/// document such as `{a: 1}: 2` (a mapping as a key) must be an error, not a crash. (The
/// parser itself, not compose_all: its sequence swallows a later document's error.)
public enum YAMLText {
    /// Every document of `text`, in order. Errors name `path`.
    public static func documents(_ text: String, path: String) throws(MessageDecodingError) -> [JSONValue] {
        var docs: [JSONValue] = []
        do {
            let parser = try Parser(yaml: text)
            while let node = try parser.nextRoot() { docs.append(try json(node, path: path)) }
        } catch let e as MessageDecodingError {
            throw e
        } catch {
            throw MessageDecodingError(.malformedJSON, field: path, reason: "not valid YAML: \(error)")
        }
        return docs
    }

    /// Exactly one document.
    public static func document(_ text: String, path: String) throws(MessageDecodingError) -> JSONValue {
        let docs = try documents(text, path: path)
        switch docs.count {
        case 0: throw MessageDecodingError(.missingField, field: path, reason: "the YAML holds no document")
        case 1: return docs[0]
        default: throw MessageDecodingError(.invalidValue, field: path, reason: "expected one YAML document, got \(docs.count)")
        }
    }

    static func json(_ node: Node, path: String) throws(MessageDecodingError) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            switch Tag.Name(rawValue: node.tag.description) {
            case .null: return .null
            case .bool: return node.bool.map(JSONValue.bool) ?? .string(scalar.string)
            case .int: return node.int.map { .number(Double($0)) } ?? .string(scalar.string)
            case .float: return node.float.map(JSONValue.number) ?? .string(scalar.string)
            default: return .string(scalar.string)
            }
        case .sequence(let seq):
            var out: [JSONValue] = []
            for (i, x) in seq.enumerated() { out.append(try json(x, path: "\(path)[\(i)]")) }
            return .array(out)
        case .mapping(let map):
            var out: [String: JSONValue] = [:]
            for (k, v) in map {
                guard case .scalar(let key) = k else {
                    throw MessageDecodingError(.invalidValue, field: path, reason: "a mapping key that is not a string")
                }
                let child = path.isEmpty ? key.string : "\(path).\(key.string)"
                if out[key.string] != nil {
                    throw MessageDecodingError(.invalidValue, field: child, reason: "the key appears twice")
                }
                out[key.string] = try json(v, path: child)
            }
            return .object(out)
        default:
            throw MessageDecodingError(.invalidValue, field: path, reason: "a YAML node of an unsupported kind")
        }
    }
}

/// Workloads arrive as JSON manifests or, as GS-Scheduler's `yaml_file` had them, as YAML
/// text (one or more documents). Stored and sent on as JSON.
public enum WorkloadText {
    public static func normalize(_ workload: JSONValue) throws(MessageDecodingError) -> JSONValue {
        guard case .string(let text) = workload else { return workload }
        let docs = try YAMLText.documents(text, path: "msg.workload").filter { $0 != .null }
        switch docs.count {
        case 0: throw MessageDecodingError(.missingField, field: "msg.workload", reason: "the YAML holds no document")
        case 1: return docs[0]
        default: return .array(docs)
        }
    }
}
