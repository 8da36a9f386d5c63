//! `GET /admin/v1/api-keys/{id}/docs`: what the per-key documentation page shows, derived from
//! the key's scopes: the sections and endpoints it may call, base URL, authentication, error
//! codes, its own rate limit and the header names.
//!
//! The endpoints are those of the generated OpenAPI document (`routes::openapi`) that require a
//! scope: a section per scope resource (the part before `:`), with the operation's summary.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::AdminAccount;
use crate::error::ApiResult;
use crate::extract::PathId;
use crate::routes::api_keys::{fetch_view, KeyView};
use crate::routes::openapi::{document, scoped_endpoints, Endpoint};
use crate::state::AppState;
use ezpulze_common::scopes;

/// Whether the key may call an endpoint: it holds one of the scopes that open it.
fn allowed(view: &KeyView, endpoint: &Endpoint) -> bool {
    endpoint
        .accepted
        .iter()
        .any(|scope| scopes::allows(&view.scopes, scope))
}

/// The resource a scope belongs to: `broadcast` for `broadcast:send`.
fn section_of(scope: &str) -> &str {
    scope
        .split_once(':')
        .map_or(scope, |(resource, _)| resource)
}

/// The documentation page's data for a key
#[utoipa::path(get, path = "/api-keys/{id}/docs", operation_id = "getApiKeyDocs",
    params(("id" = Uuid, Path)))]
pub async fn docs(
    State(state): State<AppState>,
    AdminAccount(account): AdminAccount,
    PathId(id): PathId,
) -> ApiResult<Json<Value>> {
    let view = fetch_view(&state, account, id).await?;
    let base = state
        .config()
        .public_base_url
        .trim_end_matches('/')
        .to_string();
    let endpoints = scoped_endpoints(&document().json);
    let sections: Vec<Value> = scopes::RESOURCES
        .iter()
        .filter_map(|r| {
            let endpoints: Vec<Value> = endpoints
                .iter()
                .filter(|e| section_of(e.scope) == r.id && allowed(&view, e))
                .map(|e| json!({"method": e.method, "path": e.path, "url": format!("{base}{}", e.path), "scope": e.scope, "summary": e.summary}))
                .collect();
            (!endpoints.is_empty()).then(|| json!({"id": r.id, "title": format!("{} API", r.name), "endpoints": endpoints}))
        })
        .collect();
    Ok(Json(json!({
        "key": {"id": view.id, "name": view.name, "masked_key": view.masked_key, "scopes": view.scopes,
                "scope_group": view.scope_group, "status": view.status},
        "base_url": format!("{base}/api/v1"),
        "authentication": {
            "headers": ["Authorization: Bearer <API key>", "X-API-Key: <API key>"],
            "key_prefixes": ["sk_live_", "sk_test_"],
            "note": "Send the key in one of the two headers on every request; test-mode keys (sk_test_) run the whole pipeline against the simulator.",
        },
        "sections": sections,
        "error_codes": [
            {"status": 401, "codes": ["missing_api_key", "invalid_api_key", "key_inactive", "key_expired"], "meaning": "Unauthorized: invalid or missing API key"},
            {"status": 403, "codes": ["insufficient_scope", "ip_not_allowed"], "meaning": "Forbidden: the key lacks the required scope, or the IP is not allowed"},
            {"status": 404, "codes": ["not_found"], "meaning": "No such resource in this account"},
            {"status": 409, "codes": ["conflict", "idempotency_conflict"], "meaning": "Conflicts with the current state, or an Idempotency-Key reused with another body"},
            {"status": 413, "codes": ["payload_too_large"], "meaning": "The body is over the size limit"},
            {"status": 422, "codes": ["validation_failed"], "meaning": "Invalid input; details name each field"},
            {"status": 429, "codes": ["rate_limited"], "meaning": "Too Many Requests: rate limit exceeded, see Retry-After"},
            {"status": 500, "codes": ["internal"], "meaning": "Internal Server Error: something went wrong on the server"},
        ],
        "rate_limit": {
            "requests_per_hour": view.rate_limit_per_hour,
            "headers": ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit-Policy", "RateLimit"],
            "retry_header": "Retry-After",
        },
    })))
}
