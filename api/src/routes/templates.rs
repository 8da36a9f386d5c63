//! `/api/v1/templates`: message templates in Meta's format, validated by the payload crate,
//! submitted to Meta when created and kept in Meta's state (`docs/templates.md`): Meta's
//! status webhooks, `POST /api/v1/templates/sync` and the scheduler's periodic sync change it
//! through `ezpulze_common::template_status`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use ezpulze_payload::{CompiledTemplate, Template};
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::owned;
use ezpulze_common::template_status::{TemplateStatus, CATEGORIES};
use ezpulze_runtime::meta_templates::{self, GraphError, GraphTemplates, NoCredentials};

use crate::auth::{scope, Authorized};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{parse_json, PathId, RawBody};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(sync))
        .routes(routes!(read, update, remove))
}

const FIELDS: &[&str] = &[
    "name",
    "language",
    "category",
    "parameter_format",
    "components",
];

/// The columns of a [`TemplateRow`].
const COLUMNS: &str = "id, definition, status, status_reason, quality_score, meta_template_id,
    status_updated_at, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub struct TemplateRow {
    pub id: Uuid,
    pub definition: Value,
    pub status: String,
    pub status_reason: Option<String>,
    pub quality_score: Option<String>,
    pub meta_template_id: Option<String>,
    pub status_updated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize)]
