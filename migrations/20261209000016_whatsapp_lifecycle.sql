-- WhatsApp's own limits and lifecycle (issue 16): the schema the parts share.

-- The account's WhatsApp Business Account: template calls to the Graph API
-- (`/{waba_id}/message_templates`) and the webhooks Meta sends per WABA (template status,
-- quality and category; number quality; account updates) find the account by it.
ALTER TABLE whatsapp_settings ADD COLUMN waba_id text
    CHECK (waba_id ~ '^[0-9]{1,32}$');
CREATE UNIQUE INDEX whatsapp_settings_waba ON whatsapp_settings (waba_id) WHERE waba_id IS NOT NULL;

-- The business portfolio's messaging limit (unique users reached outside a customer-service
-- window per moving 24 h). NULL: not known yet, so not enforced (docs/messaging-limits.md).
ALTER TABLE accounts ADD COLUMN messaging_tier text
    CHECK (messaging_tier IN ('TIER_250', 'TIER_2K', 'TIER_10K', 'TIER_100K', 'TIER_UNLIMITED'));

-- Why a dispatch is paused: NULL for a pause by hand or an older halt; otherwise a short
-- code (e.g. `template_paused`, `number_flagged`) that also says which pauses end by
-- themselves (a template's pause that ends resumes the dispatches it paused).
ALTER TABLE dispatches ADD COLUMN pause_reason text;
-- The template every message of the dispatch uses (NULL: free-form or mixed), so a template's
-- pause finds its dispatches.
ALTER TABLE dispatches ADD COLUMN template_id uuid;
CREATE INDEX dispatches_template_active ON dispatches (template_id)
    WHERE template_id IS NOT NULL AND status IN ('scheduled', 'queued', 'sending', 'paused');
