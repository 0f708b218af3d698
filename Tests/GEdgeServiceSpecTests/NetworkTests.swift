import Foundation
import GEdgeCore
import GEdgePlacement
import Testing

@testable import GEdgeServiceSpec

let dualPathDefinition: String = {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/gse/dual-path.yaml")
    return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
}()

/// GS-Engine's second data path (Multus, SR-IOV) and network filtering.
@Suite struct NetworkTests {
    @Test func theDualPathExampleGivesAttachmentsAnnotationResourcesAndAPolicy() throws {
        let def = try ServiceDefinition.parse(text: dualPathDefinition)
        #expect(def.networks.map(\.name) == ["data-net", "fast-net"])
        let m = def.manifests()
        // Attachments first, then the Deployment and Service, then the policy.
        #expect(m.all.compactMap { $0["kind"]?.stringValue } == ["NetworkAttachmentDefinition", "NetworkAttachmentDefinition", "Deployment", "Service", "NetworkPolicy"])
        let macvlan = try JSONValue.parse(Array(try #require(m.networkAttachments[0]["spec"]?["config"]?.stringValue).utf8))
        #expect(macvlan == .object([
            "cniVersion": "0.3.1", "name": "data-net", "type": "macvlan", "master": "eth1", "mode": "bridge",
            "ipam": .object(["type": "host-local", "subnet": "192.168.100.0/24", "rangeStart": "192.168.100.10",
                             "rangeEnd": "192.168.100.200", "gateway": "192.168.100.1"]),
        ]))
        let sriov = m.networkAttachments[1]
        #expect(sriov["metadata"]?["annotations"]?["k8s.v1.cni.cncf.io/resourceName"] == "intel.com/sriov_netdevice")
        #expect(sriov["metadata"]?["namespace"] == "edge")
        let sriovConfig = try JSONValue.parse(Array(try #require(sriov["spec"]?["config"]?.stringValue).utf8))
        #expect(sriovConfig["type"] == "sriov" && sriovConfig["vlan"] == 100 && sriovConfig["master"] == nil)

        let template = m.deployment["spec"]?["template"]
        let annotation = try #require(template?["metadata"]?["annotations"]?[NetworkAttachment.annotation]?.stringValue)
        #expect(try JSONValue.parse(Array(annotation.utf8)) == .array([
            .object(["name": "data-net", "interface": "net1"]), .object(["name": "fast-net", "interface": "net2"]),
        ]))
        let resources = template?["spec"]?["containers"]?.arrayValue?.first?["resources"]
        #expect(resources?["requests"]?["intel.com/sriov_netdevice"] == "1" && resources?["limits"]?["intel.com/sriov_netdevice"] == "1")
        let exprs = template?["spec"]?["affinity"]?["nodeAffinity"]?["requiredDuringSchedulingIgnoredDuringExecution"]?["nodeSelectorTerms"]?.arrayValue?.first?["matchExpressions"]
        #expect(exprs == .array([
            .object(["key": "network.gedge.io/data-net", "operator": "In", "values": .array(["true"])]),
            .object(["key": "network.gedge.io/fast-net", "operator": "In", "values": .array(["true"])]),
        ]))

        let policy = try #require(m.networkPolicy)
        #expect(policy["spec"]?["podSelector"]?["matchLabels"]?["gedge.io/service"] == "stream")
        #expect(policy["spec"]?["policyTypes"] == .array(["Ingress"]))
        let rule = policy["spec"]?["ingress"]?.arrayValue?.first
        #expect(rule?["ports"] == .array([.object(["protocol": "TCP", "port": 8080])]))
        #expect(rule?["from"] == .array([
            .object(["namespaceSelector": .object(["matchExpressions": .array([.object(["key": "kubernetes.io/metadata.name", "operator": "In", "values": .array(["cameras"])])])])]),
            .object(["ipBlock": .object(["cidr": "192.168.100.0/24"])]),
        ]))

        // The scheduler reads the same requirement back from the manifests.
        let req = try WorkloadRequirements.extract(workload: .array(m.all), parameters: .null)
        #expect(req.networkLabels == ["network.gedge.io/data-net", "network.gedge.io/fast-net"])
        #expect(req.perReplica.extended["intel.com/sriov_netdevice"] == 1)
    }

    @Test func anExistingAttachmentIsOnlyNamedAndNoPolicyMeansNone() throws {
        let def = try ServiceDefinition.parse(text: "name: a\nnamespace: edge\ncontainers: [a]\nports: [80]\ntype: ClusterIP\nnetworks: [{name: shared, namespace: infra}]")
        let m = def.manifests()
        #expect(m.networkAttachments.isEmpty && m.networkPolicy == nil)
        #expect(m.deployment["spec"]?["template"]?["metadata"]?["annotations"]?[NetworkAttachment.annotation] == #"[{"interface":"net1","name":"shared","namespace":"infra"}]"#)
        // Without networks or allowFrom the manifests are as before.
        let plain = try ServiceDefinition.parse(text: "name: a\nnamespace: edge\ncontainers: [a]\nports: [80]\ntype: ClusterIP").manifests()
        #expect(plain.all.count == 2 && plain.deployment["spec"]?["template"]?["spec"]?["affinity"] == nil)
    }

    @Test func multusAnnotationsInBothFormsBecomeNodeRequirements() throws {
        #expect(try NetworkRequirement.names("ns/a@net1, b", path: "x") == ["a", "b"])
        #expect(try NetworkRequirement.names(#"[{"name": "a", "namespace": "x"}, {"name": "b"}]"#, path: "x") == ["a", "b"])
        #expect(throws: MessageDecodingError.self) { try NetworkRequirement.names(#"[{"interface": "net1"}]"#, path: "x") }
        // A workload from Kafka cannot ask for thousands of networks.
        #expect(throws: MessageDecodingError.self) { try NetworkRequirement.names((1...17).map { "n\($0)" }.joined(separator: ","), path: "x") }
    }

    @Test(arguments: [
        ("networks: [{name: d, type: vxlan, master: eth1}]", "networks[0].type", "invalid_value"),
        ("networks: [{name: d, type: macvlan}]", "networks[0].master", "missing_field"),
        ("networks: [{name: d, type: ipvlan, master: 'eth 1'}]", "networks[0].master", "invalid_value"),
        ("networks: [{name: d, type: macvlan, master: eth1, ipam: {subnet: 192.168.1.0/33}}]", "networks[0].ipam.subnet", "invalid_value"),
        ("networks: [{name: d, type: macvlan, master: eth1, ipam: {subnet: 192.168.1.0}}]", "networks[0].ipam.subnet", "invalid_value"),
        ("networks: [{name: d, type: macvlan, master: eth1, ipam: {subnet: 192.168.1.0/24, gateway: 10.0.0.1}}]", "networks[0].ipam.gateway", "invalid_value"),
        ("networks: [{name: d, type: macvlan, master: eth1, ipam: {subnet: 10.0.0.0/24, rangeStart: 10.0.0.9, rangeEnd: 10.0.0.2}}]", "networks[0].ipam.rangeEnd", "invalid_value"),
        ("networks: [{name: d, type: macvlan, master: eth1, mode: l2}]", "networks[0].mode", "invalid_value"),
        ("networks: [{name: d, type: macvlan, master: eth1, vlan: 10}]", "networks[0].vlan", "invalid_value"),
        ("networks: [{name: d, type: sriov}]", "networks[0].resource", "missing_field"),
        ("networks: [{name: d, type: sriov, resource: sriov}]", "networks[0].resource", "invalid_value"),
        ("networks: [{name: d, type: sriov, resource: intel.com/sriov, vlan: 5000}]", "networks[0].vlan", "invalid_value"),
        ("networks: [{name: d, type: sriov, resource: intel.com/sriov, master: eth1}]", "networks[0].master", "invalid_value"),
        ("networks: [{name: d, interface: net1}, {name: e, interface: net1}]", "networks[1].interface", "invalid_value"),
        ("networks: [{name: d, interface: eth0}]", "networks[0].interface", "invalid_value"),
        ("networks: [{name: d, interface: a-very-long-interface-name}]", "networks[0].interface", "invalid_value"),
        ("networks: [{name: d}, {name: d}]", "networks[1].name", "invalid_value"),
        ("networks: [{name: Data}]", "networks[0].name", "invalid_value"),
        ("networks: [{name: d, master: eth1}]", "networks[0].master", "invalid_value"),
        ("networks: [{name: d, count: 2}]", "networks[0].resource", "missing_field"),
        ("networks: [{name: d, type: macvlan, master: eth1, mtu: 9000}]", "networks[0].mtu", "unknown_field"),
        ("networks: {name: d}", "networks", "wrong_type"),
        ("networks: [" + (1...17).map { "{name: n\($0)}" }.joined(separator: ", ") + "]", "networks", "invalid_value"),
        ("allowFrom: {cidrs: [" + Array(repeating: "10.0.0.0/8", count: 65).joined(separator: ", ") + "]}", "allowFrom.cidrs", "invalid_value"),
        ("allowFrom: {ports: [80]}", "allowFrom.namespaces", "missing_field"),
        ("allowFrom: {cidrs: [10.0.0.0/99]}", "allowFrom.cidrs[0]", "invalid_value"),
        ("allowFrom: {namespaces: [Cameras]}", "allowFrom.namespaces[0]", "invalid_value"),
        ("allowFrom: {services: [web], ports: [81]}", "allowFrom.ports[0]", "invalid_value"),
        ("allowFrom: {pods: [web]}", "allowFrom.pods", "unknown_field"),
    ])
    func invalidNetworksNameTheField(extra: String, field: String, code: String) {
        expectRefused(extra: extra, field: field, code: code)
    }

    @Test func ipv6AndHostBitsAreTakenAsKubernetesTakesThem() throws {
        let def = try ServiceDefinition.parse(text: """
            name: a
            namespace: edge
            containers: [a]
            ports: [80]
            type: ClusterIP
            networks: [{name: v6, type: ipvlan, master: eth2, mode: l3, ipam: {subnet: 'fd00:10::/64', gateway: 'fd00:10::1'}}]
            allowFrom: {cidrs: ['2001:db8::/32', 10.1.2.3/32]}
            """)
        #expect(def.networks[0].ipam?.gateway == "fd00:10::1")
        #expect(def.allowFrom?.cidrs == ["2001:db8::/32", "10.1.2.3/32"])
    }
}
