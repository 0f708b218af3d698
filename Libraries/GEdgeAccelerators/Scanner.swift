import Foundation
import GEdgeCore

/// Finds accelerators from a node's own files, under `hostRoot` (`/` on a node; the host's
/// root mounted read-only in a container; a fixture tree in tests). Missing, unreadable or
/// garbled files never stop a scan: that device is reported `unknown` with the reason.
public struct AcceleratorScanner: Sendable {
    public let hostRoot: URL
    /// nvidia-smi to ask for memory and driver version when it runs here (nil: not used).
    public let nvidiaSMI: String?
    private let pciNames: PCINames
    /// Where device names come from: the host's pci.ids, the image's own, or none.
    public var pciIDsSource: String { pciNames.source }

    /// `imagePCIIDs`: the image's own pci.ids (Debian's `pci.ids` package), read when the host
    /// has none (minimal OS images ship without).
    public init(hostRoot: URL, nvidiaSMI: String? = nil, imagePCIIDs: [String] = PCINames.standardPaths.map { "/" + $0 }) {
        self.hostRoot = hostRoot
        self.nvidiaSMI = nvidiaSMI
        self.pciNames = PCINames.load(root: hostRoot, image: imagePCIIDs)
    }

    /// nvidia-smi's answer per PCI address (lowercased, 4-digit domain as sysfs writes it).
    func querySMI() -> [String: (name: String?, memoryMiB: Int?, driver: String?)] {
        guard let nvidiaSMI, FileManager.default.isExecutableFile(atPath: nvidiaSMI) else { return [:] }
        guard let (status, data) = Subprocess.run(nvidiaSMI, ["--query-gpu=pci.bus_id,name,memory.total,driver_version", "--format=csv,noheader,nounits"]),
              status == 0 else { return [:] }
        var result: [String: (name: String?, memoryMiB: Int?, driver: String?)] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let cols = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cols.count == 4 else { continue }
            // "00000000:3B:00.0" → "0000:3b:00.0"
            var bus = cols[0].lowercased()
            if bus.count == 16 { bus.removeFirst(4) }
            result[bus] = (cols[1].isEmpty ? nil : cols[1], Int(cols[2]), cols[3].isEmpty ? nil : cols[3])
        }
        return result
    }

    public func scan(node: String) -> AcceleratorInventory {
        var found: [Accelerator] = []
        found += scanPCI()
        found += scanJetson()
        found += scanCoralUSB()
        return AcceleratorInventory(node: node, accelerators: found)
    }

    func path(_ p: String) -> URL { hostRoot.appendingPathComponent(p) }

    func read(_ p: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path(p).path) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    func list(_ p: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path(p).path)) ?? []).sorted()
    }

    /// `0x10de\n` → `10de`; nil unless it is hexadecimal of the expected width.
    static func hexID(_ text: String?, digits: Int) -> String? {
        guard var t = text?.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() else { return nil }
        if t.hasPrefix("0x") { t.removeFirst(2) }
        guard t.count == digits, t.allSatisfy(\.isHexDigit) else { return nil }
        return t
    }

    // MARK: PCI

    func scanPCI() -> [Accelerator] {
        var out: [Accelerator] = []
        let nvidiaDriver = nvidiaDriverVersion()
        var smi: [String: (name: String?, memoryMiB: Int?, driver: String?)]?
        for address in list("sys/bus/pci/devices") {
            let dir = "sys/bus/pci/devices/\(address)"
            let rawVendor = read("\(dir)/vendor")
            let rawDevice = read("\(dir)/device")
            let rawClass = read("\(dir)/class")
            guard let vendor = Self.hexID(rawVendor, digits: 4), let device = Self.hexID(rawDevice, digits: 4),
                let cls = Self.hexID(rawClass, digits: 6)
            else {
                // Report only what looks like an accelerator and cannot be read; a missing
                // class file on an ordinary device is not news.
                if rawVendor != nil || rawClass != nil, looksLikeAccelerator(rawVendor, rawClass) {
                    var a = Accelerator(kind: .unknown, location: address)
                    a.problem = "unreadable PCI identity (vendor \(rawVendor?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"), class \(rawClass?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"))"
                    out.append(a)
                }
                continue
            }
            let baseClass = String(cls.prefix(2))
            let subClass = String(cls.prefix(4))
            let kind: AcceleratorKind?
            switch (vendor, baseClass, subClass) {
            case ("1ac1", _, _) where device == "089a": kind = .coralPCIe
            case ("10de", "03", _): kind = .nvidiaGPU
            case ("1002", "03", _): kind = .amdGPU
            case ("8086", "03", _): kind = .intelGPU
            case (_, "12", _), (_, _, "0b40"): kind = .other
            default: kind = nil
            }
            guard let kind else { continue }
            var a = Accelerator(kind: kind, location: address)
            a.vendorID = vendor
            a.deviceID = device
            a.pciClass = subClass
            a.vendor = pciNames.vendor(vendor)
            a.model = pciNames.device(vendor, device)
            if kind == .nvidiaGPU {
                a.driverVersion = nvidiaDriver
                a.memoryMiB = nvidiaMemoryMiB(address: address)
                // nvidia-smi's name is reActor's source for gpu.model: asked once a scan.
                if smi == nil { smi = querySMI() }
                let answer = smi?[address.lowercased()]
                a.reportedName = answer?.name
                a.memoryMiB = a.memoryMiB ?? answer?.memoryMiB
                a.driverVersion = a.driverVersion ?? answer?.driver
                a.model = a.model ?? answer?.name
            }
            if kind == .coralPCIe {
                let apex = list("dev").filter { $0.hasPrefix("apex_") }
                a.detail = apex.isEmpty ? "no /dev/apex_N (driver not loaded)" : apex.joined(separator: ",")
            }
            out.append(a)
        }
        return out
    }

    private func looksLikeAccelerator(_ vendor: String?, _ cls: String?) -> Bool {
        let v = vendor?.lowercased() ?? ""
        let c = cls?.lowercased() ?? ""
        return v.contains("10de") || v.contains("1002") || v.contains("1ac1") || c.hasPrefix("0x03") || c.hasPrefix("0x12") || c.hasPrefix("0x0b40")
    }

    /// From /proc/driver/nvidia/version: "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  ...".
    func nvidiaDriverVersion() -> String? {
        guard let text = read("proc/driver/nvidia/version") else { return nil }
        for line in text.split(separator: "\n") where line.contains("NVRM version") {
            for word in line.split(separator: " ") where word.split(separator: ".").count >= 2 && word.allSatisfy({ $0.isNumber || $0 == "." }) {
                return String(word)
            }
        }
        return nil
    }

    /// Memory from /proc/driver/nvidia/gpus/<address>/information ("Video Memory: 16384 MB")
    /// where the driver writes it.
    func nvidiaMemoryMiB(address: String) -> Int? {
        guard let text = read("proc/driver/nvidia/gpus/\(address)/information") else { return nil }
        for line in text.split(separator: "\n") where line.lowercased().contains("memory") {
            let digits = line.split(separator: ":").last?.trimmingCharacters(in: .whitespaces).split(separator: " ").first
            if let d = digits, let n = Int(d) { return n }
        }
        return nil
    }

    // MARK: Jetson

    func scanJetson() -> [Accelerator] {
        guard let raw = read("proc/device-tree/model") else { return [] }
        let model = raw.replacingOccurrences(of: "\0", with: "").trimmingCharacters(in: .whitespacesAndNewlines)
        // TX2's device tree says only "quill" (its board's code name) on some L4T releases.
        let m = model.lowercased()
        guard m.contains("jetson") || m.contains("tegra") || m.contains("quill") else { return [] }
        var a = Accelerator(kind: .jetson, location: "device-tree")
        a.vendor = "NVIDIA"
        a.model = Self.jetsonFamily(model) ?? model
        a.reportedName = model
        let release = read("etc/nv_tegra_release")
        a.detail = release.flatMap(Self.l4tVersion)
        a.l4tRevision = release.flatMap(Self.l4tRevision)
        a.driverVersion = a.detail
        return [a]
    }

    static func jetsonFamily(_ model: String) -> String? {
        let m = model.lowercased()
        if m.contains("orin") { return m.contains("nano") ? "Orin Nano" : m.contains("nx") ? "Orin NX" : "AGX Orin" }
        if m.contains("xavier") || m.contains("agx") { return m.contains("nx") ? "Xavier NX" : "AGX Xavier" }
        if m.contains("tx2") || m.contains("quill") { return "TX2" }
        if m.contains("tx1") { return "TX1" }
        if m.contains("nano") { return "Nano" }
        return nil
    }

    /// "# R32 (release), REVISION: 4.3, GCID: ..." → "4.3", as reActor's script takes it
    /// (`awk -F ',' '{print $2}' | awk '{print $2}'`).
    static func l4tRevision(_ text: String) -> String? {
        guard let line = text.split(separator: "\n").first(where: { $0.contains("REVISION") }) else { return nil }
        let fields = line.split(separator: ",", omittingEmptySubsequences: false)
        guard fields.count > 1 else { return nil }
        let words = fields[1].split(whereSeparator: { $0 == " " || $0 == "\t" })
        return words.count > 1 ? String(words[1]) : nil
    }

    /// "# R32 (release), REVISION: 7.1, GCID: ..." → "32.7.1".
    static func l4tVersion(_ text: String) -> String? {
        guard let line = text.split(separator: "\n").first(where: { $0.contains("REVISION") }) else { return nil }
        let release = line.split(separator: " ").first { $0.hasPrefix("R") && $0.dropFirst().allSatisfy(\.isNumber) && $0.count > 1 }
        guard let release,
            let revPart = line.components(separatedBy: "REVISION:").last?.split(separator: ",").first?.trimmingCharacters(in: .whitespaces),
            !revPart.isEmpty, revPart.allSatisfy({ $0.isNumber || $0 == "." })
        else { return nil }
        return "\(release.dropFirst()).\(revPart)"
    }

    // MARK: Coral USB

    func scanCoralUSB() -> [Accelerator] {
        var out: [Accelerator] = []
        for port in list("sys/bus/usb/devices") {
            let dir = "sys/bus/usb/devices/\(port)"
            guard let v = Self.hexID(read("\(dir)/idVendor"), digits: 4), let p = Self.hexID(read("\(dir)/idProduct"), digits: 4) else { continue }
            let state: String
            switch (v, p) {
            case ("1a6e", "089a"): state = "bootloader"
            case ("18d1", "9302"): state = "ready"
            default: continue
            }
            var a = Accelerator(kind: .coralUSB, location: port)
            a.vendorID = v
            a.deviceID = p
            a.vendor = "Google"
            a.model = "Coral USB Accelerator"
            a.reportedName = "Google-Coral-TPU"
            a.detail = state
            out.append(a)
        }
        return out
    }
}

