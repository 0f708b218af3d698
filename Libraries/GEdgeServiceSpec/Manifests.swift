import Foundation
import GEdgeCore
import GEdgePlacement

/// The Kubernetes objects a service definition stands for, and the schedule request that
/// places them.
public struct ServiceManifests: Sendable, Hashable {
    public var deployment: JSONValue
    public var service: JSONValue
    public var serviceMonitor: JSONValue?
    public var autoscaler: JSONValue?
    /// The NetworkAttachmentDefinitions the service describes, applied before its pods.
    public var networkAttachments: [JSONValue] = []
    /// The service's `allowFrom` as a NetworkPolicy.
    public var networkPolicy: JSONValue? = nil

    /// In apply order: attachments first (a pod naming a missing one does not start), the
    /// policy with the Service.
    public var all: [JSONValue] { applied(withAutoscaler: true) }

    /// The objects to apply; without the HPA when the suite's autoscaler scales the service.
    public func applied(withAutoscaler: Bool) -> [JSONValue] {
        networkAttachments + [deployment, service] + [networkPolicy, serviceMonitor, withAutoscaler ? autoscaler : nil].compactMap { $0 }
    }

    public static let managedBy = "gedge-gateway"
}

extension ServiceDefinition {
    public var selectorLabels: [String: String] { ["app.kubernetes.io/name": name, "gedge.io/service": name] }

    public var objectLabels: [String: String] {
        var l = labels
        for (k, v) in selectorLabels { l[k] = v }
        l["app.kubernetes.io/managed-by"] = ServiceManifests.managedBy
        if let t = scheduleHint?.type { l["gedge.io/workload-type"] = t }
        return l
    }

    static func portName(_ p: Int) -> String { "p-\(p)" }

