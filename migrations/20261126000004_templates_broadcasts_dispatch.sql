-- Templates, broadcasts, WhatsApp settings, dispatches and messages.

CREATE TABLE templates (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        text NOT NULL,
    language    text NOT NULL,
    category    text NOT NULL,
    -- The whole definition in Meta's message-template format, validated by the payload crate.
    definition  jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'APPROVED',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- Meta identifies a template by name + language within a WhatsApp Business Account.
    CONSTRAINT templates_account_name_language_key UNIQUE (account_id, name, language)
);

CREATE TABLE broadcasts (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         text NOT NULL,
    template_id  uuid NOT NULL REFERENCES templates (id) ON DELETE RESTRICT,
    -- Default variables (same shape as a recipient's), with saved media references.
    variables    jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
-- Listing an account's broadcasts, newest first.
CREATE INDEX broadcasts_account_created ON broadcasts (account_id, created_at DESC);

CREATE TABLE whatsapp_settings (
    account_id      uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    -- Encrypted with EZPULZE_SECRETS_KEY (AES-256-GCM); never returned by the API.
    app_secret_enc  bytea,
    verify_token    text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE phone_numbers (
    phone_number_id       text PRIMARY KEY,
    account_id            uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    display_phone_number  text NOT NULL,
    access_token_enc      bytea NOT NULL,
    messages_per_second   integer NOT NULL DEFAULT 80 CHECK (messages_per_second > 0),
    position              integer NOT NULL DEFAULT 0
);
CREATE INDEX phone_numbers_account ON phone_numbers (account_id, position);

CREATE TABLE dispatches (
    id               uuid PRIMARY KEY,
    account_id       uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    broadcast_id     uuid REFERENCES broadcasts (id) ON DELETE SET NULL,
    -- The key that sent it (null for the admin UI and chatbot flows): usage counts only these.
    key_id           uuid,
    -- Sent with a sk_test_ key: the whole pipeline runs, but against TEST_GRAPH_API_BASE.
    test_mode        boolean NOT NULL DEFAULT false,
    phone_number_id  text,
    status           text NOT NULL CHECK (status IN ('scheduled','queued','sending','completed','cancelled','paused')),
    total            integer NOT NULL,
    scheduled_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- The scheduler's scan for due scheduled dispatches.
CREATE INDEX dispatches_scheduled ON dispatches (scheduled_at) WHERE status = 'scheduled';
CREATE INDEX dispatches_account_created ON dispatches (account_id, created_at DESC);

-- One row per recipient. Ids are UUIDv7 (time-ordered), and the table is partitioned by id
-- range per UTC day, so retention drops whole partitions instead of deleting rows, and the
-- primary key stays on the id alone.
CREATE TABLE messages (
    id            uuid NOT NULL,
    dispatch_id   uuid NOT NULL,
    account_id    uuid NOT NULL,
    key_id        uuid,
    to_phone      text NOT NULL,
    ref           text,
    payload       jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('scheduled','queued','sending','accepted','sent','delivered','read','failed','cancelled','unknown')),
    -- queued: waiting for a worker; sending: claimed by a worker (lease in claimed_at);
    -- accepted: the Graph API took it (wamid stored), WhatsApp's 'sent' not seen yet;
    -- unknown: a worker died mid-send, so whether WhatsApp took it is not known.
    wamid         text,
    error_code    integer,
    error_title   text,
    attempts      integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    delivered_at  timestamptz,
    read_at       timestamptz,
    failed_at     timestamptz,
    claimed_at    timestamptz,
    -- When a retryable failure re-scheduled it (the queue holds the delayed job).
    next_attempt_at timestamptz,
    PRIMARY KEY (id)
) PARTITION BY RANGE (id);
-- Listing a dispatch's messages in id order (cursor pagination) and counting its progress.
CREATE INDEX messages_dispatch ON messages (dispatch_id, id);
-- Matching a status webhook by wamid when the callback data is missing.
CREATE INDEX messages_wamid ON messages (wamid) WHERE wamid IS NOT NULL;
-- The outbox sweep: rows still queued after a timeout.
CREATE INDEX messages_queued ON messages (updated_at) WHERE status IN ('queued', 'sending');

-- Status events that matched no message yet (applied when the message appears, expired later).
CREATE TABLE pending_statuses (
    id           bigserial PRIMARY KEY,
    message_id   uuid,
    wamid        text,
    status       text NOT NULL,
    event_at     timestamptz NOT NULL,
    error_code   integer,
    error_title  text,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_statuses_received ON pending_statuses (received_at);

-- The smallest UUIDv7 of a timestamp: 48 bits of Unix milliseconds, then zeros.
CREATE FUNCTION ezp_uuid7_floor(ts timestamptz) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
    SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '70008000000000000000')::uuid
$$;

-- Creates the daily partitions of messages from `from_day` for `days` days (idempotent).
CREATE FUNCTION ezp_ensure_message_partitions(from_day date, days integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    part text;
BEGIN
    FOR i IN 0 .. days - 1 LOOP
        d := from_day + i;
        part := 'messages_' || to_char(d, 'YYYYMMDD');
        IF to_regclass(part) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF messages FOR VALUES FROM (%L) TO (%L)',
                part, ezp_uuid7_floor(d::timestamp AT TIME ZONE 'UTC'),
                ezp_uuid7_floor((d + 1)::timestamp AT TIME ZONE 'UTC'));
        END IF;
    END LOOP;
END $$;

-- Anything outside the daily partitions (clock skew, old ids) still has a home.
CREATE TABLE messages_default PARTITION OF messages DEFAULT;
SELECT ezp_ensure_message_partitions((now() AT TIME ZONE 'UTC')::date - 1, 9);
