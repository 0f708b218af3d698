-- Schedule requests: one row per request holding its current state, plus an append-only
-- history of every state change.
CREATE TABLE schedule_requests (
    id              text PRIMARY KEY,
    policy          text        NOT NULL,
    user_name       text        NOT NULL,
    workspace_name  text        NOT NULL,
    project_name    text        NOT NULL,
    fast            boolean     NOT NULL DEFAULT false,
    state           text        NOT NULL,
    fail_count      integer     NOT NULL DEFAULT 0,
    workload        jsonb       NOT NULL DEFAULT 'null',
    parameters      jsonb       NOT NULL DEFAULT '{}',
    callback_url    text,
    placement       jsonb,
    source          jsonb,
    kafka_topic     text,
    kafka_partition integer,
    kafka_offset    bigint,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT schedule_requests_state_check CHECK (state IN (
        'received', 'enqueued', 'dispatched', 'scheduling', 'applying',
        'completed', 'failed', 'canceled', 'rejected'))
);

CREATE INDEX schedule_requests_state_idx ON schedule_requests (state, fast, created_at);
CREATE INDEX schedule_requests_project_idx ON schedule_requests (project_name, created_at);

CREATE TABLE schedule_request_events (
    id          bigserial PRIMARY KEY,
    request_id  text        NOT NULL REFERENCES schedule_requests (id) ON DELETE CASCADE,
    state       text        NOT NULL,
    reason      text,
    detail      jsonb,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX schedule_request_events_request_idx ON schedule_request_events (request_id, id);
