import GEdgeCore
import GEdgePlacement
import Testing

@testable import GEdgeScheduler
import GEdgeServiceSpec

@Suite struct WorkloadTextTests {
    @Test func yamlBecomesJSON() throws {
        let yaml = """
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: yolo-gpu
            spec:
              replicas: 2
              template:
                spec:
                  containers:
                  - name: yolo-gpu
                    resources:
                      requests: {cpu: 4, memory: 8Gi}
                      limits: {nvidia.com/gpu: 1}
            """
        let json = try WorkloadText.normalize(.string(yaml))
        #expect(json["kind"] == .string("Deployment"))
        let r = try WorkloadRequirements.extract(workload: json, parameters: .null)
        #expect(r.replicas == 2)
        #expect(r.perReplica == Resources(cpuMilli: 4000, memory: 8 << 30, gpu: 1))
    }

    @Test func multipleDocumentsBecomeAList() throws {
        let json = try WorkloadText.normalize(.string("kind: Service\n---\nkind: Pod\nspec: {containers: []}\n"))
        guard case .array(let items) = json else { Issue.record("expected a list, got \(json)"); return }
        #expect(items.map { $0["kind"] } == [.string("Service"), .string("Pod")])
    }

    @Test(arguments: ["kind: [unclosed", "", "# only a comment\n", "{a: 1}: 2", "kind: Pod\n---\nkind: [broken\n", "a:\n  b: 1\n    c: 2\n"])
    func badYAMLIsAnError(_ text: String) {
        #expect(throws: MessageDecodingError.self) { try WorkloadText.normalize(.string(text)) }
    }
}

