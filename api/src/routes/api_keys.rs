//! `/admin/v1/api-keys`: create, list, read, edit, toggle, regenerate, delete, usage.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::contacts::fields::{self, Errors};
use super::owned;
use crate::auth::key_cache::{publish_invalidation, Propagation};
use crate::auth::AdminAccount;
use crate::error::{ApiError, ApiResult};
use crate::extract::{double_option, ApiJson, ApiQuery, PathId};
use crate::state::AppState;
use ezpulze_common::{keys, scopes};
use utoipa_axum::{router::OpenApiRouter, routes};

pub const DEFAULT_RATE_LIMIT: i32 = 1000;
pub const MAX_RATE_LIMIT: i64 = 100_000_000;
const MAX_ALLOWED_IPS: usize = 100;

/// The key management routes of the admin API, with the scope catalogue and a key's docs.
pub fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(super::meta::scope_catalogue))
        .routes(routes!(create, list))
        .routes(routes!(get, patch, delete))
        .routes(routes!(regenerate))
        .routes(routes!(usage))
        .routes(routes!(super::key_docs::docs))
}

#[derive(sqlx::FromRow)]
pub struct KeyRow {
    pub id: Uuid,
    pub name: String,
    pub key_head: String,
    pub key_tail: String,
    pub test_mode: bool,
    pub scope_group: Option<String>,
    pub scopes: Vec<String>,
    pub allowed_ips: Vec<String>,
    pub rate_limit_per_hour: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub active: bool,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A key row read for an edit, with the hash its cache entries are invalidated by.
#[derive(sqlx::FromRow)]
struct Locked {
    #[sqlx(flatten)]
    row: KeyRow,
    key_hash: Vec<u8>,
}

const COLUMNS: &str = "id, name, key_head, key_tail, test_mode, scope_group, scopes, allowed_ips,
    rate_limit_per_hour, expires_at, active, last_used_at, created_at, updated_at";

/// The key object of the contract.
#[derive(Serialize)]
pub struct KeyView {
    pub id: Uuid,
    pub name: String,
    pub scope_group: Option<String>,
    pub scope_group_name: Option<&'static str>,
    pub scopes: Vec<String>,
    pub masked_key: String,
    pub mode: &'static str,
    pub active: bool,
    pub status: &'static str,
    pub allowed_ips: Vec<String>,
    pub rate_limit_per_hour: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

pub fn status_of(active: bool, expires_at: Option<DateTime<Utc>>) -> &'static str {
    if !active {
        "inactive"
    } else if expires_at.is_some_and(|t| t <= Utc::now()) {
        "expired"
    } else {
        "active"
    }
}

impl From<KeyRow> for KeyView {
    fn from(r: KeyRow) -> Self {
        KeyView {
            id: r.id,
            scope_group_name: r
                .scope_group
                .as_deref()
                .and_then(scopes::group)
                .map(|g| g.name),
            name: r.name,
            scope_group: r.scope_group,
            scopes: r.scopes,
            masked_key: keys::masked(&r.key_head, &r.key_tail),
            mode: if r.test_mode { "test" } else { "live" },
            status: status_of(r.active, r.expires_at),
            active: r.active,
            allowed_ips: r.allowed_ips,
            rate_limit_per_hour: r.rate_limit_per_hour,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            key: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    #[serde(default)]
    scope_group: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    allowed_ips: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    rate_limit_per_hour: Option<Option<i64>>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PatchKey {
    /// `null` is refused (a key always has a name), not taken as "unchanged".
    #[serde(deserialize_with = "double_option")]
    name: Option<Option<String>>,
    #[serde(deserialize_with = "double_option")]
    scope_group: Option<Option<String>>,
    scopes: Option<Vec<String>>,
    allowed_ips: Option<Vec<String>>,
    #[serde(deserialize_with = "double_option")]
    rate_limit_per_hour: Option<Option<i64>>,
    #[serde(deserialize_with = "double_option")]
    expires_at: Option<Option<DateTime<Utc>>>,
    active: Option<bool>,
}

fn check_name(name: &str, errors: &mut Errors) -> String {
    fields::one_line("name", name, 100, errors).unwrap_or_default()
}

/// Resolves a group and/or an explicit list into the stored (group, sorted scopes).
fn resolve_scopes(
    group: Option<&str>,
    list: Option<&[String]>,
    errors: &mut Errors,
) -> Option<(Option<String>, Vec<String>)> {
    match (group, list) {
        (Some(g), list) => {
            let Some(def) = scopes::group(g) else {
                errors.push("scope_group", format!("unknown scope group {g:?}"));
                return None;
            };
            let group_scopes: Vec<String> = def.scopes.iter().map(|s| s.to_string()).collect();
            if let Some(list) = list {
                if scopes::normalise(list.to_vec()) != group_scopes {
                    errors.push(
                        "scopes",
                        "give either scope_group or scopes; these scopes differ from the group's",
                    );
                    return None;
                }
            }
            Some((Some(g.to_string()), group_scopes))
        }
        (None, Some(list)) => {
            let mut ok = true;
            for (i, s) in list.iter().enumerate() {
                if !scopes::is_known(s) {
                    errors.push(format!("scopes[{i}]"), format!("unknown scope {s:?}"));
                    ok = false;
                }
            }
            if list.is_empty() {
                errors.push("scopes", "select at least one scope");
                ok = false;
            }
            ok.then(|| (None, scopes::normalise(list.to_vec())))
        }
        (None, None) => {
            errors.push("scopes", "select a scope group or at least one scope");
            None
        }
    }
}

fn check_ips(ips: &[String], errors: &mut Errors) -> Vec<String> {
    if ips.len() > MAX_ALLOWED_IPS {
        errors.push("allowed_ips", format!("at most {MAX_ALLOWED_IPS} entries"));
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, raw) in ips.iter().enumerate() {
        match ezpulze_common::config::parse_allowed_net(raw.trim()) {
            Some(net) => out.push(net.to_string()),
            None => errors.push(
                format!("allowed_ips[{i}]"),
                format!("{raw:?} is not an IP address or CIDR network"),
            ),
        }
    }
    out.sort();
    out.dedup();
    out
}

fn check_rate(rate: Option<i64>, errors: &mut Errors) -> Option<i32> {
    match rate {
        None => None,
        Some(n) if n <= 0 => {
            errors.push(
                "rate_limit_per_hour",
                "must be a positive number, or null for no limit",
            );
            None
        }
        Some(n) if n > MAX_RATE_LIMIT => {
            errors.push("rate_limit_per_hour", format!("at most {MAX_RATE_LIMIT}"));
            None
        }
        Some(n) => i32::try_from(n).ok(),
    }
}

fn check_expiry(t: Option<DateTime<Utc>>, errors: &mut Errors) -> Option<DateTime<Utc>> {
    if let Some(t) = t {
        if t <= Utc::now() {
            errors.push("expires_at", "must be in the future");
        }
    }
    t
}

/// Create an API key
#[utoipa::path(post, path = "/api-keys", operation_id = "createApiKey")]
pub async fn create(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Propagation, Json<KeyView>)> {
    let mut errors = Errors::default();
    let name = check_name(&body.name, &mut errors);
    let resolved = resolve_scopes(
        body.scope_group.as_deref(),
        body.scopes.as_deref(),
        &mut errors,
    );
    let ips = check_ips(body.allowed_ips.as_deref().unwrap_or_default(), &mut errors);
    let rate = match body.rate_limit_per_hour {
        None => Some(DEFAULT_RATE_LIMIT),
        Some(r) => check_rate(r, &mut errors),
    };
    let expires_at = check_expiry(body.expires_at, &mut errors);
    let mode = match body.mode.as_deref() {
        None | Some("live") => keys::KeyMode::Live,
        Some("test") => keys::KeyMode::Test,
        Some(other) => {
            errors.push("mode", format!("{other:?}: expected live or test"));
            keys::KeyMode::Live
        }
    };
    errors.finish()?;
    let Some((group, scope_list)) = resolved else {
        return Err(ApiError::field("scopes", "select at least one scope"));
    };
    let key = keys::generate(mode);
    let (head, tail) = keys::mask_parts(&key);
    let hash = state.hasher().hash(&key);
    let row: KeyRow = sqlx::query_as(&format!(
        "INSERT INTO api_keys (id, account_id, name, key_hash, key_head, key_tail, test_mode,
             scope_group, scopes, allowed_ips, rate_limit_per_hour, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(account)
    .bind(&name)
    .bind(&hash[..])
    .bind(&head)
    .bind(&tail)
    .bind(mode == keys::KeyMode::Test)
    .bind(&group)
    .bind(&scope_list)
    .bind(&ips)
    .bind(rate)
    .bind(expires_at)
    .fetch_one(state.db())
    .await?;
    // A replica may hold a negative entry for this (improbable) value: clear it everywhere,
    // and let every replica's known-credentials filter hold it before its value is shown.
    let told = announce_created(&state, &hash).await.and(
        publish_invalidation(
            state.key_cache(),
            &mut state.redis(),
            &state.config().redis_prefix,
            &[hash],
        )
        .await,
    );
    let mut view = KeyView::from(row);
    view.key = Some(key);
    Ok((StatusCode::CREATED, told, Json(view)))
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(minimum = 1, default = 1)]
    page: Option<i64>,
    #[param(schema_with = per_page_schema)]
    per_page: Option<i64>,
    #[param(schema_with = sort_schema)]
    sort: Option<String>,
    /// Default: desc when `sort` is absent, else asc.
    #[param(schema_with = order_schema)]
    order: Option<String>,
}

/// Page sizes of the key list (the first is the default).
const PER_PAGE: [i64; 3] = [10, 25, 50];
/// Sort keys of the key list.
const SORTS: &[&str] = &["name", "status", "created_at"];

fn per_page_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::Integer)
        .enum_values(Some(PER_PAGE.iter().copied()))
        .default(Some(serde_json::json!(PER_PAGE[0])))
        .build()
}

fn sort_schema() -> utoipa::openapi::Object {
    crate::routes::openapi::string_enum(SORTS, Some("created_at"))
}

fn order_schema() -> utoipa::openapi::Object {
    crate::routes::openapi::string_enum(&["asc", "desc"], None)
}

#[derive(Serialize)]
pub struct Page {
    items: Vec<KeyView>,
    page: i64,
    per_page: i64,
    total: i64,
}

/// List API keys
#[utoipa::path(
    get,
    path = "/api-keys",
    operation_id = "listApiKeys",
    params(ListQuery)
)]
pub async fn list(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page>> {
    let mut errors = Errors::default();
    let page = q.page.unwrap_or(1);
    if page < 1 {
        errors.push("page", "must be 1 or more");
    }
    let per_page = q.per_page.unwrap_or(PER_PAGE[0]);
    if !PER_PAGE.contains(&per_page) {
        errors.push("per_page", "must be 10, 25 or 50");
    }
    let sort = match q.sort.as_deref().unwrap_or("created_at") {
        "name" => "lower(name)",
        "status" => "CASE WHEN NOT active THEN 'inactive' WHEN expires_at <= now() THEN 'expired' ELSE 'active' END",
        "created_at" => "created_at",
        _ => {
            errors.push("sort", "must be name, status or created_at");
            "created_at"
        }
    };
    let order = match q.order.as_deref() {
        None => {
            if q.sort.is_none() {
                "DESC"
            } else {
                "ASC"
            }
        }
        Some("asc") => "ASC",
        Some("desc") => "DESC",
        Some(_) => {
            errors.push("order", "must be asc or desc");
            "ASC"
        }
    };
    errors.finish()?;
    let rows: Vec<KeyRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE account_id = $1
         ORDER BY {sort} {order}, created_at {order}, id {order} LIMIT $2 OFFSET $3"
    ))
    .bind(account)
    .bind(per_page)
    .bind((page - 1).saturating_mul(per_page))
    .fetch_all(state.db())
    .await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys WHERE account_id = $1")
        .bind(account)
        .fetch_one(state.db())
        .await?;
    Ok(Json(Page {
        items: rows.into_iter().map(KeyView::from).collect(),
        page,
        per_page,
        total,
    }))
}

