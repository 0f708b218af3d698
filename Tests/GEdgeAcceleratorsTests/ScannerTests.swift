import Foundation
import GEdgeAccelerators
import GEdgeCore
import Testing

@Suite("Accelerator detection")
struct ScannerTests {
    func scan(_ t: FixtureTree) -> AcceleratorInventory {
        AcceleratorScanner(hostRoot: t.root, imagePCIIDs: []).scan(node: "n1")
    }

    @Test func nvidiaGPUsWithNamesDriverAndMemory() {
        let t = FixtureTree()
        t.pciIDs()
        t.pci("0000:3b:00.0", vendor: "10de", device: "1db4", class: "030200")
        t.pci("0000:d8:00.0", vendor: "10de", device: "1db4", class: "030200")
        t.pci("0000:00:1f.0", vendor: "8086", device: "a1c1", class: "060100")  // an ISA bridge: not an accelerator
        t.file("proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\nGCC version:  gcc version 12.2.0\n")
        t.file("proc/driver/nvidia/gpus/0000:3b:00.0/information", "Model: \t\t Tesla V100-PCIE-16GB\nVideo Memory: \t 16384 MB\n")
        let inv = scan(t)
        let gpus = inv.of(.nvidiaGPU)
        #expect(gpus.count == 2)
        #expect(inv.accelerators.count == 2)
        #expect(gpus.allSatisfy { $0.model == "GV100GL [Tesla V100 PCIe 16GB]" && $0.vendor == "NVIDIA Corporation" && $0.driverVersion == "535.104.05" })
        #expect(gpus.first { $0.location == "0000:3b:00.0" }?.memoryMiB == 16384)
        #expect(gpus.first { $0.location == "0000:d8:00.0" }?.memoryMiB == nil)
    }

    /// A minimal OS image ships no pci.ids: the image's own names the device, and the scan
    /// says which it used; the host's, when it has one, comes first.
    @Test func namesFallBackToTheImagesPCIIDsAndSayWhich() {
        let host = FixtureTree()
        host.pci("0000:07:00.0", vendor: "10de", device: "20b0", class: "030200")
        let image = FixtureTree()
        image.file("usr/share/misc/pci.ids", "10de  NVIDIA Corporation\n\t20b0  GA100 [A100 SXM4 40GB]\n")
        let imagePath = image.root.appendingPathComponent("usr/share/misc/pci.ids").path
        let missing = image.root.appendingPathComponent("usr/share/hwdata/pci.ids").path

        let bare = AcceleratorScanner(hostRoot: host.root, imagePCIIDs: [])
        #expect(bare.pciIDsSource == "none")
        #expect(bare.scan(node: "n").of(.nvidiaGPU).first?.model == nil)

        let fallback = AcceleratorScanner(hostRoot: host.root, imagePCIIDs: [missing, imagePath])
        #expect(fallback.pciIDsSource == "image \(imagePath)")
        #expect(fallback.scan(node: "n").of(.nvidiaGPU).first?.model == "GA100 [A100 SXM4 40GB]")

        host.pciIDs()
        let own = AcceleratorScanner(hostRoot: host.root, imagePCIIDs: [imagePath])
        #expect(own.pciIDsSource == "host \(host.root.appendingPathComponent("usr/share/misc/pci.ids").path)")
    }

    @Test func amdIntelAndOtherAcceleratorsByPCIClass() {
        let t = FixtureTree()
        t.pciIDs()
        t.pci("0000:03:00.0", vendor: "1002", device: "740f", class: "038000")
        t.pci("0000:04:00.0", vendor: "8086", device: "56c0", class: "038000")
        t.pci("0000:05:00.0", vendor: "1e52", device: "401e", class: "120000")  // processing accelerator
        t.pci("0000:06:00.0", vendor: "1234", device: "0001", class: "0b4000")  // co-processor
        let inv = scan(t)
        #expect(inv.of(.amdGPU).first?.model == "Aldebaran/MI200 [Instinct MI210]")
        #expect(inv.of(.intelGPU).first?.model == "ATS-M [Data Center GPU Flex 170]")
        #expect(inv.of(.other).map(\.location) == ["0000:05:00.0", "0000:06:00.0"])
        #expect(inv.of(.other).first?.vendor == "Tenstorrent Inc")
        #expect(inv.of(.other).last?.model == nil, "no name in pci.ids: the IDs stand")
    }

