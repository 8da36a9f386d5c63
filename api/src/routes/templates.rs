//! `/api/v1/templates`: message templates in Meta's format, validated by the payload crate.

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
use crate::auth::{scope, Authorized};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{parse_json, PathId, RawBody};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
}

const FIELDS: &[&str] = &[
    "name",
    "language",
    "category",
    "parameter_format",
    "components",
];

#[derive(sqlx::FromRow)]
pub struct TemplateRow {
    pub id: Uuid,
    pub definition: Value,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize)]
pub struct TemplateView {
    id: Uuid,
    status: String,
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
            definition: r.definition,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
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
#[utoipa::path(post, path = "/api/v1/templates", operation_id = "createTemplate",
    extensions(("x-required-scope" = json!(scope::TemplateCreate::SCOPE))))]
async fn create(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::TemplateCreate>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<TemplateView>)> {
    let (t, def) = definition(parse_json(&body)?)?;
    let row: TemplateRow = sqlx::query_as(
        "INSERT INTO templates (id, account_id, name, language, category, definition)
         VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, definition, status, created_at, updated_at",
    )
    .bind(Uuid::now_v7())
    .bind(p.account_id())
    .bind(&t.name)
    .bind(&t.language)
    .bind(def["category"].as_str().unwrap_or_default())
    .bind(&def)
    .fetch_one(state.db())
    .await
    .map_err(conflict)?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

fn conflict(e: sqlx::Error) -> ApiError {
    match &e {
        sqlx::Error::Database(db)
            if db.constraint() == Some("templates_account_name_language_key") =>
        {
            ApiError::Conflict("a template with this name and language exists".into())
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
    let rows: Vec<TemplateRow> = sqlx::query_as(
        "SELECT id, definition, status, created_at, updated_at FROM templates
         WHERE account_id = $1 ORDER BY name, language LIMIT 1000",
    )
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
    format!("SELECT id, definition, status, created_at, updated_at FROM templates WHERE id = $1 AND account_id = $2{tail}")
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
    let mut merged = current.definition;
    if let Value::Object(m) = &mut merged {
        for (k, v) in patch {
            m.insert(k, v);
        }
    }
    let (t, def) = definition(merged)?;
    if before != send_shape(&t) {
        refuse_if_used(&mut tx, p.account_id(), id).await?;
    }
    let row: TemplateRow = sqlx::query_as(
        "UPDATE templates SET name = $3, language = $4, category = $5, definition = $6, updated_at = now()
         WHERE id = $1 AND account_id = $2
         RETURNING id, definition, status, created_at, updated_at",
    )
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
