import Foundation

/// The node labels for an inventory, in three families:
///
/// - this suite's own, `accelerator.gedge.io/<kind>.{count,model,vendor,driver,memory,state}`;
/// - NFD-style PCI presence, `feature.node.kubernetes.io/pci-<class>_<vendor>.present`, and
///   GFD-style `nvidia.com/gpu.{count,product,memory}`, `nvidia.com/cuda.driver.{major,minor,rev}`;
/// - reActor's, `gpu.model`, `gpu.driver`, `gpu.vendor.id`, `gpu.product.id`, `gpu.resource`,
///   with reActor's values (see `reActor`).
///
/// Values are made valid label values (63 characters of `[A-Za-z0-9._-]`, alphanumeric at
/// both ends).
public enum AcceleratorLabels {
    public static let prefix = "accelerator.gedge.io/"
    /// The annotation listing the labels this monitor set, so that it removes only its own.
    public static let managedAnnotation = "accelerator.gedge.io/managed-labels"

    public static func labels(for inventory: AcceleratorInventory) -> [String: String] {
        var out: [String: String] = [:]
        for kind in AcceleratorKind.allCases {
            let items = inventory.of(kind)
            guard !items.isEmpty else { continue }
            let k = prefix + kind.rawValue
            out[k + ".count"] = String(items.count)
            if let model = mostCommon(items.compactMap(\.model)) { out[k + ".model"] = value(model) }
            if let vendor = mostCommon(items.compactMap(\.vendor)) { out[k + ".vendor"] = value(vendor) }
            if let driver = mostCommon(items.compactMap(\.driverVersion)) { out[k + ".driver"] = value(driver) }
            if let memory = items.compactMap(\.memoryMiB).max() { out[k + ".memory"] = String(memory) }
            if kind == .coralUSB || kind == .coralPCIe, let state = mostCommon(items.compactMap(\.detail)) { out[k + ".state"] = value(state) }
        }
        for a in inventory.accelerators {
            if let cls = a.pciClass, let v = a.vendorID { out["feature.node.kubernetes.io/pci-\(cls)_\(v).present"] = "true" }
        }
        let gpus = inventory.of(.nvidiaGPU)
        if !gpus.isEmpty {
            out["nvidia.com/gpu.count"] = String(gpus.count)
            if let model = mostCommon(gpus.compactMap(\.model)) { out["nvidia.com/gpu.product"] = value(model) }
            if let memory = gpus.compactMap(\.memoryMiB).max() { out["nvidia.com/gpu.memory"] = String(memory) }
            if let driver = mostCommon(gpus.compactMap(\.driverVersion)) {
                let parts = driver.split(separator: ".")
                for (name, i) in [("major", 0), ("minor", 1), ("rev", 2)] where i < parts.count {
                    out["nvidia.com/cuda.driver.\(name)"] = value(String(parts[i]))
                }
            }
        }
        for (k, v) in reActor(inventory) { out[k] = v }
        return out.filter { !$0.value.isEmpty }
    }

    /// reActor's labels with reActor's values, computed as its scripts
    /// (MonitorContainer/*/hw-monitor-automatic-lableing.sh) computed them, for one
    /// accelerator: the first NVIDIA GPU (from nvidia-smi: `gpu.model` is the name's first two
    /// words joined, `Tesla V100-PCIE-32GB` → `TeslaV100-PCIE-32GB`), else the Jetson (from the
    /// device tree's model without spaces: TX1, quill or TX2, Nano, AGX; `gpu.driver` the L4T
    /// REVISION), else a Coral USB accelerator by its IDs. What the scripts would not label
    /// (no nvidia-smi, an unlisted Jetson) gets none of them.
    public static func reActor(_ inventory: AcceleratorInventory) -> [String: String] {
        var out: [String: String] = [:]
        if let gpu = inventory.of(.nvidiaGPU).first, let name = gpu.reportedName {
            let words = name.split(whereSeparator: { $0 == " " || $0 == "\t" })
            out["gpu.model"] = value(words.prefix(2).joined())
            if let d = gpu.driverVersion { out["gpu.driver"] = value(d) }
            out["gpu.resource"] = "nvidia-smi"
        } else if let jetson = inventory.of(.jetson).first, let model = jetson.reportedName.map({ $0.replacingOccurrences(of: " ", with: "") }),
                  let family = [("TX1", "Jetson-TX1"), ("quill", "Jetson-TX2"), ("TX2", "Jetson-TX2"), ("Nano", "Jetson-Nano"), ("AGX", "Jetson-AGX")]
                      .first(where: { model.contains($0.0) })?.1 {
            out["gpu.model"] = family
            if let r = jetson.l4tRevision { out["gpu.driver"] = value(r) }
            out["gpu.resource"] = "tegrastats"
        } else if let coral = inventory.of(.coralUSB).first(where: {
            ["1a6e", "18d1"].contains($0.vendorID ?? "") && ["089a", "9302"].contains($0.deviceID ?? "")
        }) {
            out["gpu.model"] = "Google-Coral-TPU"
            out["gpu.vendor.id"] = coral.vendorID
            out["gpu.product.id"] = coral.deviceID
        }
        return out
    }

    static func mostCommon(_ values: [String]) -> String? {
        let counts = Dictionary(values.map { ($0, 1) }, uniquingKeysWith: +)
        return counts.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key
    }

    /// Makes any text a valid label value.
    public static func value(_ text: String) -> String {
        var chars: [Character] = []
        for c in text {
            let ok = c.isASCII && (c.isLetter || c.isNumber || c == "." || c == "_" || c == "-")
            let next: Character = ok ? c : "-"
            if next == "-", chars.last == "-" { continue }
            chars.append(next)
        }
        var s = String(chars.prefix(63))
        while let f = s.first, !(f.isASCII && (f.isLetter || f.isNumber)) { s.removeFirst() }
        while let l = s.last, !(l.isASCII && (l.isLetter || l.isNumber)) { s.removeLast() }
        return s
    }
}
