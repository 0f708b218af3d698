import GEdgeCore
import Testing

@testable import GEdgePlacement

// MARK: fixtures

func node(
    _ name: String, cpu: Int64 = 4000, mem: Int64 = 8 << 30, gpu: Int64 = 0, usedCPU: Int64 = 0, usedMem: Int64 = 0, usedGPU: Int64 = 0,
    ready: Bool = true, labels: [String: String] = [:], taints: [Taint] = [], latency: [String: Double] = [:]
) -> NodeState {
    NodeState(
        name: name, ready: ready, allocatable: Resources(cpuMilli: cpu, memory: mem, gpu: gpu),
        requested: Resources(cpuMilli: usedCPU, memory: usedMem, gpu: usedGPU), labels: labels, taints: taints, latencyMs: latency)
}

/// The GS-Scheduler seed's test topology: a source (cloud) cluster, an edge cluster of 4
/// workers about 5 ms away and an edge cluster of 2 workers about 1 ms away.
func seedTopology() -> [ClusterState] {
    [
        ClusterState(name: "cloud", kind: .cloud, nodes: [
            node("cloud-w1", cpu: 16000, mem: 64 << 30, latency: ["edge-a": 5.1, "edge-b": 1.0]),
            node("cloud-w2", cpu: 16000, mem: 64 << 30, latency: ["edge-a": 5.3, "edge-b": 1.2]),
        ]),
        ClusterState(name: "edge-a", kind: .edge, nodes: (1...4).map { i in
            node("a-w\(i)", latency: ["cloud": 4.8 + Double(i) * 0.1, "edge-b": 6])
        }),
        ClusterState(name: "edge-b", kind: .edge, nodes: [
            node("b-w1", latency: ["cloud": 1.1, "edge-a": 6]),
            node("b-w2", latency: ["cloud": 0.9, "edge-a": 6]),
        ]),
    ]
}

func need(cpu: Int64 = 500, mem: Int64 = 512 << 20, gpu: Int64 = 0, replicas: Int = 1) -> WorkloadRequirements {
    WorkloadRequirements(perReplica: Resources(cpuMilli: cpu, memory: mem, gpu: gpu), replicas: replicas)
}

func parts(_ d: PlacementDecision) -> [String] {
    guard case .placed(let plans) = d else { return ["\(d)"] }
    return plans.map(\.summary)
}

// MARK: quantities and manifests

@Suite struct QuantityTests {
    @Test(arguments: [
        ("500m", Int64(500)), ("2", 2000), ("1.5", 1500), ("0.1", 100), ("1e3", 1_000_000), ("250u", 1), ("1k", 1_000_000),
    ])
    func cpu(_ text: String, _ milli: Int64) {
        #expect(Quantity.milli(text) == milli)
    }

    @Test(arguments: [
        ("128Mi", Int64(128 << 20)), ("1Gi", 1 << 30), ("1G", 1_000_000_000), ("1000", 1000), ("1.5Gi", 3 << 29), ("1E", 1_000_000_000_000_000_000), ("64Ki", 65536),
    ])
    func memory(_ text: String, _ bytes: Int64) {
        #expect(Quantity.value(text) == bytes)
    }

    @Test(arguments: ["", "abc", "-1", "1Zi", "1.2.3", "+5", "Mi", "1.5.Gi", "12Gix", "1 Gi"])
    func rejects(_ text: String) {
        #expect(Quantity.value(text) == nil)
    }

    /// The byte-level reading of the common forms gives exactly what the general one does,
    /// and leaves every other form to it.
    @Test func simpleFormsReadAsTheGeneralReaderDoes() {
        let numbers = ["0", "1", "7", "10", "64", "0.1", "0.3", "1.5", "2.25", ".5", "123456789012345", "3.14159", "0.001", "999999.999"]
        let suffixes = ["", "m", "k", "M", "G", "T", "Ki", "Mi", "Gi", "Ti"]
        for n in numbers {
            for suffix in suffixes {
                let text = n + suffix
                let simple = Quantity.parseSimple(text)
                #expect(simple != nil, "\(text) is a simple form")
                #expect(simple == Quantity.parseGeneral(text), "\(text)")
            }
        }
        #expect(Quantity.milli("123456789012345678901234567890") == nil)  // too large, not a trap
        #expect(Quantity.value("99999999999999999999999999Gi") == nil)
        for text in ["1e3", "1E", " 5", "5 ", "250u", "1n", "1234567890123456", "123456789012345678901234567890", "5.", "-1", "+5", "1Pi"] {
            #expect(Quantity.parseSimple(text) == nil, "\(text) goes the general way")
        }
    }
}

