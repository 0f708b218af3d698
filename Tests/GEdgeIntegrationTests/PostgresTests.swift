import Foundation
import GEdgeCore
import GEdgePostgres
import GEdgeScheduler
import Testing

/// Against the local PostgreSQL. Each test works in a schema of its own.
@Suite("PostgreSQL", .enabled(if: TestEnv.integration), .serialized, .timeLimit(.minutes(2)))
struct PostgresTests {
    let logger = TestEnv.logger

    /// A pool whose connections use a fresh schema.
    func pool(size: Int = 4) async throws -> (PostgresPool, String) {
        let schema = TestEnv.unique("t").replacingOccurrences(of: "-", with: "_")
        let admin = PostgresPool(configuration: PostgresConfiguration(url: TestEnv.postgresURL, poolSize: 1), logger: logger)
        try await admin.execute("CREATE SCHEMA \(schema)")
        admin.shutdown()
        let url = TestEnv.postgresURL + "?options=-csearch_path%3D\(schema)"
        return (PostgresPool(configuration: PostgresConfiguration(url: url, poolSize: size), logger: logger), schema)
    }

    @Test func typedRowsAndParameters() async throws {
        let (db, _) = try await pool()
        try await db.execute("CREATE TABLE t (id bigint, name text, ok boolean, at timestamptz, doc jsonb, ratio double precision, missing text)")
        let when = Date(timeIntervalSince1970: 1_790_000_000.25)
        try await db.execute(
            "INSERT INTO t VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)",
            [.int(42), .text("x'); DROP TABLE t; --"), .bool(true), .timestamp(when), .json(.object(["a": .array([.number(1)])])), .double(0.5), .null])
        let row = try #require(try await db.query("SELECT * FROM t").first)
        #expect(try row.decode("id", as: Int64.self) == 42)
        #expect(try row.decode("name", as: String.self) == "x'); DROP TABLE t; --", "parameters are never spliced into SQL")
        #expect(try row.decode("ok", as: Bool.self))
        #expect(abs(try row.decode("at", as: Date.self).timeIntervalSince(when)) < 0.000_01)
        #expect(try row.decode("doc", as: JSONValue.self) == .object(["a": .array([.number(1)])]))
        #expect(try row.decode("ratio", as: Double.self) == 0.5)
        #expect(try row.decodeOptional("missing", as: String.self) == nil)
        #expect(throws: PostgresError.self) { try row.decode("missing", as: String.self) }
        #expect(throws: PostgresError.self) { try row.decode("name", as: Int.self) }
        #expect(throws: PostgresError.self) { try row.decode("nope", as: Int.self) }
        db.shutdown()
    }

