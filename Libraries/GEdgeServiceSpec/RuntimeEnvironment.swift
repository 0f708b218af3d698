import Foundation
import GEdgeCore
import GEdgePlacement

/// GS-AIflow's runtime environments: light images whose CUDA, cuDNN, TensorRT and conda
/// environments are mounted at start from a shared volume (a PersistentVolumeClaim on NFS,
/// CephFS, ...) by subPath, with PATH and LD_LIBRARY_PATH set to use them.
///
/// ```yaml
/// runtime:
///   claim: nfs-pvc-total      # the claim holding the components
///   cuda: "11.2"              # cuda/cuda-11.2       -> /opt/gedge/runtime/cuda      (bin, lib64)
///   cudnn: "8.2.1"            # cudnn/cudnn-8.2.1    -> /opt/gedge/runtime/cudnn     (lib64)
///   tensorrt: "8.5"           # tensorrt/tensorrt-8.5 -> /opt/gedge/runtime/tensorrt (bin, lib)
///   conda: tf2_py38           # miniconda3           -> /opt/gedge/runtime/miniconda3 (envs/tf2_py38/bin, lib)
///   components:               # anything else: [{name, subPath, bin: [...], lib: [...]}]
/// ```
public struct RuntimeEnvironment: Sendable, Hashable {
    public struct Component: Sendable, Hashable {
        public var name: String
        public var subPath: String
        public var bin: [String]
        public var lib: [String]
        public var env: [String: String]

        public var mountPath: String { "\(RuntimeEnvironment.root)/\(name)" }
    }

    public static let root = "/opt/gedge/runtime"
    public static let volumeName = "gedge-runtime"
    /// The directories a Debian or Ubuntu image has on its PATH, kept after the components'.
    public static let systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public var claim: String
    public var components: [Component]

    /// PATH: the components' bin directories first, then the system's.
    public var path: String {
        (components.flatMap { c in c.bin.map { "\(c.mountPath)/\($0)" } } + [Self.systemPath]).joined(separator: ":")
    }

    public var libraryPath: String {
        components.flatMap { c in c.lib.map { "\(c.mountPath)/\($0)" } }.joined(separator: ":")
    }

    /// The environment the containers get (a container's own env wins).
    public var environment: [String: String] {
        var e: [String: String] = ["PATH": path]
        if !libraryPath.isEmpty { e["LD_LIBRARY_PATH"] = libraryPath }
        for c in components { for (k, v) in c.env { e[k] = v } }
        return e
    }

    public var volume: JSONValue {
        .object(["name": .string(Self.volumeName), "persistentVolumeClaim": .object(["claimName": .string(claim), "readOnly": true])])
    }

    public var volumeMounts: [JSONValue] {
        components.map {
            .object(["name": .string(Self.volumeName), "mountPath": .string($0.mountPath), "subPath": .string($0.subPath), "readOnly": true])
        }
    }

    static let fields: Set<String> = ["claim", "cuda", "cudnn", "tensorrt", "conda", "components"]

    static func decode(_ r: FieldReader) throws(MessageDecodingError) -> RuntimeEnvironment {
        try r.rejectUnknown(allowed: fields)
        let claim = try r.string("claim")
        guard isSubdomain(claim) else {
            throw MessageDecodingError(.invalidValue, field: r.childPath("claim"), reason: "'\(claim)' is not a PersistentVolumeClaim name")
        }
        func version(_ key: String) throws(MessageDecodingError) -> String? {
            guard let raw = r.fields[key] else { return nil }
            let v: String
            switch raw {
            case .string(let s): v = s
            case .number(let d): v = d.rounded() == d ? String(Int(d)) : String(d)
            default: throw MessageDecodingError(.wrongType, field: r.childPath(key), reason: "expected a version, got \(raw.kindName)")
            }
            guard !v.isEmpty, v.count <= 64, v.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }), v.first != "." else {
                throw MessageDecodingError(.invalidValue, field: r.childPath(key), reason: "'\(v)' is not a version or environment name ([A-Za-z0-9._-])")
            }
            return v
        }
        var components: [Component] = []
        if let v = try version("cuda") {
            components.append(Component(name: "cuda", subPath: "cuda/cuda-\(v)", bin: ["bin"], lib: ["lib64"], env: ["CUDA_HOME": "\(root)/cuda"]))
        }
        if let v = try version("cudnn") { components.append(Component(name: "cudnn", subPath: "cudnn/cudnn-\(v)", bin: [], lib: ["lib64"], env: [:])) }
        if let v = try version("tensorrt") { components.append(Component(name: "tensorrt", subPath: "tensorrt/tensorrt-\(v)", bin: ["bin"], lib: ["lib"], env: [:])) }
        if let env = try version("conda") {
            // The conda environment first on PATH: its python is the one that runs.
            components.insert(Component(name: "miniconda3", subPath: "miniconda3", bin: ["envs/\(env)/bin"], lib: ["envs/\(env)/lib"],
                                        env: ["CONDA_PREFIX": "\(root)/miniconda3/envs/\(env)", "CONDA_DEFAULT_ENV": env]), at: 0)
        }
        for (i, item) in (try r.optionalList("components") ?? []).enumerated() {
            let c = try FieldReader(item, path: "\(r.childPath("components"))[\(i)]")
            try c.rejectUnknown(allowed: ["name", "subPath", "bin", "lib"])
            let name = try c.string("name")
            guard KubeNames.isDNSLabel(name) else { throw MessageDecodingError(.invalidValue, field: c.childPath("name"), reason: "'\(name)' is not a DNS label") }
            guard !components.contains(where: { $0.name == name }) else {
                throw MessageDecodingError(.invalidValue, field: c.childPath("name"), reason: "'\(name)' is used twice")
            }
            let sub = try c.string("subPath")
            try checkRelative(sub, field: c.childPath("subPath"))
            let bin = try c.optionalStringList("bin") ?? []
            let lib = try c.optionalStringList("lib") ?? []
            for (j, p) in (bin + lib).enumerated() { try checkRelative(p, field: j < bin.count ? "\(c.childPath("bin"))[\(j)]" : "\(c.childPath("lib"))[\(j - bin.count)]") }
            components.append(Component(name: name, subPath: sub, bin: bin, lib: lib, env: [:]))
        }
        guard !components.isEmpty else {
            throw MessageDecodingError(.missingField, field: r.childPath("cuda"), reason: "name at least one component: cuda, cudnn, tensorrt, conda or components")
        }
        return RuntimeEnvironment(claim: claim, components: components)
    }

    /// A path inside the volume: relative, no `..`, no `:` (it would split PATH).
    static func checkRelative(_ p: String, field: String) throws(MessageDecodingError) {
        let parts = p.split(separator: "/", omittingEmptySubsequences: false)
        guard !p.isEmpty, !p.hasPrefix("/"), !parts.contains(".."), !p.contains(":"), p.count <= 256,
              !p.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
            throw MessageDecodingError(.invalidValue, field: field, reason: "'\(p)' is not a relative path inside the volume")
        }
    }

    static func isSubdomain(_ s: String) -> Bool {
        s.count <= 253 && s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { KubeNames.isDNSLabel(String($0)) }
    }
}