@Suite struct WorkloadTests {
    static let deployment: JSONValue = .object([
        "apiVersion": .string("apps/v1"), "kind": .string("Deployment"),
        "metadata": .object(["name": .string("yolo"), "namespace": .string("p1")]),
        "spec": .object([
            "replicas": .number(3),
            "template": .object(["spec": .object([
                "nodeSelector": .object(["ssd": .string("ssd1")]),
                "tolerations": .array([.object(["key": .string("edge"), "operator": .string("Exists"), "effect": .string("NoSchedule")])]),
                "affinity": .object(["nodeAffinity": .object(["requiredDuringSchedulingIgnoredDuringExecution": .object([
                    "nodeSelectorTerms": .array([.object(["matchExpressions": .array([
                        .object(["key": .string("zone"), "operator": .string("In"), "values": .array([.string("z1"), .string("z2")])]),
                    ])])]),
                ])])]),
                "initContainers": .array([.object(["name": .string("init"), "resources": .object(["requests": .object(["cpu": .string("2"), "memory": .string("64Mi")])])])]),
                "containers": .array([
                    .object(["name": .string("a"), "resources": .object(["requests": .object(["cpu": .string("500m"), "memory": .string("256Mi")]),
                                                                          "limits": .object(["nvidia.com/gpu": .number(1)])])]),
                    .object(["name": .string("b"), "resources": .object(["limits": .object(["cpu": .string("250m"), "memory": .string("128Mi"), "example.com/fpga": .string("2")])])]),
                ]),
            ])]),
        ]),
    ])

    @Test func deploymentRequirements() throws {
        let r = try WorkloadRequirements.extract(
            workload: Self.deployment,
            parameters: .object(["preferred": .string("neighbor"), "accelerator": .object(["kind": .string("nvidia-gpu"), "model": .string("V100")])]))
        #expect(r.name == "yolo")
        #expect(r.namespace == "p1")
        #expect(r.replicas == 3)
        // Containers sum to 750m, but the init container asks 2 CPUs: the larger wins.
        #expect(r.perReplica.cpuMilli == 2000)
        #expect(r.perReplica.memory == 384 << 20)
        #expect(r.perReplica.gpu == 1)
        #expect(r.perReplica.extended == ["example.com/fpga": 2])
        #expect(r.nodeSelector == ["ssd": "ssd1"])
        #expect(r.tolerations == [Toleration(key: "edge", exists: true, effect: .noSchedule)])
        #expect(r.affinityTerms == [[NodeSelectorRequirement(key: "zone", op: .in, values: ["z1", "z2"])]])
        #expect(r.preferred == .neighbor)
        #expect(r.accelerator == AcceleratorRequirement(kind: "nvidia-gpu", model: "V100"))
    }

    @Test(arguments: [
        (JSONValue.null, "msg.workload"),
        (.string("x"), "msg.workload"),
        (.object(["kind": .string("Service")]), "msg.workload"),
        (.object(["kind": .string("Pod"), "spec": .object(["containers": .array([.object(["resources": .object(["requests": .object(["cpu": .string("lots")])])])])])]),
         "msg.workload.spec.containers[0].resources.requests.cpu"),
        (.object(["kind": .string("Pod"), "spec": .object(["tolerations": .array([.object(["operator": .string("Maybe")])])])]), "msg.workload.spec.tolerations[0].operator"),
        (.array([.object(["kind": .string("Service")]), .object(["kind": .string("Deployment"), "spec": .object(["replicas": .string("three")])])]), "msg.workload[1].spec.replicas"),
    ])
    func invalid(_ workload: JSONValue, _ field: String) {
        #expect { _ = try WorkloadRequirements.extract(workload: workload, parameters: .null) } throws: { e in
            (e as? MessageDecodingError)?.field == field
        }
    }

    @Test func listAndParameters() throws {
        let list: JSONValue = .object(["kind": .string("List"), "items": .array([
            .object(["kind": .string("Service")]),
            .object(["kind": .string("Pod"), "metadata": .object(["name": .string("p")]), "spec": .object(["containers": .array([])])]),
        ])])
        let r = try WorkloadRequirements.extract(workload: list, parameters: .object(["replicas": .number(4)]))
        #expect(r.name == "p")
        #expect(r.replicas == 4)
        #expect(throws: MessageDecodingError.self) {
            try WorkloadRequirements.extract(workload: list, parameters: .object(["preferred": .string("moon")]))
        }
    }
}

