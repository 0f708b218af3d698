import Foundation

/// What `/metrics` says beside the values: names by Prometheus's conventions, a HELP line
/// for every family, and the process's own metrics.
public enum MetricsExposition {
    /// Names the suite does not choose (Hummingbird's OpenTelemetry-style ones), in
    /// Prometheus's conventions: counters end in `_total`, durations in `_seconds`.
    static let renames: [String: String] = [
        "hb.requests": "gedge_http_requests_total",
        "hb.request.errors": "gedge_http_request_errors_total",
        "http.server.request.duration": "gedge_http_request_duration_seconds",
        "http.server.active_requests": "gedge_http_active_requests",
    ]
    static let labelRenames: [String: String] = [
        "http.request.method": "method", "http.route": "route", "http.response.status_code": "status", "error.type": "error",
    ]

    /// For the metrics factory: every name and label key made a Prometheus name.
    @Sendable public static func sanitize(_ name: String, _ labels: [(String, String)]) -> (String, [(String, String)]) {
        func clean(_ s: String) -> String { String(s.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" }) }
        return (renames[name] ?? clean(name), labels.map { (labelRenames[$0.0] ?? clean($0.0), $0.1) })
    }

    /// Every metric family of the suite, with what it counts or measures.
    public static let help: [String: String] = [
        // Every service
        "gedge_kafka_produced_total": "Kafka messages the producer delivered.",
        "gedge_kafka_delivery_failures_total": "Kafka messages the producer could not deliver.",
        "gedge_kafka_consumed_total": "Kafka messages consumers received.",
        "gedge_dead_letters_total": "Messages dead-lettered, by consumer.",
        "gedge_dead_letters_truncated_total": "Dead letters stored shortened (too large for the producer), by consumer.",
        "gedge_consumer_stalled": "1 while a consumer cannot make progress (its database or broker failing), by consumer.",
        "gedge_consumer_stalls_total": "Times a consumer got stuck, by consumer.",
        "gedge_amqp_published_total": "AMQP messages published and confirmed.",
        "gedge_amqp_reconnects_total": "AMQP connections made again after one was lost.",
        "gedge_http_requests_total": "HTTP requests served, by method, route and status.",
        "gedge_http_request_errors_total": "HTTP requests that ended in an error, by method, route and error.",
        "gedge_http_request_duration_seconds": "Time to serve an HTTP request, by method, route and status.",
        "gedge_http_active_requests": "HTTP requests being served now, by method.",
        // Scheduler
        "gedge_scheduler_requests_received_total": "Schedule requests recorded for the first time.",
        "gedge_scheduler_requests_duplicate_total": "Schedule requests received again (a producer's retry) and ignored.",
        "gedge_scheduler_requests_dispatched_on_arrival_total": "Requests placed as they arrived, without waiting in the queue.",
        "gedge_scheduler_requests_finished_total": "Requests that ended, by outcome.",
        "gedge_scheduler_decision_seconds": "Time a policy takes to decide a placement.",
        "gedge_scheduler_ingest_seconds": "Time to record a batch of schedule requests.",
        "gedge_scheduler_dispatch_cycles_total": "Dispatch cycles run over the request queue.",
        "gedge_scheduler_apply_commands_total": "Apply commands sent to agents.",
        "gedge_scheduler_replies_total": "Agents' replies handled, by outcome.",
        "gedge_scheduler_leases_expired_total": "Requests whose lease ran out in scheduling or applying.",
        "gedge_scheduler_messages_dead_lettered_total": "Messages the scheduler could not use, dead-lettered.",
        "gedge_scheduler_messages_unauthenticated_total": "Messages refused for a missing or wrong producer signature.",
        "gedge_cluster_reports_total": "Cluster status reports received, by cluster.",
        "gedge_cluster_snapshot_requests_total": "Whole status snapshots asked of agents, their deltas not following what was held.",
        "gedge_cluster_report_age_seconds": "Seconds since each cluster's last status report.",
        "gedge_cluster_view_clusters": "Clusters in the scheduler's view, fresh (reported within scheduler.cluster.stale) or stale.",
        "gedge_cluster_view_report_age_seconds": "Age of the reports the scheduler's view holds, over every cluster: the median, 99th percentile and largest.",
        "gedge_scheduler_queue_depth": "Requests waiting in the queue, by class (retry, fast, base).",
        "gedge_scheduler_in_flight": "Requests in scheduling or applying, over every replica.",
        "gedge_kafka_consumer_lag": "Messages a consumer group has not yet committed, by group and topic.",
        // Agent
        "gedge_agent_apply_seconds": "Time from an apply command to its pods running (or its failure).",
        "gedge_agent_commands_total": "Commands the agent handled, by outcome.",
        "gedge_agent_scale_commands_total": "Scale commands the agent handled, by outcome.",
        // Gateway, workflows
        "gedge_gateway_requests_published_total": "Schedule requests the gateway published.",
        "gedge_gateway_callbacks_total": "Callback deliveries to requesters, by outcome (delivered, retry, failed).",
        "gedge_notifier_deliveries_total": "Webhook deliveries of notifications, by outcome (delivered, retry, failed).",
        "gedge_notifier_deliveries_pending": "Notification deliveries not yet delivered or given up.",
        "gedge_gateway_callbacks_pending": "Callback deliveries not yet delivered or given up.",
        "gedge_faas_function_replicas": "Replicas each function is scaled to, by namespace and function.",
        "gedge_workflow_steps_submitted_total": "Workflow steps submitted for placement.",
        "gedge_workflows_finished_total": "Workflows that ended, by state.",
        // Autoscaler
        "gedge_autoscaler_cycle_seconds": "Time of one autoscaling cycle over every policy.",
        "gedge_autoscaler_decisions_total": "Scaling decisions made.",
        "gedge_autoscaler_command_failures_total": "Scale commands that failed.",
        "gedge_autoscaler_leader": "1 while this replica leads the autoscaling.",
        // FaaS, notifier, accelerators
        "gedge_faas_scale_commands_total": "Scale commands the FaaS trigger sent, by outcome.",
        "gedge_notifier_events_total": "Detection events handled, by outcome.",
        "gedge_accelerator_scans_total": "Node scans for accelerators.",
        "gedge_accelerator_failures_total": "Accelerator scans or label updates that failed.",
        "gedge_accelerator_label_patches_total": "Label patches sent to the node.",
        // Process (process.go's names, as every Prometheus client exports them)
        "process_cpu_seconds_total": "Total user and system CPU time spent in seconds.",
        "process_resident_memory_bytes": "Resident memory size in bytes.",
        "process_virtual_memory_bytes": "Virtual memory size in bytes.",
        "process_open_fds": "Number of open file descriptors.",
        "process_max_fds": "Maximum number of open file descriptors.",
        "process_start_time_seconds": "Start time of the process since unix epoch in seconds.",
        "process_threads": "Number of OS threads in the process.",
    ]

    /// The registry's text with a HELP line from `help` before each family's TYPE line, then
    /// the process metrics. A family missing from `help` goes without (and `promtool check
    /// metrics` in the tests says so).
    public static func render(_ registryText: [UInt8]) -> [UInt8] {
        var out = ""
        out.reserveCapacity(registryText.count + 4096)
        var helped = Set<String>()
        for line in String(decoding: registryText, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# HELP ") {
                if let name = line.dropFirst(7).split(separator: " ").first { helped.insert(String(name)) }
            } else if line.hasPrefix("# TYPE ") {
                let name = String(line.dropFirst(7).split(separator: " ").first ?? "")
                if !helped.contains(name), let text = help[name] {
                    out += "# HELP \(name) \(text)\n"
                    helped.insert(name)
                }
            }
            if !line.isEmpty { out += line + "\n" }
        }
        out += processMetrics()
        return Array(out.utf8)
    }

    static let clockTicks = Double(sysconf(Int32(_SC_CLK_TCK)))
    static let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))

    /// The process collector's families, from /proc/self (Linux).
    static func processMetrics() -> String {
        var values: [(String, String, Double)] = []
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") {
            // Fields after the command: state is 3rd; utime 14th, stime 15th, num_threads 20th, starttime 22nd, vsize 23rd, rss 24th.
            let f = stat[stat.index(after: close)...].split(separator: " ").map(String.init)
            func field(_ n: Int) -> Double { f.count > n - 3 ? Double(f[n - 3]) ?? 0 : 0 }
            values.append(("process_cpu_seconds_total", "counter", (field(14) + field(15)) / clockTicks))
            values.append(("process_threads", "gauge", field(20)))
            values.append(("process_virtual_memory_bytes", "gauge", field(23)))
            values.append(("process_resident_memory_bytes", "gauge", field(24) * pageSize))
            if let boot = bootTime() { values.append(("process_start_time_seconds", "gauge", boot + field(22) / clockTicks)) }
        }
        if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") { values.append(("process_open_fds", "gauge", Double(fds.count))) }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { values.append(("process_max_fds", "gauge", Double(limit.rlim_cur))) }
        return values.map { name, type, v in
            "# HELP \(name) \(help[name] ?? "")\n# TYPE \(name) \(type)\n\(name) \(v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(v))\n"
        }.joined()
    }

    static func bootTime() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }) else { return nil }
        return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
    }
}
