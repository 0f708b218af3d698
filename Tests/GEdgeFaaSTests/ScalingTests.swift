import Foundation
import GEdgeCore
import Testing

@testable import GEdgeFaaS

func object(_ yaml: String) throws -> ScaledObject {
    try #require(try ScaledObject.parseAll(yaml, defaultQueue: "motion").first)
}

let basic = """
    apiVersion: keda.sh/v1alpha1
    kind: ScaledObject
    metadata: {name: f, namespace: fn}
    spec:
      scaleTargetRef: {name: worker}
      pollingInterval: 5
      cooldownPeriod: 60
      maxReplicaCount: 10
      triggers:
      - type: rabbitmq
        metadata: {host: "amqp://127.0.0.1", queueName: jobs, mode: QueueLength, value: "10", activationValue: "2"}
    """

@Suite struct ScaledObjectTests {
    /// The FaaS seed's object works as it stands (its host aside), with KEDA's defaults.
    @Test func theSeedObjectParses() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/faas/darknet-scaledobject.yaml")
        let o = try #require(try ScaledObject.parseAll(String(contentsOf: url, encoding: .utf8), defaultQueue: "motion").first)
        #expect(o.name == "darknet-detail-detection-scaling" && o.namespace == "detail-detection")
        #expect(o.target.name == "darknet-detail-detection-model" && o.target.kind == "Deployment")
        #expect(o.pollingInterval == 10 && o.cooldownPeriod == 100 && o.minReplicaCount == 0 && o.maxReplicaCount == 1)
        #expect(o.triggers.first?.value == 500 && o.triggers.first?.mode == .queueLength && o.triggers.first?.queueName == "motion")
        #expect(o.scaleDown.stabilizationWindowSeconds == 10)
        #expect(o.scaleDown.policies == [.init(type: .percent, value: 100, periodSeconds: 10)])
        #expect(o.scaleUp == .defaultUp)
        #expect(o.notes.count == 3)
    }

    @Test func kedaDefaults() throws {
        let o = try object("""
            apiVersion: keda.sh/v1alpha1
            kind: ScaledObject
            metadata: {name: f}
            spec:
              scaleTargetRef: {name: w}
              triggers: [{type: rabbitmq, metadata: {host: "amqp://h", queueName: q}}]
            """)
        #expect(o.namespace == "default" && o.pollingInterval == 30 && o.cooldownPeriod == 300)
        #expect(o.minReplicaCount == 0 && o.maxReplicaCount == 100 && o.triggers[0].value == 20 && o.triggers[0].activationValue == 0)
        #expect(o.scaleDown == .defaultDown && o.fallback == nil)
    }

    @Test(arguments: [
        ("spec: {scaleTargetRef: {name: w}, triggers: [{type: kafka, metadata: {}}]}", "spec.triggers[0].type"),
        ("spec: {scaleTargetRef: {name: w}, triggers: []}", "spec.triggers"),
        ("spec: {triggers: [{type: rabbitmq, metadata: {host: h, queueName: q}}]}", "spec.scaleTargetRef"),
        ("spec: {scaleTargetRef: {name: w}, minReplicaCount: 5, maxReplicaCount: 2, triggers: [{type: rabbitmq, metadata: {host: h, queueName: q}}]}", "spec.maxReplicaCount"),
        ("spec: {scaleTargetRef: {name: w}, triggers: [{type: rabbitmq, metadata: {host: 'amqp://h', queueName: q, mode: Bytes, value: '5'}}]}", "spec.triggers[0].metadata.mode"),
        ("spec: {scaleTargetRef: {name: w}, triggers: [{type: rabbitmq, metadata: {queueName: q}}]}", "spec.triggers[0].metadata.host"),
        ("spec: {scaleTargetRef: {name: w}, triggers: [{type: rabbitmq, metadata: {host: 'amqp://h', queueName: q, mode: QueueLength, value: '0'}}]}", "spec.triggers[0].metadata.value"),
        ("spec: {scaleTargetRef: {name: w}, triggers: [{type: rabbitmq, metadata: {host: 'amqp://b:5672/', protocol: http, queueName: q}}]}", "spec.triggers[0].metadata.host"),
        ("spec: {scaleTargetRef: {name: w}, triggers: [{type: rabbitmq, metadata: {host: 'http://b:15672', protocol: amqp, queueName: q}}]}", "spec.triggers[0].metadata.host"),
    ])
    func invalidObjectsNameTheField(spec: String, field: String) {
        do {
            _ = try ScaledObject.parseAll("apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: f}\n" + spec)
            Issue.record("accepted")
        } catch {
            #expect(error.field == field, "\(error)")
        }
    }
}

@Suite struct ScalingEngineTests {
    let t0 = Date(timeIntervalSince1970: 1_000_000)
    func at(_ s: Double) -> Date { t0.addingTimeInterval(s) }
    func q(_ n: Double, unacked: Double = 0) -> [QueueReading?] { [QueueReading(messages: n, unacknowledged: unacked)] }

    @Test func activationNeedsMoreThanActivationValue() throws {
        var e = ScalingEngine(object: try object(basic))
        #expect(e.decide(now: at(0), current: 0, readings: q(2)).replicas == 0)   // 2 is not above 2
        let d = e.decide(now: at(1), current: 0, readings: q(3))
        #expect(d.replicas == 1 && d.reason.hasPrefix("activated"))
    }

