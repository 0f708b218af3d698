import Foundation
import GEdgeCore
import HeapModule

/// Where a request comes from, for latency ranking and `preferred: local|neighbor`.
/// A pod source is resolved to its node (hcode 530) before the policy runs.
public struct PlacementSource: Sendable, Hashable {
    public var cluster: String?
    public var node: String?
    public init(cluster: String? = nil, node: String? = nil) {
        self.cluster = cluster
        self.node = node
    }
}

/// One cluster's share of a placement. A `node` pins the replicas to that node; without it
/// the cluster's own scheduler spreads them.
public struct PlacementPart: Sendable, Hashable {
    public var cluster: String
    public var node: String?
    public var replicas: Int
    public init(cluster: String, node: String?, replicas: Int) {
        self.cluster = cluster
        self.node = node
        self.replicas = replicas
    }

    public var json: JSONValue {
        var f: [String: JSONValue] = ["cluster": .string(cluster), "replicas": .number(Double(replicas))]
        if let node { f["node"] = .string(node) }
        return .object(f)
    }

    public static func decode(_ v: JSONValue) throws(MessageDecodingError) -> PlacementPart {
        let r = try FieldReader(v, path: "placement")
        return PlacementPart(cluster: try r.string("cluster"), node: try r.optionalString("node"), replicas: try r.optionalInt("replicas") ?? 1)
    }
}

/// A complete placement: every part must be applied for the request to complete.
public struct PlacementPlan: Sendable, Hashable {
    public var parts: [PlacementPart]
    public var score: Double
    public init(parts: [PlacementPart], score: Double = 0) {
        self.parts = parts
        self.score = score
    }

    public var json: JSONValue { .object(["parts": .array(parts.map(\.json)), "score": .number(score)]) }

    public static func decode(_ v: JSONValue) throws(MessageDecodingError) -> PlacementPlan {
        let r = try FieldReader(v, path: "plan")
        var parts: [PlacementPart] = []
        for p in try r.optionalList("parts") ?? [] { parts.append(try PlacementPart.decode(p)) }
        return PlacementPlan(parts: parts, score: try r.optionalNumber("score") ?? 0)
    }

    public var summary: String {
        parts.map { p in "\(p.cluster)" + (p.node.map { "/\($0)" } ?? "") + (p.replicas != 1 ? "×\(p.replicas)" : "") }.joined(separator: ", ")
    }
}

public enum PlacementDecision: Sendable, Hashable {
    /// Candidate plans, best first; the scheduler tries them in order until one applies.
    case placed([PlacementPlan])
    /// Nothing fits now; the request waits and is tried again.
    case unschedulable(String)
    /// The request can never be placed as asked (a foreign cluster, a malformed selection).
    case rejected(String)
}

/// What a policy is asked.
public struct PlacementInput: Sendable {
    public var policy: SchedulingPolicy
    public var requirements: WorkloadRequirements
    /// The request's `parameters`: `select_clusters`, `mode`, `select_cluster`, `select_node`, `clusters`, `weights`, ...
    public var parameters: JSONValue
    public var source: PlacementSource
    /// The clusters of the requester's project; nil means no restriction.
    public var allowedClusters: Set<String>?
    public var maxCandidates: Int

    public init(
        policy: SchedulingPolicy, requirements: WorkloadRequirements, parameters: JSONValue = .object([:]),
        source: PlacementSource = PlacementSource(), allowedClusters: Set<String>? = nil, maxCandidates: Int = 3
    ) {
        self.policy = policy
        self.requirements = requirements
        self.parameters = parameters
        self.source = source
        self.allowedClusters = allowedClusters
        self.maxCandidates = max(1, maxCandidates)
    }
}

/// The placement policies. Pure functions of the request and the clusters' reported state.
public enum Placer {
    /// With `pruning` (the default), the policies that rank across clusters (low latency,
    /// most requested, most allocated) look at clusters best first and stop once no cluster
    /// left can make the list of candidates: low latency takes clusters nearest first; the
    /// scoring policies take them by a bound on their best node's score from the cluster's
    /// capacity summary (`ClusterCapacity`), and score a cluster's nodes only when it may
    /// still make the list. A cluster whose summary says no node can hold a replica is never
    /// looked into. The placements are those of walking every node (`pruning: false`, kept
    /// as the reference the property tests compare with), and refusals name every node.
    public static func decide(_ input: PlacementInput, clusters all: [ClusterState], pruning: Bool = true) -> PlacementDecision {
        // Without a selection, the ranking policies read the project's clusters in place
        // (thousands of states are not copied into a list of the allowed ones); anything
        // short of a placement is decided again below, for the refusal's full account.
        if pruning, parameter(input.parameters, "select_clusters", "select clusters", "selectClusters", "targetClusters") == nil {
            let decision: PlacementDecision? = switch input.policy {
            case .lowLatency: nearestFirst(input, all, measuredBy: all, allowed: input.allowedClusters)
            case .mostRequested: mostRequestedFirst(input, all, allowed: input.allowedClusters)
            case .mostAllocated: mostAllocatedFirst(input, all, allowed: input.allowedClusters)
            case .selectedCluster, .setClusters: nil
            }
            switch decision {
            case .placed?, .rejected?: return decision!
            case .unschedulable? where input.allowedClusters == nil: return decision!
            default: break
            }
        }
        let clusters = input.allowedClusters.map { allowed in all.filter { allowed.contains($0.name) } } ?? all
        switch input.policy {
        case .lowLatency:
            // Round trips are read from every cluster's report: the source's own among them,
            // even when it is not one of the project's clusters.
            return withinSelection(input, clusters) { pruning ? nearestFirst(input, $0, measuredBy: all, allowed: nil) : lowLatency(input, $0, measuredBy: all) }
        case .mostRequested:
            return withinSelection(input, clusters) { pruning ? mostRequestedFirst(input, $0, allowed: nil) : scored(input, $0, score: { mostRequestedScore(at: $0, $1) }) }
        case .mostAllocated:
            return withinSelection(input, clusters) { pruning ? mostAllocatedFirst(input, $0, allowed: nil) : scored(input, $0, score: { mostAllocatedScore(at: $0, $1) }) }
        case .selectedCluster: return selected(input, clusters, all: all)
        case .setClusters: return setClusters(input, clusters)
        }
    }

