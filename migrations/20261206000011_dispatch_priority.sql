-- "priority": "high" (transactional traffic such as OTPs): its messages go ahead of bulk
-- traffic on the same number, bulk keeping a minimum share (see the worker's README).
ALTER TABLE dispatches
    ADD COLUMN priority text NOT NULL DEFAULT 'normal' CHECK (priority IN ('normal', 'high'));

-- The outbox sweep starts from the active dispatches (their lanes are asked whether they
-- still hold jobs), not from every stale row: a capped number's backlog waits in its lane.
CREATE INDEX dispatches_active ON dispatches (id) WHERE status IN ('queued', 'sending');
