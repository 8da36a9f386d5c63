//! Integrator webhook endpoints (`docs/integrator-events.md`): where the engine posts the
//! signed events of an account's messages, and their delivery logs.
//!
//! Served twice with the same bodies: `/api/v1/webhook-endpoints…` (`webhooks:manage`; a
//! `sk_test_` key sees and creates only test-mode endpoints, a live key only live ones) and
//! `/admin/v1/webhook-endpoints…` (the account admin: both modes, `"mode": "test"` on create).
//!
//! - The signing secret (`whsec_…`) is sealed at rest and shown only by create and
//!   rotate-secret; after a rotation the previous one keeps signing for
//!   [`hooks::OLD_SECRET_GRACE`] (`secret_rotated_until`).
//! - URLs are checked by [`ezpulze_common::hook_url`]: `https://` (plain `http://` only to
//!   loopback in development), and in production a host that is or resolves to a non-public
//!   address is refused (422). The workers check the addresses again before each connection.
//! - At most [`hooks::MAX_ENDPOINTS_PER_ACCOUNT`] endpoints per account (409 beyond).
//! - The delivery log is newest first with the contacts list's paging (`limit`, `cursor`) and a
//!   `state` filter; recover re-queues the `failed` deliveries created since a time, retry one
//!   delivery in any state but `delivering` (409).

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use sqlx::{Postgres, QueryBuilder};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::contacts::fields::{self, Errors};
use super::owned;
use crate::auth::{scope, AdminAccount, Authorized, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{double_option, ApiJson, ApiQuery, PathId};
use crate::state::AppState;
use ezpulze_common::{hook_url, hooks};

/// The longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// The most keys one endpoint's `key_ids` may list.
pub const MAX_KEY_IDS: usize = 100;
/// The states of a delivery.
pub const DELIVERY_STATES: [&str; 4] = ["pending", "delivering", "succeeded", "failed"];

/// Public routes (under `/api/v1`, `webhooks:manage`).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .routes(routes!(rotate_secret))
        .routes(routes!(deliveries))
        .routes(routes!(recover))
        .routes(routes!(retry))
}

/// Admin routes (under `/admin/v1`: the account admin, both modes).
pub fn admin_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(admin_list, admin_create))
        .routes(routes!(admin_read, admin_update, admin_remove))
        .routes(routes!(admin_rotate_secret))
        .routes(routes!(admin_deliveries))
        .routes(routes!(admin_recover))
        .routes(routes!(admin_retry))
}

/// Whose endpoints a request sees: the account's, of one mode (a key: `Some(its test_mode)`)
/// or of both (the account admin: `None`).
#[derive(Clone, Copy, Debug)]
struct Caller {
    account: Uuid,
    mode: Option<bool>,
}

impl Caller {
    fn key(p: &Principal) -> Self {
        Caller {
            account: p.account_id(),
            mode: p.dispatch_mode(),
        }
    }

    fn admin(account: Uuid) -> Self {
        Caller {
            account,
            mode: None,
        }
    }
}

/// The rows of `webhook_endpoints` a caller sees: `$1` = id, `$2` = account, `$3` = mode.
const VISIBLE: &str = "id = $1 AND account_id = $2 AND ($3::bool IS NULL OR test_mode = $3)";

const COLUMNS: &str = "id, test_mode, url, events, key_ids, max_per_second, active, description,
    include_phone, disabled_reason, disabled_at, failing_since,
    CASE WHEN old_secret_until > now() THEN old_secret_until END AS secret_rotated_until,
    created_at, updated_at";

