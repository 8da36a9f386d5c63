-- A business number's quality and throughput as Meta reports them in `phone_number_quality_update`
-- webhooks (issue 16, docs/whatsapp-events.md). The rate in force stays `messages_per_second`:
-- a THROUGHPUT_UPGRADE raises it to 1,000 and sets `throughput_level` to HIGH.

-- The last quality event of the number (FLAGGED, UNFLAGGED, UPGRADE, DOWNGRADE,
-- THROUGHPUT_UPGRADE, ...) and when it was applied; NULL: none received yet.
ALTER TABLE phone_numbers ADD COLUMN quality_event text
    CHECK (quality_event ~ '^[A-Z0-9_]{1,64}$');
ALTER TABLE phone_numbers ADD COLUMN quality_changed_at timestamptz;
-- Flagged for low quality (FLAGGED until UNFLAGGED): its dispatches are paused with
-- `pause_reason = 'number_flagged'` meanwhile.
ALTER TABLE phone_numbers ADD COLUMN flagged boolean NOT NULL DEFAULT false;
-- STANDARD (Meta's 80 mps default, or a rate set by hand) or HIGH (upgraded to 1,000 mps).
ALTER TABLE phone_numbers ADD COLUMN throughput_level text NOT NULL DEFAULT 'STANDARD'
    CHECK (throughput_level IN ('STANDARD', 'HIGH'));

-- A number's dispatches paused for its quality, found again when it is unflagged.
CREATE INDEX dispatches_paused_reason ON dispatches (account_id, pause_reason)
    WHERE status = 'paused' AND pause_reason IS NOT NULL;
