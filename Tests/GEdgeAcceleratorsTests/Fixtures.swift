import Foundation

/// A node's files in a temporary folder, for the scanner to read as its host root.
final class FixtureTree {
    let root: URL

    init() {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("gedge-node-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: root) }

    func file(_ path: String, _ content: String) {
        let url = root.appendingPathComponent(path)
        try! FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try! Data(content.utf8).write(to: url)
    }

    /// An executable script, written through a descriptor no concurrently spawned process can
    /// inherit (O_CLOEXEC): a copy left open in another test's child would make running the
    /// script fail with ETXTBSY.
    @discardableResult
    func executable(_ path: String, _ content: String) -> String {
        let url = root.appendingPathComponent(path)
        try! FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        unlink(url.path)
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
        precondition(fd >= 0, "cannot create \(url.path)")
        let bytes = Array(content.utf8)
        precondition(bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count)
        close(fd)
        return url.path
    }

    func dir(_ path: String) {
        try! FileManager.default.createDirectory(at: root.appendingPathComponent(path), withIntermediateDirectories: true)
    }

    func pci(_ address: String, vendor: String, device: String, class cls: String) {
        file("sys/bus/pci/devices/\(address)/vendor", "0x\(vendor)\n")
        file("sys/bus/pci/devices/\(address)/device", "0x\(device)\n")
        file("sys/bus/pci/devices/\(address)/class", "0x\(cls)\n")
    }

    func usb(_ port: String, vendor: String, product: String) {
        file("sys/bus/usb/devices/\(port)/idVendor", "\(vendor)\n")
        file("sys/bus/usb/devices/\(port)/idProduct", "\(product)\n")
    }

    /// A small pci.ids in Debian's format.
    func pciIDs() {
        file(
            "usr/share/misc/pci.ids",
            """
            # pci.ids excerpt
            10de  NVIDIA Corporation
            \t1db4  GV100GL [Tesla V100 PCIe 16GB]
            \t\t10de 1214  Tesla V100 PCIe 16GB
            \t2204  GA102 [GeForce RTX 3090]
            1002  Advanced Micro Devices, Inc. [AMD/ATI]
            \t740f  Aldebaran/MI200 [Instinct MI210]
            8086  Intel Corporation
            \t56c0  ATS-M [Data Center GPU Flex 170]
            1ac1  Global Unichip Corp.
            \t089a  Coral Edge TPU
            1e52  Tenstorrent Inc
            C 03  Display controller
            \t00  VGA compatible controller

            """)
    }
}