// MARK: filters

@Suite struct FilterTests {
    static let gpuLabels = ["accelerator.gedge.io/nvidia-gpu.count": "2", "accelerator.gedge.io/nvidia-gpu.model": "Tesla-V100-SXM2-32GB", "accelerator.gedge.io/nvidia-gpu.memory": "32768"]

    @Test(arguments: [
        ("fits", node("n"), need(), FilterFailure?.none),
        ("not ready", node("n", ready: false), need(), .notReady),
        ("cpu", node("n", cpu: 1000, usedCPU: 600), need(cpu: 500), .cpu),
        ("memory", node("n", mem: 1 << 30, usedMem: 768 << 20), need(mem: 512 << 20), .memory),
        ("gpu", node("n", gpu: 1, usedGPU: 1), need(gpu: 1), .gpu),
        ("replicas multiply", node("n", cpu: 1000), need(cpu: 400, replicas: 3), .cpu),
        ("taint", node("n", taints: [Taint(key: "dedicated", value: "ml", effect: .noSchedule)]), need(), .taint),
        ("prefer-no-schedule is soft", node("n", taints: [Taint(key: "x", effect: .preferNoSchedule)]), need(), nil),
    ])
    func table(_ name: String, _ n: NodeState, _ r: WorkloadRequirements, _ expected: FilterFailure?) {
        #expect(NodeFilter.check(n, r, copies: r.replicas) == expected, "\(name)")
    }

    @Test func tolerationsSelectorsAffinityAccelerators() {
        var r = need()
        let tainted = node("n", labels: ["zone": "z1", "ssd": "ssd1"], taints: [Taint(key: "dedicated", value: "ml", effect: .noExecute)])
        r.tolerations = [Toleration(key: "dedicated", value: "other")]
        #expect(NodeFilter.check(tainted, r, copies: 1) == .taint)
        r.tolerations = [Toleration(key: "dedicated", value: "ml")]
        #expect(NodeFilter.check(tainted, r, copies: 1) == nil)
        r.tolerations = [Toleration(key: nil, exists: true)]
        #expect(NodeFilter.check(tainted, r, copies: 1) == nil)
        r.nodeSelector = ["ssd": "ssd2"]
        #expect(NodeFilter.check(tainted, r, copies: 1) == .selector)
        r.nodeSelector = ["ssd": "ssd1"]
        r.affinityTerms = [[NodeSelectorRequirement(key: "zone", op: .notIn, values: ["z1"])], [NodeSelectorRequirement(key: "gpu", op: .exists)]]
        #expect(NodeFilter.check(tainted, r, copies: 1) == .affinity)
        r.affinityTerms.append([NodeSelectorRequirement(key: "zone", op: .in, values: ["z1"]), NodeSelectorRequirement(key: "x", op: .doesNotExist)])
        #expect(NodeFilter.check(tainted, r, copies: 1) == nil)

        let gpuNode = node("g", gpu: 2, labels: Self.gpuLabels)
        for (req, ok) in [
            (AcceleratorRequirement(kind: "nvidia-gpu"), true),
            (AcceleratorRequirement(kind: "nvidia-gpu", count: 3), false),
            (AcceleratorRequirement(kind: "nvidia-gpu", model: "v100"), true),
            (AcceleratorRequirement(kind: "nvidia-gpu", model: "A100"), false),
            (AcceleratorRequirement(kind: "nvidia-gpu", model: "Tesla V100"), true),
            (AcceleratorRequirement(kind: "nvidia-gpu", model: "V100-SXM2-32GB"), true),
            (AcceleratorRequirement(kind: "nvidia-gpu", model: "v100-sxm2-32gb-extra"), false),
            (AcceleratorRequirement(kind: "nvidia-gpu", minMemoryMiB: 40000), false),
            (AcceleratorRequirement(kind: "jetson"), false),
        ] {
            var w = need()
            w.accelerator = req
            #expect((NodeFilter.check(gpuNode, w, copies: 1) == nil) == ok, "\(req)")
        }
    }

