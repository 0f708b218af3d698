import GEdgeCore
import GEdgeFleet
import GEdgeKafka
import GEdgeServiceKit
import Logging

// A simulated edge fleet: thousands of clusters in one process, each reporting its status
// (a snapshot, then deltas) on the status topic, keeping a network coordinate from probes of
// a ground-truth latency model (geographic regions, access links, noise), and applying the
// placements sent to its topic. Run it beside a scheduler to see the suite at fleet scale:
//
//   gedge-fleet --fleet-clusters 5000 --fleet-nodes 20
//
// Keys: docs/configuration.md ("gedge-fleet"); the ops endpoints serve /metrics and /readyz
// (ready once every cluster's topic is assigned to the fleet's consumer).

func runFleet() async throws {
    let config = try ConfigReader()
    let (logger, registry) = try ServiceKit.bootstrap(service: "gedge-fleet", config: config)
    let settings = try FleetSettings(config)
    let opsConfig = try OpsServerConfiguration(config, defaultPort: 9107)
    let kafka = KafkaConfiguration(config, clientID: "gedge-fleet")
    let fleet = Fleet(settings: settings)
    if try config.bool("fleet.background", default: true) { await fleet.fillBackground() }
    let runner = FleetRunner(fleet: fleet, kafka: kafka, group: config.string("kafka.group"),
                             statsInterval: try config.duration("fleet.stats.interval", default: .seconds(10)), logger: logger)
    let ops = ServiceKit.opsServer(opsConfig, registry: registry, readiness: [ReadinessCheck(name: "fleet-topics") { runner.ready.isSet }], logger: logger)
    try await ServiceKit.run([ops, runner], logger: logger)
}

await Console.runMain("gedge-fleet") { try await runFleet() }
