import Foundation
import GEdgeCore
import GEdgePlacement
import Testing

@testable import GEdgeServiceSpec

/// The GS-Engine seed's request body, as it was sent (config/gse/app1.yaml).
let seedDefinition: String = {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/gse/app1.yaml")
    return (try? String(contentsOf: url, encoding: .utf8)) ?? ""
}()

/// A minimal valid definition with `extra` added must be refused naming `field` with `code`.
func expectRefused(extra: String, field: String, code: String, sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        _ = try ServiceDefinition.parse(text: "name: a\nnamespace: edge\ncontainers: [a]\nports: [80]\ntype: ClusterIP\n" + extra)
        Issue.record("accepted: \(extra)", sourceLocation: sourceLocation)
    } catch {
        #expect(error.field == field, "\(error)", sourceLocation: sourceLocation)
        #expect(error.code.description == code, "\(error)", sourceLocation: sourceLocation)
    }
}

@Suite struct ServiceDefinitionTests {
    @Test func theSeedDefinitionGivesItsManifests() throws {
        let def = try ServiceDefinition.parse(text: seedDefinition)
        #expect(def.name == "app1" && def.namespace == "edge" && def.type == .loadBalancer)
        #expect(def.ports == [8080, 8000] && def.monitorPorts == [8000])
        #expect(def.containers.map(\.name) == ["echoserver"])
        #expect(def.scheduleHint?.preferred == .local)
        let m = def.manifests()
        #expect(m.all.count == 3)  // Deployment, Service, ServiceMonitor; no HPA unless asked
        #expect(m.autoscaler == nil)
        let pod = m.deployment["spec"]?["template"]?["spec"]
        #expect(pod?["nodeSelector"] == .object(["gpu": "gpu1", "ssd": "ssd1"]))
        let c = pod?["containers"]?.arrayValue?.first
        #expect(c?["image"] == "k8s.gcr.io/echoserver:1.10")
        #expect(c?["resources"]?["requests"] == .object(["cpu": "100m", "memory": "128Mi"]))
        #expect(c?["resources"]?["limits"] == .object(["cpu": "500m", "memory": "256Mi"]))
        #expect(c?["readinessProbe"]?["tcpSocket"]?["port"] == 8080)
        #expect(c?["ports"]?.arrayValue?.count == 2)
        #expect(m.deployment["spec"]?["replicas"] == 1)
        #expect(m.deployment["metadata"]?["labels"]?["app.kubernetes.io/managed-by"] == "gedge-gateway")
        #expect(m.deployment["metadata"]?["labels"]?["gedge.io/workload-type"] == "func")
        #expect(m.service["spec"]?["type"] == "LoadBalancer")
        #expect(m.service["spec"]?["selector"] == m.deployment["spec"]?["selector"]?["matchLabels"])
        #expect(m.serviceMonitor?["spec"]?["endpoints"]?.arrayValue?.first?["port"] == "p-8000")
        #expect(def.schedulingPolicy == .mostRequested)
        #expect(def.scheduleParameters["preferred"] == "local")
    }

