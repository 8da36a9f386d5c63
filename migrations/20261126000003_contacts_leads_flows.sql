-- Contacts, leads and chatbot flows of the public API (`/api/v1/contacts`, `/leads`,
-- `/chatbot-flows`). Every row belongs to one account; every query filters by account first.
-- Ids are UUIDv7 (time ordered), so `ORDER BY id` is creation order and the list cursor is
-- simply the last id seen.

CREATE TABLE contacts (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- Always E.164 (normalised by the API before it gets here).
    phone       text NOT NULL CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
    name        text CHECK (length(name) BETWEEN 1 AND 200),
    email       text CHECK (length(email) BETWEEN 3 AND 254),
    attributes  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    tags        text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- One contact per phone per account: the API answers 409 on a duplicate, and the index is
    -- also the "find or create by phone" lookup of leads and chatbot-flow triggers, and the
    -- `?phone=` filter of the list.
    CONSTRAINT contacts_account_phone_key UNIQUE (account_id, phone),
    -- The list pages through one account's contacts by id (cursor = last id), and leads point
    -- at (account_id, id) so a lead can only ever reference a contact of its own account.
    CONSTRAINT contacts_account_id_key UNIQUE (account_id, id)
);
-- `?tag=` filter: a GIN index answers `tags @> ARRAY[$tag]`; the planner combines it with the
-- account's btree index above.
CREATE INDEX contacts_tags ON contacts USING gin (tags);

CREATE TABLE leads (
    id           uuid PRIMARY KEY,
    account_id   uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    contact_id   uuid NOT NULL,
    title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    status       text NOT NULL DEFAULT 'new'
                 CHECK (status IN ('new', 'contacted', 'qualified', 'won', 'lost')),
    -- Money in minor units (cents) with its ISO 4217 code; never floating point.
    value_cents  bigint CHECK (value_cents >= 0),
    currency     text CHECK (currency ~ '^[A-Z]{3}$'),
    source       text CHECK (length(source) BETWEEN 1 AND 100),
    assignee     text CHECK (length(assignee) BETWEEN 1 AND 200),
    notes        text CHECK (length(notes) <= 5000),
    attributes   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- An amount means nothing without its currency.
    CONSTRAINT leads_value_currency CHECK (value_cents IS NULL OR currency IS NOT NULL),
    -- Same-account contact only (composite key); deleting a contact deletes its leads.
    CONSTRAINT leads_contact_fkey FOREIGN KEY (account_id, contact_id)
        REFERENCES contacts (account_id, id) ON DELETE CASCADE
);
-- The list pages through one account's leads by id (cursor = last id).
CREATE INDEX leads_account_id ON leads (account_id, id);
-- `?contact_id=` filter, and the cascade from a deleted contact (an FK needs an index on the
-- referencing side, or every contact delete scans all leads).
CREATE INDEX leads_account_contact ON leads (account_id, contact_id);
-- `?status=` filter (a pipeline view: "all qualified leads"), paged by id.
CREATE INDEX leads_account_status ON leads (account_id, status, id);
-- `?assignee=` filter ("my leads"); partial, since unassigned leads are never looked up by it.
CREATE INDEX leads_account_assignee ON leads (account_id, assignee, id) WHERE assignee IS NOT NULL;

CREATE TABLE chatbot_flows (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- The flow's first message: a template and its default variables (the per-recipient
    -- variables shape of the Broadcast API). No foreign key yet: templates are a separate
    -- migration; the webhook checks the template when it queues the message.
    template_id uuid,
    variables   jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(variables) = 'object'),
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- The admin list pages through one account's flows by id; the webhook looks a flow up by
-- (id, account_id), which the primary key answers.
CREATE INDEX chatbot_flows_account_id ON chatbot_flows (account_id, id);
