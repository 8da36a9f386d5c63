-- The outbox and stuck sweeps' index, made unusable for the workers' by-id statements.
--
-- With `messages_queued` matching any statement that says `status = 'queued'`, the planner
-- chose it (through BitmapAnd with `messages_dispatch`) for the worker's claim of 200 rows by
-- id: the index holds every row that passed through queued/sending until vacuum, so the claim
-- read ~90,000 dead entries per dispatch and took ~250 ms instead of ~2 ms. The extra
-- `updated_at IS NOT NULL` conjunct is implied only by statements that bound `updated_at`
-- (the sweeps), so by-id statements keep the primary key.
DROP INDEX IF EXISTS messages_queued;
CREATE INDEX messages_queued_sweep ON messages (updated_at)
    WHERE status IN ('queued', 'sending') AND updated_at IS NOT NULL;
