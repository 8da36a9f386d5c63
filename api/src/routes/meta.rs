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
#[utoipa::path(get, path = "/readyz", operation_id = "readyz")]
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
