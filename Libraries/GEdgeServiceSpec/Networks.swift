import Foundation
import GEdgeCore
import GEdgePlacement

/// A second network for a service's pods, GS-Engine's "dual path": data traffic on its own
/// interface through Multus, apart from the cluster network, and with SR-IOV on a virtual
/// function of the NIC.
///
/// An entry names a NetworkAttachmentDefinition: one that exists (`name`, optionally in
/// another `namespace`), or one described here (`type` macvlan, ipvlan or sriov, with its
/// `master` interface, `mode`, `vlan` and `ipam`), applied before the Deployment. SR-IOV
/// asks the device plugin for `count` of its `resource` (for example
/// `intel.com/sriov_netdevice`). Pods run only on nodes labelled
/// `network.gedge.io/<name>=true` (the nodes wired to that data network).
public struct NetworkAttachment: Sendable, Hashable {
    public enum Kind: String, Sendable, CaseIterable {
        case macvlan, ipvlan, sriov
    }

    public struct IPAM: Sendable, Hashable {
        public var subnet: String
        public var rangeStart: String?
        public var rangeEnd: String?
        public var gateway: String?
    }

    public var name: String
    public var namespace: String?
    public var interface: String
    public var kind: Kind?
    public var master: String?
    public var mode: String?
    public var vlan: Int?
    public var ipam: IPAM?
    public var resource: String?
    public var count: Int

    /// The node label a data network's nodes carry.
    public static let nodeLabelPrefix = NetworkRequirement.nodeLabelPrefix
    /// Multus's pod annotation.
    public static let annotation = NetworkRequirement.annotation

    static let fields: Set<String> = ["name", "namespace", "interface", "type", "master", "mode", "vlan", "ipam", "resource", "count"]
    static let modes: [Kind: [String]] = [.macvlan: ["bridge", "private", "vepa", "passthru"], .ipvlan: ["l2", "l3", "l3s"]]

    /// More interfaces than any pod has use for.
    static let maxEntries = 16

