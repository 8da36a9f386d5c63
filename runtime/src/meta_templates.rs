//! Templates at Meta (`docs/templates.md`): the Graph API's `/{waba_id}/message_templates`
//! (submit one, list them page by page) and the sync of an account's templates with it, shared
//! by the api (`POST /api/v1/templates`, `POST /api/v1/templates/sync`) and the scheduler's
//! periodic sync.
//!
//! Credentials: the account's `whatsapp_settings.waba_id` and the access token of its first
//! phone number (by position, then id: the number a dispatch uses by default), opened with
//! `EZPULZE_SECRETS_KEY` as the worker does. Template calls always go to `GRAPH_API_BASE`
//! (templates belong to the account, not to a key's mode).

use std::time::Duration;

use anyhow::Context;
use ezpulze_common::jobs::SendJob;
use ezpulze_common::secrets::Sealer;
use ezpulze_common::template_status::{self, TemplateChange, TemplateStatus};
use ezpulze_common::Config;
use ezpulze_payload::{CompiledTemplate, Template};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// A Graph API call's time limit.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// Templates asked per page of a list.
const PAGE_SIZE: u32 = 100;
/// At most this many pages per sync (10,000 templates: Meta allows 6,000 per WABA).
pub const MAX_PAGES: usize = 100;

/// The Graph API's template endpoints.
#[derive(Clone)]
pub struct GraphTemplates {
    http: reqwest::Client,
    base: String,
    version: String,
}

/// Why a Graph API call did not give an answer the engine can use.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Meta answered with an error (4xx): the request is refused as it stands.
    #[error("Meta refused the request (HTTP {status}, code {code:?}): {message}")]
    Refused {
        status: u16,
        code: Option<i64>,
        message: String,
    },
    /// No answer, a 5xx, or an answer that is not what Meta documents.
    #[error("the Graph API is unavailable: {0}")]
    Unavailable(String),
}

/// Meta's answer to a submitted template.
#[derive(Debug, Clone, Deserialize)]
pub struct Created {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub category: Option<String>,
}

/// One template of a list page.
#[derive(Debug, Clone, Deserialize)]
pub struct MetaTemplate {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub parameter_format: Option<String>,
    #[serde(default)]
    pub components: Option<Value>,
    #[serde(default)]
    pub rejected_reason: Option<String>,
    #[serde(default)]
    pub quality_score: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<Value>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    #[serde(default)]
    cursors: Option<Cursors>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Cursors {
    #[serde(default)]
    after: Option<String>,
}

impl GraphTemplates {
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Self::with_base(&config.graph_api_base, &config.graph_api_version)
    }

    pub fn with_base(base: &str, version: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .no_proxy()
            .build()
            .context("the Graph API client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            version: version.to_owned(),
        })
    }

    fn url(&self, waba: &str) -> String {
        format!("{}/{}/{waba}/message_templates", self.base, self.version)
    }

    /// `POST /{waba}/message_templates` with the definition (Meta's shape).
    pub async fn create(
        &self,
        waba: &str,
        token: &SecretString,
        definition: &Value,
    ) -> Result<Created, GraphError> {
        let r = self
            .http
            .post(self.url(waba))
            .bearer_auth(token.expose_secret())
            .json(definition)
            .send()
            .await;
        let body = answer(r).await?;
        serde_json::from_value(body)
            .map_err(|e| GraphError::Unavailable(format!("unexpected create answer: {e}")))
    }

    /// One page of `GET /{waba}/message_templates`; the cursor of the next page, if any.
    pub async fn list_page(
        &self,
        waba: &str,
        token: &SecretString,
        after: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>), GraphError> {
        let mut query: Vec<(&str, String)> = vec![
            ("limit", PAGE_SIZE.to_string()),
            (
                "fields",
                "id,name,language,status,category,parameter_format,components,rejected_reason,quality_score"
                    .into(),
            ),
        ];
        if let Some(a) = after {
            query.push(("after", a.to_owned()));
        }
        let r = self
            .http
            .get(self.url(waba))
            .bearer_auth(token.expose_secret())
            .query(&query)
            .send()
            .await;
        let page: Page = serde_json::from_value(answer(r).await?)
            .map_err(|e| GraphError::Unavailable(format!("unexpected list answer: {e}")))?;
        let next = page
            .paging
            .filter(|p| p.next.is_some())
            .and_then(|p| p.cursors)
            .and_then(|c| c.after);
        Ok((page.data, next))
    }
}

