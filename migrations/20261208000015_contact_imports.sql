-- CSV imports of contacts (issue 15, `POST /api/v1/contacts/import`, docs/contact-import.md).
-- The request checks the whole file (size, encoding, CSV syntax, header, row count) and stores
-- it here (state `validating` until the first batch commits); a runner in some api process
-- then reads it in order and writes batches (state `importing`): each batch's rejected rows,
-- its upsert, the counters and `next_row` move in one transaction, so a crash resumes exactly
-- where the last commit stopped. Whoever holds the lease (until `lease_until`, with
-- `lease_token`) runs the import; an expired lease is taken over.

CREATE TABLE contact_imports (
    id              uuid PRIMARY KEY,
    account_id      uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- The key that uploaded the file (NULL: the account's admin, e.g. the web UI).
    key_id          uuid,
    state           text NOT NULL DEFAULT 'validating'
                    CHECK (state IN ('validating', 'importing', 'done', 'failed')),
    -- Data rows of the file (blank lines not counted).
    total_rows      integer NOT NULL CHECK (total_rows >= 0),
    -- Data rows passed so far (imported or rejected).
    rows_done       integer NOT NULL DEFAULT 0,
    created         integer NOT NULL DEFAULT 0,
    updated         integer NOT NULL DEFAULT 0,
    unchanged       integer NOT NULL DEFAULT 0,
    -- Rows rejected so far (a row with several problems counts once).
    rejected        integer NOT NULL DEFAULT 0,
    default_country text CHECK (default_country ~ '^[A-Z]{2}$'),
    -- The uploaded CSV as received (the file part of a multipart body), BOM included. Stored
    -- uncompressed (below): compressing a 50 MB file took most of the upload request's time.
    file            bytea NOT NULL,
    -- The next row (1-based, the header is row 1) the import has not yet passed.
    next_row        integer NOT NULL DEFAULT 2,
    -- Why the import failed (state `failed` only).
    error           text,
    lease_until     timestamptz NOT NULL DEFAULT now(),
    lease_token     uuid,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
ALTER TABLE contact_imports ALTER COLUMN file SET STORAGE EXTERNAL;

-- The runners' claim (open imports, oldest first; one per account at a time) and the
-- per-account "is an older import still open" check.
CREATE INDEX contact_imports_open ON contact_imports (account_id, id)
    WHERE state IN ('validating', 'importing');

-- Per-row problems of an import. `seq` orders them (row, then column order) and is the
-- cursor of the rejections list; `column_name` is NULL for a whole-row problem (wrong field
-- count).
CREATE TABLE contact_import_rejections (
    import_id    uuid NOT NULL REFERENCES contact_imports (id) ON DELETE CASCADE,
    seq          integer NOT NULL,
    row_number   integer NOT NULL,
    column_name  text,
    code         text NOT NULL,
    message      text NOT NULL,
    PRIMARY KEY (import_id, seq)
);