    @Test func explainCountsLikeKubeScheduler() {
        let c = ClusterState(name: "c", nodes: [node("a", ready: false), node("b", cpu: 100), node("c", cpu: 100), node("d")])
        #expect(NodeFilter.explain([c], need(), copies: 1) == "1/4 nodes are available: 1 node(s) not ready, 2 Insufficient cpu")
    }
}

// MARK: policies

@Suite struct LowLatencyTests {
    @Test func seedTopologyPicksTheOneMillisecondCluster() {
        let d = Placer.decide(PlacementInput(policy: .lowLatency, requirements: need(), source: PlacementSource(cluster: "cloud")), clusters: seedTopology())
        // The source cluster itself is 0 ms away and ranks first; then edge-b (~1 ms, nearest node
        // b-w2) before edge-a (~5 ms).
        #expect(parts(d) == ["cloud/cloud-w1", "edge-b/b-w2", "edge-a/a-w1"])
    }

    @Test(arguments: [
        // (preferred, source node, expected order)
        (PreferredLocation?.some(.neighbor), String?.none, ["edge-b/b-w2", "edge-a/a-w1", "cloud/cloud-w1"]),
        (.cloud, nil, ["cloud/cloud-w1", "edge-b/b-w2", "edge-a/a-w1"]),
        (.local, "cloud-w2", ["cloud/cloud-w2", "edge-b/b-w2", "edge-a/a-w1"]),
    ])
    func preferred(_ pref: PreferredLocation?, _ sourceNode: String?, _ expected: [String]) {
        var r = need()
        r.preferred = pref
        let d = Placer.decide(PlacementInput(policy: .lowLatency, requirements: r, source: PlacementSource(cluster: "cloud", node: sourceNode)), clusters: seedTopology())
        #expect(parts(d) == expected)
    }

    @Test func fullNearClusterFallsBackToTheNextNearest() {
        var topo = seedTopology()
        topo[2].nodes = topo[2].nodes.map { var n = $0; n.requested = n.allocatable; return n }
        var r = need()
        r.preferred = .neighbor
        let d = Placer.decide(PlacementInput(policy: .lowLatency, requirements: r, source: PlacementSource(cluster: "cloud"), maxCandidates: 2), clusters: topo)
        #expect(parts(d) == ["edge-a/a-w1", "cloud/cloud-w1"])
    }

    /// The latency order is kept with the report: later decisions on the same states, with
    /// nodes filled in between (as reservations do), take the next nearest node that fits;
    /// after latencies change (and the summary is refreshed) the new order holds.
    @Test func keptLatencyOrderFollowsWhatFitsAndChangedLatencies() {
        var topo = seedTopology()
        func pick() -> [String] {
            parts(Placer.decide(PlacementInput(policy: .lowLatency, requirements: need(), source: PlacementSource(cluster: "edge-a"), maxCandidates: 1),
                                clusters: topo))
        }
        #expect(pick() == ["edge-a/a-w1"])
        topo[1].nodes[0].requested = topo[1].nodes[0].allocatable
        #expect(pick() == ["edge-a/a-w2"])
        topo[1].nodes[1].requested = topo[1].nodes[1].allocatable
        topo[1].nodes[2].requested = topo[1].nodes[2].allocatable
        topo[1].nodes[3].requested = topo[1].nodes[3].allocatable
        // edge-a full: the nearer of the others from edge-a's nodes (cloud 5.x ms, edge-b 6 ms).
        #expect(pick() == ["cloud/cloud-w1"])
        topo[0].nodes[1].latencyMs["edge-a"] = 0.2
        topo[0].refreshLatencySummary()
        #expect(pick() == ["cloud/cloud-w2"])
    }

