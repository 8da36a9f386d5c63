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
use utoipa_axum::{router::OpenApiRouter, routes};

/// Scope groups and individual scopes
#[utoipa::path(get, path = "/scopes", operation_id = "listScopes")]
pub async fn scope_catalogue(_admin: AdminAccount) -> Json<Value> {
    Json(json!({ "groups": scopes::GROUPS, "resources": scopes::RESOURCES }))
}

/// Who am I
#[utoipa::path(get, path = "/api/v1/me", operation_id = "me")]
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

/// The operations endpoints: probes, metrics, this document, the unauthenticated ping.
pub fn operations_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
        .routes(routes!(ping))
}

/// Liveness
#[utoipa::path(get, path = "/healthz", operation_id = "healthz")]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: Postgres and Redis reachable
///
/// Each is asked at the same time and must answer within 500 ms; a 503 names the failing ones
/// in `failed` (e.g. `"postgres did not answer within 500 ms"`).
#[utoipa::path(get, path = "/readyz", operation_id = "readyz")]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    use ezpulze_runtime::readiness;
    let r = readiness::check(
        state.db(),
        Some(state.redis_ref()),
        readiness::CHECK_TIMEOUT,
    )
    .await;
    let status = if r.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let failed: Vec<String> = r
        .failures()
        .into_iter()
        .map(|(name, what)| format!("{name} {what}"))
        .collect();
    (
        status,
        Json(json!({
            "postgres": r.postgres.is_ok(),
            "redis": r.redis.is_some_and(readiness::Check::is_ok),
            "failed": failed,
        })),
    )
}

/// Prometheus metrics
///
/// 404 here when `API_METRICS_ADDR` serves them on their own address.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics")]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<impl IntoResponse> {
    if state.config().api_metrics_addr.is_some() {
        return Err(crate::error::ApiError::NotFound);
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics().render(),
    ))
}

/// This document
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi")]
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        super::openapi::document().text.as_str(),
    )
}

/// Unauthenticated ping
///
/// A trivial answer, served both at `/ping` (no authentication) and `/api/v1/ping`
/// (authenticated): the auth benchmark compares the two.
#[utoipa::path(get, path = "/ping", operation_id = "ping")]
pub async fn ping() -> Json<Value> {
    Json(json!({"ok": true}))
}

/// Authenticated ping
///
/// `/api/v1/ping`: the same answer as [`ping`], behind authentication.
#[utoipa::path(get, path = "/api/v1/ping", operation_id = "pingAuthenticated")]
pub async fn ping_authenticated() -> Json<Value> {
    ping().await
}

pub async fn not_found() -> ApiResult<()> {
    Err(crate::error::ApiError::NotFound)
}
