import ArgumentParser
import Foundation
import GEdgeCore

// Projects and registered (push-mode) clusters, for administrators.

struct ProjectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project", abstract: "Projects: create, delete (admin) and list.",
        subcommands: [ProjectList.self, ProjectCreate.self, ProjectDelete.self], defaultSubcommand: ProjectList.self)
}

struct ProjectList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Projects with their clusters and namespaces (a project token: its own).")
    @OptionGroup var g: Global

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/projects")
            emit(r, g) { _ in
                table(["PROJECT", "CLUSTERS", "NAMESPACES", "SERVICES", "AGE"], (r["projects"]?.arrayValue ?? []).map { p in
                    [text(p["name"]), list(p["clusters"]), list(p["namespaces"]), text(p["services"]), age(since: p["created_at"])]
                })
            }
        }
    }
}

func list(_ v: JSONValue?) -> String {
    let items = (v?.arrayValue ?? []).map { text($0) }
    return items.isEmpty ? "-" : items.joined(separator: ",")
}

struct ProjectCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a project (admin).")
    @OptionGroup var g: Global
    @Argument(help: "The project's name (lower-case letters, digits, '-').") var name: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("POST", "/v1/projects", body: JSONValue.object(["name": .string(name)]).serialized())
            emit(r, g) { _ in print("project/\(name) created") }
        }
    }
}

struct ProjectDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a project (admin): its bindings go and its tokens are revoked; refused while it has services or running workflows.")
    @OptionGroup var g: Global
    @Argument(help: "The project.") var name: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("DELETE", "/v1/projects/\(segment(name))")
            emit(r, g) { _ in print("project/\(name) deleted (\(text(r["tokens_revoked"])) token(s) revoked)") }
        }
    }
}

struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster", abstract: "Clusters joined in push mode: register, unregister, list (admin).",
        discussion: """
            A cluster joins in one of two ways, as with Karmada. Pull: an agent runs inside it \
            (k8s/member-cluster). Push: it is registered here with its API server's URL, a \
            token and the CA, which the gateway stores sealed (AES-256-GCM, the key outside \
            the database), and the push agents (agent.mode=push) share the registered clusters.
            """,
        subcommands: [ClusterList.self, ClusterRegister.self, ClusterUnregister.self], defaultSubcommand: ClusterList.self)
}

struct ClusterList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Registered clusters and the push agent serving each.")
    @OptionGroup var g: Global

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("GET", "/v1/registered-clusters")
            emit(r, g) { _ in
                table(["CLUSTER", "SERVER", "SERVED BY", "GENERATION", "AGE"], (r["clusters"]?.arrayValue ?? []).map { cl in
                    [text(cl["name"]), text(cl["server"]), text(cl["served_by"]), text(cl["generation"]), age(since: cl["registered_at"])]
                })
            }
        }
    }
}

struct ClusterRegister: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register", abstract: "Register a cluster in push mode, or replace its credentials (admin).",
        discussion: """
            Here --server, --token-file and --ca-file are the cluster's (its API server), as \
            the console's form asks for them; the gateway is --gateway, else $GEDGE_SERVER or the \
            context's, and its token $GEDGE_TOKEN, $GEDGE_TOKEN_FILE or the context's.
            """)
    @Argument(help: "The cluster's name.") var name: String
    @Option(help: "The cluster's API server URL (https).") var server: String
    @Option(name: .customLong("token-file"), help: "A file holding the cluster's bearer token (a service account's).") var tokenFile: String
    @Option(name: .customLong("ca-file"), help: "The PEM of the CA that signs the API server's certificate.") var caFile: String?
    @Option(help: "The gateway's URL.") var gateway: String?
    @Option(help: "A context of the contexts file.") var context: String?
    @Option(name: [.short, .customLong("output")], help: "table, wide, json or yaml.") var output: OutputFormat?

    func run() async throws {
        guard let tokenData = FileManager.default.contents(atPath: tokenFile) else {
            throw CLIError(description: "cannot read \(tokenFile)", exitCode: 2)
        }
        var body: [String: JSONValue] = [
            "server": .string(server), "token": .string(String(decoding: tokenData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)),
        ]
        if let caFile {
            guard let ca = FileManager.default.contents(atPath: caFile) else { throw CLIError(description: "cannot read \(caFile)", exitCode: 2) }
            body["ca"] = .string(String(decoding: ca, as: UTF8.self))
        }
        var g = try Global.parse([])
        g.server = gateway
        g.context = context
        g.output = output
        try await withClient(g) { c in
            let r = try await c.call("PUT", "/v1/registered-clusters/\(segment(name))", body: JSONValue.object(body).serialized())
            emit(r, g) { _ in print("cluster/\(name) registered (generation \(text(r["generation"])))") }
        }
    }
}

struct ClusterUnregister: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unregister", abstract: "Unregister a push-mode cluster: its push agent stops serving it (admin).")
    @OptionGroup var g: Global
    @Argument(help: "The cluster's name.") var name: String

    func run() async throws {
        try await withClient(g) { c in
            let r = try await c.call("DELETE", "/v1/registered-clusters/\(segment(name))")
            emit(r, g) { _ in print("cluster/\(name) unregistered") }
        }
    }
}