    /// 1 → N as ceil(queue / value) within the bounds; the default scale-up allows +4 pods
    /// or +100 % per 15 s, whichever is more.
    @Test func scalesOutAsCeilQueueOverValue() throws {
        var e = ScalingEngine(object: try object(basic))
        _ = e.decide(now: at(0), current: 0, readings: q(45))
        // The period began at 0 replicas (the activation is in it): 0 + 4 pods.
        #expect(e.decide(now: at(1), current: 1, readings: q(45)).replicas == 4)
        var f = ScalingEngine(object: try object(basic))
        #expect(f.decide(now: at(0), current: 2, readings: q(45)).replicas == 5)  // ceil(45/10)
        // The period began at 2: max(2 + 4 pods, 2 + 100 %) = 6.
        #expect(f.decide(now: at(1), current: 5, readings: q(500)).replicas == 6)
        // A new period: max(6 + 4, 6 + 100 %) = 12, bounded by maxReplicaCount.
        #expect(f.decide(now: at(20), current: 6, readings: q(500)).replicas == 10)
    }

    @Test func withinToleranceNothingChanges() throws {
        var e = ScalingEngine(object: try object(basic))
        let d = e.decide(now: at(0), current: 4, readings: q(42))  // ratio 1.05
        #expect(d.replicas == 4 && d.reason == "within tolerance")
    }

    @Test func unacknowledgedMessagesKeepItActive() throws {
        var e = ScalingEngine(object: try object(basic))
        _ = e.decide(now: at(0), current: 1, readings: q(5))
        // Nothing ready, but 3 delivered and not acked: still active, no scale to zero.
        let d = e.decide(now: at(100), current: 1, readings: q(0, unacked: 3))
        #expect(d.replicas == 1 && d.active)
        #expect(e.decide(now: at(159), current: 1, readings: q(0)).replicas == 1)
        let z = e.decide(now: at(161), current: 1, readings: q(0))
        #expect(z.replicas == 0 && z.reason.contains("cooldownPeriod"))
    }

    /// N → 0 only after cooldownPeriod without messages; until then the HPA rules hold.
    @Test func scaleToZeroAfterCooldown() throws {
        var e = ScalingEngine(object: try object(basic))
        _ = e.decide(now: at(0), current: 3, readings: q(30))
        // Empty now: the scale-down window (300 s by default) keeps 3.
        #expect(e.decide(now: at(10), current: 3, readings: q(0)).replicas == 3)
        #expect(e.decide(now: at(59), current: 3, readings: q(0)).replicas == 3)
        #expect(e.decide(now: at(60), current: 3, readings: q(0)).replicas == 0)
    }

    /// The HPA's stabilization and rate policies with the seed's scale-down behaviour.
    @Test func scaleDownWindowAndPercentPolicy() throws {
        var o = try object(basic)
        o.cooldownPeriod = 10_000
        o.scaleDown = .init(stabilizationWindowSeconds: 10, policies: [.init(type: .pods, value: 2, periodSeconds: 10)], selectPolicy: .max)
        var e = ScalingEngine(object: o)
        #expect(e.decide(now: at(0), current: 8, readings: q(80)).replicas == 8)
        #expect(e.decide(now: at(5), current: 8, readings: q(10)).replicas == 8)    // window: 8 recommended 5 s ago
        #expect(e.decide(now: at(11), current: 8, readings: q(10)).replicas == 6)   // down to 1 wanted, 2 pods per 10 s
        #expect(e.decide(now: at(12), current: 6, readings: q(10)).replicas == 6)   // the period's 2 are spent
        #expect(e.decide(now: at(22), current: 6, readings: q(10)).replicas == 4)
    }

    @Test func selectPolicyDisabledHoldsThatDirection() throws {
        var o = try object(basic)
        o.scaleUp.selectPolicy = .disabled
        var e = ScalingEngine(object: o)
        #expect(e.decide(now: at(0), current: 1, readings: q(100)).replicas == 1)
    }

    @Test func maxReplicaCountBounds() throws {
        var e = ScalingEngine(object: try object(basic))
        _ = e.decide(now: at(0), current: 8, readings: q(80))
        #expect(e.decide(now: at(30), current: 8, readings: q(10_000)).replicas == 10)
    }

    @Test func fallbackAfterRepeatedFailures() throws {
        var o = try object(basic)
        o.fallback = (failureThreshold: 3, replicas: 4)
        var e = ScalingEngine(object: o)
        #expect(e.decide(now: at(0), current: 2, readings: [nil]).replicas == 2)
        #expect(e.decide(now: at(1), current: 2, readings: [nil]).replicas == 2)
        #expect(e.decide(now: at(2), current: 2, readings: [nil]).replicas == 4)
        #expect(e.decide(now: at(3), current: 4, readings: q(20)).replicas == 2)
    }

    @Test func messageRateMode() throws {
        var o = try object(basic)
        o.triggers[0].mode = .messageRate
        var e = ScalingEngine(object: o)
        let d = e.decide(now: at(0), current: 2, readings: [QueueReading(messages: 0, publishRate: 55)])
        #expect(d.replicas == 6)
    }
}
