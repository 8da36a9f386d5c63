//! `GET /admin/v1/api-keys/{id}/docs`: what the per-key documentation page shows, derived from
//! the key's scopes: the sections and endpoints it may call, base URL, authentication, error
//! codes, its own rate limit and the header names.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::AdminAccount;
use crate::error::ApiResult;
use crate::extract::PathId;
use crate::routes::api_keys::{fetch_view, KeyView};
use crate::state::AppState;
use ezpulze_common::scopes;

/// (section, method, path, required scope, what it does); dispatch reads also accept
/// `broadcast:read` (see `ALSO_READ`).
const ENDPOINTS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "broadcast",
        "GET",
        "/api/v1/broadcasts",
        "broadcast:read",
        "List broadcasts",
    ),
    (
        "broadcast",
        "GET",
        "/api/v1/broadcasts/{id}",
        "broadcast:read",
        "Read one broadcast",
    ),
    (
        "broadcast",
        "POST",
        "/api/v1/broadcasts",
        "broadcast:create",
        "Create a broadcast from a template",
    ),
    (
        "broadcast",
        "DELETE",
        "/api/v1/broadcasts/{id}",
        "broadcast:delete",
        "Delete a broadcast",
    ),
    (
        "broadcast",
        "POST",
        "/api/v1/broadcasts/{id}/send",
        "broadcast:send",
        "Send to up to 10,000 recipients",
    ),
    (
        "broadcast",
        "GET",
        "/api/v1/dispatches/{id}",
        "broadcast:send",
        "Progress of a send (also with broadcast:read)",
    ),
    (
        "broadcast",
        "GET",
        "/api/v1/dispatches/{id}/messages",
        "broadcast:send",
        "Messages of a send, cursor paginated",
    ),
    (
        "broadcast",
        "POST",
        "/api/v1/dispatches/{id}/cancel",
        "broadcast:send",
        "Cancel what is not sent yet",
    ),
    (
        "broadcast",
        "GET",
        "/api/v1/messages/{id}",
        "broadcast:send",
        "One message: status, wamid, error",
    ),
    (
        "contacts",
        "POST",
        "/api/v1/contacts",
        "contacts:create",
        "Create a contact",
    ),
    (
        "contacts",
        "GET",
        "/api/v1/contacts/{id}",
        "contacts:read",
        "Read one contact",
    ),
    (
        "contacts",
        "GET",
        "/api/v1/contacts",
        "contacts:read_all",
        "List and search contacts",
    ),
    (
        "contacts",
        "PATCH",
        "/api/v1/contacts/{id}",
        "contacts:update",
        "Update a contact",
    ),
    (
        "contacts",
        "DELETE",
        "/api/v1/contacts/{id}",
        "contacts:delete",
        "Delete a contact",
    ),
    (
        "leads",
        "POST",
        "/api/v1/leads",
        "leads:create",
        "Create a lead",
    ),
    (
        "leads",
        "GET",
        "/api/v1/leads/{id}",
        "leads:read",
        "Read one lead",
    ),
    (
        "leads",
        "GET",
        "/api/v1/leads",
        "leads:read_all",
        "List and search leads",
    ),
    (
        "leads",
        "PATCH",
        "/api/v1/leads/{id}",
        "leads:update",
        "Update a lead",
    ),
    (
        "leads",
        "POST",
        "/api/v1/leads/{id}/assign",
        "leads:assign",
        "Assign a lead",
    ),
    (
        "leads",
        "DELETE",
        "/api/v1/leads/{id}",
        "leads:delete",
        "Delete a lead",
    ),
    (
        "template",
        "GET",
        "/api/v1/templates",
        "template:read",
        "List templates",
    ),
    (
        "template",
        "GET",
        "/api/v1/templates/{id}",
        "template:read",
        "Read one template",
    ),
    (
        "template",
        "POST",
        "/api/v1/templates",
        "template:create",
        "Create a template",
    ),
    (
        "template",
        "PATCH",
        "/api/v1/templates/{id}",
        "template:update",
        "Update a template",
    ),
    (
        "template",
        "DELETE",
        "/api/v1/templates/{id}",
        "template:delete",
        "Delete a template",
    ),
    (
        "chatbot_flows",
        "POST",
        "/api/v1/chatbot-flows/{id}/webhook",
        "chatbot_flows:webhook",
        "Start a chatbot flow for a contact",
    ),
];

/// Routes that `broadcast:read` reaches as well as `broadcast:send`.
const ALSO_READ: &[&str] = &[
    "/api/v1/dispatches/{id}",
    "/api/v1/dispatches/{id}/messages",
    "/api/v1/messages/{id}",
];

fn allowed(view: &KeyView, path: &str, scope: &str) -> bool {
    scopes::allows(&view.scopes, scope)
        || (ALSO_READ.contains(&path) && scopes::allows(&view.scopes, "broadcast:read"))
}

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
    let sections: Vec<Value> = scopes::RESOURCES
        .iter()
        .filter_map(|r| {
            let endpoints: Vec<Value> = ENDPOINTS
                .iter()
                .filter(|e| e.0 == r.id && allowed(&view, e.2, e.3))
                .map(|e| json!({"method": e.1, "path": e.2, "url": format!("{base}{}", e.2), "scope": e.3, "summary": e.4}))
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
