import GEdgeCore
import Testing

@testable import GEdgePlacement

/// Placement of services on a second data network: nodes need the network's label, and
/// SR-IOV virtual functions from the node's allocatable; a refusal says which, as
/// kube-scheduler would.
@Suite struct NetworkPlacementTests {
    func fleet(sriovNodes: Int, labelled: Int, vfs: Int64 = 4) -> [ClusterState] {
        (0..<3).map { c in
            ClusterState(name: "edge\(c)", nodes: (0..<3).map { i in
                var n = node("e\(c)-w\(i)")
                let k = c * 3 + i
                if k < sriovNodes { n.allocatable.extended["intel.com/sriov_netdevice"] = vfs }
                if k < labelled { n.labels["network.gedge.io/data-net"] = "true" }
                return n
            })
        }
    }

    func sriovNeed(vfs: Int64 = 1) -> WorkloadRequirements {
        var r = need()
        r.perReplica.extended["intel.com/sriov_netdevice"] = vfs
        r.networkLabels = ["network.gedge.io/data-net"]
        return r
    }

    @Test func noSRIOVCapacityIsNamedInTheReason() {
        let d = Placer.decide(PlacementInput(policy: .mostRequested, requirements: sriovNeed()), clusters: fleet(sriovNodes: 0, labelled: 9))
        #expect(d == .unschedulable("0/9 nodes are available: 9 Insufficient intel.com/sriov_netdevice"))
    }

    @Test func nodesOffTheDataNetworkAreRefused() {
        let d = Placer.decide(PlacementInput(policy: .mostRequested, requirements: sriovNeed()), clusters: fleet(sriovNodes: 9, labelled: 0))
        #expect(d == .unschedulable("0/9 nodes are available: 9 node(s) lacked the data network"))
        let mixed = NodeFilter.explain(fleet(sriovNodes: 2, labelled: 4), sriovNeed(), copies: 1)
        #expect(mixed == "2/9 nodes are available: 7 Insufficient intel.com/sriov_netdevice", "\(mixed)")
    }

    @Test func everyPolicyPlacesOnlyOnNodesWithBoth() {
        // Only e1-w1 (index 4) has both the label and virtual functions.
        var clusters = fleet(sriovNodes: 0, labelled: 0)
        clusters[1].nodes[1].allocatable.extended["intel.com/sriov_netdevice"] = 8
        clusters[1].nodes[1].labels["network.gedge.io/data-net"] = "true"
        clusters[2].nodes[0].allocatable.extended["intel.com/sriov_netdevice"] = 8
        for policy in [SchedulingPolicy.mostRequested, .lowLatency] {
            let d = Placer.decide(PlacementInput(policy: policy, requirements: sriovNeed(), source: PlacementSource(cluster: "edge0")), clusters: clusters)
            #expect(parts(d).first?.hasPrefix("edge1/e1-w1") == true, "\(policy): \(parts(d))")
        }
        // Virtual functions run out: two replicas of 5 each do not fit 8.
        var two = sriovNeed(vfs: 5)
        two.replicas = 2
        let d = Placer.decide(PlacementInput(policy: .mostRequested, requirements: two), clusters: clusters)
        #expect(d == .unschedulable("0/9 nodes are available: 9 Insufficient intel.com/sriov_netdevice"), "\(d)")
    }
}