    @Test func sourceNodeLatencyOverridesTheClusterMedian() {
        var topo = seedTopology()
        // From cloud-w2 edge-a is nearer than edge-b, although the cluster median says otherwise.
        topo[0].nodes[1].latencyMs = ["edge-a": 0.5, "edge-b": 3]
        var r = need()
        r.preferred = .neighbor
        let d = Placer.decide(PlacementInput(policy: .lowLatency, requirements: r, source: PlacementSource(cluster: "cloud", node: "cloud-w2"), maxCandidates: 1), clusters: topo)
        #expect(parts(d) == ["edge-a/a-w1"])
    }

    @Test func needsASourceAndRespectsTheProject() {
        let noSource = Placer.decide(PlacementInput(policy: .lowLatency, requirements: need()), clusters: seedTopology())
        guard case .rejected = noSource else { Issue.record("expected a rejection, got \(noSource)"); return }
        let d = Placer.decide(PlacementInput(policy: .lowLatency, requirements: need(), source: PlacementSource(cluster: "cloud"), allowedClusters: ["edge-a"]), clusters: seedTopology())
        #expect(parts(d) == ["edge-a/a-w1"])
    }

    @Test func nothingFitsExplainsWhy() {
        let d = Placer.decide(PlacementInput(policy: .lowLatency, requirements: need(cpu: 64000), source: PlacementSource(cluster: "cloud")), clusters: seedTopology())
        #expect(d == .unschedulable("0/8 nodes are available: 8 Insufficient cpu"))
    }
}

@Suite struct ScoreTests {
    @Test(arguments: [
        // cpu%, mem%, free GPUs, needs GPU -> score
        (Int64(0), Int64(0), Int64(0), false, 200.0),
        (2000, 4 << 30, 0, false, 100.0),
        (4000, 8 << 30, 0, false, 0.0),
        (1000, 2 << 30, 2, true, 150.0 + 400.0),
        (1000, 2 << 30, 2, false, 150.0),
    ])
    func mostRequestedFormula(_ usedCPU: Int64, _ usedMem: Int64, _ freeGPU: Int64, _ gpu: Bool, _ expected: Double) {
        let n = node("n", cpu: 4000, mem: 8 << 30, gpu: freeGPU, usedCPU: usedCPU, usedMem: usedMem)
        #expect(Placer.mostRequestedScore(n, need(gpu: gpu ? 1 : 0)) == expected)
    }

    @Test func mostRequestedPrefersFreeCapacityAndMostAllocatedPacks() {
        let c1 = ClusterState(name: "c1", nodes: [node("busy", usedCPU: 3000, usedMem: 6 << 30), node("half", usedCPU: 2000, usedMem: 4 << 30)])
        let c2 = ClusterState(name: "c2", nodes: [node("idle")])
        let spread = Placer.decide(PlacementInput(policy: .mostRequested, requirements: need()), clusters: [c1, c2])
        #expect(parts(spread) == ["c2/idle", "c1/half"])
        let packed = Placer.decide(PlacementInput(policy: .mostAllocated, requirements: need()), clusters: [c1, c2])
        #expect(parts(packed) == ["c1/busy", "c2/idle"])
        // (3000+500)/4000 = 87.5 %, (6Gi+512Mi)/8Gi = 81.25 %: mean 84.375.
        #expect(Placer.mostAllocatedScore(c1.nodes[0], need()) == 84.375)
    }

    @Test func gpuWorkloadGoesWhereGPUsAreFree() {
        let c1 = ClusterState(name: "c1", nodes: [node("cpu-only"), node("one-gpu", gpu: 1, usedCPU: 3000)])
        let c2 = ClusterState(name: "c2", nodes: [node("four-gpus", gpu: 4, usedCPU: 3500, usedGPU: 1)])
        let d = Placer.decide(PlacementInput(policy: .mostRequested, requirements: need(gpu: 1)), clusters: [c1, c2])
        #expect(parts(d) == ["c2/four-gpus", "c1/one-gpu"])
    }
}

