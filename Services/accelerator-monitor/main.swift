import Foundation
import GEdgeAccelerators
import GEdgeCore
import GEdgeHTTPClient
import GEdgeKafka
import GEdgeKubernetes
import GEdgeServiceKit
import Logging

// The accelerator monitor: one per node (a DaemonSet). Finds the node's GPUs, Jetson and
// Coral devices from its files, labels the node through the Kubernetes API, and publishes
// the inventory to Kafka; rescans every scan.interval.
//
//   accelerator-monitor --once [--host-root DIR]   prints the inventory as JSON and exits
//
// Keys: host.root (/), nvidia.smi (found on PATH when host.root is /), node.name (or NODE_NAME from the downward API), cluster.name,
// scan.interval (60s), kafka.enabled (true), kafka.brokers, kubernetes.url,
// kubernetes.token.file, kubernetes.tls.ca.file, http.host, http.port (9102), log.level.

func runMonitor() async throws {
    let config = try ConfigReader()
    try config.check(program: "accelerator-monitor", usage: "accelerator-monitor [--once] [--KEY VALUE]...")
    let hostRoot = URL(fileURLWithPath: config.string("host.root", default: "/"))
    let node = config.string("node.name") ?? ProcessInfo.processInfo.environment["NODE_NAME"] ?? ProcessInfo.processInfo.hostName
    // nvidia-smi: the configured path, else the one on PATH when scanning this machine's own root.
    let smi = config.string("nvidia.smi") ?? (hostRoot.path == "/" ? (ProcessInfo.processInfo.environment["PATH"] ?? "")
        .split(separator: ":").map { "\($0)/nvidia-smi" }.first { FileManager.default.isExecutableFile(atPath: $0) } : nil)
    let scanner = AcceleratorScanner(hostRoot: hostRoot, nvidiaSMI: smi)

    if config.flag("once") {
        // With where the device names came from (the host's pci.ids, the image's, or none).
        var out = scanner.scan(node: node).json
        if case .object(var o) = out {
            o["pci_ids"] = .string(scanner.pciIDsSource)
            out = .object(o)
        }
        Console.line(String(decoding: out.serialized(), as: UTF8.self))
        return
    }

    let (logger, registry) = try ServiceKit.bootstrap(service: "accelerator-monitor", config: config)
    let kubernetes = try KubernetesAPIConfiguration(config)
    let opsConfig = try OpsServerConfiguration(config, defaultPort: 9102)
    let http = HTTPClient(configuration: kubernetes.http, logger: logger)
    let producer: KafkaProducer? =
        try config.bool("kafka.enabled", default: true)
        ? try KafkaProducer(configuration: KafkaProducerConfiguration(client: KafkaConfiguration(config, clientID: "gedge-accelerator-monitor")), logger: logger)
        : nil
    let monitor = AcceleratorMonitor(
        scanner: scanner, labeler: NodeLabeler(nodes: KubernetesNodes(client: http, configuration: kubernetes)), producer: producer,
        node: node, cluster: config.string("cluster.name", default: "default"),
        interval: try config.duration("scan.interval", default: .seconds(60)), logger: logger)
    // Ready once the node is labelled, for as long as scans keep labelling it (three scans' time).
    let window = max(monitor.interval * 3, .seconds(30))
    let ops = ServiceKit.opsServer(
        opsConfig, registry: registry,
        readiness: [ReadinessCheck(name: "node labelled within \(window.milliseconds / 1000) s") { monitor.health.healthy(within: window) }], logger: logger)
    logger.info("accelerator monitor starting", metadata: [LogKeys.node: .string(node), "host.root": .string(hostRoot.path), "pci.ids": .string(scanner.pciIDsSource)])
    try await ServiceKit.run([ops, monitor], logger: logger)
    await producer?.shutdown()
    await http.shutdown()
}

await Console.runMain("accelerator-monitor") { try await runMonitor() }
