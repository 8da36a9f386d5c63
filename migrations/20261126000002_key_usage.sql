-- Per-key usage counters for the usage-stats dialog. Only Broadcast API sends made with the key
-- count; rows are updated by the ingest path (total, last message) and the status consumer
-- (sent/delivered/read/failed, real transitions only).
CREATE TABLE api_key_usage (
    key_id           uuid PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    total_messages   bigint NOT NULL DEFAULT 0,
    sent             bigint NOT NULL DEFAULT 0,
    delivered        bigint NOT NULL DEFAULT 0,
    read             bigint NOT NULL DEFAULT 0,
    failed           bigint NOT NULL DEFAULT 0,
    last_message_at  timestamptz
);
