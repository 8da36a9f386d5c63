-- One model of a message: the states are exactly `ezpulze_common::model::MessageStatus`.
-- `unknown` was allowed but never written (an unknown outcome ends `failed` with an
-- "outcome unknown" title, or goes back to `queued` under the resend policy).
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('scheduled','queued','sending','accepted','sent','delivered','read','failed','cancelled'));

-- Idempotency-Key records: written in the transaction that records the dispatch, so a
-- request whose work was committed always has its record (a failure after the commit can
-- neither answer 500 for it nor make its retries wait), and a request that failed leaves
-- none. `caller` is `k:<key id>` or `a:<account id>` (the admin UI); records older than
-- 24 h no longer count and are deleted by the scheduler.
CREATE TABLE idempotency_records (
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    caller       text NOT NULL,
    key_digest   text NOT NULL,
    body_digest  text NOT NULL,
    dispatch_id  uuid NOT NULL,
    response     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, caller, key_digest)
);
CREATE INDEX idempotency_records_created ON idempotency_records (created_at);
