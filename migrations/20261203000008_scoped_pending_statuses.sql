-- Parked status events keep the account and number their webhook's signature verified, so a
-- retry applies them with the same scope (NULL: a body queued before scoping, unscoped).
ALTER TABLE pending_statuses
    ADD COLUMN account_id uuid,
    ADD COLUMN phone_number_id text;
