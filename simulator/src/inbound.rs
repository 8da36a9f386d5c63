//! Inbound messages: `POST /_sim/inbound {"from", "to_number", "text"}` plays a WhatsApp user
//! writing to a business number. The simulator builds Meta's `messages` webhook for it
//! (`value.metadata`, `value.contacts[].wa_id`, `value.messages[]` of type `text`), signs it
//! like its status webhooks (`X-Hub-Signature-256` with the number's or the global app secret,
//! Meta's escaping when `webhook_meta_escaping`) and posts it to the number's or the global
//! `webhook_url` in the background, retried with the status webhooks' backoff. Answers 202
//! `{"id": "<wamid>"}` at once; 422 on bad input, 409 without a webhook URL.

use std::sync::atomic::{AtomicU64, Ordering as AO};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::limits::unix_now;
use crate::webhook::{meta_escape, sign};
use crate::Shared;

/// The longest text accepted (WhatsApp's limit for a text message body).
pub const MAX_TEXT_CHARS: usize = 4096;

/// Ground truth of inbound messages.
#[derive(Debug, Default)]
pub struct InboundStats {
    /// Accepted by `/_sim/inbound`.
    pub accepted: AtomicU64,
    /// Posted and answered 2xx.
    pub delivered: AtomicU64,
    /// Given up (`webhook_max_attempts`, the webhook switched off, or a reset).
    pub dropped: AtomicU64,
    /// Not yet delivered nor dropped.
    pub pending: AtomicU64,
}

impl InboundStats {
    pub fn json(&self) -> serde_json::Value {
        json!({
            "accepted": self.accepted.load(AO::Relaxed),
            "delivered": self.delivered.load(AO::Relaxed),
            "dropped": self.dropped.load(AO::Relaxed),
        })
    }

    pub fn reset(&self) {
        self.accepted.store(0, AO::Relaxed);
        self.delivered.store(0, AO::Relaxed);
        self.dropped.store(0, AO::Relaxed);
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundRequest {
    from: String,
    to_number: String,
    text: String,
}

fn unprocessable(message: impl Into<String>) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

/// The sender's `wa_id`: `+` optional, then 8 to 15 digits, the first not 0.
fn wa_id(from: &str) -> Option<&str> {
    let d = from.strip_prefix('+').unwrap_or(from);
    let ok =
        (8..=15).contains(&d.len()) && !d.starts_with('0') && d.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(d)
}

/// The Meta-shaped webhook body of one inbound text message.
pub fn build_body(
    waba_id: &str,
    display_phone_number: &str,
    phone_number_id: &str,
    from: &str,
    wamid: &str,
    text: &str,
    meta_escaping: bool,
) -> Vec<u8> {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": waba_id,
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {
                        "display_phone_number": display_phone_number,
                        "phone_number_id": phone_number_id,
                    },
                    "contacts": [{"profile": {"name": "Simulated user"}, "wa_id": from}],
                    "messages": [{
                        "from": from,
                        "id": wamid,
                        "timestamp": unix_now().to_string(),
                        "type": "text",
                        "text": {"body": text},
                    }],
                },
            }],
        }],
    });
    let raw = serde_json::to_vec(&body).unwrap_or_default();
    if meta_escaping && raw.iter().any(|b| *b == b'/' || *b >= 0x80) {
        meta_escape(&raw)
    } else {
        raw
    }
}

