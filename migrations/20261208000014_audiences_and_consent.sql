-- Audiences and consent (issue 15): the suppression list, per-account opt-out keywords,
-- audience sends expanded in the background, and the recipients a dispatch rejected.

-- People who must not be messaged. One row per phone per account: `marketing` blocks
-- templates of category MARKETING, `all` blocks every template. Sends drop them (reported as
-- rejected `suppressed`); inbound STOP keywords and failure 131050 add rows, START removes
-- the `opt_out` ones.
CREATE TABLE suppressions (
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    phone       text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    reason      text NOT NULL CHECK (reason IN ('opt_out', 'bounced', 'manual')),
    scope       text NOT NULL CHECK (scope IN ('marketing', 'all')),
    source      text NOT NULL CHECK (length(source) BETWEEN 1 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- The send paths' lookup (account, phone = ANY(...)) and the list's cursor (by phone).
    PRIMARY KEY (account_id, phone)
);

-- An account's own opt-out / opt-in keywords (uppercase, compared with the trimmed,
-- uppercased text of an inbound message). No row: the defaults (STOP, UNSUBSCRIBE, CANCEL,
-- END, QUIT, STOPALL / START, UNSTOP).
CREATE TABLE consent_keywords (
    account_id  uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    opt_out     text[] NOT NULL,
    opt_in      text[] NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Attribute names some contact of the account has (or had): `variables_from` may only name
-- these. Kept by every contact write (create, patch, import); never shrinks.
CREATE TABLE contact_attribute_keys (
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key         text NOT NULL,
    PRIMARY KEY (account_id, key)
);
INSERT INTO contact_attribute_keys (account_id, key)
SELECT DISTINCT account_id, jsonb_object_keys(attributes) FROM contacts
ON CONFLICT DO NOTHING;

-- An audience send's fan-out, run in the background in chunks (keyset over the account's
-- contacts by id). The chunk's messages, rejections and the cursor move in one transaction,
-- so a crash resumes exactly where the last commit stopped. Whoever holds the lease (until
-- `lease_until`, with `lease_token`) runs the next chunk; an expired lease is taken over.
-- A large audience is split into slices (contiguous id ranges, one row each: the cursor
-- starts at the slice's lower bound, `upper_id` is its upper one) expanded in parallel.
CREATE TABLE dispatch_audiences (
    dispatch_id     uuid NOT NULL REFERENCES dispatches (id) ON DELETE CASCADE,
    slice           smallint NOT NULL DEFAULT 0,
    account_id      uuid NOT NULL,
    -- The audience and `variables_from` as the request gave them (validated).
    audience        jsonb NOT NULL,
    variables_from  jsonb,
    -- Contacts created after the request (a larger UUIDv7) are not in the audience.
    upper_id        uuid NOT NULL,
    -- The last contact id passed; NULL before the first chunk.
    cursor_id       uuid,
    -- How many contacts matched when counted (the first step of the fan-out, stored on
    -- slice 0), and how many this slice passed so far (queued + rejected).
    audience_total  integer,
    passed          integer NOT NULL DEFAULT 0,
    state           text NOT NULL DEFAULT 'expanding'
                    CHECK (state IN ('expanding', 'done', 'cancelled')),
    lease_until     timestamptz NOT NULL DEFAULT now(),
    lease_token     uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dispatch_id, slice)
);
-- The expanders' claim: open fan-outs, least recently advanced first (chunks of different
-- dispatches interleave, so one tenant's huge audience does not hold back another's).
CREATE INDEX dispatch_audiences_open ON dispatch_audiences (updated_at) WHERE state = 'expanding';

-- Recipients a dispatch did not queue: audience contacts whose variables could not be filled,
-- suppressed phones, and (for recipient lists) the request's rejections. `ordinal` is the
-- request index for a list; for an audience, slice * 2^32 + the position in the slice.
CREATE TABLE dispatch_rejections (
    dispatch_id  uuid NOT NULL REFERENCES dispatches (id) ON DELETE CASCADE,
    ordinal      bigint NOT NULL,
    contact_id   uuid,
    phone        text,
    code         text NOT NULL,
    message      text NOT NULL,
    PRIMARY KEY (dispatch_id, ordinal)
);