@Suite struct SelectedClusterTests {
    func decide(_ params: [String: JSONValue], allowed: Set<String>? = nil, source: String? = nil, r: WorkloadRequirements = need()) -> PlacementDecision {
        Placer.decide(
            PlacementInput(policy: .selectedCluster, requirements: r, parameters: .object(params), source: PlacementSource(cluster: source), allowedClusters: allowed, maxCandidates: 10),
            clusters: seedTopology())
    }

    @Test(arguments: [
        (JSONValue.array([.string("edge-a"), .string("cloud")]), ["edge-a/a-w1", "cloud/cloud-w1"]),
        // A nested group is ranked by free capacity (equal here, so the written order stays), then tried in rank order.
        (.array([.array([.string("edge-b"), .string("edge-a")]), .string("cloud")]), ["edge-b/b-w1", "edge-a/a-w1", "cloud/cloud-w1"]),
        (.string("[edge-b,[cloud, 'edge-a']]"), ["edge-b/b-w1", "cloud/cloud-w1", "edge-a/a-w1"]),
    ])
    func clusterMode(_ selection: JSONValue, _ expected: [String]) {
        #expect(parts(decide(["select_clusters": selection])) == expected)
    }

    @Test func groupRankedByLatencyWhenThereIsASource() {
        let d = decide(["select_clusters": .array([.array([.string("edge-a"), .string("edge-b")])])], source: "cloud")
        #expect(parts(d) == ["edge-b/b-w1", "edge-a/a-w1"])
    }

    @Test func fullLevelIsSkipped() {
        let d = decide(["select clusters": .array([.string("edge-b"), .string("edge-a")])], r: need(cpu: 4000, replicas: 1))
        #expect(parts(d) == ["edge-b/b-w1", "edge-a/a-w1"])
        let none = decide(["select_clusters": .array([.string("edge-b")])], r: need(cpu: 5000))
        #expect(none == .unschedulable("no selected cluster fits: edge-b: 0/2 nodes are available: 2 Insufficient cpu"))
    }

    @Test(arguments: [
        (["select_clusters": JSONValue.array([.string("edge-a"), .string("cloud")])], "cluster 'cloud' does not belong to the project"),
        (["select_clusters": .string("[edge-a,[edge-b,[cloud]]]")], "invalid_value at msg.parameters.select_clusters: groups nest one level only"),
        (["select_clusters": .string("__import__('os').system('id')")], "invalid_value at msg.parameters.select_clusters: a selection starts with '['"),
        (["select_clusters": .array([.number(1)])], "wrong_type at msg.parameters.select_clusters[0]: expected a cluster name or a list of names, got a number"),
        ([:], "cluster mode needs parameters.select_clusters"),
        (["mode": .string("node"), "select_cluster": .string("cloud"), "select_node": .string("cloud-w1")], "cluster 'cloud' does not belong to the project"),
        (["mode": .string("node"), "select_cluster": .string("edge-a"), "select_node": .string("zz")], "node 'zz' is not in cluster 'edge-a'"),
        (["mode": .string("galaxy")], "mode 'galaxy' is not cluster or node"),
    ])
    func rejected(_ params: [String: JSONValue], _ reason: String) {
        let d = decide(params, allowed: ["edge-a", "edge-b"])
        #expect(d == .rejected(reason))
    }

    @Test func nodeModePins() {
        let d = decide(["mode": .string("node"), "select cluster": .string("edge-a"), "select node": .string("a-w3")])
        #expect(parts(d) == ["edge-a/a-w3"])
        let full = decide(["mode": .string("node"), "select_cluster": .string("edge-a"), "select_node": .string("a-w3")], r: need(cpu: 8000))
        #expect(full == .unschedulable("node 'a-w3' of 'edge-a': Insufficient cpu"))
    }
}

@Suite struct SetClustersTests {
    func decide(_ params: [String: JSONValue], replicas: Int, cpu: Int64 = 1000, topo: [ClusterState] = seedTopology()) -> PlacementDecision {
        Placer.decide(PlacementInput(policy: .setClusters, requirements: need(cpu: cpu, replicas: replicas), parameters: .object(params)), clusters: topo)
    }

