-- Accounts, their admin tokens and their API keys.
-- Secrets are never stored: admin tokens and API keys are kept as HMAC-SHA256(pepper, value).

CREATE TABLE accounts (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE admin_tokens (
    -- HMAC of the token: the primary key is the O(1) lookup on every admin request.
    token_hash  bytea PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_tokens_account ON admin_tokens (account_id);

CREATE TABLE api_keys (
    id                  uuid PRIMARY KEY,
    account_id          uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- HMAC of the full key; the unique index is the authentication lookup.
    key_hash            bytea NOT NULL,
    -- What the masked form needs: "sk_live_" + 6 characters, and the last 4 characters.
    key_head            text NOT NULL,
    key_tail            text NOT NULL,
    test_mode           boolean NOT NULL DEFAULT false,
    scope_group         text,
    scopes              text[] NOT NULL CHECK (cardinality(scopes) > 0),
    allowed_ips         text[] NOT NULL DEFAULT '{}',
    rate_limit_per_hour integer CHECK (rate_limit_per_hour IS NULL OR rate_limit_per_hour > 0),
    expires_at          timestamptz,
    active              boolean NOT NULL DEFAULT true,
    last_used_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);
-- The admin list pages through one account's keys, sorted by creation time by default.
CREATE INDEX api_keys_account_created ON api_keys (account_id, created_at, id);
