//! WhatsApp webhooks: the verification GET, and the POST that checks `X-Hub-Signature-256`
//! over the raw bytes (in constant time, with the app secret of the account that owns the
//! `metadata.phone_number_id`), pushes the raw body onto the webhook queue and answers 200 at
//! once. Postgres is not touched on the POST path (app secrets are cached).
//!
//! WABA-level changes (`object: "whatsapp_business_account"`, a change without `metadata`:
//! number quality and throughput, account updates, template status, quality and category;
//! `docs/whatsapp-events.md`) name the WhatsApp Business Account in `entry[].id`: they are
//! verified with the app secret of the account whose `waba_id` it is, under the same rules
//! (unknown: 404, secrets of different apps in one body: 401), and queued with that WABA and
//! account for the status consumer. A `field` the engine does not apply is accepted and
//! counted (`ezpulze_webhook_waba_changes_total{field="other"}`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::HashMap;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiQuery, RawBody};
use crate::state::AppState;
use crate::webhook_secrets::NumberSecret;
use ezpulze_common::jobs::{VerifiedNumber, VerifiedWaba, WebhookBody, WABA_FIELDS};

/// The largest webhook POST body taken (413 above): Meta's are a few KB, with at most a
/// thousand statuses, so 1 MiB is generous.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

#[derive(Deserialize)]
pub struct Verify {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's webhook verification
///
/// `GET /webhooks/whatsapp`: answers the challenge when the verify token is one of ours.
#[utoipa::path(get, path = "/webhooks/whatsapp", operation_id = "verifyWebhook")]
pub async fn verify(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> ApiResult<Response> {
    let v = Verify {
        mode: q.get("hub.mode").cloned(),
        token: q.get("hub.verify_token").cloned(),
        challenge: q.get("hub.challenge").cloned(),
    };
    let (Some(mode), Some(token), Some(challenge)) = (v.mode, v.token, v.challenge) else {
        return Ok((StatusCode::FORBIDDEN, "verification failed").into_response());
    };
    let known: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM whatsapp_settings WHERE verify_token = $1)",
    )
    .bind(&token)
    .fetch_one(state.db())
    .await?;
    if mode == "subscribe" && known && challenge.len() <= 256 {
        Ok((StatusCode::OK, [("content-type", "text/plain")], challenge).into_response())
    } else {
        Ok((StatusCode::FORBIDDEN, "verification failed").into_response())
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    /// The WABA id (a string in Meta's bodies; a number is read as its digits).
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    changes: Vec<Change>,
}

impl Entry {
    fn waba_id(&self) -> Option<String> {
        match self.id.as_ref()? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    value: Option<ChangeValue>,
}

#[derive(Deserialize)]
struct ChangeValue {
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: String,
}

/// Refuses a webhook POST: `reason` is a short fixed label for the metric, `message` the text.
fn reject(
    status: StatusCode,
    code: &'static str,
    reason: &'static str,
    message: &'static str,
) -> Response {
    metrics::counter!("ezpulze_webhook_rejected_total", "reason" => reason).increment(1);
    let body = serde_json::json!({"error": {"code": code, "message": message, "request_id": crate::error::current_request_id()}});
    (status, axum::Json(body)).into_response()
}

fn mixed_apps() -> Response {
    reject(
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
        "signature_mixed_apps",
        "numbers of different apps in one body",
    )
}

/// The WABA ids of the body's WABA-level changes (a change without `metadata` in a
/// `whatsapp_business_account` body), sorted, each once.
fn waba_ids(env: &Envelope) -> Vec<String> {
    if env.object.as_deref() != Some("whatsapp_business_account") {
        return Vec::new();
    }
    let mut out: Vec<String> = env
        .entry
        .iter()
        .filter(|e| {
            e.changes
                .iter()
                .any(|c| c.value.as_ref().is_none_or(|v| v.metadata.is_none()) && c.field.is_some())
        })
        .filter_map(Entry::waba_id)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Counts the WABA-level changes of an accepted body by field (those the engine does not
/// apply as `other`: a bounded label set).
fn count_waba_fields(env: &Envelope) {
    if env.object.as_deref() != Some("whatsapp_business_account") {
        return;
    }
    for c in env.entry.iter().flat_map(|e| e.changes.iter()) {
        if c.value.as_ref().is_some_and(|v| v.metadata.is_some()) {
            continue;
        }
        let Some(field) = c.field.as_deref() else {
            continue;
        };
        let label = WABA_FIELDS
            .iter()
            .find(|f| **f == field)
            .copied()
            .unwrap_or("other");
        metrics::counter!("ezpulze_webhook_waba_changes_total", "field" => label).increment(1);
    }
}

/// Meta's webhook delivery (statuses, number quality, account and template updates)
///
/// `POST /webhooks/whatsapp`.
#[utoipa::path(post, path = "/webhooks/whatsapp", operation_id = "receiveWebhook",
    params(("X-Hub-Signature-256" = String, Header, pattern = "^sha256=[0-9a-fA-F]{64}$", description = "HMAC-SHA256 of the raw body with the app secret of the account owning `metadata.phone_number_id` (or, for WABA-level changes, the WABA id in `entry[].id`).")))]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let Some(sig) = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|h| hex::decode(h).ok())
        .filter(|d| d.len() == 32)
    else {
        return Ok(reject(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "signature_missing",
            "missing or malformed X-Hub-Signature-256",
        ));
    };
    let Ok(env) = serde_json::from_slice::<Envelope>(&body) else {
        return Ok(reject(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "malformed",
            "the body is not a WhatsApp webhook JSON object",
        ));
    };
    let mut ids: Vec<&str> = env
        .entry
        .iter()
        .flat_map(|e| e.changes.iter())
        .filter_map(|c| {
            c.value
                .as_ref()?
                .metadata
                .as_ref()
                .map(|m| m.phone_number_id.as_str())
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let wabas = waba_ids(&env);
    if ids.is_empty() && wabas.is_empty() {
        return Ok(reject(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "no_phone_number_id",
            "no metadata.phone_number_id in the body",
        ));
    }
    let mut secret: Option<Arc<NumberSecret>> = None;
    let mut numbers = Vec::with_capacity(ids.len());
    for id in &ids {
        match state
            .webhook_secrets()
            .get(
                state.db(),
                state.config(),
                (
                    state.key_cache(),
                    state.redis_ref(),
                    &state.config().redis_prefix,
                ),
                id,
            )
            .await?
        {
            None => {
                return Ok(reject(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "unknown_number",
                    "unknown phone_number_id or no app secret set",
                ))
            }
            Some(s) => {
                if secret.as_ref().is_some_and(|prev| prev.secret != s.secret) {
                    return Ok(mixed_apps());
                }
                numbers.push(VerifiedNumber {
                    phone_number_id: (*id).to_string(),
                    account_id: s.account_id,
                });
                secret = Some(s);
            }
        }
    }
    let mut verified_wabas = Vec::with_capacity(wabas.len());
    for waba_id in wabas {
        match state
            .webhook_secrets()
            .get_waba(state.db(), state.config(), &waba_id)
            .await?
        {
            None => {
                return Ok(reject(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "unknown_waba",
                    "unknown WhatsApp Business Account id (entry[].id) or no app secret set",
                ))
            }
            Some(s) => {
                if secret.as_ref().is_some_and(|prev| prev.secret != s.secret) {
                    return Ok(mixed_apps());
                }
                verified_wabas.push(VerifiedWaba {
                    waba_id,
                    account_id: s.account_id,
                });
                secret = Some(s);
            }
        }
    }
    let Some(secret) = secret else {
        return Ok(reject(
            StatusCode::NOT_FOUND,
            "not_found",
            "unknown_number",
            "unknown phone_number_id",
        ));
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.secret.as_bytes())
        .map_err(|e| ApiError::Internal(e.into()))?;
    mac.update(&body);
    // `verify_slice` compares in constant time.
    if mac.verify_slice(&sig).is_err() {
        return Ok(reject(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "signature_mismatch",
            "the signature does not match",
        ));
    }
    // Parsed above, so it is JSON: kept verbatim for the status consumers.
    let raw: Box<serde_json::value::RawValue> =
        serde_json::from_slice(&body).map_err(|e| ApiError::Internal(e.into()))?;
    let shard_key = numbers
        .first()
        .map(|n| n.phone_number_id.clone())
        .or_else(|| verified_wabas.first().map(|w| w.waba_id.clone()))
        .unwrap_or_default();
    count_waba_fields(&env);
    state
        .webhook_queue(&shard_key)
        .push(&WebhookBody {
            numbers: Some(numbers),
            wabas: verified_wabas,
            body: raw,
        })
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    metrics::counter!("ezpulze_webhook_accepted_total").increment(1);
    Ok(StatusCode::OK.into_response())
}