#[derive(sqlx::FromRow)]
struct EndpointRow {
    id: Uuid,
    test_mode: bool,
    url: String,
    events: Vec<String>,
    key_ids: Option<Vec<Uuid>>,
    max_per_second: i32,
    active: bool,
    description: String,
    include_phone: bool,
    disabled_reason: Option<String>,
    disabled_at: Option<DateTime<Utc>>,
    failing_since: Option<DateTime<Utc>>,
    secret_rotated_until: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// An endpoint as the API returns it (`secret` only from create and rotate-secret).
#[derive(Debug, Serialize)]
pub struct Endpoint {
    pub id: Uuid,
    /// `live` or `test`: a test-mode endpoint receives only the events of test-mode sends.
    pub mode: &'static str,
    pub url: String,
    /// Empty: every event type.
    pub events: Vec<String>,
    /// Null: messages of every key.
    pub key_ids: Option<Vec<Uuid>>,
    pub max_per_second: i32,
    pub active: bool,
    pub description: String,
    pub include_phone: bool,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret signs alongside the current one (null: none does).
    pub secret_rotated_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<EndpointRow> for Endpoint {
    fn from(r: EndpointRow) -> Self {
        Endpoint {
            id: r.id,
            mode: if r.test_mode { "test" } else { "live" },
            url: r.url,
            events: r.events,
            key_ids: r.key_ids,
            max_per_second: r.max_per_second,
            active: r.active,
            description: r.description,
            include_phone: r.include_phone,
            disabled_reason: r.disabled_reason,
            disabled_at: r.disabled_at,
            failing_since: r.failing_since,
            secret_rotated_until: r.secret_rotated_until,
            created_at: r.created_at,
            updated_at: r.updated_at,
            secret: None,
        }
    }
}

/// One delivery of an event to an endpoint, as the log lists it.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub event_id: String,
    pub event_type: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_latency_ms: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The event as it is posted.
    pub body: Value,
}

const DELIVERY_COLUMNS: &str = "id, event_id, event_type, state, attempts, next_attempt_at,
    last_attempt_at, last_status, last_latency_ms, last_error, created_at, body";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    Live,
    Test,
}

/// A field that may be absent but not null (null is refused with the field's path).
fn non_null<'de, T, D>(de: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(de).map(Some)
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateEndpoint {
    #[serde(deserialize_with = "non_null")]
    url: Option<String>,
    /// Absent, null or empty: every event type.
    events: Option<Vec<String>>,
    /// Absent or null: every key.
    key_ids: Option<Vec<Uuid>>,
    #[serde(deserialize_with = "non_null")]
    max_per_second: Option<i64>,
    #[serde(deserialize_with = "non_null")]
    active: Option<bool>,
    #[serde(deserialize_with = "non_null")]
    description: Option<String>,
    #[serde(deserialize_with = "non_null")]
    include_phone: Option<bool>,
    /// `live` (default) or `test`; a key creates endpoints of its own mode only.
    #[serde(deserialize_with = "non_null")]
    mode: Option<Mode>,
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PatchEndpoint {
    #[serde(deserialize_with = "non_null")]
    url: Option<String>,
    /// Null or empty: every event type.
    #[serde(deserialize_with = "double_option")]
    events: Option<Option<Vec<String>>>,
    /// Null: every key.
    #[serde(deserialize_with = "double_option")]
    key_ids: Option<Option<Vec<Uuid>>>,
    #[serde(deserialize_with = "non_null")]
    max_per_second: Option<i64>,
    /// `true` also clears a disable (`disabled_reason`, `disabled_at`, `failing_since`).
    #[serde(deserialize_with = "non_null")]
    active: Option<bool>,
    #[serde(deserialize_with = "non_null")]
    description: Option<String>,
    #[serde(deserialize_with = "non_null")]
    include_phone: Option<bool>,
}

#[derive(Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    #[param(minimum = 1, maximum = 100, default = 25)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Only deliveries in this state.
    #[param(schema_with = state_schema)]
    state: Option<String>,
}

fn state_schema() -> utoipa::openapi::Object {
    super::openapi::string_enum(&DELIVERY_STATES, None)
}

#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecoverBody {
    /// RFC 3339: the failed deliveries created at or after this time are sent again.
    #[serde(deserialize_with = "non_null")]
    since: Option<DateTime<Utc>>,
}