    @Test func modes() {
        let names: JSONValue = .array([.string("edge-a"), .string("edge-b")])
        #expect(parts(decide(["clusters": names], replicas: 2)) == ["edge-a×2, edge-b×2"])
        #expect(parts(decide(["clusters": names, "mode": .string("weighted"), "weights": .object(["edge-a": .number(2), "edge-b": .number(1)])], replicas: 5)) == ["edge-a×3, edge-b×2"])
        // edge-a holds 16 replicas of 1 CPU, edge-b 8: 12 split 2:1.
        #expect(parts(decide(["clusters": names, "mode": .string("capacity")], replicas: 12)) == ["edge-a×8, edge-b×4"])
        #expect(decide(["clusters": names, "mode": .string("capacity")], replicas: 25) == .unschedulable("the clusters hold 24 of 25 replicas"))
        #expect(decide(["clusters": names], replicas: 9) == .unschedulable("cluster 'edge-b' holds 8 of its 9 replicas"))
        #expect(decide(["clusters": .array([.string("edge-a"), .string("mars")])], replicas: 1) == .unschedulable("cluster 'mars' has no fresh status"))
        #expect(decide(["mode": .string("weighted")], replicas: 1) == .rejected("weighted mode needs parameters.weights {cluster: weight}"))
    }

    @Test(arguments: [
        (10, [1.0, 1, 1], [4, 3, 3]),
        (5, [2.0, 1], [3, 2]),
        (1, [1.0, 1], [1, 0]),
        (7, [0.0, 3, 4], [0, 3, 4]),
    ])
    func largestRemainder(_ total: Int, _ weights: [Double], _ expected: [Int]) {
        #expect(Placer.divide(total, weights: weights) == expected)
    }
}

@Suite struct ClusterStateWireTests {
    @Test func roundTrip() throws {
        var c = seedTopology()[1]
        c.nodes[0].taints = [Taint(key: "k", value: "v", effect: .noSchedule)]
        c.nodes[0].labels = ["accelerator.gedge.io/jetson.count": "1"]
        c.nodes[0].allocatable.extended = ["google.com/tpu": 1]
        c.sequence = 7
        let back = try ClusterState.decode(c.json)
        #expect(back.nodes == c.nodes)
        #expect(back.sequence == 7)
        #expect(abs(back.reportedAt.timeIntervalSince(c.reportedAt)) < 0.002)
        #expect(c.latency(to: "cloud") == 5.1)
        #expect(throws: MessageDecodingError.self) { try ClusterState.decode(.object(["cluster": .string("x"), "nodes": .array([.object(["name": .string("n")])])])) }
    }

    /// A node's error names the node and the field inside it, whatever the depth.
    @Test(arguments: [
        (JSONValue.string("n0"), "msg.nodes[1]", "wrong_type"),
        (.object(["name": .string("n1")]), "msg.nodes[1].allocatable", "missing_field"),
        (.object(["name": .string("n1"), "allocatable": .object(["cpu": .string("lots")])]), "msg.nodes[1].allocatable.cpu", "invalid_value"),
        (.object(["name": .string("n1"), "allocatable": .object(["cpu": .string("1")]), "colour": .string("red")]), "msg.nodes[1].colour", "unknown_field"),
        (.object(["name": .string("n1"), "allocatable": .object(["cpu": .string("1")]), "taints": .array([.object(["key": .string("k")])])]),
         "msg.nodes[1].taints[0].effect", "missing_field"),
        (.object(["name": .string("n1"), "allocatable": .object(["cpu": .string("1")]), "latency_ms": .object(["c2": .string("near")])]),
         "msg.nodes[1].latency_ms.c2", "wrong_type"),
    ])
    func badNodeIsNamed(_ bad: JSONValue, _ field: String, _ code: String) {
        let good: JSONValue = .object(["name": .string("n0"), "allocatable": .object(["cpu": .string("1")]), "latency_ms": .object(["c2": .number(3)])])
        do {
            _ = try ClusterState.decode(.object(["cluster": .string("c1"), "nodes": .array([good, bad])]))
            Issue.record("decoded")
        } catch {
            #expect(error.field == field)
            #expect(error.code.description == code)
        }
    }
}

