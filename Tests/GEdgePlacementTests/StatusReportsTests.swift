import Foundation
import GEdgeCore
import GEdgePlacement
import Testing

@Suite("Delta status reports")
struct StatusReportsTests {
    func node(_ name: String, cpuUsed: Int64 = 0) -> NodeState {
        NodeState(name: name, allocatable: Resources(cpuMilli: 4000, memory: 8 << 30), requested: Resources(cpuMilli: cpuUsed))
    }

    func state(_ seq: Int64, _ nodes: [NodeState]) -> ClusterState {
        ClusterState(name: "edge1", nodes: nodes, sequence: seq, reportedAt: Date(timeIntervalSince1970: 1_700_000_000 + Double(seq)))
    }

    /// Through the wire and back, as a consumer reads it.
    func wire(_ v: JSONValue) throws -> ClusterReport { try ClusterReport.decode(try JSONValue.parse(v.serialized())) }

    @Test func deltasRebuildTheStateAndOnlyChangedNodesTravel() throws {
        var a = StatusAssembler()
        let s1 = state(1, [node("n1"), node("n2"), node("n3")])
        #expect(a.apply(try wire(ClusterReport.snapshotJSON(s1, epoch: "e1"))) == .updated(s1))
        var s2 = state(2, [node("n1", cpuUsed: 500), node("n2"), node("n4")])
        s2.coordinate = VivaldiCoordinate(vector: [0.01, 0, 0, 0, 0, 0, 0, 0], height: 0.001, error: 0.2, adjustment: 0)
        let d = ClusterDelta.between(s1.nodes, s2, epoch: "e1", baseSequence: 1)
        #expect(d.changed.map(\.name) == ["n1", "n4"] && d.removed == ["n3"])
        guard case .updated(let got) = a.apply(try wire(d.json)) else { Issue.record("not applied"); return }
        #expect(Set(got.nodes) == Set(s2.nodes) && got.sequence == 2 && got.coordinate == s2.coordinate && got.reportedAt == s2.reportedAt)
        // Nothing changed: an empty delta keeps the report fresh.
        let s3 = state(3, s2.nodes)
        let empty = ClusterDelta.between(s2.nodes, s3, epoch: "e1", baseSequence: 2)
        #expect(empty.changed.isEmpty && empty.removed.isEmpty)
        guard case .updated(let fresh) = a.apply(try wire(empty.json)) else { Issue.record("not applied"); return }
        #expect(fresh.reportedAt == s3.reportedAt)
        // A 1,000-node report against a delta of the 10 that changed.
        let big = state(10, (0..<1000).map { node("n\($0)") })
        var next = big.nodes
        for i in 0..<10 { next[i].requested.cpuMilli = 100 }
        let bigDelta = ClusterDelta.between(big.nodes, state(11, next), epoch: "e1", baseSequence: 10)
        let snapshotBytes = ClusterReport.snapshotJSON(big, epoch: "e1").serialized().count, deltaBytes = bigDelta.json.serialized().count
        print("status report of 1,000 nodes: snapshot \(snapshotBytes) B, delta of 10 changed nodes \(deltaBytes) B")
        #expect(deltaBytes * 50 < snapshotBytes, "snapshot \(snapshotBytes) B, delta \(deltaBytes) B")
    }

    @Test func aLostDeltaARestartOrALateStartAsksForASnapshot() throws {
        var a = StatusAssembler()
        let s1 = state(1, [node("n1")])
        // A consumer that starts mid-stream has no base.
        #expect(a.apply(.delta(ClusterDelta.between(s1.nodes, state(2, [node("n1", cpuUsed: 1)]), epoch: "e1", baseSequence: 1))) == .needSnapshot("edge1"))
        #expect(a.apply(.snapshot(s1, epoch: "e1")) == .updated(s1))
        // Report 2 lost: the delta onto 2 is not applied, the state stays as it was.
        let lost = ClusterDelta.between([node("n1", cpuUsed: 1)], state(3, [node("n1", cpuUsed: 2)]), epoch: "e1", baseSequence: 2)
        #expect(a.apply(.delta(lost)) == .needSnapshot("edge1"))
        let s4 = state(4, [node("n1", cpuUsed: 2)])
        #expect(a.apply(.snapshot(s4, epoch: "e1")) == .updated(s4))
        // Older or repeated reports are ignored.
        #expect(a.apply(.snapshot(s1, epoch: "e1")) == .ignored)
        #expect(a.apply(.delta(lost)) == .ignored)
        // The agent restarted (a new epoch): its deltas need a snapshot of the new epoch first,
        // whose sequence starts again.
        let restarted = ClusterDelta.between(s4.nodes, state(2, s4.nodes), epoch: "e2", baseSequence: 1)
        #expect(a.apply(.delta(restarted)) == .needSnapshot("edge1"))
        let r1 = state(1, [node("n1")])
        #expect(a.apply(.snapshot(r1, epoch: "e2")) == .updated(r1))
    }

    @Test func hostileReportsAreRefusedWithTheirField() {
        let base: [String: JSONValue] = ["cluster": "edge1", "sequence": 2, "nodes": .array([])]
        func refused(_ extra: [String: JSONValue], _ field: String) {
            do {
                _ = try ClusterReport.decode(.object(base.merging(extra) { _, b in b }))
                Issue.record("accepted \(extra)")
            } catch { #expect(error.field == field, "\(error)") }
        }
        refused(["mode": "partial"], "msg.mode")
        refused(["mode": "delta"], "msg.base_sequence")
        refused(["mode": "delta", "base_sequence": 1, "removed": "n1"], "msg.removed")
        refused(["epoch": .string(String(repeating: "e", count: 65))], "msg.epoch")
        refused(["mode": "delta", "base_sequence": 1, "surprise": 1], "msg.surprise")
        // The cluster's own round trips: finite, non-negative, at most 4,096 peers.
        refused(["latency_ms": .object(["edge2": -1])], "msg.latency_ms.edge2")
        refused(["latency_ms": .object(["edge2": "fast"])], "msg.latency_ms.edge2")
        refused(["latency_ms": .object(Dictionary(uniqueKeysWithValues: (0...ClusterState.maxMeasuredPeers).map { ("c\($0)", JSONValue.number(1)) }))], "msg.latency_ms")
        // Kept beside the nodes, whole in every delta: the assembled state has them.
        var assembler = StatusAssembler()
        _ = assembler.apply(try! ClusterReport.decode(.object(base.merging(["epoch": "e1", "latency_ms": .object(["edge2": 3])]) { _, b in b })))
        let delta = try! ClusterReport.decode(.object(base.merging(["mode": "delta", "epoch": "e1", "sequence": 3, "base_sequence": 2,
                                                                    "latency_ms": .object(["edge3": 4.5])]) { _, b in b }))
        if case .updated(let s) = assembler.apply(delta) {
            #expect(s.measuredLatencyMs == ["edge3": 4.5] && s.latency(to: "edge3") == 4.5 && s.latency(to: "edge2") == nil)
        } else { Issue.record("the delta did not apply") }
        // A report of before (no mode) is a snapshot.
        if case .snapshot(let s, let epoch)? = try? ClusterReport.decode(.object(base)) { #expect(s.name == "edge1" && epoch == "") } else { Issue.record("not a snapshot") }
    }
}