    @Test(arguments: [
        ("NVIDIA Jetson TX1 Developer Kit", "TX1"), ("quill", "TX2"), ("NVIDIA Jetson TX2", "TX2"),
        ("NVIDIA Jetson Nano Developer Kit", "Nano"), ("NVIDIA Jetson Xavier NX Developer Kit", "Xavier NX"),
        ("Jetson-AGX", "AGX Xavier"), ("NVIDIA Jetson AGX Xavier [16GB]", "AGX Xavier"),
        ("NVIDIA Jetson AGX Orin Developer Kit", "AGX Orin"), ("NVIDIA Jetson Orin Nano Developer Kit", "Orin Nano"),
    ] as [(String, String?)])
    func jetsonModels(model: String, family: String?) {
        let t = FixtureTree()
        t.file("proc/device-tree/model", model + "\0")
        t.file("etc/nv_tegra_release", "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t186ref, EABI: aarch64, DATE: Sat Feb 19 17:05:08 UTC 2022\n")
        let jetson = scan(t).of(.jetson)
        // "quill" is the TX2's board (its device tree says only that on some L4T releases).
        #expect(jetson.first?.model == family)
        #expect(jetson.first?.detail == "32.7.1")
    }

    @Test func coralUSBBeforeAndAfterFirmwareAndCoralPCIe() {
        let t = FixtureTree()
        t.usb("2-1", vendor: "1a6e", product: "089a")
        t.usb("2-2", vendor: "18d1", product: "9302")
        t.usb("1-1", vendor: "046d", product: "c52b")  // a keyboard receiver
        t.pciIDs()
        t.pci("0000:01:00.0", vendor: "1ac1", device: "089a", class: "088000")
        t.file("dev/apex_0", "")
        let inv = scan(t)
        #expect(inv.of(.coralUSB).map(\.detail) == ["bootloader", "ready"])
        #expect(inv.of(.coralPCIe).first?.detail == "apex_0")
        #expect(inv.of(.coralPCIe).first?.model == "Coral Edge TPU")
        #expect(inv.accelerators.count == 3)
    }

    @Test func brokenFilesNeverStopAScan() {
        let t = FixtureTree()
        t.pci("0000:3b:00.0", vendor: "10de", device: "1db4", class: "030200")
        t.file("sys/bus/pci/devices/0000:3c:00.0/vendor", "0x10de\n")
        t.file("sys/bus/pci/devices/0000:3c:00.0/device", "\u{1}\u{2}garbage")
        t.file("sys/bus/pci/devices/0000:3c:00.0/class", "0x030200\n")
        t.dir("sys/bus/pci/devices/0000:3d:00.0/vendor")  // a folder where a file belongs
        t.file("sys/bus/pci/devices/0000:3d:00.0/class", "0x0302")
        t.file("proc/driver/nvidia/version", "no version here\n")
        t.file("proc/device-tree/model", "NVIDIA Jetson Nano\0")
        t.file("etc/nv_tegra_release", "\u{0}\u{0}\u{ff}")
        t.file("sys/bus/usb/devices/3-1/idVendor", "zzzz")
        t.file("sys/bus/usb/devices/3-1/idProduct", "")
        let inv = scan(t)
        #expect(inv.of(.nvidiaGPU).count == 1)
        #expect(inv.of(.nvidiaGPU).first?.driverVersion == nil)
        let unknown = inv.of(.unknown)
        #expect(unknown.map(\.location) == ["0000:3c:00.0", "0000:3d:00.0"])
        #expect(unknown.allSatisfy { $0.problem != nil })
        #expect(inv.of(.jetson).first?.model == "Nano")
        #expect(inv.of(.jetson).first?.detail == nil)
        #expect(inv.of(.coralUSB).isEmpty)
    }

    @Test func nvidiaSMIFillsNameMemoryAndDriverWhenTheFilesDoNot() throws {
        let t = FixtureTree()
        t.pci("0000:3b:00.0", vendor: "10de", device: "2330", class: "030200")
        let smi = t.executable("bin/nvidia-smi", "#!/bin/sh\necho '00000000:3B:00.0, NVIDIA H100 80GB HBM3, 81559, 550.54.15'\n")
        let gpu = AcceleratorScanner(hostRoot: t.root, nvidiaSMI: smi, imagePCIIDs: []).scan(node: "n").of(.nvidiaGPU).first
        #expect(gpu?.memoryMiB == 81559)
        #expect(gpu?.driverVersion == "550.54.15")
        #expect(gpu?.model == "NVIDIA H100 80GB HBM3", "no pci.ids here: the name comes from nvidia-smi")
        // A failing nvidia-smi leaves them unknown rather than failing the scan.
        t.executable("bin/nvidia-smi", "#!/bin/sh\nexit 9\n")
        let none = AcceleratorScanner(hostRoot: t.root, nvidiaSMI: smi, imagePCIIDs: []).scan(node: "n").of(.nvidiaGPU).first
        #expect(none?.memoryMiB == nil)
    }

