import Foundation
import GEdgeCore
import GEdgeKafka
import Logging
import ServiceLifecycle
import Synchronization

/// Request and reply with a cluster's agent over Kafka (the console's pod logs): the request
/// goes to `gedge.agent.<cluster>` with `reply_to` naming the gateway's replies topic; the
/// answer is matched by request ID. Every gateway replica reads every reply (a consumer group
/// of its own) and keeps those it waits for.
public final class AgentRPC: Service, Sendable {
    let producer: KafkaProducer
    let consumer: KafkaConsumer
    let repliesTopic: String
    let logger: Logger
    let codec = EnvelopeCodec()
    private let waiting = Mutex<[String: CheckedContinuation<JSONValue, any Error>]>([:])

    public init(producer: KafkaProducer, consumer: KafkaConsumer, repliesTopic: String = Topics.gatewayReplies, logger: Logger) {
        self.producer = producer
        self.consumer = consumer
        self.repliesTopic = repliesTopic
        self.logger = logger
    }

    public struct Timeout: Error, CustomStringConvertible {
        public var cluster: String
        public var description: String { "the agent of cluster '\(cluster)' did not answer in time" }
    }

    public struct Refused: Error, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    /// Sends `msg` (with `request_id` and `reply_to` added) and waits for the answer.
    public func call(cluster: String, hcode: HCode, msg: [String: JSONValue], timeout: Duration = .seconds(5)) async throws -> JSONValue {
        let id = "gw-" + RequestID.make()
        var body = msg
        body["request_id"] = .string(id)
        body["reply_to"] = .string(repliesTopic)
        let env = Envelope(source: .cluster("gateway"), target: .cluster(cluster), hcode: hcode, lcode: .request, msg: .object(body))
        let timer = Task {
            try await Task.sleep(for: timeout)
            self.finish(id, .failure(Timeout(cluster: cluster)))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { cont in
            waiting.withLock { $0[id] = cont }
            Task {
                do { _ = try await self.producer.send(KafkaRecord(topic: Topics.agentCommands(cluster: cluster), key: id, value: self.codec.encode(env))) } catch {
                    self.finish(id, .failure(error))
                }
            }
        }
    }

    func finish(_ id: String, _ result: Result<JSONValue, any Error>) {
        guard let cont = waiting.withLock({ $0.removeValue(forKey: id) }) else { return }
        cont.resume(with: result)
    }

    public func run() async throws {
        await withTaskCancellationOrGracefulShutdownHandler {
            for await message in consumer {
                guard let env = try? codec.decode(message), env.lcode == .reply, let id = env.msg["request_id"]?.stringValue else { continue }
                if env.hcode == .error {
                    finish(id, .failure(Refused(reason: env.msg["reason"]?.stringValue ?? "refused")))
                } else {
                    finish(id, .success(env.msg))
                }
            }
        } onCancelOrGracefulShutdown: {
            self.consumer.stopPolling()
        }
        try await consumer.close()
        for cont in waiting.withLock({ d in defer { d.removeAll() }; return Array(d.values) }) { cont.resume(throwing: CancellationError()) }
    }
}
