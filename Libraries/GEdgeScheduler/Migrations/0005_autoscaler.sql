-- The autoscaler: policies per workload, where its replicas run (home cluster and
-- neighbours over the edge), and every decision with its inputs.

CREATE TABLE autoscale_policies (
    namespace       text        NOT NULL,
    name            text        NOT NULL,
    project_name    text        NOT NULL,
    request_id      text        NOT NULL,
    spec            jsonb       NOT NULL,
    source          text        NOT NULL CHECK (source IN ('service', 'api')),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (namespace, name)
);

-- One row per cluster the workload runs in: the home cluster (placed by request_id of the
-- policy) and the overflow placements the autoscaler asked the scheduler for.
CREATE TABLE autoscale_placements (
    namespace       text        NOT NULL,
    name            text        NOT NULL,
    request_id      text        NOT NULL,
    cluster         text,
    home            boolean     NOT NULL DEFAULT false,
    replicas        integer     NOT NULL DEFAULT 0,
    state           text        NOT NULL CHECK (state IN ('placing', 'running')),
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (namespace, name, request_id),
    FOREIGN KEY (namespace, name) REFERENCES autoscale_policies (namespace, name) ON DELETE CASCADE
);

CREATE TABLE autoscale_decisions (
    id              bigserial PRIMARY KEY,
    namespace       text        NOT NULL,
    name            text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('horizontal', 'vertical', 'overflow')),
    current_replicas integer    NOT NULL,
    target_replicas integer     NOT NULL,
    inputs          jsonb       NOT NULL DEFAULT '{}',
    reason          text        NOT NULL,
    at              timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX autoscale_decisions_workload_idx ON autoscale_decisions (namespace, name, id);
