-- Workflows (GS-AIflow): a DAG of services deployed in dependency order.

CREATE TABLE workflows (
    id              text        PRIMARY KEY,
    name            text        NOT NULL,
    namespace       text        NOT NULL,
    project_name    text        NOT NULL,
    user_name       text        NOT NULL,
    workspace_name  text        NOT NULL,
    spec            jsonb       NOT NULL,
    state           text        NOT NULL CHECK (state IN ('running', 'completed', 'failed', 'canceled')),
    reason          text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX workflows_project_idx ON workflows (project_name, created_at);
CREATE INDEX workflows_running_idx ON workflows (state) WHERE state = 'running';

CREATE TABLE workflow_steps (
    workflow_id     text        NOT NULL REFERENCES workflows (id) ON DELETE CASCADE,
    name            text        NOT NULL,
    position        integer     NOT NULL,
    depends_on      text[]      NOT NULL DEFAULT '{}',
    state           text        NOT NULL CHECK (state IN ('pending', 'submitted', 'completed', 'failed', 'skipped', 'canceled')),
    attempt         integer     NOT NULL DEFAULT 0,
    request_id      text,
    cluster         text,
    node            text,
    reason          text,
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (workflow_id, name)
);