/// `POST /_sim/inbound`.
pub async fn post_inbound(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: InboundRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return unprocessable(format!("invalid body: {e}")),
    };
    let Some(from) = wa_id(req.from.trim()) else {
        return unprocessable(
            "from: a phone number in international form, `+` optional (8 to 15 digits)",
        );
    };
    let to = req.to_number.trim();
    if to.is_empty() {
        return unprocessable("to_number: the business number's phone_number_id is required");
    }
    let n = req.text.chars().count();
    if req.text.trim().is_empty() || n > MAX_TEXT_CHARS {
        return unprocessable(format!("text: 1 to {MAX_TEXT_CHARS} characters"));
    }
    let rt = shared.runtime();
    let cfg = &rt.cfg;
    let (waba, display, url, secret) = match rt.numbers.get(to) {
        Some((info, _, _)) => (
            info.waba_id.clone(),
            info.display_phone_number.clone(),
            info.webhook_url.clone().or_else(|| cfg.webhook_url.clone()),
            info.app_secret
                .clone()
                .unwrap_or_else(|| cfg.app_secret.clone()),
        ),
        None if rt.numbers.is_empty() => (
            to.to_owned(),
            to.to_owned(),
            cfg.webhook_url.clone(),
            cfg.app_secret.clone(),
        ),
        None => return unprocessable(format!("to_number: no number {to:?} is configured")),
    };
    let Some(url) = url else {
        return (
            StatusCode::CONFLICT,
            Json(json!({"error": "no webhook_url is configured for this number"})),
        )
            .into_response();
    };
    // The user's customer-service window with the portfolio opens (`tier`).
    shared.portfolios.inbound(&waba, from);
    let seq = shared.request_seq.fetch_add(1, AO::Relaxed);
    let wamid = crate::make_wamid(shared.boot ^ 0x1b, seq, from);
    let raw = Bytes::from(build_body(
        &waba,
        &display,
        to,
        from,
        &wamid,
        &req.text,
        cfg.webhook_meta_escaping,
    ));
    let stats = &shared.inbound;
    stats.accepted.fetch_add(1, AO::Relaxed);
    stats.pending.fetch_add(1, AO::Relaxed);
    metrics::counter!("ezpulze_sim_inbound_total", "result" => "accepted").increment(1);
    let generation = shared.generation.load(AO::Relaxed);
    tokio::spawn(deliver(shared.clone(), url, secret, raw, generation));
    (StatusCode::ACCEPTED, Json(json!({"id": wamid}))).into_response()
}

/// Posts one inbound webhook until the receiver answers 2xx (or the attempts run out, or the
/// simulator is reset).
async fn deliver(shared: Arc<Shared>, url: String, secret: String, body: Bytes, generation: u64) {
    let client = reqwest::Client::new();
    let signature = sign(&secret, &body);
    let mut attempt: u32 = 0;
    let delivered = loop {
        if shared.generation.load(AO::Relaxed) != generation {
            break false;
        }
        attempt += 1;
        let cfg = shared.config();
        let ok = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .timeout(Duration::from_millis(cfg.webhook_timeout_ms.max(1)))
            .body(body.clone())
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break true;
        }
        if cfg.webhook_max_attempts > 0 && attempt >= cfg.webhook_max_attempts {
            break false;
        }
        let backoff = cfg
            .webhook_retry_initial_ms
            .saturating_mul(1u64 << (attempt - 1).min(20))
            .min(cfg.webhook_retry_max_ms.max(cfg.webhook_retry_initial_ms));
        tokio::time::sleep(Duration::from_millis(backoff)).await;
    };
    let stats = &shared.inbound;
    if delivered {
        stats.delivered.fetch_add(1, AO::Relaxed);
    } else {
        stats.dropped.fetch_add(1, AO::Relaxed);
    }
    stats.pending.fetch_sub(1, AO::Relaxed);
    let result = if delivered { "delivered" } else { "dropped" };
    metrics::counter!("ezpulze_sim_inbound_total", "result" => result).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_in_either_form() {
        assert_eq!(wa_id("+15551234567"), Some("15551234567"));
        assert_eq!(wa_id("15551234567"), Some("15551234567"));
        for bad in [
            "",
            "+",
            "0155512345",
            "+1555",
            "1555-123-4567",
            "++15551234567",
        ] {
            assert_eq!(wa_id(bad), None, "{bad}");
        }
    }
}
