//! `POST /_sim/events`: Meta's WABA-level webhooks on request: number quality and throughput
//! (`phone_number_quality_update`), account updates (`account_update`) and template status,
//! quality and category (`message_template_status_update`, `message_template_quality_update`,
//! `template_category_update`), or any other `field` (to test receivers).
//!
//! Request (JSON object):
//!
//! | key | meaning |
//! |---|---|
//! | `field` | required: `changes[].field` |
//! | `phone_number_id` | a registered number: its WABA (`waba_id`, default the global `waba_id`, else its id), webhook URL and app secret are used; a number event gets its `display_phone_number` |
//! | `waba_id` | `entry[].id` (overrides the number's; required without `phone_number_id`) |
//! | `event` | `value.event` |
//! | `value` | more of `value` (merged over the above, key by key) |
//! | `app_secret` | sign with this secret instead (bad-signature tests) |
//!
//! The body is shaped as Meta's (`{"object": "whatsapp_business_account", "entry": [{"id",
//! "time", "changes": [{"field", "value"}]}]}`), signed with `X-Hub-Signature-256` like the
//! status webhooks, and posted to the webhook URL at once (a network error or a 5xx is tried
//! again, up to 4 attempts); the answer says what the receiver answered. A
//! `THROUGHPUT_UPGRADE` of a registered number first raises that number's own limit to
//! [`UPGRADED_MPS`] (its `mps_limit` in the configuration), as Meta upgrades before it
//! notifies. `/_sim/stats` reports the events emitted (`events`: by field, and how many the
//! receiver took).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering as AO};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::Shared;

/// The throughput of an upgraded number (messages per second).
pub const UPGRADED_MPS: u32 = 1000;
/// Delivery attempts of one event (network errors and 5xx are tried again).
const ATTEMPTS: u32 = 4;

/// What `/_sim/events` emitted.
#[derive(Debug, Default)]
pub struct EventStats {
    by_field: Mutex<BTreeMap<String, u64>>,
    delivered: AtomicU64,
    refused: AtomicU64,
}

impl EventStats {
    pub(crate) fn json(&self) -> Value {
        let by_field = self.by_field.lock().map(|m| m.clone()).unwrap_or_default();
        json!({
            "emitted": by_field.values().sum::<u64>(),
            "by_field": by_field,
            "delivered": self.delivered.load(AO::Relaxed),
            "refused": self.refused.load(AO::Relaxed),
        })
    }

    pub(crate) fn reset(&self) {
        if let Ok(mut m) = self.by_field.lock() {
            m.clear();
        }
        self.delivered.store(0, AO::Relaxed);
        self.refused.store(0, AO::Relaxed);
    }

    fn emitted(&self, field: &str) {
        if let Ok(mut m) = self.by_field.lock() {
            // Bounded: at most 64 distinct fields are kept apart.
            let key = if m.len() < 64 || m.contains_key(field) {
                field.to_owned()
            } else {
                "other".to_owned()
            };
            *m.entry(key).or_insert(0) += 1;
        }
    }
}