    /// The service's manifests. For a project held to the `restricted` Pod Security
    /// Standard, every pod and container carries what that profile requires (non-root,
    /// no privilege escalation, every capability dropped, the runtime's seccomp profile).
    public func manifests(podSecurity: ProjectPolicy.PodSecurity = .baseline) -> ServiceManifests {
        let restricted = podSecurity == .restricted
        let labelsJSON = JSONValue.object(objectLabels.mapValues(JSONValue.string))
        let selectorJSON = JSONValue.object(selectorLabels.mapValues(JSONValue.string))
        func metadata(_ extra: [String: JSONValue] = [:]) -> JSONValue {
            var m: [String: JSONValue] = ["name": .string(name), "namespace": .string(namespace), "labels": labelsJSON]
            for (k, v) in extra { m[k] = v }
            return .object(m)
        }

        var containerObjects: [JSONValue] = []
        for (i, c) in containers.enumerated() {
            var o: [String: JSONValue] = ["name": .string(c.name), "image": .string(c.image), "imagePullPolicy": "IfNotPresent"]
            if let command = c.command { o["command"] = .array(command.map(JSONValue.string)) }
            if let args = c.args { o["args"] = .array(args.map(JSONValue.string)) }
            // The runtime's PATH and LD_LIBRARY_PATH, unless the container sets its own.
            let env = (runtime?.environment ?? [:]).merging(c.env) { _, own in own }
            if !env.isEmpty {
                o["env"] = .array(env.sorted { $0.key < $1.key }.map { .object(["name": .string($0.key), "value": .string($0.value)]) })
            }
            if let runtime { o["volumeMounts"] = .array(runtime.volumeMounts) }
            o["resources"] = resources(for: c)
            if restricted {
                o["securityContext"] = .object([
                    "allowPrivilegeEscalation": false, "runAsNonRoot": true,
                    "capabilities": .object(["drop": .array(["ALL"])]), "seccompProfile": .object(["type": "RuntimeDefault"]),
                ])
            }
            // The service's ports belong to its first container, as GS-Engine had them.
            if i == 0 {
                o["ports"] = .array(ports.map {
                    .object(["name": .string(Self.portName($0)), "containerPort": .number(Double($0)), "protocol": "TCP"])
                })
                let probePort = JSONValue.object(["tcpSocket": .object(["port": .number(Double(ports[0]))])])
                o["readinessProbe"] = merge(probePort, ["initialDelaySeconds": 2, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3])
                o["livenessProbe"] = merge(probePort, ["initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3])
            }
            containerObjects.append(.object(o))
        }
        var podSpec: [String: JSONValue] = ["containers": .array(containerObjects)]
        if restricted { podSpec["securityContext"] = .object(["runAsNonRoot": true, "seccompProfile": .object(["type": "RuntimeDefault"])]) }
        if let runtime { podSpec["volumes"] = .array([runtime.volume]) }
        if let selector = scheduleHint?.nodeSelector, !selector.isEmpty {
            podSpec["nodeSelector"] = .object(selector.mapValues(JSONValue.string))
        }
        var exprs: [JSONValue] = []
        if let accelerator {
            // The accelerator monitor's labels: the node must carry at least `count` of the kind.
            exprs = [.object([
                "key": .string(AcceleratorRequirement.labelPrefix + accelerator.kind + ".count"), "operator": "Gt",
                "values": .array([.string(String(accelerator.count - 1))]),
            ])]
            if accelerator.kind.hasPrefix("coral") || accelerator.kind == "jetson" {
                exprs = [.object(["key": .string(AcceleratorRequirement.labelPrefix + accelerator.kind + ".count"), "operator": "Exists"])]
            }
        }
        // Nodes wired to each data network carry its label.
        for n in Set(networks.map(\.name)).sorted() {
            exprs.append(.object(["key": .string(NetworkAttachment.nodeLabelPrefix + n), "operator": "In", "values": .array(["true"])]))
        }
        if !exprs.isEmpty {
            podSpec["affinity"] = .object(["nodeAffinity": .object([
                "requiredDuringSchedulingIgnoredDuringExecution": .object([
                    "nodeSelectorTerms": .array([.object(["matchExpressions": .array(exprs)])]),
                ]),
            ])])
        }
        var annotations: [String: JSONValue] = [:]
        if let p = scheduleHint?.preferred { annotations["gedge.io/preferred"] = .string(p.rawValue) }
        if let pinnedCPUs { annotations["gedge.io/pinned-cpus"] = .string(String(pinnedCPUs)) }

        var templateMeta: [String: JSONValue] = ["labels": labelsJSON]
        var podAnnotations = annotations
        if !networks.isEmpty {
            podAnnotations[NetworkAttachment.annotation] = .string(String(decoding: JSONValue.array(networks.map(\.selection)).serialized(), as: UTF8.self))
        }
        if !podAnnotations.isEmpty { templateMeta["annotations"] = .object(podAnnotations) }
        let deployment: JSONValue = .object([
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata(annotations.isEmpty ? [:] : ["annotations": .object(annotations)]),
            "spec": .object([
                "replicas": .number(Double(autoscaling.map { max($0.minReplicas, replicas) } ?? replicas)),
                "selector": .object(["matchLabels": selectorJSON]),
                "strategy": .object(["type": "RollingUpdate", "rollingUpdate": .object(["maxUnavailable": 0, "maxSurge": 1])]),
                "template": .object(["metadata": .object(templateMeta), "spec": .object(podSpec)]),
            ]),
        ])

        let service: JSONValue = .object([
            "apiVersion": "v1", "kind": "Service", "metadata": metadata(),
            "spec": .object([
                "type": .string(type.rawValue),
                "selector": selectorJSON,
                "ports": .array(ports.map {
                    .object(["name": .string(Self.portName($0)), "port": .number(Double($0)),
                             "targetPort": .number(Double($0)), "protocol": "TCP"])
                }),
            ]),
        ])

        var monitor: JSONValue?
        if !monitorPorts.isEmpty {
            monitor = .object([
                "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": metadata(),
                "spec": .object([
                    "selector": .object(["matchLabels": selectorJSON]),
                    "namespaceSelector": .object(["matchNames": .array([.string(namespace)])]),
                    "endpoints": .array(monitorPorts.map {
                        .object(["port": .string(Self.portName($0)), "path": .string(Defaults.monitorPath),
                                 "interval": .string(Defaults.monitorInterval)])
                    }),
                ]),
            ])
        }

        var hpa: JSONValue?
        if let a = autoscaling {
            var metrics: [JSONValue] = []
            for (resource, target) in [("cpu", a.targetCPUUtilization), ("memory", a.targetMemoryUtilization)] {
                guard let target else { continue }
                metrics.append(.object([
                    "type": "Resource",
                    "resource": .object(["name": .string(resource), "target": .object(["type": "Utilization", "averageUtilization": .number(Double(target))])]),
                ]))
            }
            hpa = .object([
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": metadata(),
                "spec": .object([
                    "scaleTargetRef": .object(["apiVersion": "apps/v1", "kind": "Deployment", "name": .string(name)]),
                    "minReplicas": .number(Double(a.minReplicas)), "maxReplicas": .number(Double(a.maxReplicas)),
                    "metrics": .array(metrics),
                    // GS-Engine's windows: scale out after 3 minutes, in after 5.
                    "behavior": .object([
                        "scaleUp": .object(["stabilizationWindowSeconds": 180]),
                        "scaleDown": .object(["stabilizationWindowSeconds": 300]),
                    ]),
                ]),
            ])
        }
        var policy: JSONValue?
        if let allowFrom {
            var peers: [JSONValue] = []
            for s in allowFrom.services {
                peers.append(.object(["podSelector": .object(["matchLabels": .object(["gedge.io/service": .string(s)])])]))
            }
            if !allowFrom.namespaces.isEmpty {
                peers.append(.object(["namespaceSelector": .object(["matchExpressions": .array([.object([
                    "key": "kubernetes.io/metadata.name", "operator": "In", "values": .array(allowFrom.namespaces.map(JSONValue.string)),
                ])])])]))
            }
            for c in allowFrom.cidrs { peers.append(.object(["ipBlock": .object(["cidr": .string(c)])])) }
            policy = .object([
                "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata(),
                "spec": .object([
                    "podSelector": .object(["matchLabels": selectorJSON]),
                    "policyTypes": .array(["Ingress"]),
                    "ingress": .array([.object([
                        "from": .array(peers),
                        "ports": .array(allowFrom.ports.map { .object(["protocol": "TCP", "port": .number(Double($0))]) }),
                    ])]),
                ]),
            ])
        }
        let attachments = networks.compactMap { $0.definition(namespace: namespace, labels: labelsJSON) }
        return ServiceManifests(deployment: deployment, service: service, serviceMonitor: monitor, autoscaler: hpa,
                                networkAttachments: attachments, networkPolicy: policy)
    }

    /// Device-plugin resources the networks ask for (SR-IOV virtual functions), summed per
    /// resource; the first container requests them.
    var networkResources: [String: Int] {
        var out: [String: Int] = [:]
        for n in networks { if let r = n.resource { out[r, default: 0] += n.count } }
        return out
    }

    func resources(for c: Container) -> JSONValue {
        let devices = c == containers[0] ? networkResources : [:]
        if let pinnedCPUs {
            // Guaranteed QoS: requests equal limits, whole CPUs.
            let memory = c.resources.map { Self.memoryLess($0.requestsMemory, $0.limitsMemory) ? $0.limitsMemory : $0.requestsMemory } ?? Defaults.pinnedMemory
            var q: [String: JSONValue] = ["cpu": .string(String(pinnedCPUs)), "memory": .string(memory)]
            if gpus > 0 { q["nvidia.com/gpu"] = .string(String(gpus)) }
            for (k, v) in devices { q[k] = .string(String(v)) }
            return .object(["requests": .object(q), "limits": .object(q)])
        }
        let spec = c.resources ?? ResourceSpec(
            requestsCPU: Defaults.requestsCPU, requestsMemory: Defaults.requestsMemory,
            limitsCPU: Defaults.limitsCPU, limitsMemory: Defaults.limitsMemory)
        var requests: [String: JSONValue] = ["cpu": .string(spec.requestsCPU), "memory": .string(spec.requestsMemory)]
        var limits: [String: JSONValue] = ["memory": .string(spec.limitsMemory)]
        if let l = spec.limitsCPU { limits["cpu"] = .string(l) }
        if gpus > 0 && c == containers[0] {
            requests["nvidia.com/gpu"] = .string(String(gpus))
            limits["nvidia.com/gpu"] = .string(String(gpus))
        }
        // Device-plugin resources: requests equal to limits, as Kubernetes requires.
        for (k, v) in devices {
            requests[k] = .string(String(v))
            limits[k] = .string(String(v))
        }
        return .object(["requests": .object(requests), "limits": .object(limits)])
    }

    static func memoryLess(_ a: String, _ b: String) -> Bool { (Quantity.value(a) ?? 0) < (Quantity.value(b) ?? 0) }

    func merge(_ base: JSONValue, _ extra: [String: JSONValue]) -> JSONValue {
        guard case .object(var o) = base else { return base }
        for (k, v) in extra { o[k] = v }
        return .object(o)
    }

    /// The schedule request's policy and parameters for this service.
    public var schedulingPolicy: SchedulingPolicy {
        if let p = scheduleHint?.policy { return p }
        if scheduleHint?.selectClusters != nil { return .selectedCluster }
        if scheduleHint?.sourceCluster != nil { return .lowLatency }
        return .mostRequested
    }

    public var scheduleParameters: JSONValue {
        var p: [String: JSONValue] = [:]
        if let h = scheduleHint {
            if let pref = h.preferred { p["preferred"] = .string(pref.rawValue) }
            if let s = h.sourceCluster { p["source_cluster"] = .string(s) }
            if let sel = h.selectClusters {
                p["select_clusters"] = sel
                p["mode"] = "cluster"
            }
        }
        if let a = accelerator {
            var o: [String: JSONValue] = ["kind": .string(a.kind), "count": .number(Double(a.count))]
            if let m = a.model { o["model"] = .string(m) }
            p["accelerator"] = .object(o)
        }
        return .object(p)
    }
}