/// A path with an endpoint id and a delivery id; anything but two UUIDs is not found.
pub struct PathIds(pub Uuid, pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path((a, b)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        match (a.parse(), b.parse()) {
            (Ok(a), Ok(b)) => Ok(PathIds(a, b)),
            _ => Err(ApiError::NotFound),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validation.

fn development(state: &AppState) -> bool {
    state.config().environment == "development"
}

/// The URL, checked (and in production resolved); the normalised form to store.
async fn check_url(state: &AppState, raw: &str, errors: &mut Errors) -> Option<String> {
    match hook_url::check_public_url(raw.trim(), development(state)).await {
        Ok(url) => Some(url.to_string()),
        Err(problem) => {
            errors.push("url", problem.to_string());
            None
        }
    }
}

/// The event types, each known, without repeats, in the catalogue's order (empty: all).
fn check_events(raw: &[String], errors: &mut Errors) -> Vec<String> {
    let mut ok = true;
    for (i, e) in raw.iter().enumerate() {
        if !hooks::EVENT_TYPES.contains(&e.as_str()) {
            errors.push(
                format!("events[{i}]"),
                format!(
                    "unknown event type {e:?}; one of {}",
                    hooks::EVENT_TYPES.join(", ")
                ),
            );
            ok = false;
        }
    }
    if !ok {
        return Vec::new();
    }
    hooks::EVENT_TYPES
        .iter()
        .filter(|t| raw.iter().any(|e| e == *t))
        .map(|t| t.to_string())
        .collect()
}

fn check_rate(raw: i64, errors: &mut Errors) -> i32 {
    match i32::try_from(raw) {
        Ok(n) if (hooks::MIN_PER_SECOND..=hooks::MAX_PER_SECOND).contains(&n) => n,
        _ => {
            errors.push(
                "max_per_second",
                format!(
                    "must be between {} and {}",
                    hooks::MIN_PER_SECOND,
                    hooks::MAX_PER_SECOND
                ),
            );
            hooks::DEFAULT_PER_SECOND
        }
    }
}

fn check_description(raw: &str, errors: &mut Errors) -> String {
    let s = raw.trim();
    let n = s.chars().count();
    if n > MAX_DESCRIPTION_CHARS {
        errors.push(
            "description",
            format!("at most {MAX_DESCRIPTION_CHARS} characters (got {n})"),
        );
    }
    s.to_string()
}

/// `key_ids`: 1 to [`MAX_KEY_IDS`] keys of the account, of the endpoint's mode (a key of the
/// other mode never sends an event this endpoint receives); repeats dropped.
async fn check_key_ids(
    state: &AppState,
    account: Uuid,
    test_mode: bool,
    raw: &[Uuid],
    errors: &mut Errors,
) -> ApiResult<Vec<Uuid>> {
    let mut ids: Vec<Uuid> = Vec::with_capacity(raw.len());
    for id in raw {
        if !ids.contains(id) {
            ids.push(*id);
        }
    }
    if ids.is_empty() {
        errors.push(
            "key_ids",
            "list at least one key, or give null for every key",
        );
        return Ok(ids);
    }
    if ids.len() > MAX_KEY_IDS {
        errors.push("key_ids", format!("at most {MAX_KEY_IDS} keys"));
        return Ok(ids);
    }
    let found: Vec<(Uuid, bool)> =
        sqlx::query_as("SELECT id, test_mode FROM api_keys WHERE account_id = $1 AND id = ANY($2)")
            .bind(account)
            .bind(&ids)
            .fetch_all(state.db())
            .await?;
    for (i, id) in raw.iter().enumerate() {
        match found.iter().find(|(k, _)| k == id) {
            None => errors.push(format!("key_ids[{i}]"), "no such key in this account"),
            Some((_, key_test)) if *key_test != test_mode => errors.push(
                format!("key_ids[{i}]"),
                if *key_test {
                    "is a test-mode key: a live endpoint never receives its events"
                } else {
                    "is a live key: a test-mode endpoint never receives its events"
                },
            ),
            Some(_) => {}
        }
    }
    Ok(ids)
}

/// A new secret and its sealed form.
fn new_secret(state: &AppState) -> ApiResult<(String, Vec<u8>)> {
    let secret = hooks::new_secret();
    let sealed = state.config().sealer().seal(&secret).map_err(|e| {
        ApiError::Internal(anyhow::Error::new(e).context("sealing a webhook secret"))
    })?;
    Ok((secret, sealed))
}

// ---------------------------------------------------------------------------------------------
// The operations, for either audience.

async fn fetch(state: &AppState, c: Caller, id: Uuid) -> ApiResult<EndpointRow> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE {VISIBLE}"
    ))
    .bind(id)
    .bind(c.account)
    .bind(c.mode)
    .fetch_optional(state.db())
    .await?
    .ok_or(ApiError::NotFound)
}

