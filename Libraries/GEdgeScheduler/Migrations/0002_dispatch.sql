-- The durable request queue, dispatch leases and placements.
--
-- Queue classes (GS-Scheduler's): retry (fail_count above the retry threshold), fast
-- (fast_option), base. A worker claims requests with FOR UPDATE SKIP LOCKED and holds a
-- lease; a request whose lease passes is re-queued.
ALTER TABLE schedule_requests
    ADD COLUMN attempt      integer     NOT NULL DEFAULT 0,
    ADD COLUMN queued_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    ADD COLUMN not_before   timestamptz NOT NULL DEFAULT '-infinity',
    ADD COLUMN lease_owner  text,
    ADD COLUMN lease_until  timestamptz,
    ADD COLUMN candidates   jsonb       NOT NULL DEFAULT '[]',
    ADD COLUMN reason       text,
    ADD COLUMN source_node  text,
    ADD COLUMN pod_lookup_at timestamptz,
    ADD COLUMN finished_at  timestamptz;

CREATE INDEX schedule_requests_queue_idx ON schedule_requests (fast, queued_at) WHERE state = 'enqueued';
CREATE INDEX schedule_requests_lease_idx ON schedule_requests (lease_until) WHERE state IN ('scheduling', 'applying');

-- One row per cluster a request's attempt was sent to.
CREATE TABLE schedule_placements (
    request_id  text        NOT NULL REFERENCES schedule_requests (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    cluster     text        NOT NULL,
    node        text,
    replicas    integer     NOT NULL,
    state       text        NOT NULL CHECK (state IN ('applying', 'applied', 'failed', 'expired', 'removed')),
    reason      text,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (request_id, attempt, cluster)
);

-- Exactly one placement: a request is applied at most once on a cluster at any time.
CREATE UNIQUE INDEX schedule_placements_once ON schedule_placements (request_id, cluster) WHERE state = 'applied';

-- Which clusters each project may use. GSelectedCluster rejects any other cluster; every
-- policy chooses among these only.
CREATE TABLE project_clusters (
    project_name text NOT NULL,
    cluster      text NOT NULL,
    PRIMARY KEY (project_name, cluster)
);