    /// `select_clusters` with any policy, as GS-Scheduler reads it: the levels are tried in
    /// order, a group (a nested list) is ranked by the policy's own measure (latency for low,
    /// score for most), and nothing is placed outside the list. Later levels' plans follow
    /// as fallback candidates. Without `select_clusters` the policy sees every cluster.
    static func withinSelection(_ input: PlacementInput, _ clusters: [ClusterState], _ policy: ([ClusterState]) -> PlacementDecision) -> PlacementDecision {
        guard let (name, v) = parameter(input.parameters, "select_clusters", "select clusters", "selectClusters", "targetClusters") else {
            return policy(clusters)
        }
        let levels: [Selection]
        do { levels = try parseSelection(v, field: "msg.parameters.\(name)") } catch { return .rejected(error.description) }
        var plans: [PlacementPlan] = []
        var notes: [String] = []
        for level in levels {
            let names: [String] = switch level { case .cluster(let c): [c]; case .group(let g): g }
            if let allowed = input.allowedClusters, let foreign = names.first(where: { !allowed.contains($0) }) {
                return .rejected("cluster '\(foreign)' does not belong to the project")
            }
            let subset = clusters.filter { names.contains($0.name) }
            if subset.isEmpty {
                notes.append("\(names.joined(separator: ", ")): no fresh status")
                continue
            }
            switch policy(subset) {
            case .placed(let ps): plans += ps
            case .unschedulable(let why): notes.append("\(names.joined(separator: ", ")): \(why)")
            case .rejected(let why): return .rejected(why)
            }
            if plans.count >= input.maxCandidates { break }
        }
        return plans.isEmpty ? .unschedulable("no selected cluster fits: " + notes.joined(separator: "; ")) : .placed(Array(plans.prefix(input.maxCandidates)))
    }

    // MARK: preferred location

    /// Orders clusters so that those matching `scheduleHint.preferred` come first, keeping the
    /// policy's order within each group. A preference, not a filter: others stay as fallbacks.
    static func preferredFirst(_ ranked: [ClusterState], _ input: PlacementInput) -> [ClusterState] {
        guard let pref = input.requirements.preferred else { return ranked }
        let src = input.source.cluster
        func matches(_ c: ClusterState) -> Bool {
            switch pref {
            case .local: return c.name == src
            case .cloud: return c.kind == .cloud
            case .neighbor: return c.kind == .edge && c.name != src
            }
        }
        return ranked.filter(matches) + ranked.filter { !matches($0) }
    }

    static func unschedulable(_ input: PlacementInput, _ clusters: [ClusterState]) -> PlacementDecision {
        if clusters.isEmpty {
            return .unschedulable("no cluster of the project has reported a fresh status")
        }
        return .unschedulable(NodeFilter.explain(clusters, input.requirements, copies: input.requirements.replicas))
    }

    // MARK: GLowLatencyPriority

    /// Latency from the source to each cluster: the source node's own measurement when the
    /// source is a node, else the source cluster's median, else the candidate's own
    /// measurement back, else the estimate from both clusters' network coordinates. Built
    /// once per decision.
    struct LatencyFrom {
        let source: String?
        let nodeTable: [String: Double]?
        let clusterTable: [String: Double]?
        /// Both tables in one short list (the node's values first) while they are short: a
        /// source measures a few peers, and comparing a few names costs less than hashing one.
        let direct: [(String, Double)]?
        /// The names of `direct`: most clusters are not among them, and the filter says so
        /// from bits held in the cluster's state.
        let directFilter: NameFilter
        let sourceCoordinate: VivaldiCoordinate?
        let sourcePoint: InlineCoordinate?
        let sourceBits: NameFilter

        /// How far below its truth the lowest of the fleet's estimates tends to lie, in the
        /// coordinates' own errors (see `estimate`).
        let spread: Double

        init(_ source: PlacementSource, _ byName: [String: ClusterState], fleet: Int) {
            self.init(source, state: source.cluster.flatMap { byName[$0] }, fleet: fleet)
        }

        init(_ source: PlacementSource, state sc: ClusterState?, fleet: Int) {
            spread = Self.spread(fleet: fleet)
            self.source = source.cluster
            sourceBits = NameFilter(name: source.cluster ?? "")
            clusterTable = sc?.latencySummary
            sourceCoordinate = sc?.coordinate
            sourcePoint = sc?.point
            nodeTable = source.node.flatMap { n in sc?.nodes.first { $0.name == n }?.latencyMs }
            let node = nodeTable ?? [:], cluster = clusterTable ?? [:]
            direct = node.count + cluster.count <= ClusterState.shortList
                ? node.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } + cluster.sorted { $0.key < $1.key }.filter { node[$0.key] == nil }.map { ($0.key, $0.value) }
                : nil
            directFilter = NameFilter((direct ?? []).map(\.0))
        }

