import Foundation
import GEdgeCore

/// The kinds of accelerator the monitor recognises.
public enum AcceleratorKind: String, Sendable, CaseIterable, Comparable {
    case nvidiaGPU = "nvidia-gpu"
    case amdGPU = "amd-gpu"
    case intelGPU = "intel-gpu"
    case jetson
    case coralUSB = "coral-usb"
    case coralPCIe = "coral-pcie"
    /// PCI processing accelerators (class 12) and co-processors (class 0b40) of other vendors.
    case other
    /// A device whose files could not be read or made sense of.
    case unknown

    public static func < (a: AcceleratorKind, b: AcceleratorKind) -> Bool { a.rawValue < b.rawValue }
}

/// One accelerator found on the node.
public struct Accelerator: Sendable, Hashable {
    public var kind: AcceleratorKind
    /// Where it was found: a PCI address, a USB port, or `device-tree`.
    public var location: String
    public var vendorID: String?
    public var deviceID: String?
    /// PCI class, 4 hex digits (`0300`), for PCI devices.
    public var pciClass: String?
    public var vendor: String?
    public var model: String?
    public var driverVersion: String?
    public var memoryMiB: Int?
    /// Jetson: the L4T release; Coral USB: `bootloader` before its firmware loads, else `ready`.
    public var detail: String?
    /// Why a device is `unknown`.
    public var problem: String?
    /// The name as the device's own tool reports it (nvidia-smi's `name`, the device tree's
    /// `model`): what reActor's labels were computed from. Not sent in hcode 610.
    public var reportedName: String?
    /// Jetson: L4T's REVISION (`4.3` of "# R32 (release), REVISION: 4.3"), reActor's gpu.driver.
    public var l4tRevision: String?

    public init(kind: AcceleratorKind, location: String) {
        self.kind = kind
        self.location = location
    }

    var json: JSONValue {
        var f: [String: JSONValue] = ["kind": .string(kind.rawValue), "location": .string(location)]
        if let vendorID { f["vendor_id"] = .string(vendorID) }
        if let deviceID { f["device_id"] = .string(deviceID) }
        if let vendor { f["vendor"] = .string(vendor) }
        if let model { f["model"] = .string(model) }
        if let driverVersion { f["driver_version"] = .string(driverVersion) }
        if let memoryMiB { f["memory_mib"] = .number(Double(memoryMiB)) }
        if let detail { f["detail"] = .string(detail) }
        if let problem { f["problem"] = .string(problem) }
        return .object(f)
    }
}

/// Everything found on a node.
public struct AcceleratorInventory: Sendable, Hashable {
    public var node: String
    public var accelerators: [Accelerator]

    public init(node: String, accelerators: [Accelerator]) {
        self.node = node
        self.accelerators = accelerators.sorted { ($0.kind, $0.location) < ($1.kind, $1.location) }
    }

    public func of(_ kind: AcceleratorKind) -> [Accelerator] { accelerators.filter { $0.kind == kind } }

    public var json: JSONValue {
        .object(["node": .string(node), "accelerators": .array(accelerators.map(\.json))])
    }
}