    @Test func aMixedNode() {
        let t = FixtureTree()
        t.pciIDs()
        t.pci("0000:3b:00.0", vendor: "10de", device: "2204", class: "030000")
        t.pci("0000:03:00.0", vendor: "1002", device: "740f", class: "038000")
        t.pci("0000:01:00.0", vendor: "1ac1", device: "089a", class: "088000")
        t.usb("2-1", vendor: "18d1", product: "9302")
        t.file("proc/device-tree/model", "NVIDIA Jetson AGX Orin\0")
        let inv = AcceleratorScanner(hostRoot: t.root, imagePCIIDs: []).scan(node: "n")
        #expect(Set(inv.accelerators.map(\.kind)) == [.nvidiaGPU, .amdGPU, .coralPCIe, .coralUSB, .jetson])
        let labels = AcceleratorLabels.labels(for: inv)
        for kind in ["nvidia-gpu", "amd-gpu", "coral-pcie", "coral-usb", "jetson"] {
            #expect(labels["accelerator.gedge.io/\(kind).count"] == "1")
        }
        #expect(labels["feature.node.kubernetes.io/pci-0300_10de.present"] == "true")
        #expect(labels["feature.node.kubernetes.io/pci-0380_1002.present"] == "true")
        // reActor's NVIDIA labels come from nvidia-smi, absent here: its ARM script's Jetson labels do.
        #expect(labels["gpu.model"] == "Jetson-AGX" && labels["gpu.resource"] == "tegrastats", "\(labels)")
    }

    @Test func anEmptyOrMissingRootFindsNothing() {
        #expect(AcceleratorScanner(hostRoot: URL(fileURLWithPath: "/nonexistent-\(UUID().uuidString)")).scan(node: "n").accelerators.isEmpty)
    }
}

@Suite("Accelerator labels")
struct LabelTests {
    @Test(arguments: [
        ("GV100GL [Tesla V100 PCIe 16GB]", "GV100GL-Tesla-V100-PCIe-16GB"),
        ("  --weird__", "weird"),
        ("Ünïcode GPU", "n-code-GPU"),
        (String(repeating: "a", count: 70), String(repeating: "a", count: 63)),
        ("535.104.05", "535.104.05"),
    ])
    func valuesAreValidLabelValues(input: String, expected: String) {
        let v = AcceleratorLabels.value(input)
        #expect(v == expected)
        #expect(v.count <= 63)
    }

