-- Template lifecycle with Meta (issue 16, docs/templates.md): a template is submitted to the
-- Graph API when created and its status follows Meta's (status webhooks, sync).

-- Meta's statuses only. Rows created before this migration (never submitted) keep
-- `APPROVED`, as do rows inserted without a status: the API always writes Meta's answer, and
-- a sync corrects the others.
UPDATE templates SET status = upper(status) WHERE status <> upper(status);
UPDATE templates SET status = 'APPROVED'
 WHERE status NOT IN ('PENDING', 'APPROVED', 'REJECTED', 'PAUSED', 'DISABLED');
ALTER TABLE templates ADD CONSTRAINT templates_status_check
    CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED', 'PAUSED', 'DISABLED'));

-- Meta's id of the template (from its create answer, a sync or a webhook).
ALTER TABLE templates ADD COLUMN meta_template_id text
    CHECK (meta_template_id ~ '^[0-9]{1,32}$');
-- Why Meta gave the status (a rejection's reason, e.g. `INVALID_FORMAT`; a pause's): NULL
-- when none (Meta's `NONE`).
ALTER TABLE templates ADD COLUMN status_reason text CHECK (length(status_reason) <= 200);
-- Meta's quality rating (`GREEN`, `YELLOW`, `RED`, `UNKNOWN`); NULL until Meta gives one.
ALTER TABLE templates ADD COLUMN quality_score text CHECK (length(quality_score) <= 32);
-- When the status last changed.
ALTER TABLE templates ADD COLUMN status_updated_at timestamptz;