fn bad(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

fn text<'a>(req: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match req.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

/// `POST /_sim/events`.
pub async fn post_event(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let req: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return bad("the body must be a JSON object"),
        Err(e) => return bad(format!("invalid JSON: {e}")),
    };
    let (field, number_id, waba, event, secret) = match (
        text(&req, "field"),
        text(&req, "phone_number_id"),
        text(&req, "waba_id"),
        text(&req, "event"),
        text(&req, "app_secret"),
    ) {
        (Ok(Some(f)), Ok(n), Ok(w), Ok(e), Ok(s)) if !f.is_empty() => (f, n, w, e, s),
        (Ok(_), Ok(_), Ok(_), Ok(_), Ok(_)) => return bad("field is required"),
        (Err(r), ..) | (_, Err(r), ..) | (_, _, Err(r), ..) | (_, _, _, Err(r), _) => {
            return bad(r)
        }
        (.., Err(r)) => return bad(r),
    };
    let extra = match req.get("value") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return bad("value must be an object"),
    };
    let rt = shared.runtime();
    let number = match number_id {
        Some(id) => match rt.numbers.get(id) {
            Some((info, _, _)) => Some(info.clone()),
            None => return bad(format!("unknown phone_number_id {id}")),
        },
        None => None,
    };
    let Some(waba_id) = waba
        .map(str::to_owned)
        .or_else(|| number.as_ref().map(|n| n.waba_id.clone()))
    else {
        return bad("phone_number_id or waba_id is required");
    };
    let mut value = Map::new();
    if let (Some(n), "phone_number_quality_update" | "account_update") = (&number, field) {
        let key = if field == "account_update" {
            "phone_number"
        } else {
            "display_phone_number"
        };
        value.insert(key.into(), json!(n.display_phone_number));
    }
    if let Some(e) = event {
        value.insert("event".into(), json!(e));
    }
    value.extend(extra);
    let upgraded = field == "phone_number_quality_update"
        && value.get("event").and_then(Value::as_str) == Some("THROUGHPUT_UPGRADE");
    if let (true, Some(n)) = (upgraded, &number) {
        raise_limit(&shared, &n.phone_number_id);
    }
    let now = crate::limits::unix_now();
    let envelope = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "time": now, "changes": [{"field": field, "value": value}]}]
    });
    let raw = serde_json::to_vec(&envelope).unwrap_or_default();
    let cfg = shared.config();
    let bytes = if cfg.webhook_meta_escaping {
        crate::webhook::meta_escape(&raw)
    } else {
        raw
    };
    let Some(url) = number
        .as_ref()
        .and_then(|n| n.webhook_url.clone())
        .or_else(|| cfg.webhook_url.clone())
    else {
        return bad("no webhook_url is configured");
    };
    let secret = secret
        .map(str::to_owned)
        .or_else(|| number.as_ref().and_then(|n| n.app_secret.clone()))
        .unwrap_or_else(|| cfg.app_secret.clone());
    shared.events.emitted(field);
    metrics::counter!("ezpulze_sim_events_emitted_total").increment(1);
    let (status, answer) = deliver(&url, &secret, bytes, cfg.webhook_timeout_ms).await;
    if status.is_some_and(|s| (200..300).contains(&s)) {
        shared.events.delivered.fetch_add(1, AO::Relaxed);
    } else {
        shared.events.refused.fetch_add(1, AO::Relaxed);
    }
    Json(json!({
        "delivered": status.is_some_and(|s| (200..300).contains(&s)),
        "status": status,
        "answer": answer,
        "body": envelope,
    }))
    .into_response()
}

/// Raises the number's own limit to [`UPGRADED_MPS`] (never lowers it).
fn raise_limit(shared: &Shared, phone_number_id: &str) {
    let mut cfg = crate::SimConfig::clone(&shared.config());
    for n in cfg
        .numbers
        .iter_mut()
        .filter(|n| n.phone_number_id == phone_number_id)
    {
        let current = n.mps_limit.unwrap_or(cfg.mps_limit);
        if current != 0 && current < UPGRADED_MPS {
            n.mps_limit = Some(UPGRADED_MPS);
        }
    }
    shared.set_config(cfg);
}

/// Posts the signed body; the receiver's status and answer (None: no answer).
async fn deliver(
    url: &str,
    secret: &str,
    body: Vec<u8>,
    timeout_ms: u64,
) -> (Option<u16>, Option<Value>) {
    let client = reqwest::Client::new();
    let signature = crate::webhook::sign(secret, &body);
    let body = bytes::Bytes::from(body);
    let mut last = (None, None);
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        let result = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .timeout(Duration::from_millis(timeout_ms.max(1)))
            .body(body.clone())
            .send()
            .await;
        match result {
            Ok(r) => {
                let status = r.status().as_u16();
                let answer = r.json::<Value>().await.ok();
                last = (Some(status), answer);
                if status < 500 {
                    break;
                }
            }
            Err(_) => last = (None, None),
        }
    }
    last
}
