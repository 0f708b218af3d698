// swift-tools-version:6.0
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "gedge",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "scheduler", targets: ["scheduler"]),
        .executable(name: "agent", targets: ["agent"]),
        .executable(name: "gateway", targets: ["gateway"]),
        .executable(name: "gedgectl", targets: ["gedgectl"]),
        .executable(name: "faas-trigger", targets: ["faas-trigger"]),
        .executable(name: "autoscaler", targets: ["autoscaler"]),
        .executable(name: "notifier", targets: ["notifier"]),
        .executable(name: "accelerator-monitor", targets: ["accelerator-monitor"]),
        .executable(name: "gedge-kafka-dev", targets: ["gedge-kafka-dev"]),
        .executable(name: "gedge-demo", targets: ["gedge-demo"]),
        .executable(name: "gedge-bench", targets: ["gedge-bench"]),
        .executable(name: "gedge-bench-scheduler", targets: ["gedge-bench-scheduler"]),
        .executable(name: "gedge-fleet", targets: ["gedge-fleet"]),
        .executable(name: "gedge-bench-faas", targets: ["gedge-bench-faas"]),
        .library(name: "GEdgeCore", targets: ["GEdgeCore"]),
        .library(name: "GEdgeKafka", targets: ["GEdgeKafka"]),
        .library(name: "GEdgeAMQP", targets: ["GEdgeAMQP"]),
        .library(name: "GEdgePostgres", targets: ["GEdgePostgres"]),
        .library(name: "GEdgeHTTPClient", targets: ["GEdgeHTTPClient"]),
        .library(name: "GEdgeServiceKit", targets: ["GEdgeServiceKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.2.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // C libraries from Debian's -dev packages.
        .systemLibrary(
            name: "CRdKafka", path: "Libraries/CRdKafka", pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"]), .brew(["librdkafka"])]),
        .systemLibrary(
            name: "CRabbitMQ", path: "Libraries/CRabbitMQ", pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"]), .brew(["rabbitmq-c"])]),
        .systemLibrary(
            name: "CLibPQ", path: "Libraries/CLibPQ", pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"]), .brew(["libpq"])]),
        .systemLibrary(
            name: "CCurl", path: "Libraries/CCurl", pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"]), .brew(["curl"])]),
        .systemLibrary(
            name: "CYAML", path: "Libraries/CYAML", pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"]), .brew(["libyaml"])]),
        .target(name: "CGEdgeShims", dependencies: ["CCurl", "CRabbitMQ"], path: "Libraries/CGEdgeShims"),

        // Swift libraries: one module per concern. None of these pulls in Hummingbird.
        .target(
            name: "GEdgeCore",
            dependencies: [
                "CYAML",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Libraries/GEdgeCore", swiftSettings: swiftSettings),
        // Digests, HMAC signatures and their constant-time checks, from swift-crypto.
        // Clusters registered in push mode: sealed credentials and push agents' leases.
        .target(
            name: "GEdgeClusters",
            dependencies: ["GEdgeCore", "GEdgePostgres", .product(name: "Crypto", package: "swift-crypto")],
            path: "Libraries/GEdgeClusters", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeSecurity",
            dependencies: ["GEdgeCore", .product(name: "Crypto", package: "swift-crypto")],
            path: "Libraries/GEdgeSecurity", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeKafka",
            dependencies: ["CRdKafka", "GEdgeCore", "GEdgeSecurity", .product(name: "Logging", package: "swift-log")],
            path: "Libraries/GEdgeKafka", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeAMQP",
            dependencies: ["CRabbitMQ", "CGEdgeShims", "GEdgeCore", .product(name: "Logging", package: "swift-log"), .product(name: "Crypto", package: "swift-crypto")],
            path: "Libraries/GEdgeAMQP", swiftSettings: swiftSettings),
        .target(
            name: "GEdgePostgres",
            dependencies: ["CLibPQ", "GEdgeCore", .product(name: "Logging", package: "swift-log")],
            path: "Libraries/GEdgePostgres", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeHTTPClient",
            dependencies: ["CCurl", "CGEdgeShims", "GEdgeCore", .product(name: "Logging", package: "swift-log")],
            path: "Libraries/GEdgeHTTPClient", swiftSettings: swiftSettings),
        .target(
            name: "GEdgePlacement",
            dependencies: ["GEdgeCore", .product(name: "HeapModule", package: "swift-collections"), .product(name: "Atomics", package: "swift-atomics")],
            path: "Libraries/GEdgePlacement", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeServiceSpec",
            dependencies: ["GEdgeCore", "GEdgePlacement"],
            path: "Libraries/GEdgeServiceSpec", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeScheduler",
            dependencies: [
                "GEdgeCore", "GEdgeSecurity", "GEdgeKafka", "GEdgePostgres", "GEdgePlacement", "GEdgeServiceSpec",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Libraries/GEdgeScheduler",
            resources: [.copy("Migrations")],
            swiftSettings: swiftSettings),
        .target(
            name: "GEdgeKubernetes",
            dependencies: [
                "GEdgeCore", "GEdgeHTTPClient",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Libraries/GEdgeKubernetes", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeAccelerators",
            dependencies: [
                "GEdgeCore", "GEdgeHTTPClient", "GEdgeKafka", "GEdgeKubernetes",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Libraries/GEdgeAccelerators", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeAgent",
            dependencies: [
                "GEdgeCore", "GEdgeKafka", "GEdgePlacement", "GEdgeHTTPClient", "GEdgeKubernetes", "GEdgeClusters",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Libraries/GEdgeAgent", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeFleet",
            dependencies: [
                "GEdgeCore", "GEdgeKafka", "GEdgePlacement", "GEdgeAgent",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Libraries/GEdgeFleet", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeScaling", dependencies: ["GEdgeCore"],
            path: "Libraries/GEdgeScaling", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeOutbox",
            dependencies: [
                "GEdgeCore", "GEdgeSecurity", "GEdgePostgres", "GEdgeHTTPClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Libraries/GEdgeOutbox", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeFaaS",
            dependencies: [
                "GEdgeCore", "GEdgeKafka", "GEdgeAMQP", "GEdgePostgres", "GEdgeHTTPClient", "GEdgePlacement", "GEdgeServiceSpec", "GEdgeOutbox",
                "GEdgeScaling",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Libraries/GEdgeFaaS", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeAutoscaler",
            dependencies: [
                "GEdgeCore", "GEdgeSecurity", "GEdgeKafka", "GEdgeAMQP", "GEdgePostgres", "GEdgeHTTPClient", "GEdgePlacement", "GEdgeScaling", "GEdgeScheduler",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Libraries/GEdgeAutoscaler", swiftSettings: swiftSettings),
        .target(
            name: "GEdgeWorkflow",
            dependencies: [
                "GEdgeCore", "GEdgeSecurity", "GEdgeKafka", "GEdgePostgres", "GEdgePlacement", "GEdgeServiceSpec",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Libraries/GEdgeWorkflow", swiftSettings: swiftSettings),
        // The gateway's API: the one library besides GEdgeServiceKit that imports Hummingbird.
        .target(
            name: "GEdgeGateway",
            dependencies: [
                "GEdgeCore", "GEdgeSecurity", "GEdgeKafka", "GEdgePostgres", "GEdgeHTTPClient", "GEdgePlacement", "GEdgeScheduler", "GEdgeServiceSpec",
                "GEdgeOutbox", "GEdgeFaaS", "GEdgeAutoscaler", "GEdgeWorkflow", "GEdgeClusters",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Libraries/GEdgeGateway",
            resources: [.copy("Resources/openapi.yaml"), .copy("Resources/console.html")],
            swiftSettings: swiftSettings),
        // The ops endpoints and the service runner, shared by every service.
        .target(
            name: "GEdgeServiceKit",
            dependencies: [
                "GEdgeCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "Libraries/GEdgeServiceKit", swiftSettings: swiftSettings),

        // Thin executables.
        .executableTarget(
            name: "scheduler", dependencies: ["GEdgeScheduler", "GEdgeServiceKit"],
            path: "Services/scheduler", swiftSettings: swiftSettings),
        .executableTarget(
            name: "gateway", dependencies: ["GEdgeGateway", "GEdgeServiceKit"],
            path: "Services/gateway", swiftSettings: swiftSettings),
        .executableTarget(
            name: "faas-trigger", dependencies: ["GEdgeFaaS", "GEdgeScheduler", "GEdgeServiceKit", .product(name: "Hummingbird", package: "hummingbird")],
            path: "Services/faas-trigger", swiftSettings: swiftSettings),
        .executableTarget(
            name: "autoscaler", dependencies: ["GEdgeAutoscaler", "GEdgeScheduler", "GEdgeServiceKit", .product(name: "Hummingbird", package: "hummingbird")],
            path: "Services/autoscaler", swiftSettings: swiftSettings),
        .executableTarget(
            name: "notifier", dependencies: ["GEdgeFaaS", "GEdgeOutbox", "GEdgeScheduler", "GEdgeServiceKit", .product(name: "Hummingbird", package: "hummingbird"),
                                             .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            path: "Services/notifier", swiftSettings: swiftSettings),
        .executableTarget(
            name: "gedge-faas-demo", dependencies: ["GEdgeCore", "GEdgeSecurity", "GEdgeAMQP", .product(name: "Hummingbird", package: "hummingbird"),
                                                    .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                                                    .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Services/gedge-faas-demo", swiftSettings: swiftSettings),
        .executableTarget(
            name: "gedgectl",
            dependencies: ["GEdgeCore", "GEdgePlacement", "GEdgeHTTPClient", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Services/gedgectl", swiftSettings: swiftSettings),
        .executableTarget(
            name: "agent", dependencies: ["GEdgeAgent", "GEdgeKubernetes", "GEdgeServiceKit", "GEdgeClusters", "GEdgeScheduler",
                                          .product(name: "Hummingbird", package: "hummingbird")],
            path: "Services/agent", swiftSettings: swiftSettings),
        .executableTarget(
            name: "accelerator-monitor", dependencies: ["GEdgeAccelerators", "GEdgeKubernetes", "GEdgeServiceKit"],
            path: "Services/accelerator-monitor", swiftSettings: swiftSettings),
        .executableTarget(
            name: "gedge-kafka-dev", dependencies: ["GEdgeKafka"],
            path: "Services/gedge-kafka-dev", swiftSettings: swiftSettings),
        .executableTarget(
            name: "gedge-demo", dependencies: ["GEdgeCore", "GEdgeKafka", "GEdgePostgres", "GEdgeScheduler"],
            path: "Services/gedge-demo", swiftSettings: swiftSettings),
        .executableTarget(
            name: "gedge-testkit", dependencies: ["GEdgeCore", "GEdgeKafka", "GEdgeAMQP", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Services/gedge-testkit", swiftSettings: swiftSettings),
        .executableTarget(
            name: "gedge-bench-scheduler", dependencies: ["GEdgeCore", "GEdgeKafka", "GEdgePostgres", "GEdgePlacement", "GEdgeScheduler", "GEdgeFleet", "GEdgeHTTPClient",
                                                          .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            path: "Services/gedge-bench-scheduler", swiftSettings: swiftSettings),
        .executableTarget(
            name: "gedge-fleet", dependencies: ["GEdgeFleet", "GEdgeServiceKit"],
            path: "Services/gedge-fleet", swiftSettings: swiftSettings),
        .executableTarget(
            name: "gedge-bench-faas",
            dependencies: ["GEdgeCore", "GEdgeAMQP", "GEdgeKafka", "GEdgePostgres", "GEdgeFaaS", "GEdgeScheduler", "GEdgeHTTPClient",
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            path: "Services/gedge-bench-faas", swiftSettings: swiftSettings),
        .executableTarget(
            name: "gedge-bench", dependencies: ["GEdgeCore", "GEdgeKafka", "GEdgePostgres"],
            path: "Services/gedge-bench", swiftSettings: swiftSettings),

        // Tests: unit tests need no servers; integration tests need the local stack.
        .testTarget(
            name: "GEdgeCoreTests", dependencies: ["GEdgeCore"],
            path: "Tests/GEdgeCoreTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "GEdgeAMQPTests", dependencies: ["GEdgeAMQP", "GEdgeCore"],
            path: "Tests/GEdgeAMQPTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "GEdgeKubernetesTests", dependencies: ["GEdgeKubernetes", "GEdgeHTTPClient", "GEdgeCore"],
            path: "Tests/GEdgeKubernetesTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "GEdgeAcceleratorsTests", dependencies: ["GEdgeAccelerators", "GEdgeCore"],
            path: "Tests/GEdgeAcceleratorsTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "GEdgeServiceSpecTests", dependencies: ["GEdgeServiceSpec", "GEdgePlacement", "GEdgeCore"],
            path: "Tests/GEdgeServiceSpecTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "GEdgeScalingTests", dependencies: ["GEdgeScaling", "GEdgeAutoscaler", "GEdgePlacement", "GEdgeCore"],
            path: "Tests/GEdgeScalingTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "GEdgeFaaSTests", dependencies: ["GEdgeFaaS", "GEdgeScaling", "GEdgeCore"],
            path: "Tests/GEdgeFaaSTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "GEdgeGatewayTests", dependencies: ["GEdgeGateway", "GEdgeSecurity", "GEdgeServiceSpec", "GEdgeCore"],
            path: "Tests/GEdgeGatewayTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "GEdgeSchedulerTests", dependencies: ["GEdgeScheduler", "GEdgeServiceSpec", "GEdgePlacement", "GEdgeCore"],
            path: "Tests/GEdgeSchedulerTests", swiftSettings: swiftSettings),
        .testTarget(
            name: "GEdgePlacementTests", dependencies: ["GEdgePlacement", "GEdgeCore"],
            path: "Tests/GEdgePlacementTests", swiftSettings: swiftSettings),
        // A fake Kubernetes API server as strict as the real one where the suite depends on
        // it (Tests/FakeKubernetes); only the integration tests link it.
        .target(
            name: "FakeKubernetes",
            dependencies: [
                "GEdgeCore", "GEdgePlacement",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/FakeKubernetes", swiftSettings: swiftSettings),
        .testTarget(
            name: "GEdgeIntegrationTests",
            dependencies: [
                "FakeKubernetes",
                "GEdgeCore", "GEdgeSecurity", "GEdgeKafka", "GEdgeAMQP", "GEdgePostgres", "GEdgeHTTPClient",
                "GEdgeScheduler", "GEdgeServiceKit", "GEdgeAccelerators", "GEdgeAgent", "GEdgeKubernetes", "GEdgePlacement", "GEdgeFleet",
                "GEdgeGateway", "GEdgeServiceSpec", "GEdgeOutbox", "GEdgeFaaS", "GEdgeAutoscaler", "GEdgeWorkflow", "GEdgeClusters",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/GEdgeIntegrationTests", swiftSettings: swiftSettings),
    ]
)