async fn do_create(
    state: &AppState,
    c: Caller,
    body: CreateEndpoint,
) -> ApiResult<(StatusCode, Json<Endpoint>)> {
    let mut errors = Errors::default();
    let test_mode = match (c.mode, body.mode) {
        (None, mode) => mode == Some(Mode::Test),
        (Some(own), None) => own,
        (Some(own), Some(mode)) => {
            if (mode == Mode::Test) != own {
                errors.push(
                    "mode",
                    if own {
                        "a sk_test_ key creates test-mode endpoints only"
                    } else {
                        "a live key creates live endpoints only"
                    },
                );
            }
            own
        }
    };
    let events = check_events(body.events.as_deref().unwrap_or_default(), &mut errors);
    let rate = body
        .max_per_second
        .map_or(hooks::DEFAULT_PER_SECOND, |r| check_rate(r, &mut errors));
    let description = check_description(body.description.as_deref().unwrap_or(""), &mut errors);
    let key_ids = match &body.key_ids {
        None => None,
        Some(ids) => Some(check_key_ids(state, c.account, test_mode, ids, &mut errors).await?),
    };
    let url = match body.url.as_deref() {
        None => {
            errors.push("url", "is required");
            None
        }
        Some(raw) => check_url(state, raw, &mut errors).await,
    };
    errors.finish()?;
    let url = url.unwrap_or_default();
    let (secret, sealed) = new_secret(state)?;
    let id = Uuid::now_v7();
    let mut tx = state.db().begin().await?;
    // One create at a time per account, so that the count below holds until the insert.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('webhook_endpoints:' || $1::text, 0))",
    )
    .bind(c.account)
    .execute(&mut *tx)
    .await?;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints WHERE account_id = $1")
            .bind(c.account)
            .fetch_one(&mut *tx)
            .await?;
    if count >= hooks::MAX_ENDPOINTS_PER_ACCOUNT {
        return Err(ApiError::Conflict(format!(
            "this account has {} webhook endpoints, the most it may have; delete one first",
            hooks::MAX_ENDPOINTS_PER_ACCOUNT
        )));
    }
    let row: EndpointRow = sqlx::query_as(&format!(
        "INSERT INTO webhook_endpoints (id, account_id, test_mode, url, events, key_ids,
             max_per_second, active, description, include_phone, secret_enc)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(c.account)
    .bind(test_mode)
    .bind(&url)
    .bind(&events)
    .bind(&key_ids)
    .bind(rate)
    .bind(body.active.unwrap_or(true))
    .bind(&description)
    .bind(body.include_phone.unwrap_or(false))
    .bind(&sealed)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut endpoint = Endpoint::from(row);
    endpoint.secret = Some(secret);
    Ok((StatusCode::CREATED, Json(endpoint)))
}

async fn do_list(state: &AppState, c: Caller) -> ApiResult<Json<Value>> {
    let rows: Vec<EndpointRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM webhook_endpoints
         WHERE account_id = $1 AND ($2::bool IS NULL OR test_mode = $2)
         ORDER BY id DESC LIMIT 1000"
    ))
    .bind(c.account)
    .bind(c.mode)
    .fetch_all(state.db())
    .await?;
    let items: Vec<Endpoint> = rows.into_iter().map(Endpoint::from).collect();
    Ok(Json(json!({ "items": items })))
}

async fn do_update(
    state: &AppState,
    c: Caller,
    id: Uuid,
    body: PatchEndpoint,
) -> ApiResult<Json<Endpoint>> {
    let mut errors = Errors::default();
    let events = body
        .events
        .as_ref()
        .map(|e| check_events(e.as_deref().unwrap_or_default(), &mut errors));
    let rate = body.max_per_second.map(|r| check_rate(r, &mut errors));
    let description = body
        .description
        .as_deref()
        .map(|d| check_description(d, &mut errors));
    let current = fetch(state, c, id).await?;
    let key_ids = match &body.key_ids {
        None => None,
        Some(None) => Some(None),
        Some(Some(ids)) => Some(Some(
            check_key_ids(state, c.account, current.test_mode, ids, &mut errors).await?,
        )),
    };
    let url = match body.url.as_deref() {
        None => None,
        Some(raw) => check_url(state, raw, &mut errors).await,
    };
    errors.finish()?;
    let mut sql: QueryBuilder<Postgres> =
        QueryBuilder::new("UPDATE webhook_endpoints SET updated_at = now()");
    if let Some(url) = url {
        sql.push(", url = ").push_bind(url);
    }
    if let Some(events) = events {
        sql.push(", events = ").push_bind(events);
    }
    if let Some(key_ids) = key_ids {
        sql.push(", key_ids = ").push_bind(key_ids);
    }
    if let Some(rate) = rate {
        sql.push(", max_per_second = ").push_bind(rate);
    }
    if let Some(description) = description {
        sql.push(", description = ").push_bind(description);
    }
    if let Some(include_phone) = body.include_phone {
        sql.push(", include_phone = ").push_bind(include_phone);
    }
    if let Some(active) = body.active {
        sql.push(", active = ").push_bind(active);
        if active {
            sql.push(", disabled_reason = NULL, disabled_at = NULL, failing_since = NULL");
        }
    }
    owned::push_where(&mut sql, id, c.account);
    sql.push(" AND (")
        .push_bind(c.mode)
        .push("::bool IS NULL OR test_mode = ")
        .push_bind(c.mode)
        .push(")");
    sql.push(format!(" RETURNING {COLUMNS}"));
    let row: Option<EndpointRow> = sql.build_query_as().fetch_optional(state.db()).await?;
    row.map(|r| Json(Endpoint::from(r)))
        .ok_or(ApiError::NotFound)
}

