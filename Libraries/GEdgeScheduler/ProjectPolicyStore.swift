import GEdgeCore
import GEdgePlacement
import GEdgePostgres
import Synchronization

/// The projects' namespaces and policies in PostgreSQL (`project_namespaces`,
/// `project_policies`), cached for a few seconds. Shared by the gateway and the scheduler.
public final class ProjectPolicyStore: Sendable {
    let pool: PostgresPool
    let ttl: Duration
    private let cache = Mutex<(all: [String: ProjectPolicy], at: ContinuousClock.Instant?)>(([:], nil))

    public init(pool: PostgresPool, ttl: Duration = .seconds(3)) {
        self.pool = pool
        self.ttl = ttl
    }

    public enum BindError: Error, Sendable {
        case taken(namespace: String, owner: String)
        case system(String)
        case invalid(String)
    }

    /// The policy of a project (defaults where an admin set none).
    public func policy(project: String) async throws -> ProjectPolicy {
        let now = ContinuousClock.now
        if let hit = cache.withLock({ c -> ProjectPolicy?? in
            guard let at = c.at, now - at < ttl else { return nil }
            return .some(c.all[project])
        }) {
            return hit ?? ProjectPolicy()
        }
        let all = try await loadAll()
        cache.withLock { $0 = (all, now) }
        return all[project] ?? ProjectPolicy()
    }

    func loadAll() async throws -> [String: ProjectPolicy] {
        var out: [String: ProjectPolicy] = [:]
        for row in try await pool.query("SELECT namespace, project_name FROM project_namespaces", retryOnConnectionLoss: true) {
            out[try row.decode("project_name"), default: ProjectPolicy()].namespaces.insert(try row.decode("namespace"))
        }
        for row in try await pool.query("SELECT project_name, pod_security, array_to_json(kinds)::text AS kinds FROM project_policies", retryOnConnectionLoss: true) {
            let project: String = try row.decode("project_name")
            var p = out[project] ?? ProjectPolicy()
            p.podSecurity = ProjectPolicy.PodSecurity(rawValue: try row.decode("pod_security")) ?? .baseline
            if let text = try row.decodeOptional("kinds", as: String.self), case .array(let list) = try JSONValue.parse(Array(text.utf8)) {
                p.kinds = Set(list.compactMap(\.stringValue))
            }
            out[project] = p
        }
        return out
    }

    public func dropCache() { cache.withLock { $0.at = nil } }

    /// The policy as PostgreSQL has it now, read for this call: for a refusal, which must not
    /// come from a cache older than an admin's change (however recent the cache, the change
    /// may be more recent still: a namespace bound a moment before the request came).
    public func freshPolicy(project: String) async throws -> ProjectPolicy {
        let now = ContinuousClock.now
        let all = try await loadAll()
        cache.withLock { c in
            // Kept unless a load that began later was stored meanwhile.
            if c.at.map({ $0 <= now }) ?? true { c = (all, now) }
        }
        return all[project] ?? ProjectPolicy()
    }

    /// Binds namespaces to a project (all of them, with `replace`). A namespace another
    /// project holds, or a system one, is refused and nothing changes.
    public func bind(project: String, namespaces: [String], replace: Bool) async throws {
        for ns in namespaces {
            guard KubeNames.isDNSLabel(ns) else { throw BindError.invalid(ns) }
            if Admission.isSystemNamespace(ns) { throw BindError.system(ns) }
        }
        try await pool.transaction { c in
            for ns in namespaces.sorted() {
                try await c.execute("SELECT pg_advisory_xact_lock(hashtext('gedge-namespace:' || $1))", [.text(ns)])
                let owner = try await c.query("SELECT project_name FROM project_namespaces WHERE namespace = $1", [.text(ns)])
                if let o = owner.first, let name: String = try? o.decode("project_name"), name != project {
                    throw BindError.taken(namespace: ns, owner: name)
                }
            }
            if replace {
                try await c.execute("DELETE FROM project_namespaces WHERE project_name = $1 AND NOT (namespace = ANY($2::text[]))",
                                    [.text(project), .textArray(namespaces)])
            }
            for ns in namespaces {
                try await c.execute("INSERT INTO project_namespaces (namespace, project_name) VALUES ($1, $2) ON CONFLICT DO NOTHING", [.text(ns), .text(project)])
            }
        }
        dropCache()
    }

    /// The namespaces bound to a project, sorted.
    public func namespaces(project: String) async throws -> [String] {
        try await pool.query("SELECT namespace FROM project_namespaces WHERE project_name = $1 ORDER BY namespace", [.text(project)], retryOnConnectionLoss: true)
            .map { try $0.decode("namespace") }
    }

    /// Sets a project's Pod Security level and allowed kinds (nil: the defaults).
    public func setPolicy(project: String, podSecurity: ProjectPolicy.PodSecurity, kinds: [String]?) async throws {
        try await pool.execute(
            """
            INSERT INTO project_policies (project_name, pod_security, kinds) VALUES ($1, $2, $3::text[])
            ON CONFLICT (project_name) DO UPDATE SET pod_security = EXCLUDED.pod_security, kinds = EXCLUDED.kinds, updated_at = clock_timestamp()
            """,
            [.text(project), .text(podSecurity.rawValue), kinds.map(PostgresValue.textArray) ?? .null])
        dropCache()
    }

}