/// The JSON of a 2xx; a 4xx as [`GraphError::Refused`] with Meta's error; the rest unavailable.
async fn answer(r: reqwest::Result<reqwest::Response>) -> Result<Value, GraphError> {
    let r = r.map_err(|e| GraphError::Unavailable(e.without_url().to_string()))?;
    let status = r.status();
    let body: Value = r
        .json()
        .await
        .unwrap_or_else(|_| json!({"error": {"message": "no JSON body"}}));
    if status.is_success() {
        return Ok(body);
    }
    let message = body["error"]["error_user_msg"]
        .as_str()
        .or_else(|| body["error"]["message"].as_str())
        .unwrap_or("no message")
        .chars()
        .take(300)
        .collect::<String>();
    if status.is_client_error() && status.as_u16() != 429 {
        Err(GraphError::Refused {
            status: status.as_u16(),
            code: body["error"]["code"].as_i64(),
            message,
        })
    } else {
        Err(GraphError::Unavailable(format!("HTTP {status}: {message}")))
    }
}

/// Why an account cannot call Meta about its templates.
#[derive(Debug, thiserror::Error)]
pub enum NoCredentials {
    #[error(
        "the account has no WhatsApp Business Account id (set waba_id in PUT /admin/v1/whatsapp)"
    )]
    NoWaba,
    #[error("the account has no phone number with an access token (PUT /admin/v1/whatsapp)")]
    NoToken,
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

/// What a template call of an account needs.
pub struct Credentials {
    pub waba_id: String,
    pub token: SecretString,
}

/// The account's WABA id, if set.
pub async fn waba_of(db: &PgPool, account: Uuid) -> anyhow::Result<Option<String>> {
    let waba: Option<Option<String>> =
        sqlx::query_scalar("SELECT waba_id FROM whatsapp_settings WHERE account_id = $1")
            .bind(account)
            .fetch_optional(db)
            .await
            .context("reading the account's WABA id")?;
    Ok(waba.flatten())
}

/// The account's WABA id and the access token of its first phone number.
pub async fn credentials(
    db: &PgPool,
    sealer: &Sealer,
    account: Uuid,
) -> Result<Credentials, NoCredentials> {
    let waba_id = waba_of(db, account).await?.ok_or(NoCredentials::NoWaba)?;
    let sealed: Option<Vec<u8>> = sqlx::query_scalar(
        "SELECT access_token_enc FROM phone_numbers
          WHERE account_id = $1 AND length(access_token_enc) > 0
          ORDER BY position, phone_number_id LIMIT 1",
    )
    .bind(account)
    .fetch_optional(db)
    .await
    .context("reading the account's access token")?;
    let sealed = sealed.ok_or(NoCredentials::NoToken)?;
    let token = sealer.open(&sealed).map_err(|e| {
        tracing::error!(%account, error = %e, "cannot open the account's access token");
        NoCredentials::NoToken
    })?;
    Ok(Credentials {
        waba_id,
        token: SecretString::from(token),
    })
}

/// What a sync did.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Templates Meta listed.
    pub seen: u64,
    /// Local templates whose state was brought to Meta's.
    pub updated: u64,
    /// Templates of Meta registered locally.
    pub registered: u64,
    /// Templates of Meta the engine cannot send (a definition it does not accept, an unknown
    /// status): left out.
    pub skipped: u64,
    pub paused_dispatches: u64,
    pub resumed_dispatches: u64,
    /// The jobs of dispatches the sync resumed: push them.
    pub jobs: Vec<SendJob>,
}

