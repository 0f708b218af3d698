-- Every index on the lifecycle tables is paid on every write, thousands of times a second.
--
-- The event log is read by request, in order (request_id, id): that is now its primary key,
-- in place of a key on id alone plus a second index for the reads.
ALTER TABLE schedule_request_events DROP CONSTRAINT schedule_request_events_pkey;
ALTER TABLE schedule_request_events ADD PRIMARY KEY (request_id, id);
DROP INDEX schedule_request_events_request_idx;

-- No statement reaches requests through (state, fast, created_at): the queue and the leases
-- have partial indexes of their own, and the gateway's listing goes by time.
DROP INDEX schedule_requests_state_idx;

-- The lease index holds the requests with a lease (exactly those in scheduling or applying)
-- but is no longer defined by state: on statistics outgrown by a burst, a statement about a
-- batch of applying requests by key was planned as a walk of every leased request.
DROP INDEX schedule_requests_lease_idx;
CREATE INDEX schedule_requests_lease_idx ON schedule_requests (lease_until) WHERE lease_until IS NOT NULL;
