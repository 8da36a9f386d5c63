//! `GET /admin/v1/api-keys/{id}/docs`: what the per-key documentation page shows, derived from
//! the key's scopes: the sections and endpoints it may call, base URL, authentication, error
//! codes, its own rate limit and the header names.
//!
//! The endpoints are those of the generated OpenAPI document (`routes::openapi`) that require a
//! scope: a section per scope resource (the part before `:`), with the operation's summary.
//!
//! `samples` gives the page's examples real values of the account (see [`samples`]): its latest
//! broadcast with the variables a recipient needs and a `variables_from` that fills them from
//! contacts, the tags most used by its latest contacts, and its contact attribute names. Every
//! part is empty when the account has none (the page then shows placeholders).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use uuid::Uuid;

use crate::auth::AdminAccount;
use crate::error::ApiResult;
use crate::extract::PathId;
use crate::routes::api_keys::{fetch_view, KeyView};
use crate::routes::broadcasts;
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
                .map(|e| json!({"method": e.method, "path": e.path, "url": format!("{base}{}", e.path), "scope": e.scope, "accepted_scopes": e.accepted, "summary": e.summary}))
                .collect();
            (!endpoints.is_empty()).then(|| json!({"id": r.id, "title": format!("{} API", r.name), "endpoints": endpoints}))
        })
        .collect();
    let samples = samples(&state, account).await?;
    Ok(Json(json!({
        "samples": samples,
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

/// Tags are counted over the account's latest this many contacts (an index range, however
/// many contacts the account has).
const TAG_SAMPLE_CONTACTS: i64 = 1000;
/// At most this many tags and attribute names.
const MAX_SAMPLES: i64 = 5;

/// Real values of the account for the page's examples.
async fn samples(state: &AppState, account: Uuid) -> ApiResult<Value> {
    let tags: Vec<String> = sqlx::query_scalar(
        "SELECT t FROM (SELECT tags FROM contacts WHERE account_id = $1 ORDER BY id DESC LIMIT $2) c,
                unnest(c.tags) t
          GROUP BY t ORDER BY count(*) DESC, t LIMIT $3",
    )
    .bind(account)
    .bind(TAG_SAMPLE_CONTACTS)
    .bind(MAX_SAMPLES)
    .fetch_all(state.db())
    .await?;
    let attributes: Vec<String> = sqlx::query_scalar(
        "SELECT key FROM contact_attribute_keys WHERE account_id = $1 ORDER BY key LIMIT $2",
    )
    .bind(account)
    .bind(MAX_SAMPLES)
    .fetch_all(state.db())
    .await?;
    let latest: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM broadcasts WHERE account_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(account)
    .fetch_optional(state.db())
    .await?;
    let broadcast = match latest {
        // A broadcast whose stored template no longer compiles gets no example (not a 500).
        Some(id) => match broadcasts::load(state, account, id).await {
            Ok(b) => {
                let vars = b.template.example_variables_over_defaults(&b.defaults);
                let vars = serde_json::to_value(&vars).unwrap_or_else(|_| json!({}));
                let attribute = attributes
                    .iter()
                    .find(|a| plain_name(a))
                    .map(String::as_str);
                json!({
                    "id": b.row.id,
                    "name": b.row.name,
                    "template_name": b.row.template_name,
                    "variables": vars,
                    "variables_from": variables_from(&vars, attribute),
                })
            }
            Err(_) => Value::Null,
        },
        None => Value::Null,
    };
    Ok(json!({"broadcast": broadcast, "tags": tags, "attributes": attributes}))
}

/// An attribute name a placeholder can hold as is.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A `variables_from` for variables a recipient would send (`vars`): the first text
/// parameter of the body becomes the contact's name (default `there`), the second, with an
/// `attribute`, that attribute (its example value as the default); everything else stays as
/// given. `None` when the broadcast's defaults fill the template (nothing to send).
pub fn variables_from(vars: &Value, attribute: Option<&str>) -> Option<Value> {
    if vars.as_object().is_none_or(|o| o.is_empty()) {
        return None;
    }
    let mut out = vars.clone();
    let mut texts: Vec<&mut Value> = match out.get_mut("body") {
        Some(Value::Array(items)) => items.iter_mut().filter(|v| v.is_string()).collect(),
        Some(Value::Object(named)) => named.values_mut().filter(|v| v.is_string()).collect(),
        _ => Vec::new(),
    };
    let mut slots = texts.iter_mut();
    if let Some(first) = slots.next() {
        **first = json!("{{contact.name|there}}");
    }
    if let (Some(second), Some(a)) = (slots.next(), attribute) {
        let example = second.as_str().unwrap_or_default();
        let safe = !example.contains(['{', '}', '|']);
        **second = if safe && !example.is_empty() {
            json!(format!("{{{{attributes.{a}|{example}}}}}"))
        } else {
            json!(format!("{{{{attributes.{a}}}}}"))
        };
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_filled_from_the_contact() {
        let vars = json!({"body": ["Ann", "4721", "x"], "header": {"type": "image", "link": "https://e.x/a.png"}});
        assert_eq!(
            variables_from(&vars, Some("order_id")),
            Some(
                json!({"body": ["{{contact.name|there}}", "{{attributes.order_id|4721}}", "x"],
                "header": {"type": "image", "link": "https://e.x/a.png"}})
            )
        );
        assert_eq!(
            variables_from(&vars, None),
            Some(json!({"body": ["{{contact.name|there}}", "4721", "x"],
                "header": {"type": "image", "link": "https://e.x/a.png"}}))
        );
        // Named parameters; a slot left to the defaults (null) is skipped.
        let named = json!({"body": {"a_name": "Ann", "b_code": "a|b"}});
        assert_eq!(
            variables_from(&named, Some("plan")),
            Some(
                json!({"body": {"a_name": "{{contact.name|there}}", "b_code": "{{attributes.plan}}"}})
            )
        );
        let gaps = json!({"body": [null, "Ann"]});
        assert_eq!(
            variables_from(&gaps, None),
            Some(json!({"body": [null, "{{contact.name|there}}"]}))
        );
        assert_eq!(variables_from(&json!({}), Some("plan")), None);
        assert_eq!(variables_from(&Value::Null, None), None);
        assert!(plain_name("order_id") && !plain_name("a}b") && !plain_name(""));
    }
}
