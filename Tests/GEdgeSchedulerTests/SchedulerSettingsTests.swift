import GEdgeCore
import GEdgeScheduler
import Testing

@Suite struct SchedulerSettingsTests {
    /// A restarted replica (pid 1 again in a container, or the same configured name) is a
    /// new lease owner, never its predecessor.
    @Test func instanceNamesAreUniquePerStart() throws {
        let c = try ConfigReader(commandLine: ["--scheduler-instance", "replica-0", "--scheduler-producers", "trusted"], environment: [:])
        let a = try SchedulerSettings(c), b = try SchedulerSettings(c)
        #expect(a.instance.hasPrefix("replica-0-") && b.instance.hasPrefix("replica-0-") && a.instance != b.instance)
    }

    /// Signed producers are the default: without the secret the scheduler does not start.
    @Test func signedProducersNeedTheSecret() throws {
        #expect(throws: ConfigurationError.self) { try SchedulerSettings(try ConfigReader(commandLine: [], environment: [:])) }
        #expect(throws: ConfigurationError.self) {
            try SchedulerSettings(try ConfigReader(commandLine: ["--producers-secret", "short"], environment: [:]))
        }
        let ok = try SchedulerSettings(try ConfigReader(commandLine: ["--producers-secret", String(repeating: "k", count: 32)], environment: [:]))
        #expect(ok.producers != nil)
        #expect(try SchedulerSettings(try ConfigReader(commandLine: ["--scheduler-producers", "trusted"], environment: [:])).producers == nil)
        #expect(throws: ConfigurationError.self) { try SchedulerSettings(try ConfigReader(commandLine: ["--scheduler-producers", "open"], environment: [:])) }
    }
}
