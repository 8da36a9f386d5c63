//! `/api/v1/broadcasts`: a saved template + default variables; sending lives in `send`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use ezpulze_payload::{CompiledTemplate, Template, Variables};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::contacts::fields;
use super::owned;
use crate::auth::{scope, AdminAccount, Authorized};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, PathId};
use crate::routes::templates::details;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(read, remove))
}

pub fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(admin_list))
        .routes(routes!(example))
}

#[derive(sqlx::FromRow, Serialize)]
pub struct BroadcastRow {
    pub id: Uuid,
    pub name: String,
    pub template_id: Uuid,
    pub template_name: String,
    pub language: String,
    pub variables: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const SELECT: &str = "SELECT b.id, b.name, b.template_id, t.name AS template_name, t.language,
    b.variables, b.created_at, b.updated_at
    FROM broadcasts b JOIN templates t ON t.id = b.template_id";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBroadcast {
    name: String,
    template_id: Uuid,
    #[serde(default)]
    variables: Option<Variables>,
}

/// A broadcast with its compiled template, ready to expand recipients.
pub struct Loaded {
    pub row: BroadcastRow,
    pub template: CompiledTemplate,
    pub defaults: Variables,
    /// The template's status at Meta (only `APPROVED` can be sent).
    pub template_status: String,
}

impl Loaded {
    /// 409 `template_not_approved` unless the template is approved (every send path checks).
    pub fn require_approved(&self) -> ApiResult<()> {
        crate::routes::templates::require_approved(
            &self.row.template_name,
            &self.row.language,
            &self.template_status,
        )
    }
}

pub async fn load(state: &AppState, account: Uuid, id: Uuid) -> ApiResult<Loaded> {
    #[derive(sqlx::FromRow)]
    struct Joined {
        #[sqlx(flatten)]
        row: BroadcastRow,
        definition: Value,
        template_status: String,
    }
    let sql =
        "SELECT b.id, b.name, b.template_id, t.name AS template_name, t.language, b.variables,
                b.created_at, b.updated_at, t.definition, t.status AS template_status
         FROM broadcasts b JOIN templates t ON t.id = b.template_id
         WHERE b.id = $1 AND b.account_id = $2";
    let r: Joined = owned::fetch(state.db(), sql, id, account).await?;
    let template: Template =
        serde_json::from_value(r.definition).map_err(|e| ApiError::Internal(e.into()))?;
    let template = CompiledTemplate::new(template).map_err(|e| {
        ApiError::Internal(anyhow::anyhow!("stored template no longer valid: {e:?}"))
    })?;
    let defaults: Variables = serde_json::from_value(r.row.variables.clone())
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Loaded {
        row: r.row,
        template,
        defaults,
        template_status: r.template_status,
    })
}

/// Create a broadcast
#[utoipa::path(post, path = "/api/v1/broadcasts", operation_id = "createBroadcast",
    extensions(("x-required-scope" = json!(scope::BroadcastCreate::SCOPE))))]
async fn create(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::BroadcastCreate>,
    ApiJson(body): ApiJson<CreateBroadcast>,
) -> ApiResult<(StatusCode, Json<BroadcastRow>)> {
    let name = fields::short_name(&body.name)?;
    let def: Option<Value> =
        sqlx::query_scalar("SELECT definition FROM templates WHERE id = $1 AND account_id = $2")
            .bind(body.template_id)
            .bind(p.account_id())
            .fetch_optional(state.db())
            .await?;
    let def = def.ok_or_else(|| ApiError::field("template_id", "no such template"))?;
    let template: Template =
        serde_json::from_value(def).map_err(|e| ApiError::Internal(e.into()))?;
    let compiled = CompiledTemplate::new(template).map_err(|e| details(e, "template."))?;
    let variables = body.variables.unwrap_or_default();
    compiled
        .check_defaults(&variables)
        .map_err(|e| details(e, "variables."))?;
    let vars = serde_json::to_value(&variables).map_err(|e| ApiError::Internal(e.into()))?;
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO broadcasts (id, account_id, name, template_id, variables) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(p.account_id())
        .bind(name)
        .bind(body.template_id)
        .bind(&vars)
        .execute(state.db())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(fetch(&state, p.account_id(), id).await?),
    ))
}