/// Vendor and device names from pci.ids (Debian's pci.ids or hwdata): the host's, else the
/// image's own, else none (devices are then reported by their IDs).
public struct PCINames: Sendable {
    var vendors: [String: String] = [:]
    var devices: [String: String] = [:]
    /// "host <path>", "image <path>" or "none".
    var source = "none"

    public static let standardPaths = ["usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids"]

    static func load(root: URL, image: [String]) -> PCINames {
        for p in standardPaths {
            let path = root.appendingPathComponent(p).path
            if let data = FileManager.default.contents(atPath: path) {
                var names = parse(String(decoding: data, as: UTF8.self))
                names.source = "host \(path)"
                return names
            }
        }
        for path in image {
            if let data = FileManager.default.contents(atPath: path) {
                var names = parse(String(decoding: data, as: UTF8.self))
                names.source = "image \(path)"
                return names
            }
        }
        return PCINames()
    }

    static func parse(_ text: String) -> PCINames {
        var names = PCINames()
        var vendor: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("#") { continue }
            if line.hasPrefix("C ") { vendor = nil; continue }  // the class list follows
            if line.hasPrefix("\t\t") { continue }
            if line.hasPrefix("\t") {
                guard let v = vendor else { continue }
                let body = line.dropFirst()
                let id = String(body.prefix(4)).lowercased()
                names.devices[v + ":" + id] = body.dropFirst(4).trimmingCharacters(in: .whitespaces)
            } else {
                let id = String(line.prefix(4)).lowercased()
                guard id.allSatisfy(\.isHexDigit) else { vendor = nil; continue }
                vendor = id
                names.vendors[id] = line.dropFirst(4).trimmingCharacters(in: .whitespaces)
            }
        }
        return names
    }

    func vendor(_ id: String) -> String? { vendors[id] }
    func device(_ vendor: String, _ device: String) -> String? { devices[vendor + ":" + device] }
}