async fn fetch(state: &AppState, account: Uuid, id: Uuid) -> ApiResult<KeyRow> {
    let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1 AND account_id = $2");
    owned::fetch(state.db(), &sql, id, account).await
}

/// The key object of one of the account's keys.
pub async fn fetch_view(state: &AppState, account: Uuid, id: Uuid) -> ApiResult<KeyView> {
    Ok(fetch(state, account, id).await?.into())
}

/// Read an API key
#[utoipa::path(get, path = "/api-keys/{id}", operation_id = "getApiKey",
    params(("id" = Uuid, Path)))]
pub async fn get(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
) -> ApiResult<Json<KeyView>> {
    Ok(Json(fetch(&state, account, id).await?.into()))
}

/// Edit, enable or disable an API key
#[utoipa::path(patch, path = "/api-keys/{id}", operation_id = "updateApiKey",
    params(("id" = Uuid, Path)))]
pub async fn patch(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
    ApiJson(body): ApiJson<PatchKey>,
) -> ApiResult<(Propagation, Json<KeyView>)> {
    // Read, merge and write under the row's lock: two edits of different fields at once both
    // land (neither writes back the other's stale copy).
    let mut tx = state.db().begin().await?;
    let Locked {
        row: current,
        key_hash: hash,
    } = owned::fetch(
        &mut *tx,
        &format!(
            "SELECT {COLUMNS}, key_hash FROM api_keys WHERE id = $1 AND account_id = $2 FOR UPDATE"
        ),
        id,
        account,
    )
    .await?;
    let mut errors = Errors::default();
    let name = match &body.name {
        Some(Some(n)) => check_name(n, &mut errors),
        Some(None) => {
            errors.push("name", "cannot be null: a key always has a name");
            current.name.clone()
        }
        None => current.name.clone(),
    };
    let (group, scope_list) = match (&body.scope_group, &body.scopes) {
        (None, None) => (current.scope_group.clone(), current.scopes.clone()),
        (Some(None), None) => (None, current.scopes.clone()),
        (Some(Some(g)), list) => {
            resolve_scopes(Some(g), list.as_deref(), &mut errors).unwrap_or_default()
        }
        (None | Some(None), Some(list)) => {
            resolve_scopes(None, Some(list), &mut errors).unwrap_or_default()
        }
    };
    let ips = match &body.allowed_ips {
        Some(ips) => check_ips(ips, &mut errors),
        None => current.allowed_ips.clone(),
    };
    let rate = match body.rate_limit_per_hour {
        Some(r) => check_rate(r, &mut errors),
        None => current.rate_limit_per_hour,
    };
    let expires_at = match body.expires_at {
        Some(t) => check_expiry(t, &mut errors),
        None => current.expires_at,
    };
    let active = body.active.unwrap_or(current.active);
    errors.finish()?;
    let row: KeyRow = sqlx::query_as(&format!(
        "UPDATE api_keys SET name = $3, scope_group = $4, scopes = $5, allowed_ips = $6,
             rate_limit_per_hour = $7, expires_at = $8, active = $9, updated_at = now()
         WHERE id = $1 AND account_id = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(account)
    .bind(&name)
    .bind(&group)
    .bind(&scope_list)
    .bind(&ips)
    .bind(rate)
    .bind(expires_at)
    .bind(active)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let told = invalidate(&state, &[hash]).await;
    Ok((told, Json(row.into())))
}

/// A new key (or admin token) hash, announced to every replica (`auth::known`).
pub async fn announce_created(state: &AppState, hash: &[u8; 32]) -> Propagation {
    crate::auth::key_cache::publish_created(
        state.key_cache(),
        &mut state.redis(),
        &state.config().redis_prefix,
        hash,
    )
    .await
}

/// Every replica forgets these keys (after the change committed: never an error, at worst
/// [`Propagation::Pending`], retried in the background and said in the answer's header).
async fn invalidate(state: &AppState, hashes: &[Vec<u8>]) -> Propagation {
    let hashes: Vec<[u8; 32]> = hashes
        .iter()
        .filter_map(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
        .collect();
    publish_invalidation(
        state.key_cache(),
        &mut state.redis(),
        &state.config().redis_prefix,
        &hashes,
    )
    .await
}

/// Regenerate an API key's value
#[utoipa::path(post, path = "/api-keys/{id}/regenerate", operation_id = "regenerateApiKey",
    params(("id" = Uuid, Path)))]
pub async fn regenerate(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
) -> ApiResult<(Propagation, Json<KeyView>)> {
    let current = fetch(&state, account, id).await?;
    let mode = if current.test_mode {
        keys::KeyMode::Test
    } else {
        keys::KeyMode::Live
    };
    let key = keys::generate(mode);
    let (head, tail) = keys::mask_parts(&key);
    let hash = state.hasher().hash(&key);
    let mut tx = state.db().begin().await?;
    let (old,): (Vec<u8>,) = owned::fetch(
        &mut *tx,
        "SELECT key_hash FROM api_keys WHERE id = $1 AND account_id = $2 FOR UPDATE",
        id,
        account,
    )
    .await?;
    let row: KeyRow = sqlx::query_as(&format!(
        "UPDATE api_keys SET key_hash = $2, key_head = $3, key_tail = $4, updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&hash[..])
    .bind(&head)
    .bind(&tail)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let told = announce_created(&state, &hash)
        .await
        .and(invalidate(&state, &[old, hash.to_vec()]).await);
    let mut view = KeyView::from(row);
    view.key = Some(key);
    Ok((told, Json(view)))
}

/// Delete an API key
#[utoipa::path(delete, path = "/api-keys/{id}", operation_id = "deleteApiKey",
    params(("id" = Uuid, Path)))]
pub async fn delete(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
) -> ApiResult<(StatusCode, Propagation, ())> {
    let (hash,): (Vec<u8>,) = owned::fetch(
        state.db(),
        "DELETE FROM api_keys WHERE id = $1 AND account_id = $2 RETURNING key_hash",
        id,
        account,
    )
    .await?;
    let told = invalidate(&state, &[hash]).await;
    Ok((StatusCode::NO_CONTENT, told, ()))
}

#[derive(sqlx::FromRow)]
struct UsageRow {
    total_messages: i64,
    sent: i64,
    delivered: i64,
    read: i64,
    failed: i64,
    last_message_at: Option<DateTime<Utc>>,
}

/// Usage statistics of an API key
#[utoipa::path(get, path = "/api-keys/{id}/usage", operation_id = "getApiKeyUsage",
    params(("id" = Uuid, Path)))]
pub async fn usage(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    fetch(&state, account, id).await?;
    let u: Option<UsageRow> = sqlx::query_as(
        "SELECT total_messages, sent, delivered, read, failed, last_message_at
         FROM api_key_usage WHERE key_id = $1",
    )
    .bind(id)
    .fetch_optional(state.db())
    .await?;
    let u = u.unwrap_or(UsageRow {
        total_messages: 0,
        sent: 0,
        delivered: 0,
        read: 0,
        failed: 0,
        last_message_at: None,
    });
    let rate = |n: i64| {
        if u.total_messages == 0 {
            0.0
        } else {
            ((n as f64) * 10000.0 / (u.total_messages as f64)).round() / 100.0
        }
    };
    Ok(Json(serde_json::json!({
        "total_messages": u.total_messages,
        "sent": u.sent,
        "delivered": u.delivered,
        "read": u.read,
        "failed": u.failed,
        "last_message_at": u.last_message_at,
        "delivery_rate": rate(u.delivered),
        "read_rate": rate(u.read),
    })))
}