async fn do_remove(state: &AppState, c: Caller, id: Uuid) -> ApiResult<StatusCode> {
    let done = sqlx::query(&format!("DELETE FROM webhook_endpoints WHERE {VISIBLE}"))
        .bind(id)
        .bind(c.account)
        .bind(c.mode)
        .execute(state.db())
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn do_rotate(state: &AppState, c: Caller, id: Uuid) -> ApiResult<Json<Endpoint>> {
    let (secret, sealed) = new_secret(state)?;
    let grace = i64::try_from(hooks::OLD_SECRET_GRACE.as_secs()).unwrap_or(i64::MAX);
    let row: Option<EndpointRow> = sqlx::query_as(&format!(
        "UPDATE webhook_endpoints
            SET old_secret_enc = secret_enc, old_secret_until = now() + make_interval(secs => $4),
                secret_enc = $5, updated_at = now()
          WHERE {VISIBLE}
          RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(c.account)
    .bind(c.mode)
    .bind(grace as f64)
    .bind(&sealed)
    .fetch_optional(state.db())
    .await?;
    let mut endpoint = Endpoint::from(row.ok_or(ApiError::NotFound)?);
    endpoint.secret = Some(secret);
    Ok(Json(endpoint))
}

async fn do_deliveries(
    state: &AppState,
    c: Caller,
    id: Uuid,
    q: DeliveriesQuery,
) -> ApiResult<Json<fields::Page<Delivery>>> {
    let mut errors = Errors::default();
    let paging = fields::paging(q.limit, q.cursor.as_deref(), &mut errors);
    if let Some(s) = &q.state {
        if !DELIVERY_STATES.contains(&s.as_str()) {
            errors.push("state", format!("one of {}", DELIVERY_STATES.join(", ")));
        }
    }
    errors.finish()?;
    fetch(state, c, id).await?;
    let select = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries");
    let wanted = q.state;
    let page = owned::page(
        state.db(),
        &select,
        "",
        c.account,
        paging,
        move |sql| {
            sql.push(" AND endpoint_id = ").push_bind(id);
            if let Some(s) = wanted {
                sql.push(" AND state = ").push_bind(s);
            }
        },
        |d: &Delivery| d.id,
    );
    Ok(Json(page.await?))
}

async fn do_recover(
    state: &AppState,
    c: Caller,
    id: Uuid,
    body: RecoverBody,
) -> ApiResult<Json<Value>> {
    let Some(since) = body.since else {
        return Err(ApiError::field(
            "since",
            "is required (an RFC 3339 date-time)",
        ));
    };
    fetch(state, c, id).await?;
    let done = sqlx::query(
        "UPDATE webhook_deliveries
            SET state = 'pending', next_attempt_at = now(), lease_until = NULL, updated_at = now()
          WHERE endpoint_id = $1 AND account_id = $2 AND state = 'failed' AND created_at >= $3",
    )
    .bind(id)
    .bind(c.account)
    .bind(since)
    .execute(state.db())
    .await?;
    Ok(Json(json!({ "recovered": done.rows_affected() })))
}

async fn do_retry(
    state: &AppState,
    c: Caller,
    id: Uuid,
    delivery: Uuid,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    fetch(state, c, id).await?;
    let mut tx = state.db().begin().await?;
    let current: Option<String> = sqlx::query_scalar(
        "SELECT state FROM webhook_deliveries
          WHERE id = $1 AND endpoint_id = $2 AND account_id = $3 FOR UPDATE",
    )
    .bind(delivery)
    .bind(id)
    .bind(c.account)
    .fetch_optional(&mut *tx)
    .await?;
    match current.as_deref() {
        None => return Err(ApiError::NotFound),
        Some("delivering") => {
            return Err(ApiError::Conflict(
                "an attempt of this delivery is under way; retry it once the attempt ends".into(),
            ))
        }
        Some(_) => {}
    }
    let row: Delivery = sqlx::query_as(&format!(
        "UPDATE webhook_deliveries
            SET state = 'pending', next_attempt_at = now(), lease_until = NULL, updated_at = now()
          WHERE endpoint_id = $2 AND id = $1
          RETURNING {DELIVERY_COLUMNS}"
    ))
    .bind(delivery)
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(row)))
}

// ---------------------------------------------------------------------------------------------
// `/api/v1` (`webhooks:manage`).

/// Create a webhook endpoint
#[utoipa::path(post, path = "/api/v1/webhook-endpoints", operation_id = "createWebhookEndpoint",
    extensions(("x-required-scope" = json!(scope::WebhooksManage::SCOPE))))]