        @inline(__always)
        func measured(_ name: String, bits: NameFilter) -> Double? {
            guard let direct else { return nodeTable?[name] ?? clusterTable?[name] }
            guard directFilter.mayContain(bits) else { return nil }
            for (n, ms) in direct where n == name { return ms }
            return nil
        }

        func to(_ target: ClusterState) -> Double {
            withUnsafePointer(to: target) { to(at: $0) }
        }

        /// The same, reading the target in place (a fleet's states are not copied per decision).
        @inline(__always)
        func to(at target: UnsafePointer<ClusterState>) -> Double {
            guard let s = source else { return .infinity }
            if sourceBits == target.pointee.nameBits, s == target.pointee.name { return 0 }
            return measured(target.pointee.name, bits: target.pointee.nameBits) ?? target.pointee.latency(measuredTo: s, bits: sourceBits) ?? estimate(at: target) ?? .infinity
        }

        /// `sqrt(2 ln n)`, at least 1: about how many standard deviations the lowest of `n`
        /// normal draws lies below their mean.
        static func spread(fleet n: Int) -> Double { max(1, (2 * log(Double(max(n, 1)))).squareRoot()) }

        /// No node measured the pair: the clusters' coordinates' estimate, milliseconds, taken
        /// at its pessimistic end. An estimate's error is about the mean of both coordinates'
        /// error terms (Vivaldi's own measure, relative); but the cluster a ranking picks is
        /// the lowest of a fleet's estimates, and the lowest of n is about `sqrt(2 ln n)` errors
        /// below its truth (4.1 at 5,000 clusters, 2.1 at 10). So the estimate is grown by that
        /// many: a measured round trip is taken as it is, and an estimate beats it only when
        /// it is lower by more than the estimates' own spread.
        @inline(__always)
        func estimate(at target: UnsafePointer<ClusterState>) -> Double? {
            if let a = sourcePoint, let b = target.pointee.point {
                guard a.dimensions == b.dimensions else { return nil }
                return a.distance(to: b) * 1000 * (1 + spread * (a.error + b.error) / 2)
            }
            guard let a = sourceCoordinate, target.pointee.coordinate?.vector.count == a.vector.count else { return nil }
            return target.pointee.coordinate.map { b in a.distance(to: b) * 1000 * (1 + spread * (a.error + b.error) / 2) }
        }
    }

    /// Ranks `clusters` by latency from the source; latencies are read from the reports of
    /// `measuredBy` (the source's own cluster among them, even when it is not a candidate).
    static func lowLatency(_ input: PlacementInput, _ clusters: [ClusterState], measuredBy: [ClusterState]) -> PlacementDecision {
        guard let src = input.source.cluster else {
            return .rejected("GLowLatencyPriority needs a source: source_cluster, source_node or pod_name")
        }
        var byName: [String: ClusterState] = [:]
        for c in measuredBy { byName[c.name] = c }
        let req = input.requirements
        let from = LatencyFrom(input.source, byName, fleet: measuredBy.count)
        let ranked = clusters
            .map { ($0, from.to($0)) }
            .sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0.name < $1.0.name }
        let ordered = preferredFirst(ranked.map(\.0), input)
        var latencyOf: [String: Double] = [:]
        for (c, l) in ranked { latencyOf[c.name] = l }
        let sourceNode = input.source.node
        var plans: [PlacementPlan] = []
        for c in ordered {
            if let plan = nearestNode(c, clusterLatency: latencyOf[c.name] ?? .infinity, source: src, sourceNode: sourceNode, req) {
                plans.append(plan)
                if plans.count >= input.maxCandidates { break }
            }
        }
        return plans.isEmpty ? unschedulable(input, clusters) : .placed(plans)
    }

    /// A cluster's nearest node that fits, as a one-part plan: in the source cluster the
    /// source node itself comes first. The nodes' order by latency is kept with the report;
    /// the first that fits wins.
    static func nearestNode(_ c: ClusterState, clusterLatency: Double, source src: String, sourceNode: String?, _ req: WorkloadRequirements) -> PlacementPlan? {
        let local = c.name == src
        func score(_ i: Int) -> Double {
            let n = c.nodes[i]
            if local { return n.name == sourceNode ? 1 : -(n.latencyMs[src] ?? 0) }
            return -(n.latencyMs[src] ?? clusterLatency)
        }
        let key = LatencyOrderKey(source: src, sourceNode: local ? sourceNode : nil, fallback: local ? 0 : clusterLatency)
        guard let i = NodeFilter.first(c.nodes, req, copies: req.replicas, in: c.latencyOrder(key, score: score)) else { return nil }
        return PlacementPlan(parts: [PlacementPart(cluster: c.name, node: c.nodes[i].name, replicas: req.replicas)], score: min(0, score(i)))
    }

    /// `lowLatency`'s placements, found without sorting every cluster: clusters come off a
    /// heap nearest first (preferred ones before the rest, ties to the lower name, as the
    /// full sort orders them) until `maxCandidates` have a node that fits.
    static func nearestFirst(_ input: PlacementInput, _ clusters: [ClusterState], measuredBy: [ClusterState], allowed: Set<String>?) -> PlacementDecision {
        guard let src = input.source.cluster else {
            return .rejected("GLowLatencyPriority needs a source: source_cluster, source_node or pod_name")
        }
        let req = input.requirements
        let from = LatencyFrom(input.source, state: named([src], in: measuredBy)[src], fleet: measuredBy.count)
        var entries: [NearestEntry] = []
        entries.reserveCapacity(clusters.count)
        var project = ProjectFilter(allowed, clusters: clusters.count)
        clusters.withUnsafeBufferPointer { buf in
            guard let base = buf.baseAddress else { return }
            for i in buf.indices {
                let p = base + i
                if project.early, !project.allows(p.pointee.name) { continue }
                entries.append(NearestEntry(group: preferenceGroup(at: p, req.preferred, source: src), latency: from.to(at: p), index: i))
            }
        }
        var heap = Heap(entries)
        // Entries that tie on group and latency, taken off the heap together and held in
        // name order (the last is next): names are read only where latencies tie.
        var ties: [NearestEntry] = []
        func nextEntry() -> (NearestEntry, tied: Bool)? {
            if let t = ties.popLast() { return (t, true) }
            guard let first = heap.popMin() else { return nil }
            guard let m = heap.min, m.group == first.group, m.latency == first.latency else { return (first, false) }
            var same = [first]
            while let m = heap.min, m.group == first.group, m.latency == first.latency { same.append(heap.popMin()!) }
            same.sort { clusters[$0.index].name > clusters[$1.index].name }
            ties = same
            return (ties.removeLast(), true)
        }
        let sourceNode = input.source.node
        var plans: [PlacementPlan] = []
        while plans.count < input.maxCandidates, let (next, tied) = nextEntry() {
            // Held ties are outside the heap (which the late filter may filter whole): each is checked itself.
            if tied ? !project.allows(clusters[next.index].name) : !project.allowsLate(clusters[next.index].name, heap: &heap, name: { clusters[$0.index].name }) { continue }
            // Summaries are read only for the clusters that come off the heap.
            guard clusters.withUnsafeBufferPointer({ ClusterState.capacity(at: $0.baseAddress! + next.index) }).mayFit(req) else { continue }
            if let plan = nearestNode(clusters[next.index], clusterLatency: next.latency, source: src, sourceNode: sourceNode, req) { plans.append(plan) }
        }
        // Nothing placed: the caller decides again over the allowed list for the account.
        return plans.isEmpty ? (allowed == nil ? unschedulable(input, clusters) : .unschedulable("")) : .placed(plans)
    }

    /// The clusters of `wanted`, by name, found in one pass that copies none of the others
    /// (a fleet's thousands of states are not copied into a dictionary per decision).
    static func named(_ wanted: Set<String>, in clusters: [ClusterState]) -> [String: ClusterState] {
        var out: [String: ClusterState] = [:]
        guard !wanted.isEmpty else { return out }
        // A few names are compared (short names compare as two words); more are hashed.
        let few = wanted.count <= 8 ? Array(wanted) : nil
        clusters.withUnsafeBufferPointer { buf in
            guard let base = buf.baseAddress else { return }
            for i in buf.indices where few.map({ $0.contains(base[i].name) }) ?? wanted.contains(base[i].name) { out[base[i].name] = base[i] }
        }
        return out
    }

    /// 0 for a cluster `scheduleHint.preferred` asks for (every cluster when it asks
    /// nothing), 1 for the rest: `preferredFirst`'s two groups.
    @inline(__always)
    static func preferenceGroup(at p: UnsafePointer<ClusterState>, _ preferred: PreferredLocation?, source: String?) -> Int {
        switch preferred {
        case nil: 0
        case .local: p.pointee.name == source ? 0 : 1
        case .cloud: p.pointee.kind == .cloud ? 0 : 1
        case .neighbor: p.pointee.kind == .edge && p.pointee.name != source ? 0 : 1
        }
    }

    /// A project's cluster list, applied where it costs least. A list that is a small part
    /// of the fleet is applied to every cluster before any is ranked ("early"). One that
    /// holds much of it (a project bound to every cluster) is applied only to the clusters
    /// that come off the heap: a decision takes a few, and hashing thousands of names would
    /// cost more than the rest of the decision. Should the heap turn out to hold mostly
    /// clusters outside the list (names bound that the view does not have), it is filtered
    /// whole after `lateRefusals` of them, so the worst case is the early filter's.
    struct ProjectFilter {
        static let lateRefusals = 32
        let allowed: Set<String>?
        let early: Bool
        /// Per heap (each heap takes a copy of the filter it was built under): how many of
        /// its clusters were refused, and whether it is filtered whole.
        private var refused = 0
        private var heapFiltered = false

        init(_ allowed: Set<String>?, clusters: Int) {
            self.allowed = allowed
            early = allowed.map { $0.count * 2 < clusters } ?? false
        }

        @inline(__always)
        func allows(_ name: String) -> Bool { allowed?.contains(name) ?? true }

        /// Whether a cluster off the heap may be taken; after too many refusals the rest of
        /// the heap is filtered at once (`name` reads an entry's cluster name).
        mutating func allowsLate<E: Comparable>(_ name: String, heap: inout Heap<E>, name nameOf: (E) -> String) -> Bool {
            guard !early, !heapFiltered, let allowed else { return true }
            if allowed.contains(name) { return true }
            refused += 1
            if refused >= Self.lateRefusals {
                heap = Heap(heap.unordered.filter { allowed.contains(nameOf($0)) })
                heapFiltered = true
            }
            return false
        }
    }

    /// A cluster on `nearestFirst`'s heap. No name: holding thousands of them would retain
    /// and release each per decision; the names of entries that tie are read where they tie.
    struct NearestEntry: Comparable {
        var group: Int
        var latency: Double
        var index: Int
        static func < (a: NearestEntry, b: NearestEntry) -> Bool {
            a.group != b.group ? a.group < b.group : a.latency < b.latency
        }
        static func == (a: NearestEntry, b: NearestEntry) -> Bool { a.group == b.group && a.latency == b.latency }
    }

    struct BoundEntry: Comparable {
        var bound: Double
        var index: Int
        static func < (a: BoundEntry, b: BoundEntry) -> Bool { a.bound < b.bound }
        static func == (a: BoundEntry, b: BoundEntry) -> Bool { a.bound == b.bound }
    }

    /// `scored`'s placements, found best first: clusters come off a heap by `bound` (no node
    /// of the cluster scores more), are scored exactly (`exact`: the best node that fits and
    /// its score), and the search ends once the next bound is below the last of the
    /// `maxCandidates` best found. Preferred clusters are searched first, then the rest fill
    /// what is left of the list, as `preferredFirst` orders them.
    static func mostRequestedFirst(_ input: PlacementInput, _ clusters: [ClusterState], allowed: Set<String>?) -> PlacementDecision {
        let gpu = input.requirements.needsGPU
        let req = input.requirements
        return bestFirst(input, clusters, allowed: allowed, bound: { gpu ? $0.pointee.headline.topFreeShareGPU : $0.pointee.headline.topFreeShare }) { c, capacity in
            guard let i = NodeFilter.first(c.nodes, req, copies: req.replicas, in: gpu ? capacity.byFreeShareGPU : capacity.byFreeShare) else { return nil }
            return (i, mostRequestedScore(c.nodes[i], req))
        }
    }

    static func mostAllocatedFirst(_ input: PlacementInput, _ clusters: [ClusterState], allowed: Set<String>?) -> PlacementDecision {
        let req = input.requirements
        return bestFirst(input, clusters, allowed: allowed, bound: { $0.pointee.headline.mostAllocatedBound(req) }) { c, _ in
            NodeFilter.best(c.nodes, req, copies: req.replicas, score: { mostAllocatedScore(at: $0, req) })
        }
    }

    static func bestFirst(
        _ input: PlacementInput, _ clusters: [ClusterState], allowed: Set<String>?, bound: (UnsafePointer<ClusterState>) -> Double,
        exact: (ClusterState, ClusterCapacity) -> (index: Int, score: Double)?
    ) -> PlacementDecision {
        let req = input.requirements
        var groups: [[BoundEntry]] = [[], []]
        let project = ProjectFilter(allowed, clusters: clusters.count)
        let deep = req.asksBeyondResources
        clusters.withUnsafeBufferPointer { buf in
            guard let base = buf.baseAddress else { return }
            for i in buf.indices {
                let p = base + i
                if project.early, !project.allows(p.pointee.name) { continue }
                // The headline, held in the state, answers for CPU, memory and GPUs; the
                // summary (behind a reference) is read only for what else is asked.
                guard p.pointee.headline.mayFitResources(req), !deep || ClusterState.capacity(at: p).mayFit(req) else { continue }
                // A hair above the bound: the exact score is computed in another order of operations.
                let b = bound(p)
                guard b > -.infinity else { continue }
                groups[preferenceGroup(at: p, req.preferred, source: input.source.cluster)].append(BoundEntry(bound: b + abs(b) * 1e-9 + 1e-9, index: i))
            }
        }
        var plans: [PlacementPlan] = []
        for entries in groups where plans.count < input.maxCandidates {
            let k = input.maxCandidates - plans.count
            var heap = Heap(entries)
            var late = project
            var best: [(index: Int, node: Int, score: Double)] = []
            while let next = heap.popMax() {
                if best.count == k, next.bound < best[k - 1].score { break }
                if !late.allowsLate(clusters[next.index].name, heap: &heap, name: { clusters[$0.index].name }) { continue }
                let c = clusters[next.index]
                guard let (node, score) = clusters.withUnsafeBufferPointer({ exact(c, ClusterState.capacity(at: $0.baseAddress! + next.index)) }) else { continue }
                let at = best.firstIndex { score > $0.score || (score == $0.score && c.name < clusters[$0.index].name) } ?? best.count
                guard at < k else { continue }
                best.insert((next.index, node, score), at: at)
                if best.count > k { best.removeLast() }
            }
            plans += best.map { b in
                PlacementPlan(parts: [PlacementPart(cluster: clusters[b.index].name, node: clusters[b.index].nodes[b.node].name, replicas: req.replicas)], score: b.score)
            }
        }
        // Nothing placed: the caller decides again over the allowed list for the account.
        return plans.isEmpty ? (allowed == nil ? unschedulable(input, clusters) : .unschedulable("")) : .placed(plans)
    }

    // MARK: GMostRequestedPriority and GMostAllocated

    /// GS-Scheduler's score: (100 - cpu%) + (100 - mem%), plus 200 per free GPU when the
    /// workload needs GPUs, with % = requested / allocatable. Despite its name it prefers the
    /// node with the *most free* capacity (it spreads).
    public static func mostRequestedScore(_ n: NodeState, _ req: WorkloadRequirements) -> Double {
        withUnsafePointer(to: n) { mostRequestedScore(at: $0, req) }
    }

    @inline(__always)
    static func mostRequestedScore(at p: UnsafePointer<NodeState>, _ req: WorkloadRequirements) -> Double {
        let cpu = p.pointee.allocatable.cpuMilli > 0 ? Double(p.pointee.requested.cpuMilli) / Double(p.pointee.allocatable.cpuMilli) * 100 : 100
        let mem = p.pointee.allocatable.memory > 0 ? Double(p.pointee.requested.memory) / Double(p.pointee.allocatable.memory) * 100 : 100
        var score = (100 - cpu) + (100 - mem)
        if req.needsGPU { score += 200 * Double(max(0, p.pointee.allocatable.gpu - p.pointee.requested.gpu)) }
        return score
    }

    /// kube-scheduler's MostAllocated (NodeResourcesFit, bin-packing): the mean over CPU and
    /// memory (and GPUs when asked) of (requested + asked) / allocatable x 100. Fuller wins.
    public static func mostAllocatedScore(_ n: NodeState, _ req: WorkloadRequirements) -> Double {
        withUnsafePointer(to: n) { mostAllocatedScore(at: $0, req) }
    }

    @inline(__always)
    static func mostAllocatedScore(at p: UnsafePointer<NodeState>, _ req: WorkloadRequirements) -> Double {
        let r = Int64(req.replicas)
        let total = (cpu: req.perReplica.cpuMilli * r, mem: req.perReplica.memory * r, gpu: req.perReplica.gpu * r)
        func frac(_ used: Int64, _ ask: Int64, _ cap: Int64) -> Double { cap > 0 ? min(1, Double(used + ask) / Double(cap)) * 100 : 0 }
        var sum = frac(p.pointee.requested.cpuMilli, total.cpu, p.pointee.allocatable.cpuMilli) + frac(p.pointee.requested.memory, total.mem, p.pointee.allocatable.memory)
        var weights = 2.0
        if total.gpu > 0 {
            sum += frac(p.pointee.requested.gpu, total.gpu, p.pointee.allocatable.gpu)
            weights += 1
        }
        return sum / weights
    }

    static func scored(_ input: PlacementInput, _ clusters: [ClusterState], score: (UnsafePointer<NodeState>, WorkloadRequirements) -> Double) -> PlacementDecision {
        let req = input.requirements
        var perCluster: [(ClusterState, NodeState, Double)] = []
        for c in clusters {
            if let (i, s) = NodeFilter.best(c.nodes, req, copies: req.replicas, score: { score($0, req) }) {
                perCluster.append((c, c.nodes[i], s))
            }
        }
        guard !perCluster.isEmpty else { return unschedulable(input, clusters) }
        perCluster.sort { $0.2 != $1.2 ? $0.2 > $1.2 : $0.0.name < $1.0.name }
        let bestNode = Dictionary(uniqueKeysWithValues: perCluster.map { ($0.0.name, ($0.1, $0.2)) })
        let ordered = preferredFirst(perCluster.map(\.0), input)
        let plans = ordered.prefix(input.maxCandidates).map { c in
            let (n, s) = bestNode[c.name]!
            return PlacementPlan(parts: [PlacementPart(cluster: c.name, node: n.name, replicas: req.replicas)], score: s)
        }
        return .placed(plans)
    }

    // MARK: GSelectedCluster

    /// One level of `select_clusters`: a cluster, or a group ranked and tried in rank order.
    public enum Selection: Sendable, Hashable {
        case cluster(String)
        case group([String])
    }

    /// Reads `select_clusters` as a JSON list (`["c1", ["c2", "c3"], "c4"]`) or as the seed's
    /// string form (`"[cluster1,[cluster2,cluster3]]"`, names quoted or not). Only names and
    /// brackets are read; nothing is evaluated.
    public static func parseSelection(_ value: JSONValue, field: String) throws(MessageDecodingError) -> [Selection] {
        switch value {
        case .string(let text): return try parseSelection(try SelectionText.parse(text, field: field), field: field)
        case .array(let items):
            var out: [Selection] = []
            for (i, item) in items.enumerated() {
                switch item {
                case .string(let s) where !s.isEmpty: out.append(.cluster(s))
                case .array(let group):
                    var names: [String] = []
                    for (j, g) in group.enumerated() {
                        guard case .string(let s) = g, !s.isEmpty else {
                            throw MessageDecodingError(.wrongType, field: "\(field)[\(i)][\(j)]", reason: "a group holds cluster names only (one level of nesting), got \(g.kindName)")
                        }
                        names.append(s)
                    }
                    guard !names.isEmpty else { throw MessageDecodingError(.invalidValue, field: "\(field)[\(i)]", reason: "an empty group") }
                    out.append(.group(names))
                default:
                    throw MessageDecodingError(.wrongType, field: "\(field)[\(i)]", reason: "expected a cluster name or a list of names, got \(item.kindName)")
                }
            }
            guard !out.isEmpty else { throw MessageDecodingError(.invalidValue, field: field, reason: "no clusters selected") }
            return out
        default:
            throw MessageDecodingError(.wrongType, field: field, reason: "expected a list of clusters, got \(value.kindName)")
        }
    }

    /// A parameter under any of the spellings GS-Scheduler's clients used (`select_clusters`,
    /// `select clusters`, `selectClusters`).
    static func parameter(_ p: JSONValue, _ names: String...) -> (String, JSONValue)? {
        for n in names { if let v = p[n], v != .null { return (n, v) } }
        return nil
    }

    static func selected(_ input: PlacementInput, _ clusters: [ClusterState], all: [ClusterState]) -> PlacementDecision {
        let p = input.parameters
        let req = input.requirements
        let mode = (p["mode"]?.stringValue ?? "cluster").lowercased()
        func allowed(_ name: String) -> Bool { input.allowedClusters?.contains(name) ?? true }
        switch mode {
        case "node":
            guard let (_, cv) = parameter(p, "select_cluster", "select cluster", "selectCluster"), let cluster = cv.stringValue, !cluster.isEmpty else {
                return .rejected("node mode needs parameters.select_cluster")
            }
            guard let (_, nv) = parameter(p, "select_node", "select node", "selectNode"), let node = nv.stringValue, !node.isEmpty else {
                return .rejected("node mode needs parameters.select_node")
            }
            guard allowed(cluster) else { return .rejected("cluster '\(cluster)' does not belong to the project") }
            guard let c = named([cluster], in: clusters)[cluster] else { return .unschedulable("cluster '\(cluster)' has no fresh status") }
            guard let n = c.nodes.first(where: { $0.name == node }) else { return .rejected("node '\(node)' is not in cluster '\(cluster)'") }
            if let f = NodeFilter.check(n, req, copies: req.replicas) { return .unschedulable("node '\(node)' of '\(cluster)': \(f.rawValue)") }
            return .placed([PlacementPlan(parts: [PlacementPart(cluster: cluster, node: node, replicas: req.replicas)], score: mostRequestedScore(n, req))])
        case "cluster", "default":
            guard let (name, v) = parameter(p, "select_clusters", "select clusters", "selectClusters", "targetClusters") else {
                return .rejected("cluster mode needs parameters.select_clusters")
            }
            let levels: [Selection]
            do { levels = try parseSelection(v, field: "msg.parameters.\(name)") } catch { return .rejected(error.description) }
            for level in levels {
                let names: [String] = switch level { case .cluster(let c): [c]; case .group(let g): g }
                for n in names where !allowed(n) { return .rejected("cluster '\(n)' does not belong to the project") }
            }
            var wanted = Set<String>()
            for level in levels {
                switch level {
                case .cluster(let c): wanted.insert(c)
                case .group(let g): wanted.formUnion(g)
                }
            }
            let byName = named(wanted, in: clusters)
            let from = LatencyFrom(input.source, state: input.source.cluster.flatMap { named([$0], in: all)[$0] }, fleet: all.count)
            var plans: [PlacementPlan] = []
            var notes: [String] = []
            func plan(for name: String) -> PlacementPlan? {
                guard let c = byName[name] else {
                    notes.append("\(name): no fresh status")
                    return nil
                }
                guard let (i, s) = NodeFilter.best(c.nodes, req, copies: req.replicas, score: { mostRequestedScore(at: $0, req) }) else {
                    notes.append("\(name): " + NodeFilter.explain([c], req, copies: req.replicas))
                    return nil
                }
                return PlacementPlan(parts: [PlacementPart(cluster: name, node: c.nodes[i].name, replicas: req.replicas)], score: s)
            }
            for level in levels {
                switch level {
                case .cluster(let c):
                    if let pl = plan(for: c) { plans.append(pl) }
                case .group(let g):
                    // A group is ranked: by latency from the source when there is one, else by free capacity.
                    // Ties keep the order the user wrote.
                    let ps = Array(g.compactMap(plan(for:)).enumerated())
                    let key: (PlacementPlan) -> Double
                    if input.source.cluster != nil {
                        key = { pl in byName[pl.parts[0].cluster].map { -from.to($0) } ?? -.infinity }
                    } else {
                        key = { $0.score }
                    }
                    plans += ps.sorted { a, b in key(a.element) != key(b.element) ? key(a.element) > key(b.element) : a.offset < b.offset }.map(\.element)
                }
            }
            return plans.isEmpty ? .unschedulable("no selected cluster fits: " + notes.joined(separator: "; ")) : .placed(plans)
        default:
            return .rejected("mode '\(mode)' is not cluster or node")
        }
    }

    // MARK: GSetClusters

    /// One workload over several clusters: `mode` duplicate (every cluster runs all replicas),
    /// weighted (replicas divided by `weights`), or capacity (divided by what each can hold).
    static func setClusters(_ input: PlacementInput, _ clusters: [ClusterState]) -> PlacementDecision {
        let p = input.parameters
        let req = input.requirements
        let mode = (p["mode"]?.stringValue ?? "duplicate").lowercased()
        var byName: [String: ClusterState] = [:]
        var names: [String]
        if let (_, v) = parameter(p, "clusters", "select_clusters") {
            guard case .array(let items) = v else { return .rejected("parameters.clusters must be a list of cluster names") }
            names = []
            for item in items {
                guard let s = item.stringValue, !s.isEmpty else { return .rejected("parameters.clusters must be a list of cluster names") }
                guard input.allowedClusters?.contains(s) ?? true else { return .rejected("cluster '\(s)' does not belong to the project") }
                names.append(s)
            }
            byName = named(Set(names), in: clusters)
        } else {
            names = clusters.map(\.name).sorted()
            for c in clusters { byName[c.name] = c }
        }
        guard !names.isEmpty else { return .unschedulable("no cluster to spread over") }
        for n in names where byName[n] == nil { return .unschedulable("cluster '\(n)' has no fresh status") }
        let labelsOnly = WorkloadRequirements(
            perReplica: .zero, nodeSelector: req.nodeSelector, affinityTerms: req.affinityTerms, tolerations: req.tolerations, accelerator: req.accelerator)
        func capacity(_ name: String) -> Int {
            var total = 0
            for n in byName[name]!.nodes where NodeFilter.check(n, labelsOnly, copies: 1) == nil {
                let k = req.perReplica.copies(in: n.free)
                if k == .max { return .max }
                total += k
            }
            return total
        }
        var shares: [String: Int] = [:]
        switch mode {
        case "duplicate":
            for n in names { shares[n] = req.replicas }
        case "weighted":
            guard let w = p["weights"], case .object(let wf) = w else { return .rejected("weighted mode needs parameters.weights {cluster: weight}") }
            var weights: [Double] = []
            for n in names {
                guard case .number(let d)? = wf[n], d >= 0 else { return .rejected("parameters.weights.\(n) must be a non-negative number") }
                weights.append(d)
            }
            guard weights.reduce(0, +) > 0 else { return .rejected("parameters.weights are all zero") }
            for (n, s) in zip(names, divide(req.replicas, weights: weights)) { shares[n] = s }
        case "capacity":
            let caps = names.map(capacity)
            let total = caps.reduce(0) { $0 == .max || $1 == .max ? .max : $0 + $1 }
            guard total >= req.replicas else {
                return .unschedulable("the clusters hold \(total) of \(req.replicas) replicas")
            }
            let weights = caps.map { $0 == .max ? 1e12 : Double($0) }
            var split = divide(req.replicas, weights: weights)
            // Never beyond a cluster's capacity: move the overflow to clusters with room.
            var overflow = 0
            for i in split.indices where split[i] > caps[i] {
                overflow += split[i] - caps[i]
                split[i] = caps[i]
            }
            for i in split.indices where overflow > 0 {
                let room = caps[i] == .max ? overflow : min(overflow, caps[i] - split[i])
                split[i] += room
                overflow -= room
            }
            for (n, s) in zip(names, split) { shares[n] = s }
        default:
            return .rejected("mode '\(mode)' is not duplicate, weighted or capacity")
        }
        var parts: [PlacementPart] = []
        for n in names {
            let share = shares[n] ?? 0
            guard share > 0 else { continue }
            let cap = capacity(n)
            if cap < share { return .unschedulable("cluster '\(n)' holds \(cap) of its \(share) replicas") }
            parts.append(PlacementPart(cluster: n, node: nil, replicas: share))
        }
        guard !parts.isEmpty else { return .unschedulable("no replicas to place") }
        return .placed([PlacementPlan(parts: parts, score: 0)])
    }

    /// Splits `total` by weights with the largest-remainder method; ties go to the earlier entry.
    public static func divide(_ total: Int, weights: [Double]) -> [Int] {
        let sum = weights.reduce(0, +)
        guard sum > 0 else { return weights.map { _ in 0 } }
        let exact = weights.map { Double(total) * $0 / sum }
        var out = exact.map { Int($0.rounded(.down)) }
        var left = total - out.reduce(0, +)
        let order = exact.indices.sorted { (exact[$0] - exact[$0].rounded(.down)) > (exact[$1] - exact[$1].rounded(.down)) }
        for i in order where left > 0 {
            out[i] += 1
            left -= 1
        }
        return out
    }
}

