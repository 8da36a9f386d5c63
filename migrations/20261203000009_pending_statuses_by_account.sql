-- Parked status events are bounded per account (the status consumer counts an account's rows
-- before parking more of them), so the count needs an index by account.
CREATE INDEX pending_statuses_account ON pending_statuses (account_id);
