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

#[utoipa::path(
    get,
    path = "/scopes",
    operation_id = "listScopes",
    tag = "API keys",
    summary = "Scope groups and individual scopes"
)]
pub async fn scope_catalogue(_admin: AdminAccount) -> Json<Value> {
    Json(json!({ "groups": scopes::GROUPS, "resources": scopes::RESOURCES }))
}

#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "me",
    tag = "Meta",
    summary = "Who am I"
)]
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

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "Operations",
    summary = "Liveness"
)]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "Operations",
    summary = "Readiness: Postgres and Redis reachable"
)]
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

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "Operations",
    summary = "Prometheus metrics"
)]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    )
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "Operations",
    summary = "This document"
)]
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document().text.as_str(),
    )
}

/// A trivial answer, served both at `/ping` (no authentication) and `/api/v1/ping`
/// (authenticated): the auth benchmark compares the two.
#[utoipa::path(
    get,
    path = "/ping",
    operation_id = "ping",
    tag = "Operations",
    summary = "Unauthenticated ping"
)]
pub async fn ping() -> Json<Value> {
    Json(json!({"ok": true}))
}

/// `/api/v1/ping`: the same answer as [`ping`], behind authentication.
#[utoipa::path(
    get,
    path = "/api/v1/ping",
    operation_id = "pingAuthenticated",
    tag = "Meta",
    summary = "Authenticated ping"
)]
pub async fn ping_authenticated() -> Json<Value> {
    ping().await
}

pub async fn not_found() -> ApiResult<()> {
    Err(crate::error::ApiError::NotFound)
}