/// Brings the account's templates to Meta's state: every template Meta lists updates the
/// local one of the same name and language through `template_status::apply` (status,
/// reason, quality, category, Meta's id), or is registered when the account lacks it. Local
/// templates Meta does not list are left as they are.
pub async fn sync_account(
    db: &PgPool,
    graph: &GraphTemplates,
    creds: &Credentials,
    account: Uuid,
) -> Result<SyncReport, SyncError> {
    let mut report = SyncReport::default();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let (items, next) = graph
            .list_page(&creds.waba_id, &creds.token, after.as_deref())
            .await?;
        for item in items {
            report.seen += 1;
            let Ok(t) = serde_json::from_value::<MetaTemplate>(item) else {
                report.skipped += 1;
                continue;
            };
            sync_one(db, account, &t, &mut report).await?;
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    metrics::counter!("ezpulze_template_syncs_total").increment(1);
    Ok(report)
}

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Db(#[from] anyhow::Error),
}

async fn sync_one(
    db: &PgPool,
    account: Uuid,
    t: &MetaTemplate,
    report: &mut SyncReport,
) -> anyhow::Result<()> {
    let status = t.status.as_deref().and_then(TemplateStatus::from_meta);
    let change = TemplateChange {
        status,
        reason: t.rejected_reason.clone(),
        quality: quality_of(t.quality_score.as_ref()),
        category: t
            .category
            .clone()
            .filter(|c| template_status::CATEGORIES.contains(&c.as_str())),
        meta_template_id: t.id.clone().filter(|id| valid_meta_id(id)),
    };
    if change.validate().is_err() {
        report.skipped += 1;
        return Ok(());
    }
    let applied = template_status::apply(db, account, &t.name, &t.language, &change).await?;
    if applied.found {
        if applied.previous != status || applied.paused_dispatches + applied.resumed_dispatches > 0
        {
            report.updated += 1;
        }
        report.paused_dispatches += applied.paused_dispatches;
        report.resumed_dispatches += applied.resumed_dispatches;
        report.jobs.extend(applied.jobs);
        return Ok(());
    }
    let (Some(status), Some(definition)) = (status, definition_of(t)) else {
        report.skipped += 1;
        return Ok(());
    };
    let inserted = sqlx::query(
        "INSERT INTO templates (id, account_id, name, language, category, definition, status,
                                status_reason, quality_score, meta_template_id, status_updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now())
         ON CONFLICT (account_id, name, language) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(account)
    .bind(&t.name)
    .bind(&t.language)
    .bind(definition["category"].as_str().unwrap_or_default())
    .bind(&definition)
    .bind(status.as_str())
    .bind(
        change
            .reason
            .as_deref()
            .filter(|r| !r.eq_ignore_ascii_case("none") && !r.is_empty()),
    )
    .bind(change.quality.as_deref())
    .bind(change.meta_template_id.as_deref())
    .execute(db)
    .await
    .context("registering a template of Meta")?;
    if inserted.rows_affected() > 0 {
        report.registered += 1;
    }
    Ok(())
}

fn valid_meta_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Meta's `quality_score`: `{"score": "GREEN", ...}` (or a bare text).
fn quality_of(q: Option<&Value>) -> Option<String> {
    let s = match q? {
        Value::String(s) => s.as_str(),
        v => v["score"].as_str()?,
    };
    (!s.is_empty() && s.len() <= 32).then(|| s.to_owned())
}

/// A listed template as a definition the engine accepts (validated and normalised by the
/// payload crate, as a created one is); None when it does not accept it.
pub fn definition_of(t: &MetaTemplate) -> Option<Value> {
    let mut def = json!({
        "name": t.name,
        "language": t.language,
        "category": t.category.as_deref()?,
        "components": t.components.clone()?,
    });
    if let Some(f) = &t.parameter_format {
        def["parameter_format"] = json!(f);
    }
    let template: Template = serde_json::from_value(def).ok()?;
    let compiled = CompiledTemplate::new(template).ok()?;
    serde_json::to_value(compiled.template()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(v: Value) -> MetaTemplate {
        serde_json::from_value(v).expect("template")
    }

    #[test]
    fn a_listed_template_becomes_a_definition() {
        let t = meta(
            json!({"id": "1", "name": "order_update", "language": "en_US",
            "status": "APPROVED", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "Hi {{1}}", "example": {"body_text": [["Ann"]]}}]}),
        );
        let d = definition_of(&t).expect("definition");
        assert_eq!(d["name"], "order_update");
        assert_eq!(d["category"], "UTILITY");
        // What the engine does not accept is left out.
        let t = meta(
            json!({"name": "Bad Name", "language": "en", "category": "UTILITY",
            "components": [{"type": "BODY", "text": "x"}]}),
        );
        assert!(definition_of(&t).is_none());
        let t = meta(json!({"name": "no_parts", "language": "en", "category": "UTILITY"}));
        assert!(definition_of(&t).is_none());
    }

    #[test]
    fn quality_is_read_from_either_shape() {
        assert_eq!(
            quality_of(Some(&json!({"score": "GREEN", "date": 1}))),
            Some("GREEN".into())
        );
        assert_eq!(quality_of(Some(&json!("RED"))), Some("RED".into()));
        assert_eq!(quality_of(Some(&json!({}))), None);
        assert_eq!(quality_of(None), None);
    }

    #[test]
    fn meta_ids_are_digits() {
        assert!(valid_meta_id("920070352646140"));
        assert!(!valid_meta_id(""));
        assert!(!valid_meta_id("12x"));
    }
}
