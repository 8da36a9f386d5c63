-- Integrator events: endpoints an account registers, and one delivery row per (event, endpoint).
-- Events are created in the same statement as the transition that causes them (the status
-- reducer, the worker's failures, the scheduler's sweeps, pauses and completions), so an event
-- exists exactly when its transition committed. The delivery rows are the queue of record;
-- workers claim due rows in batches (FOR UPDATE SKIP LOCKED), the per-endpoint rate is a GCRA
-- in Redis shared by every worker.
CREATE TABLE webhook_endpoints (
    id                uuid PRIMARY KEY,
    account_id        uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- Created by a sk_test_ key (or chosen in the admin API): receives only test-mode events.
    test_mode         boolean NOT NULL DEFAULT false,
    url               text NOT NULL,
    -- Empty = every event type.
    events            text[] NOT NULL DEFAULT '{}',
    -- NULL = messages of every key.
    key_ids           uuid[],
    max_per_second    integer NOT NULL DEFAULT 50 CHECK (max_per_second BETWEEN 1 AND 1000),
    active            boolean NOT NULL DEFAULT true,
    description       text NOT NULL DEFAULT '',
    include_phone     boolean NOT NULL DEFAULT false,
    -- The signing secret (`whsec_...`), sealed with EZPULZE_SECRETS_KEY.
    secret_enc        bytea NOT NULL,
    -- After a rotation the previous secret signs alongside the new one until `old_secret_until`.
    old_secret_enc    bytea,
    old_secret_until  timestamptz,
    -- Set when every attempt failed since `failing_since` for longer than the disable horizon.
    failing_since     timestamptz,
    disabled_reason   text,
    disabled_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id, id);

CREATE TABLE webhook_deliveries (
    id               uuid NOT NULL,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    account_id       uuid NOT NULL,
    -- The event's id (`evt_...`), the same at every endpoint and on every attempt (`webhook-id`).
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    -- The whole event as it is posted: {"id", "type", "created_at", "data"}.
    body             jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivering', 'succeeded', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    last_attempt_at  timestamptz,
    last_status      integer,
    last_latency_ms  integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- An endpoint's rows in id (creation) order: the delivery log's pages, retention, and
    -- every write by id (each names its endpoint). Three indexes in all, because every
    -- delivery is written three times (created, claimed, settled) and each write that changes
    -- `state` updates every index: a unique (endpoint, event) index and a separate log index
    -- made the event path several times slower (`make bench-e2e`, README).
    PRIMARY KEY (endpoint_id, id)
);
-- Claiming: the due rows of an endpoint, oldest due first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_at)
    WHERE state = 'pending';
-- Leases of dead workers.
CREATE INDEX webhook_deliveries_leased ON webhook_deliveries (lease_until)
    WHERE state = 'delivering';

-- A time-ordered id (UUIDv7: 48 bits of Unix milliseconds, version 7, random rest) for rows
-- created inside statements (delivery rows), so id order is creation order.
CREATE FUNCTION ezp_uuid7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
        PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
        FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;

-- The scheduler's completion pass asks "does this dispatch still have a message waiting?"
-- for every active dispatch: a probe of this small index instead of a scan of the dispatch.
CREATE INDEX messages_waiting ON messages (dispatch_id)
    WHERE status IN ('scheduled', 'queued', 'sending', 'accepted');
