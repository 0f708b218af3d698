import Foundation
import GEdgeCore
import Testing

@testable import GEdgeFaaS

/// KEDA's rabbitmq scaler as its documentation writes the objects (keda.sh, "RabbitMQ
/// Queue" scaler page, and TriggerAuthentication's), read as KEDA's scaler reads them.
@Suite struct KEDAScaledObjectTests {
    func parse(_ yaml: String) throws(MessageDecodingError) -> [ScaledObject] { try ScaledObject.parseAll(yaml) }

    func refusal(_ yaml: String) -> MessageDecodingError? {
        do { _ = try parse(yaml); return nil } catch { return error }
    }

    static func object(_ metadata: String, auth: String? = nil, kind: String? = nil) -> String {
        """
        apiVersion: keda.sh/v1alpha1
        kind: ScaledObject
        metadata: {name: rabbitmq-scaledobject, namespace: default}
        spec:
          scaleTargetRef: {name: rabbitmq-deployment}
          triggers:
          - type: rabbitmq
            metadata: {\(metadata)}
        """ + (auth.map { "\n    authenticationRef: {name: \($0)\(kind.map { ", kind: \($0)" } ?? "")}" } ?? "")
    }

    /// The documentation's example: a Secret, a TriggerAuthentication reading its `host`, and
    /// the ScaledObject, in one file.
    @Test func theDocumentationsThreeDocumentFileLoads() throws {
        let file = """
            apiVersion: v1
            kind: Secret
            metadata:
              name: keda-rabbitmq-secret
            data:
              host: \(Data("amqp://user:PASSWORD@rabbitmq.default.svc.cluster.local:5672/vhost".utf8).base64EncodedString())
            ---
            apiVersion: keda.sh/v1alpha1
            kind: TriggerAuthentication
            metadata:
              name: keda-trigger-auth-rabbitmq-conn
              namespace: default
            spec:
              secretTargetRef:
                - parameter: host
                  name: keda-rabbitmq-secret
                  key: host
            ---
            apiVersion: keda.sh/v1alpha1
            kind: ScaledObject
            metadata:
              name: rabbitmq-scaledobject
              namespace: default
            spec:
              scaleTargetRef:
                name: rabbitmq-deployment
              triggers:
              - type: rabbitmq
                metadata:
                  protocol: amqp
                  queueName: testqueue
                  mode: QueueLength
                  value: "20"
                authenticationRef:
                  name: keda-trigger-auth-rabbitmq-conn
            """
        let set = try ScaledObject.parseSet(try YAMLText.documents(file, path: ""))
        #expect(set.count == 1)
        let t = set[0].object.triggers[0]
        #expect(t.resolvedHost() == "amqp://user:PASSWORD@rabbitmq.default.svc.cluster.local:5672/vhost")
        #expect(t.protocol == "amqp" && t.mode == .queueLength && t.value == 20 && t.queueName == "testqueue")
        // Stored with its authentication documents, and read back the same.
        #expect(set[0].definition.arrayValue?.count == 3)
        #expect(try ScaledObject.decodeDefinition(set[0].definition) == set[0].object)
    }

    @Test func clusterTriggerAuthenticationAndEnvironment() throws {
        let file = """
            apiVersion: v1
            kind: Secret
            metadata: {name: rmq, namespace: keda}
            stringData: {password: s3cret}
            ---
            apiVersion: keda.sh/v1alpha1
            kind: ClusterTriggerAuthentication
            metadata: {name: rmq-cluster}
            spec:
              secretTargetRef: [{parameter: password, name: rmq, key: password}]
              env: [{parameter: username, name: RMQ_USER}, {parameter: host, name: RMQ_HOST, containerName: worker}]
            ---
            \(Self.object("protocol: http, queueName: q, mode: MessageRate, value: '5', activationValue: '1'", auth: "rmq-cluster", kind: "ClusterTriggerAuthentication"))
            """
        let t = try #require(try parse(file).first?.triggers.first)
        #expect(t.host == .environment("RMQ_HOST") && t.mode == .messageRate && t.activationValue == 1)
        let env = ["RMQ_HOST": "http://rabbit:15672/", "RMQ_USER": "keda"]
        #expect(t.resolvedHost(env) == "http://keda:s3cret@rabbit:15672/")
        #expect(t.resolvedHost([:]) == nil, "an unset variable leaves the trigger unreadable, not silently anonymous")
    }