async fn create(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::WebhooksManage>,
    ApiJson(body): ApiJson<CreateEndpoint>,
) -> ApiResult<(StatusCode, Json<Endpoint>)> {
    do_create(&state, Caller::key(&p), body).await
}

/// List webhook endpoints
#[utoipa::path(get, path = "/api/v1/webhook-endpoints", operation_id = "listWebhookEndpoints",
    extensions(("x-required-scope" = json!(scope::WebhooksManage::SCOPE))))]
async fn list(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::WebhooksManage>,
) -> ApiResult<Json<Value>> {
    do_list(&state, Caller::key(&p)).await
}

/// Read a webhook endpoint
#[utoipa::path(get, path = "/api/v1/webhook-endpoints/{id}", operation_id = "getWebhookEndpoint",
    params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::WebhooksManage::SCOPE))))]
async fn read(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::WebhooksManage>,
    PathId(id): PathId,
) -> ApiResult<Json<Endpoint>> {
    Ok(Json(fetch(&state, Caller::key(&p), id).await?.into()))
}

/// Update a webhook endpoint
#[utoipa::path(patch, path = "/api/v1/webhook-endpoints/{id}",
    operation_id = "updateWebhookEndpoint", params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::WebhooksManage::SCOPE))))]
async fn update(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::WebhooksManage>,
    PathId(id): PathId,
    ApiJson(body): ApiJson<PatchEndpoint>,
) -> ApiResult<Json<Endpoint>> {
    do_update(&state, Caller::key(&p), id, body).await
}

/// Delete a webhook endpoint
#[utoipa::path(delete, path = "/api/v1/webhook-endpoints/{id}",
    operation_id = "deleteWebhookEndpoint", params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::WebhooksManage::SCOPE))))]
async fn remove(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::WebhooksManage>,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    do_remove(&state, Caller::key(&p), id).await
}

/// Rotate a webhook endpoint's signing secret
#[utoipa::path(post, path = "/api/v1/webhook-endpoints/{id}/rotate-secret",
    operation_id = "rotateWebhookEndpointSecret", params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::WebhooksManage::SCOPE))))]
async fn rotate_secret(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::WebhooksManage>,
    PathId(id): PathId,
) -> ApiResult<Json<Endpoint>> {
    do_rotate(&state, Caller::key(&p), id).await
}

/// List a webhook endpoint's deliveries
#[utoipa::path(get, path = "/api/v1/webhook-endpoints/{id}/deliveries",
    operation_id = "listWebhookDeliveries", params(("id" = Uuid, Path), DeliveriesQuery),
    extensions(("x-required-scope" = json!(scope::WebhooksManage::SCOPE))))]