pub struct TemplateView {
    id: Uuid,
    /// Meta's status: `PENDING`, `APPROVED`, `REJECTED`, `PAUSED` or `DISABLED`; only an
    /// `APPROVED` template can be sent.
    status: String,
    /// Why Meta gave the status (a rejection's reason), if it said.
    status_reason: Option<String>,
    /// Meta's quality rating (`GREEN`, `YELLOW`, `RED`, `UNKNOWN`), once Meta gave one.
    quality_score: Option<String>,
    /// Meta's id of the template; null for a template of an account without a WABA id.
    meta_template_id: Option<String>,
    status_updated_at: Option<DateTime<Utc>>,
    #[serde(flatten)]
    definition: Value,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<TemplateRow> for TemplateView {
    fn from(r: TemplateRow) -> Self {
        TemplateView {
            id: r.id,
            status: r.status,
            status_reason: r.status_reason,
            quality_score: r.quality_score,
            meta_template_id: r.meta_template_id,
            status_updated_at: r.status_updated_at,
            definition: r.definition,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// 409 `template_not_approved` unless `status` is `APPROVED`: a send of a template Meta has
/// not approved would fail at Meta (`132001`), so none is made.
pub fn require_approved(name: &str, language: &str, status: &str) -> ApiResult<()> {
    if status == TemplateStatus::Approved.as_str() {
        return Ok(());
    }
    metrics::counter!("ezpulze_sends_refused_template_status_total").increment(1);
    Err(ApiError::Coded {
        status: StatusCode::CONFLICT,
        code: "template_not_approved",
        message: format!(
            "the template {name:?} ({language}) is {status} at Meta; only an APPROVED template can be sent \
             (see GET /api/v1/templates, POST /api/v1/templates/sync)"
        ),
    })
}

/// Payload-crate field errors as the contract's details.
pub fn details(errors: Vec<ezpulze_payload::FieldError>, prefix: &str) -> ApiError {
    ApiError::Validation(
        errors
            .into_iter()
            .map(|e| FieldError::new(format!("{prefix}{}", e.field), e.message))
            .collect(),
    )
}

/// Parses and validates a definition object (unknown top-level fields refused).
fn definition(value: Value) -> ApiResult<(Template, Value)> {
    let Value::Object(map) = &value else {
        return Err(ApiError::field("body", "a template object is required"));
    };
    let unknown: Vec<FieldError> = map
        .keys()
        .filter(|k| !FIELDS.contains(&k.as_str()))
        .map(|k| FieldError::new(k.clone(), "unknown field"))
        .collect();
    if !unknown.is_empty() {
        return Err(ApiError::Validation(unknown));
    }
    let bytes = serde_json::to_vec(&value).map_err(|e| ApiError::Internal(e.into()))?;
    let template: Template = parse_json(&bytes)?;
    let compiled = CompiledTemplate::new(template).map_err(|e| details(e, ""))?;
    let normalised =
        serde_json::to_value(compiled.template()).map_err(|e| ApiError::Internal(e.into()))?;
    Ok((compiled.template().clone(), normalised))
}

/// Create a template
///
/// The template is validated (Meta's naming rules: lowercase letters, digits and underscores,
/// at most 512 characters; a locale code such as `en_US`), then submitted to Meta
/// (`POST /{waba_id}/message_templates`) and stored with Meta's id and status (usually
/// `PENDING`; only an `APPROVED` template can be sent). Meta's refusal answers 422
/// `template_refused_by_meta` and an unreachable Graph API 502 `graph_unavailable`, with
/// nothing stored. An account without a WABA id (`PUT /admin/v1/whatsapp`) has nothing to
/// submit to: its templates are local and `APPROVED`, as before templates were submitted.
#[utoipa::path(post, path = "/api/v1/templates", operation_id = "createTemplate",
    extensions(("x-required-scope" = json!(scope::TemplateCreate::SCOPE))))]
async fn create(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::TemplateCreate>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<TemplateView>)> {
    let (t, mut def) = definition(parse_json(&body)?)?;
    let account = p.account_id();
    let mut status = TemplateStatus::Approved;
    let mut meta_id = None;
    if meta_templates::waba_of(state.db(), account)
        .await?
        .is_some()
    {
        // A local duplicate is refused before Meta is asked.
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM templates WHERE account_id = $1 AND name = $2 AND language = $3)",
        )
        .bind(account)
        .bind(&t.name)
        .bind(&t.language)
        .fetch_one(state.db())
        .await?;
        if exists {
            return Err(duplicate());
        }
        let creds = meta_templates::credentials(state.db(), &state.config().sealer(), account)
            .await
            .map_err(no_credentials)?;
        let graph = GraphTemplates::new(state.config()).map_err(ApiError::Internal)?;
        let created = graph
            .create(&creds.waba_id, &creds.token, &def)
            .await
            .map_err(graph_error)?;
        status = TemplateStatus::from_meta(&created.status).ok_or_else(|| {
            graph_error(GraphError::Unavailable(format!(
                "Meta answered an unknown template status {:?}",
                created.status.chars().take(40).collect::<String>()
            )))
        })?;
        meta_id = Some(created.id).filter(|id| {
            !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit())
        });
        // Meta may file the template under another category than asked.
        if let Some(c) = created
            .category
            .filter(|c| CATEGORIES.contains(&c.as_str()))
        {
            def["category"] = Value::String(c);
        }
        metrics::counter!("ezpulze_templates_submitted_total").increment(1);
    }
    let row: TemplateRow = sqlx::query_as(&format!(
        "INSERT INTO templates (id, account_id, name, language, category, definition, status,
                                meta_template_id, status_updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(account)
    .bind(&t.name)
    .bind(&t.language)
    .bind(def["category"].as_str().unwrap_or_default())
    .bind(&def)
    .bind(status.as_str())
    .bind(meta_id)
    .fetch_one(state.db())
    .await
    .map_err(conflict)?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Sync templates with Meta
///
/// Reads the account's templates at Meta (`GET /{waba_id}/message_templates`, every page) and
/// brings the local ones to Meta's status, reason, quality and category (a pause halts the
/// dispatches using the template, an approval resumes those its pause halted); templates that
/// exist at Meta but not here are registered. 409 `waba_not_configured` without a WABA id,
/// 409 `no_access_token` without a number's token, 502 `graph_unavailable` /
/// 422 `template_refused_by_meta` when Meta does not answer or refuses (nothing changed by the
/// failing page).
#[utoipa::path(post, path = "/api/v1/templates/sync", operation_id = "syncTemplates",
    extensions(("x-required-scope" = json!(scope::TemplateCreate::SCOPE))))]