/// The seed's string form of a cluster selection: `[cluster1,[cluster2,cluster3]]`.
enum SelectionText {
    static func parse(_ text: String, field: String) throws(MessageDecodingError) -> JSONValue {
        var stack: [[JSONValue]] = []
        var result: JSONValue?
        var name = ""
        func flush() {
            let n = name.trimmingCharacters(in: CharacterSet(charactersIn: " \t'\""))
            if !n.isEmpty { stack[stack.count - 1].append(.string(n)) }
            name = ""
        }
        for ch in text {
            switch ch {
            case "[":
                guard result == nil else { throw MessageDecodingError(.invalidValue, field: field, reason: "text after the closing bracket") }
                if !stack.isEmpty, !name.trimmingCharacters(in: .whitespaces).isEmpty {
                    throw MessageDecodingError(.invalidValue, field: field, reason: "a name runs into '['")
                }
                stack.append([])
                guard stack.count <= 2 else { throw MessageDecodingError(.invalidValue, field: field, reason: "groups nest one level only") }
            case "]":
                guard !stack.isEmpty else { throw MessageDecodingError(.invalidValue, field: field, reason: "unbalanced ']'") }
                flush()
                let done = stack.removeLast()
                if stack.isEmpty { result = .array(done) } else { stack[stack.count - 1].append(.array(done)) }
            case ",":
                guard !stack.isEmpty else { throw MessageDecodingError(.invalidValue, field: field, reason: "',' outside brackets") }
                flush()
            default:
                if stack.isEmpty {
                    if ch.isWhitespace { continue }
                    throw MessageDecodingError(.invalidValue, field: field, reason: "a selection starts with '['")
                }
                guard ch.isLetter || ch.isNumber || "-._' \"\t".contains(ch) else {
                    throw MessageDecodingError(.invalidValue, field: field, reason: "'\(ch)' is not allowed in a cluster name")
                }
                name.append(ch)
            }
        }
        guard let result, stack.isEmpty else { throw MessageDecodingError(.invalidValue, field: field, reason: "unbalanced '['") }
        return result
    }
}
