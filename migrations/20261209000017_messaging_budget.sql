-- The portfolio messaging-limit budget (issue 16, docs/messaging-limits.md).
--
-- A message that would take the account's portfolio past its messaging limit (unique users
-- reached outside a customer-service window per moving window) is held as `deferred`: a
-- waiting state, not an attempt and not a failure. `next_attempt_at` says when the window
-- frees room for it (its lane job comes back then) and `deferred_reason` why it waits (a
-- short code: `messaging_limit`); the reason is cleared when a worker claims the row again.
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('scheduled','queued','deferred','sending','accepted','sent','delivered','read','failed','cancelled'));
ALTER TABLE messages ADD COLUMN deferred_reason text;

-- A deferred message is waiting: the completion pass's probe must still find it
-- (`MessageStatus::WAITING`, whose SQL list these predicates match).
DROP INDEX IF EXISTS messages_waiting;
CREATE INDEX messages_waiting ON messages (dispatch_id)
    WHERE status IN ('scheduled', 'queued', 'deferred', 'sending', 'accepted');
-- The outbox sweep also re-pushes deferred rows whose job was lost (due and not in a lane).
DROP INDEX IF EXISTS messages_queued_sweep;
CREATE INDEX messages_queued_sweep ON messages (updated_at)
    WHERE status IN ('queued', 'deferred', 'sending') AND updated_at IS NOT NULL;