async fn sync(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::TemplateCreate>,
) -> ApiResult<Json<Value>> {
    let account = p.account_id();
    let creds = meta_templates::credentials(state.db(), &state.config().sealer(), account)
        .await
        .map_err(no_credentials)?;
    let graph = GraphTemplates::new(state.config()).map_err(ApiError::Internal)?;
    let report = meta_templates::sync_account(state.db(), &graph, &creds, account)
        .await
        .map_err(|e| match e {
            meta_templates::SyncError::Graph(g) => graph_error(g),
            meta_templates::SyncError::Db(e) => ApiError::Internal(e),
        })?;
    if !report.jobs.is_empty() {
        use ezpulze_common::dispatch::JobSink;
        if let Err(e) = state.push_send(&report.jobs).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "pushing the jobs of dispatches a sync resumed failed; the outbox sweep will"
            );
        }
    }
    Ok(Json(serde_json::json!({
        "seen": report.seen,
        "updated": report.updated,
        "registered": report.registered,
        "skipped": report.skipped,
        "paused_dispatches": report.paused_dispatches,
        "resumed_dispatches": report.resumed_dispatches,
    })))
}

fn no_credentials(e: NoCredentials) -> ApiError {
    match e {
        NoCredentials::NoWaba => ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "waba_not_configured",
            message: e.to_string(),
        },
        NoCredentials::NoToken => ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "no_access_token",
            message: e.to_string(),
        },
        NoCredentials::Db(e) => ApiError::Internal(e),
    }
}

fn graph_error(e: GraphError) -> ApiError {
    metrics::counter!("ezpulze_template_graph_errors_total",
        "kind" => if matches!(e, GraphError::Refused { .. }) { "refused" } else { "unavailable" })
    .increment(1);
    match e {
        GraphError::Refused { message, code, .. } => ApiError::Coded {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "template_refused_by_meta",
            message: match code {
                Some(c) => format!("Meta refused it (code {c}): {message}"),
                None => format!("Meta refused it: {message}"),
            },
        },
        GraphError::Unavailable(why) => {
            tracing::warn!(error = %why, "a template call to the Graph API failed");
            ApiError::Coded {
                status: StatusCode::BAD_GATEWAY,
                code: "graph_unavailable",
                message:
                    "the Graph API did not answer as expected; nothing was changed, retry later"
                        .into(),
            }
        }
    }
}

fn duplicate() -> ApiError {
    ApiError::Conflict("a template with this name and language exists".into())
}

fn conflict(e: sqlx::Error) -> ApiError {
    match &e {
        sqlx::Error::Database(db)
            if db.constraint() == Some("templates_account_name_language_key") =>
        {
            duplicate()
        }
        _ => e.into(),
    }
}

/// List templates
#[utoipa::path(get, path = "/api/v1/templates", operation_id = "listTemplates",
    extensions(("x-required-scope" = json!(scope::TemplateRead::SCOPE))))]
async fn list(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::TemplateRead>,
) -> ApiResult<Json<Value>> {
    let rows: Vec<TemplateRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM templates
         WHERE account_id = $1 ORDER BY name, language LIMIT 1000"
    ))
    .bind(p.account_id())
    .fetch_all(state.db())
    .await?;
    let items: Vec<TemplateView> = rows.into_iter().map(Into::into).collect();
    Ok(Json(serde_json::json!({ "items": items })))
}

pub async fn fetch(state: &AppState, account: Uuid, id: Uuid) -> ApiResult<TemplateRow> {
    owned::fetch(state.db(), &by_id(""), id, account).await
}

/// The SELECT of the account's template `$2`/`$1`, ending with `tail` (` FOR UPDATE`: the row
/// locked for the caller's transaction).
fn by_id(tail: &str) -> String {
    format!("SELECT {COLUMNS} FROM templates WHERE id = $1 AND account_id = $2{tail}")
}

/// Read a template
#[utoipa::path(get, path = "/api/v1/templates/{id}", operation_id = "getTemplate",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::TemplateRead::SCOPE))))]
async fn read(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::TemplateRead>,
    PathId(id): PathId,
) -> ApiResult<Json<TemplateView>> {
    Ok(Json(fetch(&state, p.account_id(), id).await?.into()))
}