    @Test func transactionsRollBackOnError() async throws {
        let (db, _) = try await pool()
        try await db.execute("CREATE TABLE t (id int PRIMARY KEY)")
        struct Boom: Error {}
        await #expect(throws: Boom.self) {
            try await db.transaction { c in
                try await c.execute("INSERT INTO t VALUES (1)")
                throw Boom()
            }
        }
        // A server error inside the transaction rolls back what came before it too.
        do {
            try await db.transaction { c in
                try await c.execute("INSERT INTO t VALUES (2)")
                try await c.execute("INSERT INTO t VALUES (2)")
            }
            Issue.record("a duplicate key must fail")
        } catch let e as PostgresError {
            #expect(e.isUniqueViolation)
            #expect(e.sqlState == "23505")
        }
        #expect(try await db.query("SELECT count(*) AS n FROM t").first?.decode("n", as: Int.self) == 0)
        // And the connection is usable afterwards.
        try await db.transaction { c in try await c.execute("INSERT INTO t VALUES (3)") }
        #expect(try await db.query("SELECT count(*) AS n FROM t").first?.decode("n", as: Int.self) == 1)
        db.shutdown()
    }

    @Test func migrationsRunInOrderOnceAndRefuseEditedHistory() async throws {
        let (db, _) = try await pool()
        let migrations = [
            Migration(version: 1, name: "create", sql: "CREATE TABLE items (id int PRIMARY KEY);"),
            Migration(version: 2, name: "column", sql: "ALTER TABLE items ADD COLUMN name text; INSERT INTO items VALUES (1, 'a');"),
        ]
        let migrator = PostgresMigrator(pool: db, logger: logger)
        #expect(try await migrator.migrate(migrations) == [1, 2])
        #expect(try await migrator.migrate(migrations) == [], "a second run changes nothing")
        #expect(try await db.query("SELECT count(*) AS n FROM items").first?.decode("n", as: Int.self) == 1)
        #expect(try await db.query("SELECT version FROM gedge_schema_migrations ORDER BY version").map { try $0.decode("version", as: Int.self) } == [1, 2])

        var edited = migrations
        edited[1].sql += " -- changed"
        await #expect(throws: PostgresError.self) { try await migrator.migrate(edited) }

        // A failing migration leaves nothing of itself behind.
        let bad = migrations + [Migration(version: 3, name: "bad", sql: "CREATE TABLE half (id int); SELECT 1/0;")]
        await #expect(throws: PostgresError.self) { try await migrator.migrate(bad) }
        #expect(try await db.query("SELECT to_regclass('half') AS r").first?.decodeOptional("r", as: String.self) == nil)
        #expect(try await db.query("SELECT max(version) AS v FROM gedge_schema_migrations").first?.decode("v", as: Int.self) == 2)
        db.shutdown()
    }

    /// Migrators of one schema wait for each other; a migrator of another schema in the same
    /// database does not wait for them (each test, each deployment, migrates its own).
    @Test func migratorsWaitOnlyForTheirOwnSchema() async throws {
        let (a, schemaA) = try await pool(size: 2)
        let (b, _) = try await pool(size: 2)
        let migrations = [Migration(version: 1, name: "create", sql: "CREATE TABLE items (id int PRIMARY KEY);")]
        // Schema a's migration lock, held by a session of its own (another process's, as it
        // were: a session may take its own advisory lock again).
        let other = PostgresPool(configuration: PostgresConfiguration(url: TestEnv.postgresURL + "?options=-csearch_path%3D\(schemaA)", poolSize: 1), logger: logger)
        let holder = try await other.withConnection { c -> Int32 in
            try await c.execute("SELECT pg_advisory_lock(hashtextextended('gedge-migrations:' || coalesce(current_schema(), ''), 0))")
            return try await c.backendPID()
        }
        #expect(try await PostgresMigrator(pool: b, logger: logger).migrate(migrations) == [1])
        let waiting = Task { try await PostgresMigrator(pool: a, logger: logger).migrate(migrations) }
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await b.query("SELECT to_regclass('\(schemaA).items') AS r").first?.decodeOptional("r", as: String.self) == nil,
                "schema a's migrator waits for the lock")
        // Ending the holder's session frees the lock; a's migrator runs.
        _ = try await b.query("SELECT pg_terminate_backend($1)", [.int(Int64(holder))])
        #expect(try await waiting.value == [1])
        a.shutdown()
        b.shutdown()
        other.shutdown()
    }

    @Test func theSchedulersMigrationsApplyTwiceCleanly() async throws {
        let (db, _) = try await pool()
        let files = try Migration.load(directory: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Libraries/GEdgeScheduler/Migrations").standardized)
        #expect(!files.isEmpty)
        let migrator = PostgresMigrator(pool: db, logger: logger)
        #expect(try await migrator.migrate(files).count == files.count)
        #expect(try await migrator.migrate(files).isEmpty)
        db.shutdown()
    }

    /// Statements with parameters are prepared once per connection: a table changed under
    /// one (its result type with it) is prepared again, and past the cache's size
    /// statements still run, unprepared.
    @Test func preparedStatementsSurviveATableChangeAndAFullCache() async throws {
        let (db, _) = try await pool(size: 1)
        try await db.execute("CREATE TABLE p (id bigint, name text)")
        try await db.execute("INSERT INTO p VALUES ($1, $2)", [.int(1), .text("one")])
        let select = "SELECT * FROM p WHERE id = $1"
        #expect(try await db.query(select, [.int(1)])[0].decode("name", as: String.self) == "one")
        try await db.execute("ALTER TABLE p ADD COLUMN extra text DEFAULT 'x'")
        let row = try await db.query(select, [.int(1)])[0]
        #expect(try row.decode("extra", as: String.self) == "x")
        #expect(try await db.query(select, [.int(1)])[0].decode("extra", as: String.self) == "x")
        for i in 0..<300 {
            let r = try await db.query("SELECT $1::int + \(i) AS n", [.int(1)])
            #expect(try r[0].decode("n", as: Int.self) == 1 + i)
        }
        db.shutdown()
    }

    /// Run-time parameters from the configuration hold on every connection, quoted; a
    /// name that is not one is left out rather than sent.
    @Test func sessionSettingsApplyToEveryConnection() async throws {
        var c = PostgresConfiguration(url: TestEnv.postgresURL, poolSize: 2)
        c.settings = RequestQueue.plannerSettings + [("application_name", "it's gedge"), ("bad name; DROP TABLE x", "1")]
        let db = PostgresPool(configuration: c, logger: logger)
        @Sendable func check(_ conn: PostgresConnection) async throws {
            #expect(try await conn.query("SHOW enable_hashjoin")[0].decode("enable_hashjoin", as: String.self) == "off")
            #expect(try await conn.query("SHOW enable_bitmapscan")[0].decode("enable_bitmapscan", as: String.self) == "off")
            #expect(try await conn.query("SHOW application_name")[0].decode("application_name", as: String.self) == "it's gedge")
        }
        // Two at once: the second is a connection of its own.
        try await db.withConnection { (a: PostgresConnection) async throws -> Void in
            try await check(a)
            try await db.withConnection { (b: PostgresConnection) async throws -> Void in
                #expect(a !== b)
                try await check(b)
            }
        }
        db.shutdown()
    }

    @Test func aDroppedConnectionIsReestablished() async throws {
        let (db, _) = try await pool(size: 1)
        let pid = try await db.withConnection { try await $0.backendPID() }
        let killer = PostgresPool(configuration: PostgresConfiguration(url: TestEnv.postgresURL, poolSize: 1), logger: logger)
        try await killer.query("SELECT pg_terminate_backend($1)", [.int(Int64(pid))])
        try await Task.sleep(for: .milliseconds(200))

        // Without retry the caller learns the connection was lost, and that it may retry...
        do {
            _ = try await db.query("SELECT 1 AS one")
            Issue.record("the first statement on a killed connection must fail")
        } catch let e as PostgresError {
            #expect(e.code == .connectionLost || e.sqlState == "57P01", "\(e)")
            #expect(e.isRetriable)
        }
        // ...and the pool reconnects for the next one.
        #expect(try await db.query("SELECT 1 AS one").first?.decode("one", as: Int.self) == 1)
        let newPID = try await db.withConnection { try await $0.backendPID() }
        #expect(newPID != pid)

        // With retry, a read survives the loss transparently.
        try await killer.query("SELECT pg_terminate_backend($1)", [.int(Int64(newPID))])
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await db.query("SELECT 2 AS two", retryOnConnectionLoss: true).first?.decode("two", as: Int.self) == 2)
        killer.shutdown()
        db.shutdown()
    }

    @Test func batchedWritesAreAllOrNothing() async throws {
        let (db, _) = try await pool()
        try await db.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
        let rows: [[PostgresValue]] = (0..<2000).map { [.int($0), .text("v\($0)")] }
        let n = try await db.withConnection { try await $0.executeBatch("INSERT INTO t VALUES ($1, $2)", rows: rows) }
        #expect(n == 2000)
        #expect(try await db.query("SELECT count(*) AS n FROM t").first?.decode("n", as: Int.self) == 2000)

        let clash: [[PostgresValue]] = [[.int(5000), "a"], [.int(5001), "b"], [.int(7), "dup"], [.int(5002), "c"]]
        await #expect(throws: PostgresError.self) {
            try await db.withConnection { try await $0.executeBatch("INSERT INTO t VALUES ($1, $2)", rows: clash) }
        }
        #expect(try await db.query("SELECT count(*) AS n FROM t").first?.decode("n", as: Int.self) == 2000, "nothing of a failed batch stays")
        // The connection is back in normal mode.
        #expect(try await db.query("SELECT 1 AS one").first?.decode("one", as: Int.self) == 1)
        db.shutdown()
    }

    @Test func poolWaitsWhenAllConnectionsAreBusy() async throws {
        let (db, _) = try await pool(size: 2)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 { group.addTask { try await db.execute("SELECT pg_sleep(0.3)") } }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(550), "four 0.3 s statements on two connections take two rounds")
        db.shutdown()
    }

    @Test func connectionFailureIsAClearRetriableError() async throws {
        let db = PostgresPool(configuration: PostgresConfiguration(url: "postgres://gedge@127.0.0.1:1/gedge", connectTimeout: .seconds(1)), logger: logger)
        do {
            _ = try await db.query("SELECT 1")
            Issue.record("connecting to port 1 must fail")
        } catch let e as PostgresError {
            #expect(e.code == .connectionFailed)
            #expect(e.isRetriable)
            #expect(e.message.contains("127.0.0.1"))
        }
    }
}
