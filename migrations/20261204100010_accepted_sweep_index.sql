-- The scheduler's accepted sweep (messages WhatsApp accepted whose status webhooks never came):
-- oldest `accepted` rows first, by `updated_at`. Only rows waiting for their first status are
-- in it, so it stays small (a row leaves it at its first status).
CREATE INDEX messages_accepted_sweep ON messages (updated_at) WHERE status = 'accepted';