/// Edit a template
///
/// PATCH merges the given top-level fields over the stored definition, then validates it all.
#[utoipa::path(patch, path = "/api/v1/templates/{id}", operation_id = "updateTemplate",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::TemplateUpdate::SCOPE))))]
async fn update(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::TemplateUpdate>,
    PathId(id): PathId,
    RawBody(body): RawBody,
) -> ApiResult<Json<TemplateView>> {
    let patch: Value = parse_json(&body)?;
    let Value::Object(patch) = patch else {
        return Err(ApiError::field("body", "an object is required"));
    };
    // Read, merge and write under the row's lock: two patches of different fields at once
    // both land (neither writes back the other's stale definition).
    let mut tx = state.db().begin().await?;
    let current: TemplateRow =
        owned::fetch(&mut *tx, &by_id(" FOR UPDATE"), id, p.account_id()).await?;
    let before = definition(current.definition.clone())
        .ok()
        .and_then(|(t, _)| send_shape(&t));
    let current_def = current.definition.clone();
    let mut merged = current.definition;
    if let Value::Object(m) = &mut merged {
        for (k, v) in patch {
            m.insert(k, v);
        }
    }
    let (t, def) = definition(merged)?;
    if current.meta_template_id.is_some() && def != current_def {
        // Meta reviews what it approves: a local edit would send what Meta never saw.
        return Err(ApiError::Coded {
            status: StatusCode::CONFLICT,
            code: "template_submitted",
            message: "this template was submitted to Meta and cannot be edited here; \
                      edit it at Meta and sync, or create a new template"
                .into(),
        });
    }
    if before != send_shape(&t) {
        refuse_if_used(&mut tx, p.account_id(), id).await?;
    }
    let row: TemplateRow = sqlx::query_as(&format!(
        "UPDATE templates SET name = $3, language = $4, category = $5, definition = $6, updated_at = now()
         WHERE id = $1 AND account_id = $2
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(p.account_id())
    .bind(&t.name)
    .bind(&t.language)
    .bind(def["category"].as_str().unwrap_or_default())
    .bind(&def)
    .fetch_one(&mut *tx)
    .await
    .map_err(conflict)?;
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// What a send of `t` must carry (parameter counts and names, header kind, runtime buttons,
/// cards, product values), without the examples, which only documentation reads.
fn send_shape(t: &Template) -> Option<Value> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("examples");
                m.remove("example");
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut shape = serde_json::to_value(t.spec().ok()?).ok()?;
    strip(&mut shape);
    Some(shape)
}

/// 409 naming the broadcasts of template `id`: a change of what its sends must carry would
/// make their saved variables (and their integrators' requests) fail. Edit a copy instead.
async fn refuse_if_used(
    tx: &mut sqlx::PgConnection,
    account: uuid::Uuid,
    id: uuid::Uuid,
) -> ApiResult<()> {
    let used: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT id, name FROM broadcasts WHERE account_id = $1 AND template_id = $2
          ORDER BY id LIMIT 11",
    )
    .bind(account)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    if used.is_empty() {
        return Ok(());
    }
    let mut names: Vec<String> = used
        .iter()
        .take(10)
        .map(|(id, name)| format!("{name:?} ({id})"))
        .collect();
    if used.len() > 10 {
        names.push("and more".into());
    }
    Err(ApiError::Conflict(format!(
        "broadcasts use this template and this change alters the parameters their sends carry: {}; \
         create a new template instead, or delete those broadcasts first",
        names.join(", ")
    )))
}

/// Delete a template
#[utoipa::path(delete, path = "/api/v1/templates/{id}", operation_id = "deleteTemplate",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::TemplateDelete::SCOPE))))]
async fn remove(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::TemplateDelete>,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    owned::delete(state.db(), "templates", id, p.account_id(), |e| match e {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            ApiError::Conflict("broadcasts use this template; delete them first".into())
        }
        e => e.into(),
    })
    .await
}
