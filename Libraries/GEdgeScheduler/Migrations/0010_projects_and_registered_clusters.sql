-- Projects made by an admin (they also exist implicitly, by their tokens and bindings), and
-- clusters registered in push mode: the API server's address and its credentials sealed
-- with AES-256-GCM under a key that is never in the database (cluster.credentials.key.file),
-- with the cluster's name as associated data. Push agents lease the clusters they serve.

CREATE TABLE projects (
    name            text        PRIMARY KEY,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    created_by      text        NOT NULL DEFAULT ''
);

CREATE TABLE cluster_registrations (
    name            text        PRIMARY KEY,
    server          text        NOT NULL,
    credentials     text        NOT NULL,
    key_id          text        NOT NULL,
    generation      bigint      NOT NULL DEFAULT 1,
    registered_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    registered_by   text        NOT NULL DEFAULT '',
    lease_holder    text,
    lease_until     timestamptz
);

CREATE TABLE push_agents (
    instance        text        PRIMARY KEY,
    seen_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);