    static func decode(_ items: [JSONValue], path: String) throws(MessageDecodingError) -> [NetworkAttachment] {
        guard items.count <= maxEntries else {
            throw MessageDecodingError(.invalidValue, field: path, reason: "at most \(maxEntries) networks, got \(items.count)")
        }
        var out: [NetworkAttachment] = []
        var interfaces: [String: Int] = [:]
        var names: [String: Int] = [:]
        for (i, item) in items.enumerated() {
            let r = try FieldReader(item, path: "\(path)[\(i)]")
            try r.rejectUnknown(allowed: fields)
            let name = try r.string("name")
            try ServiceDefinition.checkDNSLabel(name, field: r.childPath("name"))
            let namespace = try r.optionalString("namespace")
            if let namespace { try ServiceDefinition.checkDNSLabel(namespace, field: r.childPath("namespace")) }
            let interface = try r.optionalString("interface") ?? "net\(i + 1)"
            try checkInterface(interface, field: r.childPath("interface"))
            if let j = interfaces[interface] {
                throw MessageDecodingError(.invalidValue, field: r.childPath("interface"), reason: "'\(interface)' is already the interface of \(path)[\(j)]")
            }
            interfaces[interface] = i
            if let j = names[name], namespace == out[j].namespace {
                throw MessageDecodingError(.invalidValue, field: r.childPath("name"), reason: "'\(name)' is already attached by \(path)[\(j)]")
            }
            names[name] = i
            var kind: Kind?
            if let t = try r.optionalString("type") {
                guard let k = Kind(rawValue: t) else {
                    throw MessageDecodingError(.invalidValue, field: r.childPath("type"), reason: "'\(t)' is not one of \(Kind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                kind = k
            }
            var a = NetworkAttachment(name: name, namespace: namespace, interface: interface, kind: kind, master: nil, mode: nil, vlan: nil, ipam: nil,
                                      resource: try r.optionalString("resource"), count: try r.optionalInt("count") ?? 1)
            guard (1...64).contains(a.count) else { throw MessageDecodingError(.invalidValue, field: r.childPath("count"), reason: "between 1 and 64") }
            if r.fields["count"] != nil, a.resource == nil {
                throw MessageDecodingError(.missingField, field: r.childPath("resource"), reason: "count asks for a device-plugin resource; name it")
            }
            if let res = a.resource, !isExtendedResourceName(res) {
                throw MessageDecodingError(.invalidValue, field: r.childPath("resource"), reason: "'\(res)' is not a device-plugin resource such as intel.com/sriov_netdevice")
            }
            guard let kind else {
                // An existing attachment: nothing to describe.
                for key in ["master", "mode", "vlan", "ipam"] where r.fields[key] != nil {
                    throw MessageDecodingError(.invalidValue, field: r.childPath(key), reason: "describes an attachment; give its type (macvlan, ipvlan or sriov), or leave it out to use an existing one")
                }
                out.append(a)
                continue
            }
            if namespace != nil {
                throw MessageDecodingError(.invalidValue, field: r.childPath("namespace"), reason: "an attachment described here is created in the service's namespace")
            }
            switch kind {
            case .macvlan, .ipvlan:
                guard let master = try r.optionalString("master") else {
                    throw MessageDecodingError(.missingField, field: r.childPath("master"), reason: "required for \(kind.rawValue): the node's interface on the data network, such as eth1")
                }
                try checkInterface(master, field: r.childPath("master"))
                a.master = master
                if r.fields["resource"] != nil {
                    throw MessageDecodingError(.invalidValue, field: r.childPath("resource"), reason: "\(kind.rawValue) takes no device-plugin resource; that is sriov's")
                }
            case .sriov:
                guard a.resource != nil else {
                    throw MessageDecodingError(.missingField, field: r.childPath("resource"), reason: "required for sriov: the device plugin's resource, such as intel.com/sriov_netdevice")
                }
                if r.fields["master"] != nil {
                    throw MessageDecodingError(.invalidValue, field: r.childPath("master"), reason: "sriov takes its virtual function from the device plugin, not a master interface")
                }
                if r.fields["mode"] != nil {
                    throw MessageDecodingError(.invalidValue, field: r.childPath("mode"), reason: "sriov has no mode")
                }
            }
            if let mode = try r.optionalString("mode") {
                guard let allowed = modes[kind], allowed.contains(mode) else {
                    throw MessageDecodingError(.invalidValue, field: r.childPath("mode"), reason: "'\(mode)' is not one of \((modes[kind] ?? []).joined(separator: ", "))")
                }
                a.mode = mode
            }
            if let vlan = try r.optionalInt("vlan") {
                guard kind == .sriov else {
                    throw MessageDecodingError(.invalidValue, field: r.childPath("vlan"), reason: "\(kind.rawValue) takes its VLAN from the master interface (eth1.100); vlan is sriov's")
                }
                guard (0...4094).contains(vlan) else { throw MessageDecodingError(.invalidValue, field: r.childPath("vlan"), reason: "a VLAN ID from 0 to 4094") }
                a.vlan = vlan
            }
            if let ipam = try r.optionalObject("ipam") { a.ipam = try decodeIPAM(ipam) }
            out.append(a)
        }
        return out
    }

    static func decodeIPAM(_ r: FieldReader) throws(MessageDecodingError) -> IPAM {
        try r.rejectUnknown(allowed: ["subnet", "rangeStart", "rangeEnd", "gateway"])
        let subnet = try r.string("subnet")
        guard let net = CIDR(subnet) else {
            throw MessageDecodingError(.invalidValue, field: r.childPath("subnet"), reason: "'\(subnet)' is not a CIDR such as 192.168.10.0/24")
        }
        var ipam = IPAM(subnet: subnet)
        for key in ["rangeStart", "rangeEnd", "gateway"] {
            guard let v = try r.optionalString(key) else { continue }
            guard let ip = CIDR.address(v), net.contains(ip) else {
                throw MessageDecodingError(.invalidValue, field: r.childPath(key), reason: "'\(v)' is not an address in \(subnet)")
            }
            switch key {
            case "rangeStart": ipam.rangeStart = v
            case "rangeEnd": ipam.rangeEnd = v
            default: ipam.gateway = v
            }
        }
        if let s = ipam.rangeStart.flatMap(CIDR.address), let e = ipam.rangeEnd.flatMap(CIDR.address), s.lexicographicallyPrecedes(e) == false, s != e {
            throw MessageDecodingError(.invalidValue, field: r.childPath("rangeEnd"), reason: "before rangeStart")
        }
        return ipam
    }

    /// A Linux interface name: 1-15 characters, no '/', ':' or whitespace; not `eth0` or
    /// `lo` (the pod's own).
    static func checkInterface(_ s: String, field: String) throws(MessageDecodingError) {
        let ok = (1...15).contains(s.utf8.count) && s.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }
        guard ok else { throw MessageDecodingError(.invalidValue, field: field, reason: "'\(s)' is not an interface name: 1-15 letters, digits, '-', '_' or '.'") }
        if field.hasSuffix(".interface"), ["eth0", "lo"].contains(s) {
            throw MessageDecodingError(.invalidValue, field: field, reason: "'\(s)' is the pod's own interface")
        }
    }

    static func isExtendedResourceName(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty, parts[0].contains("."), s.count <= 253 else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_./".unicodeScalars.contains($0)) }
    }

    /// Multus's network selection element for the pod annotation.
    var selection: JSONValue {
        var o: [String: JSONValue] = ["name": .string(name), "interface": .string(interface)]
        if let namespace { o["namespace"] = .string(namespace) }
        return .object(o)
    }

    /// The CNI configuration of an attachment described here (macvlan, ipvlan or sriov,
    /// with host-local IPAM when a subnet is given).
    var cniConfig: JSONValue? {
        guard let kind else { return nil }
        var c: [String: JSONValue] = ["cniVersion": "0.3.1", "name": .string(name), "type": .string(kind.rawValue)]
        if let master { c["master"] = .string(master) }
        if let mode { c["mode"] = .string(mode) }
        if let vlan { c["vlan"] = .number(Double(vlan)) }
        if let ipam {
            var i: [String: JSONValue] = ["type": "host-local", "subnet": .string(ipam.subnet)]
            if let s = ipam.rangeStart { i["rangeStart"] = .string(s) }
            if let e = ipam.rangeEnd { i["rangeEnd"] = .string(e) }
            if let g = ipam.gateway { i["gateway"] = .string(g) }
            c["ipam"] = .object(i)
        } else {
            c["ipam"] = .object([:])
        }
        return .object(c)
    }

    /// The NetworkAttachmentDefinition for an attachment described here.
    func definition(namespace ns: String, labels: JSONValue) -> JSONValue? {
        guard let config = cniConfig else { return nil }
        var metadata: [String: JSONValue] = ["name": .string(name), "namespace": .string(ns), "labels": labels]
        if let resource { metadata["annotations"] = .object(["k8s.v1.cni.cncf.io/resourceName": .string(resource)]) }
        return .object([
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": .object(metadata),
            "spec": .object(["config": .string(String(decoding: config.serialized(), as: UTF8.self))]),
        ])
    }
}

/// Network filtering: who may reach the service. Becomes a NetworkPolicy admitting, on the
/// given ports (the service's own by default), pods of the listed services in the service's
/// namespace, every pod of the listed namespaces, and the listed CIDRs; everything else is
/// refused.
public struct AllowFrom: Sendable, Hashable {
    public var namespaces: [String]
    public var services: [String]
    public var cidrs: [String]
    public var ports: [Int]

