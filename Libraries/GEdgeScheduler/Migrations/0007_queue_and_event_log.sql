-- The retry class is claimed from an index of its own: with thousands of requests queued
-- and none failed, picking it from the queue index meant reading every queued entry on
-- each claim. Its entries are few (only requests that failed), so it costs the writes
-- little.
CREATE INDEX schedule_requests_retry_idx ON schedule_requests (queued_at) WHERE state = 'enqueued' AND fail_count > 0;

-- The lifecycle log and the placements are written only in the statements that update
-- their request (one statement each), and requests are never deleted: the foreign keys'
-- per-row checks (a key-share lock on the request for every event row) guard nothing more.
ALTER TABLE schedule_request_events DROP CONSTRAINT schedule_request_events_request_id_fkey;
ALTER TABLE schedule_placements DROP CONSTRAINT schedule_placements_request_id_fkey;
