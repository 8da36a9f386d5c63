//! The portfolio's messaging limit (`docs/messaging-limits.md`): its tier, what it allows, and
//! how many unique recipients the workers counted in the moving window.
//!
//! - `GET /api/v1/whatsapp/messaging-limit`: a key with `broadcast:read` or `broadcast:send`
//!   (or the account's admin token) reads it, e.g. before a large send;
//! - `GET|PUT /admin/v1/whatsapp/messaging-limit`: the account's admin (token or web UI
//!   session) reads and sets it, like the other WhatsApp settings. Meta's
//!   `phone_number_quality_update` webhooks also set it.
//!
//! One account is one business portfolio. A tier of `null` means not known: nothing is
//! enforced (and nothing counted).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use ezpulze_common::messaging_limit::{self, Tier};

use crate::auth::{scope, AdminAccount, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{double_option, ApiJson};
use crate::state::AppState;

/// `PUT` body: exactly `{"tier": "<Meta's tier name>" | null}`.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TierIn {
    #[serde(deserialize_with = "double_option")]
    tier: Option<Option<String>>,
}

/// The tier names, for error messages.
fn tier_names() -> String {
    Tier::ALL
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The account's tier, limit, count in the window and window length.
async fn view(state: &AppState, account: Uuid) -> ApiResult<Value> {
    let tier: Option<String> =
        sqlx::query_scalar("SELECT messaging_tier FROM accounts WHERE id = $1")
            .bind(account)
            .fetch_optional(state.db())
            .await?
            .flatten();
    let tier = tier.as_deref().and_then(Tier::parse);
    let window = state.config().messaging_window;
    let used = messaging_limit::used(state.redis_ref(), state.keyspace(), account, window)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("reading the messaging budget: {e}")))?;
    let limit = tier.and_then(Tier::limit);
    Ok(json!({
        "tier": tier.map(Tier::as_str),
        "limit": limit,
        "enforced": limit.is_some(),
        "used": used,
        "remaining": limit.map(|l| l.saturating_sub(used)),
        "window_secs": window.as_secs(),
    }))
}

/// Read the messaging limit
#[utoipa::path(get, path = "/api/v1/whatsapp/messaging-limit", operation_id = "getMessagingLimit",
    extensions(("x-required-scope" = json!(scope::BroadcastRead::SCOPE)), ("x-accepted-scopes" = json!([scope::BroadcastRead::SCOPE, scope::BroadcastSend::SCOPE]))))]
pub async fn get(State(state): State<AppState>, p: Principal) -> ApiResult<Json<Value>> {
    crate::routes::dispatches::can_read(&p)?;
    Ok(Json(view(&state, p.account_id()).await?))
}

/// Read the messaging limit (admin)
#[utoipa::path(
    get,
    path = "/whatsapp/messaging-limit",
    operation_id = "getMessagingLimitAdmin"
)]
pub async fn get_admin(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&state, account).await?))
}

/// Set the messaging limit's tier
#[utoipa::path(
    put,
    path = "/whatsapp/messaging-limit",
    operation_id = "putMessagingLimit"
)]
pub async fn put(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    ApiJson(body): ApiJson<TierIn>,
) -> ApiResult<Json<Value>> {
    let tier = match body.tier {
        None => return Err(ApiError::field("tier", "required (a tier name, or null)")),
        Some(None) => None,
        Some(Some(name)) => Some(Tier::parse(&name).ok_or_else(|| {
            ApiError::field("tier", format!("must be one of {} or null", tier_names()))
        })?),
    };
    sqlx::query("UPDATE accounts SET messaging_tier = $2 WHERE id = $1")
        .bind(account)
        .bind(tier.map(Tier::as_str))
        .execute(state.db())
        .await?;
    metrics::counter!("ezpulze_messaging_tier_changes_total", "source" => "api").increment(1);
    Ok(Json(view(&state, account).await?))
}