    @Test func jsonBodiesAreAcceptedToo() throws {
        let def = try ServiceDefinition.parse(text: #"{"name":"a","namespace":"n","containers":["nginx"],"ports":[80],"type":"ClusterIP"}"#)
        #expect(def.type == .clusterIP && def.containers[0].name == "nginx")
    }

    @Test func extensionsShapeTheManifests() throws {
        let def = try ServiceDefinition.parse(text: """
            name: infer
            namespace: edge
            containers:
            - {name: model, image: registry.local/infer:2, env: {MODE: fast}, resources: {cpu: "1", memory: 1Gi}}
            - registry.local/sidecar:1
            ports: [9000]
            type: NodePort
            replicas: 2
            gpus: 1
            accelerator: {kind: nvidia-gpu, count: 1, model: V100}
            autoscaling: {minReplicas: 2, maxReplicas: 6, targetCPUUtilization: 70}
            scheduleHint: {sourceCluster: edge1, preferred: neighbor}
            labels: {team: vision}
            """)
        let m = def.manifests()
        let hpa = try #require(m.autoscaler)
        #expect(hpa["spec"]?["maxReplicas"] == 6)
        #expect(hpa["spec"]?["metrics"]?.arrayValue?.first?["resource"]?["target"]?["averageUtilization"] == 70)
        #expect(hpa["spec"]?["behavior"]?["scaleDown"]?["stabilizationWindowSeconds"] == 300)
        let containers = m.deployment["spec"]?["template"]?["spec"]?["containers"]?.arrayValue ?? []
        #expect(containers.count == 2)
        #expect(containers[0]["resources"]?["limits"]?["nvidia.com/gpu"] == "1")
        #expect(containers[0]["resources"]?["requests"]?["cpu"] == "1")
        #expect(containers[0]["env"] == .array([.object(["name": "MODE", "value": "fast"])]))
        #expect(containers[1]["resources"]?["limits"]?["nvidia.com/gpu"] == nil)
        #expect(m.deployment["spec"]?["template"]?["spec"]?["affinity"]?["nodeAffinity"] != nil)
        #expect(m.deployment["metadata"]?["labels"]?["team"] == "vision")
        #expect(def.schedulingPolicy == .lowLatency)
        #expect(def.scheduleParameters["source_cluster"] == "edge1")
        #expect(def.scheduleParameters["accelerator"]?["model"] == "V100")
        // The placement library reads the same request the scheduler will.
        let req = try WorkloadRequirements.extract(workload: .array(m.all), parameters: def.scheduleParameters)
        #expect(req.replicas == 2 && req.accelerator?.kind == "nvidia-gpu" && req.preferred == .neighbor)
    }

    @Test func pinnedCPUsGiveGuaranteedQoS() throws {
        let def = try ServiceDefinition.parse(text: """
            {name: rt, namespace: edge, containers: [rt:1, helper:1], ports: [7000], type: ClusterIP, pinnedCPUs: 2}
            """)
        for c in def.manifests().deployment["spec"]?["template"]?["spec"]?["containers"]?.arrayValue ?? [] {
            let r = c["resources"]
            #expect(r?["requests"] == r?["limits"])
            #expect(r?["limits"]?["cpu"] == "2")
        }
    }

    /// GS-AIflow's runtime environment: the components mounted by subPath from the claim, the
    /// conda environment first on PATH, the libraries on LD_LIBRARY_PATH (as the seed's pod had).
    @Test func runtimeComponentsAreMountedFromTheClaim() throws {
        let def = try ServiceDefinition.parse(text: """
            name: inference
            namespace: aieye
            containers: [{image: "ubuntu:20.04", command: [python, serve.py], env: {MODEL: yolo}}]
            ports: [8000]
            type: ClusterIP
            runtime:
              claim: nfs-pvc-total
              cuda: "11.2"
              cudnn: 8.2.1
              conda: tf2_py38
              components: [{name: models, subPath: models/yolo-v5, lib: []}]
            """)
        let pod = try #require(def.manifests().deployment["spec"]?["template"]?["spec"])
        #expect(pod["volumes"] == .array([.object(["name": "gedge-runtime", "persistentVolumeClaim": .object(["claimName": "nfs-pvc-total", "readOnly": true])])]))
        let c = try #require(pod["containers"]?.arrayValue?.first)
        let mounts = (c["volumeMounts"]?.arrayValue ?? []).map { "\($0["mountPath"]?.stringValue ?? "") <- \($0["subPath"]?.stringValue ?? "")" }
        #expect(mounts == [
            "/opt/gedge/runtime/miniconda3 <- miniconda3", "/opt/gedge/runtime/cuda <- cuda/cuda-11.2",
            "/opt/gedge/runtime/cudnn <- cudnn/cudnn-8.2.1", "/opt/gedge/runtime/models <- models/yolo-v5",
        ])
        var env: [String: String] = [:]
        for e in c["env"]?.arrayValue ?? [] { env[e["name"]?.stringValue ?? ""] = e["value"]?.stringValue }
        #expect(env["PATH"] == "/opt/gedge/runtime/miniconda3/envs/tf2_py38/bin:/opt/gedge/runtime/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        #expect(env["LD_LIBRARY_PATH"] == "/opt/gedge/runtime/miniconda3/envs/tf2_py38/lib:/opt/gedge/runtime/cuda/lib64:/opt/gedge/runtime/cudnn/lib64")
        #expect(env["CUDA_HOME"] == "/opt/gedge/runtime/cuda" && env["CONDA_DEFAULT_ENV"] == "tf2_py38" && env["MODEL"] == "yolo")
    }

    @Test(arguments: [
        ("runtime: {cuda: '11.2'}", "runtime.claim", "missing_field"),
        ("runtime: {claim: Bad_Claim, cuda: '11.2'}", "runtime.claim", "invalid_value"),
        ("runtime: {claim: c}", "runtime.cuda", "missing_field"),
        ("runtime: {claim: c, cuda: '11/2'}", "runtime.cuda", "invalid_value"),
        ("runtime: {claim: c, components: [{name: x, subPath: ../etc}]}", "runtime.components[0].subPath", "invalid_value"),
        ("runtime: {claim: c, components: [{name: x, subPath: /abs}]}", "runtime.components[0].subPath", "invalid_value"),
        ("runtime: {claim: c, components: [{name: x, subPath: x, bin: ['a:b']}]}", "runtime.components[0].bin[0]", "invalid_value"),
        ("runtime: {claim: c, python: '3.8'}", "runtime.python", "unknown_field"),
    ])
    func invalidRuntimesNameTheField(extra: String, field: String, code: String) {
        expectRefused(extra: extra, field: field, code: code)
    }

    @Test(arguments: [
        ("namespace: edge\ncontainers: [a]\nports: [80]\ntype: ClusterIP", "name", "missing_field"),
        ("name: App_1\nnamespace: edge\ncontainers: [a]\nports: [80]\ntype: ClusterIP", "name", "invalid_value"),
        ("name: a\nnamespace: edge\ncontainers: []\nports: [80]\ntype: ClusterIP", "containers", "invalid_value"),
        ("name: a\nnamespace: edge\ncontainers: [1]\nports: [80]\ntype: ClusterIP", "containers[0]", "wrong_type"),
        ("name: a\nnamespace: edge\ncontainers: [a]\nports: [80, 70000]\ntype: ClusterIP", "ports[1]", "invalid_value"),
        ("name: a\nnamespace: edge\ncontainers: [a]\nports: [eighty]\ntype: ClusterIP", "ports[0]", "wrong_type"),
        ("name: a\nnamespace: edge\ncontainers: [a]\nports: [80, 80]\ntype: ClusterIP", "ports[1]", "invalid_value"),
        ("name: a\nnamespace: edge\ncontainers: [a]\nports: [80]\ntype: External", "type", "invalid_value"),
        ("name: a\nnamespace: edge\ncontainers: [a]\nports: [80]\ntype: ClusterIP\nmonitorPorts: [81]", "monitorPorts[0]", "invalid_value"),
        ("name: a\nnamespace: edge\ncontainers: [a]\nports: [80]\ntype: ClusterIP\nscheduleHint: {preferred: moon}", "scheduleHint.preferred", "invalid_value"),
        ("name: a\nnamespace: edge\ncontainers: [a]\nports: [80]\ntype: ClusterIP\nscheduleHint: {nodeSelector: {gpu: [1]}}", "scheduleHint.nodeSelector.gpu", "wrong_type"),
        ("name: a\nnamespace: edge\ncontainers: [a]\nports: [80]\ntype: ClusterIP\nreplica: 2", "replica", "unknown_field"),
        ("name: a\nnamespace: edge\ncontainers: [{image: a, resources: {cpu: lots}}]\nports: [80]\ntype: ClusterIP", "containers[0].resources.cpu", "invalid_value"),
        ("name: a\nnamespace: edge\ncontainers: [a]\nports: [80]\ntype: ClusterIP\nautoscaling: {minReplicas: 3, maxReplicas: 2}", "autoscaling.maxReplicas", "invalid_value"),
        ("name: a\nnamespace: edge\ncontainers: [a]\nports: [80]\ntype: ClusterIP\nautoscaling: {minReplicas: 1}", "autoscaling.maxReplicas", "missing_field"),
        ("name: a\nnamespace: edge\ncontainers: [a]\nports: [80]\ntype: ClusterIP\npinnedCPUs: 0", "pinnedCPUs", "invalid_value"),
        ("name: a\nname: b\nnamespace: edge", "name", "invalid_value"),
        ("[1, 2]", "", "wrong_type"),
        ("name: a\n  bad: indentation: here", "", "malformed_json"),
    ])
    func invalidDefinitionsNameTheField(text: String, field: String, code: String) {
        do {
            _ = try ServiceDefinition.parse(text: text)
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.field == field, "\(error)")
            #expect(error.code.description == code, "\(error)")
        }
    }

    /// Property: any mutation of a valid body either decodes or fails with a field path and
    /// a reason; the decoder never traps. A deterministic generator, so failures reproduce.
    @Test func mutatedBodiesNeverTrap() {
        var rng = SplitMix(seed: 0x9E37_79B9)
        let base = Array(seedDefinition.utf8)
        let alphabet = Array("{}[]:,-\"'#&*!|>%@`\n\t 0123456789abcxyz.\\".utf8)
        var accepted = 0, rejected = 0
        for _ in 0..<3000 {
            var bytes = base
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let at = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[at] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                case 1: bytes.remove(at: at)
                default: bytes.insert(alphabet[Int(rng.next() % UInt64(alphabet.count))], at: at)
                }
            }
            do {
                let def = try ServiceDefinition.parse(text: String(decoding: bytes, as: UTF8.self))
                _ = def.manifests()
                accepted += 1
            } catch {
                #expect(!error.reason.isEmpty)
                rejected += 1
            }
        }
        #expect(accepted > 0 && rejected > 0)
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The gateway's own manifests meet the Pod Security Standard of the project they are for.
@Suite struct GeneratedManifestsMeetPodSecurity {
    @Test func baselineAndRestricted() throws {
        let def = try ServiceDefinition.decode(try YAMLText.document(
            "name: web\nnamespace: p1\ncontainers: [nginx, 'busybox:1']\nports: [80]\ntype: ClusterIP\n", path: ""))
        for level in ProjectPolicy.PodSecurity.allCases {
            let m = def.manifests(podSecurity: level)
            #expect(throws: Never.self) {
                try Admission.check(workload: .array(m.all), namespace: "p1", project: "p1", policy: ProjectPolicy(podSecurity: level))
            }
        }
        // Baseline manifests are not restricted ones (nginx runs as root).
        #expect(throws: AdmissionError.self) {
            try Admission.check(workload: .array(def.manifests().all), namespace: "p1", project: "p1", policy: ProjectPolicy(podSecurity: .restricted))
        }
    }
}