async fn deliveries(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::WebhooksManage>,
    PathId(id): PathId,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> ApiResult<Json<fields::Page<Delivery>>> {
    do_deliveries(&state, Caller::key(&p), id, q).await
}

/// Re-send the failed deliveries since a time
#[utoipa::path(post, path = "/api/v1/webhook-endpoints/{id}/recover",
    operation_id = "recoverWebhookDeliveries", params(("id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::WebhooksManage::SCOPE))))]
async fn recover(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::WebhooksManage>,
    PathId(id): PathId,
    ApiJson(body): ApiJson<RecoverBody>,
) -> ApiResult<Json<Value>> {
    do_recover(&state, Caller::key(&p), id, body).await
}

/// Re-send one delivery
#[utoipa::path(post, path = "/api/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/retry",
    operation_id = "retryWebhookDelivery",
    params(("id" = Uuid, Path), ("delivery_id" = Uuid, Path)),
    extensions(("x-required-scope" = json!(scope::WebhooksManage::SCOPE))))]
async fn retry(
    State(state): State<AppState>,
    Authorized(p, _): Authorized<scope::WebhooksManage>,
    PathIds(id, delivery): PathIds,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    do_retry(&state, Caller::key(&p), id, delivery).await
}

// ---------------------------------------------------------------------------------------------
// `/admin/v1` (the account admin: both modes).

/// Create a webhook endpoint (web UI)
#[utoipa::path(
    post,
    path = "/webhook-endpoints",
    operation_id = "adminCreateWebhookEndpoint"
)]
async fn admin_create(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    ApiJson(body): ApiJson<CreateEndpoint>,
) -> ApiResult<(StatusCode, Json<Endpoint>)> {
    do_create(&state, Caller::admin(account), body).await
}

/// List the account's webhook endpoints (web UI)
#[utoipa::path(
    get,
    path = "/webhook-endpoints",
    operation_id = "adminListWebhookEndpoints"
)]
async fn admin_list(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
) -> ApiResult<Json<Value>> {
    do_list(&state, Caller::admin(account)).await
}

/// Read a webhook endpoint (web UI)
#[utoipa::path(get, path = "/webhook-endpoints/{id}", operation_id = "adminGetWebhookEndpoint",
    params(("id" = Uuid, Path)))]
async fn admin_read(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
) -> ApiResult<Json<Endpoint>> {
    Ok(Json(
        fetch(&state, Caller::admin(account), id).await?.into(),
    ))
}

/// Update a webhook endpoint (web UI)
#[utoipa::path(patch, path = "/webhook-endpoints/{id}",
    operation_id = "adminUpdateWebhookEndpoint", params(("id" = Uuid, Path)))]
async fn admin_update(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
    ApiJson(body): ApiJson<PatchEndpoint>,
) -> ApiResult<Json<Endpoint>> {
    do_update(&state, Caller::admin(account), id, body).await
}

/// Delete a webhook endpoint (web UI)
#[utoipa::path(delete, path = "/webhook-endpoints/{id}",
    operation_id = "adminDeleteWebhookEndpoint", params(("id" = Uuid, Path)))]
async fn admin_remove(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    do_remove(&state, Caller::admin(account), id).await
}

/// Rotate a webhook endpoint's signing secret (web UI)
#[utoipa::path(post, path = "/webhook-endpoints/{id}/rotate-secret",
    operation_id = "adminRotateWebhookEndpointSecret", params(("id" = Uuid, Path)))]
async fn admin_rotate_secret(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
) -> ApiResult<Json<Endpoint>> {
    do_rotate(&state, Caller::admin(account), id).await
}

/// List a webhook endpoint's deliveries (web UI)
#[utoipa::path(get, path = "/webhook-endpoints/{id}/deliveries",
    operation_id = "adminListWebhookDeliveries", params(("id" = Uuid, Path), DeliveriesQuery))]
async fn admin_deliveries(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> ApiResult<Json<fields::Page<Delivery>>> {
    do_deliveries(&state, Caller::admin(account), id, q).await
}

/// Re-send the failed deliveries since a time (web UI)
#[utoipa::path(post, path = "/webhook-endpoints/{id}/recover",
    operation_id = "adminRecoverWebhookDeliveries", params(("id" = Uuid, Path)))]
async fn admin_recover(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
    ApiJson(body): ApiJson<RecoverBody>,
) -> ApiResult<Json<Value>> {
    do_recover(&state, Caller::admin(account), id, body).await
}

/// Re-send one delivery (web UI)
#[utoipa::path(post, path = "/webhook-endpoints/{id}/deliveries/{delivery_id}/retry",
    operation_id = "adminRetryWebhookDelivery",
    params(("id" = Uuid, Path), ("delivery_id" = Uuid, Path)))]
async fn admin_retry(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathIds(id, delivery): PathIds,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    do_retry(&state, Caller::admin(account), id, delivery).await
}
