-- The gateway's tables: API tokens (hashed), edge services, and the callbacks it owes.

CREATE TABLE api_tokens (
    id              text PRIMARY KEY,
    token_hash      text        NOT NULL UNIQUE,
    user_name       text        NOT NULL,
    workspace_name  text        NOT NULL,
    project_name    text        NOT NULL,
    admin           boolean     NOT NULL DEFAULT false,
    description     text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_at      timestamptz
);

CREATE TABLE edge_services (
    project_name    text        NOT NULL,
    namespace       text        NOT NULL,
    name            text        NOT NULL,
    user_name       text        NOT NULL,
    definition      jsonb       NOT NULL,
    manifests       jsonb       NOT NULL,
    request_id      text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (namespace, name)
);

CREATE INDEX edge_services_project_idx ON edge_services (project_name, namespace, name);

CREATE TABLE callback_deliveries (
    request_id      text PRIMARY KEY,
    url             text        NOT NULL,
    payload         jsonb       NOT NULL,
    state           text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    next_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    CONSTRAINT callback_deliveries_state_check CHECK (state IN ('pending', 'delivered', 'failed'))
);

CREATE INDEX callback_deliveries_due_idx ON callback_deliveries (next_at) WHERE state = 'pending';