    @Test func everyRabbitMQParameter() throws {
        let t = try #require(try parse(Self.object(
            "hostFromEnv: RABBITMQ_HOST, protocol: http, mode: QueueLength, value: '100.50', activationValue: '10.5', queueName: '^orders-.*', vhostName: shop, useRegex: 'true', operation: max, excludeUnacknowledged: 'true', unsafeSsl: 'true', pageSize: '250', timeout: '1500'"
        )).first?.triggers.first)
        #expect(t.host == .environment("RABBITMQ_HOST") && t.protocol == "http" && t.value == 100.5 && t.activationValue == 10.5)
        #expect(t.vhostName == "shop" && t.useRegex && t.operation == .max && t.excludeUnacknowledged && t.unsafeSsl && t.pageSize == 250)
        #expect(t.timeout == .milliseconds(1500))
        // The legacy queueLength alone.
        let legacy = try #require(try parse(Self.object("host: 'amqp://h/', queueName: q, queueLength: '7'")).first?.triggers.first)
        #expect(legacy.mode == .queueLength && legacy.value == 7)
        // Nothing given: KEDA's default, QueueLength 20.
        let plain = try #require(try parse(Self.object("host: 'amqp://h/', queueName: q")).first?.triggers.first)
        #expect(plain.mode == .queueLength && plain.value == 20 && plain.operation == .sum && plain.pageSize == 100)
    }

    @Test(arguments: [
        // KEDA's own validation messages and fields.
        ("host: 'amqp://h/', queueName: q, queueLength: '5', mode: QueueLength, value: '5'", "spec.triggers[0].metadata.queueLength"),
        ("host: 'amqp://h/', queueName: q, mode: QueueLength", "spec.triggers[0].metadata.value"),
        ("host: 'amqp://h/', queueName: q, value: '5'", "spec.triggers[0].metadata.mode"),
        ("host: 'amqp://h/', queueName: q, mode: MessageRate, value: '5'", "spec.triggers[0].metadata.mode"),
        ("host: 'amqp://h/', queueName: q, useRegex: 'true'", "spec.triggers[0].metadata.useRegex"),
        ("host: 'amqp://h/', queueName: q, excludeUnacknowledged: 'true'", "spec.triggers[0].metadata.excludeUnacknowledged"),
        ("host: 'amqp://h/', queueName: q, timeout: '1000'", "spec.triggers[0].metadata.timeout"),
        ("host: 'http://h/', queueName: q, operation: median", "spec.triggers[0].metadata.operation"),
        ("host: 'http://h/', queueName: q, pageSize: '0'", "spec.triggers[0].metadata.pageSize"),
        ("host: 'ftp://h/', queueName: q", "spec.triggers[0].metadata.host"),
        ("host: 'amqp://h/', queueName: q, protocol: grpc", "spec.triggers[0].metadata.protocol"),
        ("host: 'http://h/', queueName: q, mode: DeliverGetRate, value: '5'", "spec.triggers[0].metadata.mode"),
        ("host: 'amqp://h/', queueName: q, useRegex: maybe", "spec.triggers[0].metadata.useRegex"),
        // KEDA fields the suite does not act on, refused by name.
        ("host: 'amqp://h/', queueName: q, usernameFromEnv: U", "spec.triggers[0].metadata.usernameFromEnv"),
        ("host: 'amqp://h/', queueName: q, includeUnacked: 'true'", "spec.triggers[0].metadata.includeUnacked"),
        ("host: 'amqp://h/', queueName: q, colour: blue", "spec.triggers[0].metadata.colour"),
    ])
    func triggerRefusalsNameTheField(metadata: String, field: String) {
        let e = refusal(Self.object(metadata))
        #expect(e?.field == field, "\(String(describing: e))")
        #expect(e?.reason.isEmpty == false)
    }

    @Test func objectLevelFieldsKEDAHasAreRefusedByName() {
        let base = Self.object("host: 'amqp://h/', queueName: q")
        for (insert, field) in [
            ("  initialCooldownPeriod: 30\n", "spec.initialCooldownPeriod"),
            ("  advanced: {scalingModifiers: {formula: x}}\n", "spec.advanced.scalingModifiers"),
            ("  fallback: {failureThreshold: 3, replicas: 2, behavior: static}\n", "spec.fallback.behavior"),
            ("  paused: true\n", "spec.paused"),
        ] {
            let yaml = base.replacingOccurrences(of: "spec:\n", with: "spec:\n" + insert)
            let e = refusal(yaml)
            #expect(e?.field == field && e?.code == .unknownField, "\(insert): \(String(describing: e))")
        }
        #expect(refusal(base.replacingOccurrences(of: "type: rabbitmq", with: "type: rabbitmq\n    metricType: Value"))?.field == "spec.triggers[0].metricType")
    }

    @Test func authenticationMistakesNameTheField() {
        func withAuth(_ auth: String, ref: String = "a") -> MessageDecodingError? {
            refusal(auth + "\n---\n" + Self.object("protocol: amqp, queueName: q", auth: ref))
        }
        let ta = "apiVersion: keda.sh/v1alpha1\nkind: TriggerAuthentication\nmetadata: {name: a, namespace: default}\nspec:\n"
        #expect(withAuth(ta + "  podIdentity: {provider: azure-workload}")?.field == "[0].spec.podIdentity")
        #expect(withAuth(ta + "  hashiCorpVault: {address: x}")?.field == "[0].spec.hashiCorpVault")
        #expect(withAuth(ta + "  secretTargetRef: [{parameter: host, name: nope, key: host}]")?.field == "[0].spec.secretTargetRef[0].name")
        #expect(withAuth(ta + "  secretTargetRef: [{parameter: tls, name: s, key: k}]")?.field == "[0].spec.secretTargetRef[0].parameter")
        #expect(withAuth(ta + "  env: [{parameter: colour, name: X}]")?.field == "[0].spec.env[0].parameter")
        #expect(withAuth(ta + "  env: [{parameter: host, name: H}]", ref: "b")?.field == "[1].spec.triggers[0].authenticationRef.name")
        let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {host: '!!notbase64'}\n---\n"
        #expect(withAuth(secret + ta + "  secretTargetRef: [{parameter: host, name: s, key: host}]")?.field == "[0].data.host")
        #expect(refusal("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n" + Self.object("host: 'amqp://h/', queueName: q"))?.field == "[0].kind")
        // A TriggerAuthentication in another namespace is not the ScaledObject's.
        let elsewhere = ta.replacingOccurrences(of: "namespace: default", with: "namespace: other") + "  env: [{parameter: host, name: H}]"
        #expect(withAuth(elsewhere)?.field == "[1].spec.triggers[0].authenticationRef.name")
    }

    /// MessageRate activates on its rate or on waiting messages, as KEDA's
    /// GetMetricsAndActivity does.
    @Test func messageRateActivatesOnRateOrBacklog() throws {
        let o = try #require(try parse(Self.object("host: 'http://h/', queueName: q, mode: MessageRate, value: '10', activationValue: '2'")).first)
        var engine = ScalingEngine(object: o)
        let now = Date()
        #expect(engine.decide(now: now, current: 0, readings: [QueueReading(messages: 0, publishRate: 1)]).replicas == 0)
        #expect(engine.decide(now: now, current: 0, readings: [QueueReading(messages: 0, publishRate: 3)]).replicas == 1)
        var backlog = ScalingEngine(object: o)
        #expect(backlog.decide(now: now, current: 0, readings: [QueueReading(messages: 5, publishRate: 0)]).replicas == 1)
        // 1 -> ceil(35 / 10) on the rate.
        #expect(engine.decide(now: now.addingTimeInterval(1), current: 1, readings: [QueueReading(messages: 0, publishRate: 35)]).replicas == 4)
    }
}