    static let maxPeers = 64

    static func decode(_ r: FieldReader, servicePorts: [Int]) throws(MessageDecodingError) -> AllowFrom {
        try r.rejectUnknown(allowed: ["namespaces", "services", "cidrs", "ports"])
        let namespaces = try r.optionalStringList("namespaces") ?? []
        for (i, n) in namespaces.enumerated() { try ServiceDefinition.checkDNSLabel(n, field: "\(r.childPath("namespaces"))[\(i)]") }
        let services = try r.optionalStringList("services") ?? []
        for (i, s) in services.enumerated() { try ServiceDefinition.checkDNSLabel(s, field: "\(r.childPath("services"))[\(i)]") }
        let cidrs = try r.optionalStringList("cidrs") ?? []
        for (key, list) in [("namespaces", namespaces), ("services", services), ("cidrs", cidrs)] where list.count > maxPeers {
            throw MessageDecodingError(.invalidValue, field: r.childPath(key), reason: "at most \(maxPeers) entries, got \(list.count)")
        }
        for (i, c) in cidrs.enumerated() where CIDR(c) == nil {
            throw MessageDecodingError(.invalidValue, field: "\(r.childPath("cidrs"))[\(i)]", reason: "'\(c)' is not a CIDR such as 10.0.0.0/8")
        }
        guard !(namespaces.isEmpty && services.isEmpty && cidrs.isEmpty) else {
            throw MessageDecodingError(.missingField, field: r.childPath("namespaces"), reason: "allowFrom names at least one of namespaces, services or cidrs")
        }
        let ports = try ServiceDefinition.portNumbers(try r.optionalList("ports") ?? [], field: r.childPath("ports"))
        for (i, p) in ports.enumerated() where !servicePorts.contains(p) {
            throw MessageDecodingError(.invalidValue, field: "\(r.childPath("ports"))[\(i)]", reason: "\(p) is not one of the service's ports")
        }
        return AllowFrom(namespaces: namespaces, services: services, cidrs: cidrs, ports: ports.isEmpty ? servicePorts : ports)
    }
}

/// An IPv4 or IPv6 network in CIDR notation.
struct CIDR: Hashable {
    let address: [UInt8]
    let prefix: Int

    init?(_ s: String) {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = CIDR.address(String(parts[0])), let p = Int(parts[1]), parts[1].allSatisfy(\.isNumber),
              (0...(a.count * 8)).contains(p) else { return nil }
        address = a
        prefix = p
    }

    /// The bytes of an IPv4 or IPv6 address.
    static func address(_ s: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, s, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, s, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    func contains(_ ip: [UInt8]) -> Bool {
        guard ip.count == address.count else { return false }
        var bits = prefix
        for i in 0..<ip.count where bits > 0 {
            let mask: UInt8 = bits >= 8 ? 0xFF : UInt8(0xFF << (8 - bits))
            if ip[i] & mask != address[i] & mask { return false }
            bits -= 8
        }
        return true
    }
}