async fn fetch(state: &AppState, account: Uuid, id: Uuid) -> ApiResult<BroadcastRow> {
    let sql = format!("{SELECT} WHERE b.id = $1 AND b.account_id = $2");
    owned::fetch(state.db(), &sql, id, account).await
}

async fn list_rows(state: &AppState, account: Uuid) -> ApiResult<Vec<BroadcastRow>> {
    Ok(sqlx::query_as(&format!(
        "{SELECT} WHERE b.account_id = $1 ORDER BY b.created_at DESC LIMIT 1000"
    ))
    .bind(account)
    .fetch_all(state.db())
    .await?)
}

/// List broadcasts
#[utoipa::path(get, path = "/api/v1/broadcasts", operation_id = "listBroadcasts",
    extensions(("x-required-scope" = json!(scope::BroadcastRead::SCOPE))))]
async fn list(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::BroadcastRead>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "items": list_rows(&state, p.account_id()).await? }),
    ))
}

/// List the account's broadcasts (web UI)
#[utoipa::path(get, path = "/broadcasts", operation_id = "adminListBroadcasts")]
async fn admin_list(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!({ "items": list_rows(&state, account).await? })))
}

/// Read a broadcast
#[utoipa::path(get, path = "/api/v1/broadcasts/{id}", operation_id = "getBroadcast",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::BroadcastRead::SCOPE))))]
async fn read(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::BroadcastRead>,
    PathId(id): PathId,
) -> ApiResult<Json<BroadcastRow>> {
    Ok(Json(fetch(&state, p.account_id(), id).await?))
}

/// Delete a broadcast
#[utoipa::path(delete, path = "/api/v1/broadcasts/{id}", operation_id = "deleteBroadcast",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::BroadcastDelete::SCOPE))))]
async fn remove(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::BroadcastDelete>,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    owned::delete(state.db(), "broadcasts", id, p.account_id(), ApiError::from).await
}

/// A complete send request for a broadcast
///
/// `GET /admin/v1/broadcasts/{id}/example`: a complete send request for this broadcast, with
/// every value the template needs (saved media from the broadcast's defaults).
#[utoipa::path(get, path = "/broadcasts/{id}/example", operation_id = "getBroadcastExample",
    params(("id" = Uuid, Path)))]
async fn example(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    let loaded = load(&state, account, id).await?;
    let vars = ezpulze_payload::example_variables(loaded.template.template(), &loaded.defaults);
    let body = json!({
        "recipients": [{"to": "+14155550123", "ref": "customer-42", "variables": vars}]
    });
    let url = format!(
        "{}/api/v1/broadcasts/{}/send",
        state.config().public_base_url.trim_end_matches('/'),
        id
    );
    let pretty = serde_json::to_string_pretty(&body).map_err(|e| ApiError::Internal(e.into()))?;
    let curl = format!(
        "curl -X POST '{url}' \\\n  -H \"Authorization: Bearer $EZPULZE_API_KEY\" \\\n  -H 'Content-Type: application/json' \\\n  -H \"Idempotency-Key: $(uuidgen)\" \\\n  -d '{}'",
        pretty.replace('\'', "'\\''")
    );
    let javascript = format!(
        "const response = await fetch('{url}', {{\n  method: 'POST',\n  headers: {{\n    'Authorization': `Bearer ${{process.env.EZPULZE_API_KEY}}`,\n    'Content-Type': 'application/json',\n    'Idempotency-Key': crypto.randomUUID(),\n  }},\n  body: JSON.stringify({pretty}),\n}});\nconst result = await response.json();\nconsole.log(response.status, result);"
    );
    Ok(Json(json!({
        "request": {
            "method": "POST",
            "url": url,
            "headers": {"Authorization": "Bearer <your API key>", "Content-Type": "application/json"},
            "body": body,
        },
        "curl": curl,
        "javascript": javascript,
    })))
}
