//! Small read-only routes: the scope catalogue, `/api/v1/me`, health, readiness, metrics.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::{AdminAccount, Principal};
use crate::error::ApiResult;
use crate::state::AppState;
use ezpulze_common::scopes;

pub async fn scope_catalogue(_admin: AdminAccount) -> Json<Value> {
    Json(json!({ "groups": scopes::GROUPS, "resources": scopes::RESOURCES }))
}

pub async fn me(principal: Principal) -> Json<Value> {
    match principal {
        Principal::Key(k) => Json(json!({
            "type": "api_key",
            "id": k.id,
            "name": k.name,
            "mode": if k.test_mode { "test" } else { "live" },
            "scope_group": k.scope_group,
            "scopes": k.scopes,
            "rate_limit_per_hour": k.rate_limit_per_hour,
            "expires_at": k.expires_at,
        })),
        Principal::Admin { account_id } => Json(json!({
            "type": "admin",
            "account_id": account_id,
            "name": "account admin",
            "scopes": scopes::FULL_ACCESS,
            "rate_limit_per_hour": null,
        })),
    }
}

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let db = sqlx::query("SELECT 1").execute(state.db()).await.is_ok();
    let mut redis = state.redis();
    let rd = redis::cmd("PING")
        .query_async::<String>(&mut redis)
        .await
        .is_ok();
    let status = if db && rd {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({"postgres": db, "redis": rd})))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
}

/// A trivial answer, served both at `/ping` (no authentication) and `/api/v1/ping`
/// (authenticated): the auth benchmark compares the two.
pub async fn ping() -> Json<Value> {
    Json(json!({"ok": true}))
}

pub async fn not_found() -> ApiResult<()> {
    Err(crate::error::ApiError::NotFound)
}
