-- Event-driven functions (faas-trigger) and notifications (notifier).

CREATE TABLE functions (
    namespace       text        NOT NULL,
    name            text        NOT NULL,
    cluster         text        NOT NULL,
    target          text        NOT NULL,
    definition      jsonb       NOT NULL,
    replicas        integer     NOT NULL DEFAULT 0,
    last_metric     double precision,
    last_reason     text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (namespace, name)
);

CREATE TABLE function_scale_events (
    id              bigserial PRIMARY KEY,
    namespace       text        NOT NULL,
    name            text        NOT NULL,
    from_replicas   integer     NOT NULL,
    to_replicas     integer     NOT NULL,
    metric          double precision,
    reason          text        NOT NULL,
    at              timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX function_scale_events_fn_idx ON function_scale_events (namespace, name, id);

CREATE TABLE notifications (
    event_id        text PRIMARY KEY,
    queue           text        NOT NULL,
    payload         jsonb       NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX notifications_queue_idx ON notifications (queue, received_at);

CREATE TABLE notification_deliveries (
    id              bigserial PRIMARY KEY,
    event_id        text        NOT NULL REFERENCES notifications (event_id) ON DELETE CASCADE,
    url             text        NOT NULL,
    payload         jsonb       NOT NULL,
    state           text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    next_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    UNIQUE (event_id, url),
    CONSTRAINT notification_deliveries_state_check CHECK (state IN ('pending', 'delivered', 'failed'))
);

CREATE INDEX notification_deliveries_due_idx ON notification_deliveries (next_at) WHERE state = 'pending';