/// `select_clusters` under every policy, as GS-Scheduler reads it: levels in order, a group
/// ranked by the policy's own measure, nothing outside the list.
@Suite struct SelectionUnderEveryPolicyTests {
    func input(_ policy: SchedulingPolicy, _ selection: JSONValue, need r: WorkloadRequirements = need(), source: String? = "cloud") -> PlacementInput {
        PlacementInput(policy: policy, requirements: r, parameters: .object(["select_clusters": selection]),
                       source: PlacementSource(cluster: source), maxCandidates: 5)
    }

    func clusters(_ d: PlacementDecision) -> [String] {
        guard case .placed(let plans) = d else { return ["\(d)"] }
        return plans.map { $0.parts[0].cluster }
    }

    @Test func lowLatencyTriesLevelsInOrderAndRanksAGroupByLatency() {
        // edge-b is nearer the cloud than edge-a; the first level names edge-a alone.
        #expect(clusters(Placer.decide(input(.lowLatency, .array(["edge-a", .array(["cloud", "edge-b"])])), clusters: seedTopology()))
                == ["edge-a", "cloud", "edge-b"])
        // A group alone: ranked by latency from the source (the source itself first).
        #expect(clusters(Placer.decide(input(.lowLatency, .array([.array(["edge-a", "edge-b"])])), clusters: seedTopology())) == ["edge-b", "edge-a"])
        // Nothing outside the list, even when it is nearer.
        #expect(clusters(Placer.decide(input(.lowLatency, .array(["edge-a"])), clusters: seedTopology())) == ["edge-a"])
    }

    @Test func mostRequestedRanksAGroupByItsScore() {
        var topo = seedTopology()
        // edge-a's nodes are busy: in a group, edge-b (more free) ranks first.
        topo[1] = ClusterState(name: "edge-a", kind: .edge, nodes: (1...4).map { node("a-w\($0)", usedCPU: 3000, usedMem: 6 << 30) })
        #expect(clusters(Placer.decide(input(.mostRequested, .array([.array(["edge-a", "edge-b"])]), source: nil), clusters: topo)) == ["edge-b", "edge-a"])
        // As a level of its own, edge-a still comes first.
        #expect(clusters(Placer.decide(input(.mostRequested, .array(["edge-a", "edge-b"]), source: nil), clusters: topo)) == ["edge-a", "edge-b"])
        #expect(!clusters(Placer.decide(input(.mostAllocated, .array(["edge-b"]), source: nil), clusters: topo)).contains("cloud"))
    }

    @Test func aLevelThatCannotHostFallsToTheNextAndForeignNamesAreRefused() {
        // 6 CPUs fit only in the cloud: the first level (edge-b) cannot host it.
        let big = need(cpu: 6000)
        #expect(clusters(Placer.decide(input(.mostRequested, .array(["edge-b", "cloud"]), need: big, source: nil), clusters: seedTopology())) == ["cloud"])
        guard case .unschedulable(let why) = Placer.decide(input(.lowLatency, .array(["edge-a", "edge-b"]), need: big), clusters: seedTopology()) else {
            Issue.record("expected unschedulable")
            return
        }
        #expect(why.contains("no selected cluster fits"))
        var foreign = input(.lowLatency, .array(["edge-a", "elsewhere"]))
        foreign.allowedClusters = ["cloud", "edge-a", "edge-b"]
        guard case .rejected(let r) = Placer.decide(foreign, clusters: seedTopology()) else { Issue.record("expected rejected"); return }
        #expect(r.contains("elsewhere"))
        // The seed's string form and GS-Scheduler's spellings are read too.
        let text = PlacementInput(policy: .lowLatency, requirements: need(), parameters: .object(["select clusters": "[edge-a,[edge-b]]"]),
                                  source: PlacementSource(cluster: "cloud"))
        #expect(clusters(Placer.decide(text, clusters: seedTopology())) == ["edge-a", "edge-b"])
    }
}
