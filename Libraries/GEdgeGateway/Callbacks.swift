import Foundation
import GEdgeCore
import GEdgeKafka
import GEdgeOutbox
import GEdgePostgres
import Logging
import ServiceLifecycle

/// Reads end states from the results topic and records the callbacks owed, once per
/// request, before storing the offsets: a crash replays the topic, never loses a callback.
public struct CallbackRecorder: Service {
    let consumer: KafkaConsumer
    let pool: PostgresPool
    let logger: Logger
    let codec = EnvelopeCodec()
    let wake: Wakeup
    /// `gateway.callback.allow.private`: a producer on Kafka names its callback without the
    /// gateway's check, so the check is made again before anything is owed.
    let allowPrivate: Bool
    let progress: ConsumerProgress

    public init(consumer: KafkaConsumer, pool: PostgresPool, wake: Wakeup, allowPrivate: Bool = false, logger: Logger,
                progress: ConsumerProgress = .shared) {
        self.progress = progress
        self.consumer = consumer
        self.pool = pool
        self.wake = wake
        self.allowPrivate = allowPrivate
        self.logger = logger
    }

    public func run() async throws {
        await withTaskCancellationOrGracefulShutdownHandler {
            while true {
                let batch = await consumer.nextBatch(max: 200)
                if batch.isEmpty { break }
                var owed: [(String, String, JSONValue)] = []
                for m in batch {
                    guard let env = try? codec.decode(m), env.hcode == .scheduleRequest, env.lcode == .reply,
                          let id = env.msg["request_id"]?.stringValue, let raw = env.msg["callback_url"]?.stringValue
                    else { continue }
                    let url: String
                    do { url = try CallbackURL.check(raw, allowPrivate: allowPrivate) } catch {
                        logger.warning("callback refused", metadata: [LogKeys.requestID: .string(id), LogKeys.error: "\(error)"])
                        continue
                    }
                    owed.append((id, url, env.msg))
                }
                if !owed.isEmpty {
                    // One statement for the batch; PostgreSQL down holds it (retrying) and a
                    // shutdown meanwhile stores nothing, so the next owner reads it again.
                    let outcome = await Retry.run("recording callbacks", consumer: "gateway.callbacks", logger: logger, progress: progress) {
                        let rows: JSONValue = .array(owed.map { .object(["request_id": .string($0.0), "url": .string($0.1), "payload": $0.2]) })
                        try await pool.execute(
                            """
                            INSERT INTO callback_deliveries (request_id, url, payload)
                            SELECT DISTINCT ON (request_id) request_id, url, payload
                            FROM jsonb_to_recordset($1::jsonb) AS x(request_id text, url text, payload jsonb)
                            ON CONFLICT (request_id) DO NOTHING
                            """,
                            [.json(rows)])
                    }
                    switch outcome {
                    case .done: wake.signal()
                    case .stopped: break
                    case .permanent(let error):
                        // A result the database refuses (it is the scheduler's, already checked):
                        // logged, and the partition goes on.
                        logger.error("callbacks refused by the database; skipped", metadata: [LogKeys.error: "\(error)", "count": "\(owed.count)"])
                    }
                    if case .stopped = outcome { break }
                }
                for m in batch { try? consumer.storeOffset(m) }
            }
        } onCancelOrGracefulShutdown: {
            consumer.stopPolling()
        }
        try await consumer.close()
    }
}