    @Test func threeFamiliesForAGPUNode() {
        let t = FixtureTree()
        t.pciIDs()
        t.pci("0000:3b:00.0", vendor: "10de", device: "1db4", class: "030200")
        t.pci("0000:d8:00.0", vendor: "10de", device: "1db4", class: "030200")
        t.file("proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  x\n")
        t.file("proc/driver/nvidia/gpus/0000:3b:00.0/information", "Video Memory: 16384 MB\n")
        let labels = AcceleratorLabels.labels(for: AcceleratorScanner(hostRoot: t.root, imagePCIIDs: []).scan(node: "n1"))
        #expect(labels == [
            "accelerator.gedge.io/nvidia-gpu.count": "2",
            "accelerator.gedge.io/nvidia-gpu.model": "GV100GL-Tesla-V100-PCIe-16GB",
            "accelerator.gedge.io/nvidia-gpu.vendor": "NVIDIA-Corporation",
            "accelerator.gedge.io/nvidia-gpu.driver": "535.104.05",
            "accelerator.gedge.io/nvidia-gpu.memory": "16384",
            "feature.node.kubernetes.io/pci-0302_10de.present": "true",
            "nvidia.com/gpu.count": "2",
            "nvidia.com/gpu.product": "GV100GL-Tesla-V100-PCIe-16GB",
            "nvidia.com/gpu.memory": "16384",
            "nvidia.com/cuda.driver.major": "535",
            "nvidia.com/cuda.driver.minor": "104",
            "nvidia.com/cuda.driver.rev": "05",
        ], "without nvidia-smi reActor's script labels nothing")
    }

    @Test func jetsonAndCoralGetReActorLabels() {
        let t = FixtureTree()
        t.file("proc/device-tree/model", "NVIDIA Jetson Xavier NX Developer Kit\0")
        t.file("etc/nv_tegra_release", "# R35 (release), REVISION: 4.1, GCID: 1\n")
        let jetson = AcceleratorLabels.labels(for: AcceleratorScanner(hostRoot: t.root, imagePCIIDs: []).scan(node: "n"))
        // reActor's script knows TX1, TX2 (quill), Nano and AGX only: an NX gets the suite's labels.
        #expect(jetson["gpu.model"] == nil)
        #expect(jetson["accelerator.gedge.io/jetson.model"] == "Xavier-NX")
        #expect(jetson["accelerator.gedge.io/jetson.driver"] == "35.4.1")
        #expect(jetson["accelerator.gedge.io/jetson.count"] == "1")

        let c = FixtureTree()
        c.usb("2-1", vendor: "18d1", product: "9302")
        let coral = AcceleratorLabels.labels(for: AcceleratorScanner(hostRoot: c.root, imagePCIIDs: []).scan(node: "n"))
        #expect(coral["gpu.vendor.id"] == "18d1")
        #expect(coral["gpu.product.id"] == "9302")
        #expect(coral["accelerator.gedge.io/coral-usb.state"] == "ready")
    }

    /// The values reActor's scripts compute, from the same inputs: nvidia-smi's
    /// `driver_version,gpu_name` line, /proc/device-tree/model with its NULs, nv_tegra_release,
    /// and the Coral's USB IDs.
    @Test(arguments: [
        ("Tesla V100-PCIE-32GB", "470.57.02", "TeslaV100-PCIE-32GB"),
        ("NVIDIA A100-SXM4-40GB", "535.104.05", "NVIDIAA100-SXM4-40GB"),
        ("NVIDIA GeForce RTX 3090", "525.60.11", "NVIDIAGeForce"),
        ("Quadro", "390.1", "Quadro"),
    ])
    func nvidiaLabelsAsTheAMD64Script(name: String, driver: String, model: String) throws {
        let t = FixtureTree()
        t.pci("0000:3b:00.0", vendor: "10de", device: "1db6", class: "030200")
        let smi = t.executable("bin/nvidia-smi", "#!/bin/sh\necho '00000000:3B:00.0, \(name), 32768, \(driver)'\n")
        let labels = AcceleratorLabels.labels(for: AcceleratorScanner(hostRoot: t.root, nvidiaSMI: smi, imagePCIIDs: []).scan(node: "n"))
        #expect(labels["gpu.model"] == model)
        #expect(labels["gpu.driver"] == driver)
        #expect(labels["gpu.resource"] == "nvidia-smi")
        #expect(labels["gpu.vendor.id"] == nil && labels["gpu.product.id"] == nil)
    }

    @Test(arguments: [
        ("NVIDIA Jetson TX1 Developer Kit\0", "Jetson-TX1"),
        ("quill\0", "Jetson-TX2"),
        ("NVIDIA Jetson TX2\0", "Jetson-TX2"),
        ("NVIDIA Jetson Nano Developer Kit\0", "Jetson-Nano"),
        ("Jetson-AGX\0", "Jetson-AGX"),
        ("NVIDIA Jetson AGX Xavier Developer Kit\0", "Jetson-AGX"),
    ])
    func jetsonLabelsAsTheARM64Script(model: String, expected: String) {
        let t = FixtureTree()
        t.file("proc/device-tree/model", model)
        t.file("etc/nv_tegra_release", "# R32 (release), REVISION: 4.3, GCID: 18172226, BOARD: t210ref, EABI: aarch64, DATE: Wed Dec  4 04:00:00 UTC 2019\n")
        let labels = AcceleratorLabels.labels(for: AcceleratorScanner(hostRoot: t.root, imagePCIIDs: []).scan(node: "n"))
        #expect(labels["gpu.model"] == expected)
        #expect(labels["gpu.driver"] == "4.3")
        #expect(labels["gpu.resource"] == "tegrastats")
    }

    @Test(arguments: [("1a6e", "089a"), ("18d1", "9302")])
    func coralLabelsAsTheARM64Script(vendor: String, product: String) {
        let t = FixtureTree()
        t.usb("1-1", vendor: vendor, product: product)
        let labels = AcceleratorLabels.labels(for: AcceleratorScanner(hostRoot: t.root, imagePCIIDs: []).scan(node: "n"))
        #expect(labels["gpu.model"] == "Google-Coral-TPU")
        #expect(labels["gpu.vendor.id"] == vendor && labels["gpu.product.id"] == product)
        #expect(labels["gpu.driver"] == nil && labels["gpu.resource"] == nil)
    }

    @Test func theInventoryEnvelopeDecodes() throws {
        let t = FixtureTree()
        t.usb("2-1", vendor: "18d1", product: "9302")
        let inv = AcceleratorScanner(hostRoot: t.root, imagePCIIDs: []).scan(node: "edge-n1")
        let codec = EnvelopeCodec()
        let e = try codec.decode(codec.encode(AcceleratorMonitor.envelope(inv, cluster: "edge1")))
        #expect(e.hcode == .nodeAccelerators)
        #expect(e.source == .node(cluster: "edge1", node: "edge-n1"))
        #expect(e.msg["accelerators"] == inv.json["accelerators"])
    }
}
