//! Message templates at "Meta": `POST|GET /{version}/{waba_id}/message_templates` (submit,
//! list with paging) and their review. A submitted template gets Meta's answer
//! `{id, status, category}`: with `template_approval_delay_ms` 0 its status is
//! `template_auto_status` at once (default `APPROVED`, so a send right after the create works);
//! otherwise it is `PENDING` and becomes `template_auto_status` after the delay. With
//! `template_auto_status` `PENDING` it stays pending until asked:
//!
//! - `POST /_sim/templates/{name}/status` `{"status", "language"?, "waba_id"?, "reason"?}`:
//!   sets the status of the matching templates (`APPROVED`, `REJECTED`, `PAUSED`,
//!   `DISABLED`, `PENDING`, ...).
//! - `POST /_sim/templates` `{"waba_id", "name", "language", "category", "components",
//!   "status"?}`: a template made at Meta without the engine (what a sync registers).
//! - `GET /_sim/templates`: every template with its status.
//!
//! Every status change (after the delay or on request) posts Meta's signed
//! `message_template_status_update` webhook (`entry[].id` the WABA id; `value {event,
//! message_template_id, message_template_name, message_template_language, reason}`) to the
//! webhook URL of a number of that WABA (or the global one), signed with its app secret, like
//! the status webhooks. Sends of a template that is known here and not approved fail as at
//! Meta: `132001` (pending, rejected), `132015` (paused), `132016` (disabled).
//!
//! WABAs: a number's `waba_id` (default: the global `waba_id`, else its phone number id)
//! and the global `waba_id`. A call carries the token of a number of that WABA (any
//! number's for the global one) or the sandbox token; with no number configured any token
//! and WABA are taken (as for sends).
//! `/_sim/stats` reports `templates` (created, status changes, webhooks posted).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering as AO};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use crate::graph_error::GraphError;
use crate::Shared;

/// At most this many templates are kept (a create beyond is refused).
pub const MAX_TEMPLATES: usize = 20_000;
/// The statuses the simulator's review can end in.
pub const AUTO_STATUSES: [&str; 3] = ["PENDING", "APPROVED", "REJECTED"];
/// Statuses a template can be set to on request.
const STATUSES: [&str; 7] = [
    "PENDING",
    "APPROVED",
    "REJECTED",
    "PAUSED",
    "DISABLED",
    "IN_APPEAL",
    "FLAGGED",
];
const CATEGORIES: [&str; 3] = ["MARKETING", "UTILITY", "AUTHENTICATION"];
/// Page size of a list when the request gives none, and its bound.
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 1000;
/// Delivery attempts of one template webhook (network errors and 5xx are tried again).
const ATTEMPTS: u32 = 4;

#[derive(Debug, Clone)]
struct SimTemplate {
    id: u64,
    waba_id: String,
    name: String,
    language: String,
    category: String,
    parameter_format: Option<String>,
    components: Value,
    status: String,
    reason: Option<String>,
}

impl SimTemplate {
    fn json(&self) -> Value {
        let mut v = json!({
            "id": self.id.to_string(),
            "name": self.name,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "components": self.components,
        });
        if let Some(f) = &self.parameter_format {
            v["parameter_format"] = json!(f);
        }
        if let Some(r) = &self.reason {
            v["rejected_reason"] = json!(r);
        }
        v
    }
}

/// The templates "Meta" holds, and what happened to them.
#[derive(Debug)]
pub struct Templates {
    list: Mutex<Vec<SimTemplate>>,
    next_id: AtomicU64,
    created: AtomicU64,
    status_changes: AtomicU64,
    webhooks_delivered: AtomicU64,
    webhooks_failed: AtomicU64,
    /// Status changes with no webhook URL to post to.
    webhooks_skipped: AtomicU64,
    refused_sends: AtomicU64,
}

impl Default for Templates {
    fn default() -> Self {
        Self {
            list: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1_000_000_000_000_001),
            created: AtomicU64::new(0),
            status_changes: AtomicU64::new(0),
            webhooks_delivered: AtomicU64::new(0),
            webhooks_failed: AtomicU64::new(0),
            webhooks_skipped: AtomicU64::new(0),
            refused_sends: AtomicU64::new(0),
        }
    }
}

impl Templates {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SimTemplate>> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn json(&self) -> Value {
        let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
        for t in self.lock().iter() {
            *by_status.entry(t.status.clone()).or_insert(0) += 1;
        }
        json!({
            "created": self.created.load(AO::Relaxed),
            "status_changes": self.status_changes.load(AO::Relaxed),
            "by_status": by_status,
            "webhooks_delivered": self.webhooks_delivered.load(AO::Relaxed),
            "webhooks_failed": self.webhooks_failed.load(AO::Relaxed),
            "webhooks_skipped": self.webhooks_skipped.load(AO::Relaxed),
            "refused_sends": self.refused_sends.load(AO::Relaxed),
        })
    }

    /// Resets the counters (the templates stay: they are Meta's state, not a count).
    pub(crate) fn reset(&self) {
        for c in [
            &self.created,
            &self.status_changes,
            &self.webhooks_delivered,
            &self.webhooks_failed,
            &self.webhooks_skipped,
            &self.refused_sends,
        ] {
            c.store(0, AO::Relaxed);
        }
    }

    /// The error a send of template `name`/`language` from `waba` meets when the template is
    /// known here and not approved (None: it may go).
    pub(crate) fn send_refusal(&self, waba: &str, body: &Value) -> Option<GraphError> {
        let t = body.get("template")?;
        let name = t.get("name")?.as_str()?;
        let language = t.get("language")?.get("code")?.as_str()?;
        let status = self
            .lock()
            .iter()
            .find(|x| x.waba_id == waba && x.name == name && x.language == language)
            .map(|x| x.status.clone())?;
        let e = match status.as_str() {
            "APPROVED" | "FLAGGED" => return None,
            "PAUSED" => GraphError::new(
                StatusCode::BAD_REQUEST,
                132015,
                "(#132015) Template is paused",
                format!("template {name} ({language}) is paused due to low quality"),
            ),
            "DISABLED" => GraphError::new(
                StatusCode::BAD_REQUEST,
                132016,
                "(#132016) Template is disabled",
                format!("template {name} ({language}) is disabled"),
            ),
            _ => GraphError::no_template(name, language),
        };
        self.refused_sends.fetch_add(1, AO::Relaxed);
        Some(e)
    }
}

/// Whether `token` may use the templates of `waba` (Err: the Graph error to answer).
fn authorise(shared: &Shared, waba: &str, token: Option<&str>) -> Result<(), GraphError> {
    let rt = shared.runtime();
    let cfg = &rt.cfg;
    let Some(token) = token else {
        return Err(GraphError::bad_token());
    };
    if rt.numbers.is_empty() {
        return Ok(());
    }
    let global = cfg.waba_id.as_deref() == Some(waba);
    let known = global || rt.numbers.values().any(|(n, _, _)| n.waba_id == waba);
    let sandbox = cfg.sandbox_token.as_deref() == Some(token);
    let own = rt
        .numbers
        .values()
        .any(|(n, t, _)| t == token && (global || n.waba_id == waba));
    let anyone = sandbox || rt.numbers.values().any(|(_, t, _)| t == token);
    match (known, own || sandbox, anyone) {
        (true, true, _) => Ok(()),
        (false, _, true) => Err(GraphError::unknown_object(waba)),
        _ => Err(GraphError::bad_token()),
    }
}

fn graph(e: GraphError) -> Response {
    e.into_response_with(0)
}

fn bad(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `en`, `en_US`, `pt_BR`, `zh_HK`, `es_419`, `fil`, ...
fn valid_language(code: &str) -> bool {
    let (lang, region) = match code.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (code, None),
    };
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|r| {
            (r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
                || (r.len() == 3 && r.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// A submitted definition checked as Meta does (the fields it requires); the template.
fn parse_definition(waba: &str, body: &Value, id: u64) -> Result<SimTemplate, GraphError> {
    let text = |k: &str| body.get(k).and_then(Value::as_str);
    let name = text("name").ok_or_else(|| GraphError::required("name"))?;
    if !valid_name(name) {
        return Err(GraphError::invalid_param(
            "name: only lowercase letters, digits and underscores, at most 512 characters",
        ));
    }
    let language = text("language").ok_or_else(|| GraphError::required("language"))?;
    if !valid_language(language) {
        return Err(GraphError::invalid_param(format!(
            "language: {language:?} is not a supported language code"
        )));
    }
    let category = text("category").ok_or_else(|| GraphError::required("category"))?;
    let category = category.to_ascii_uppercase();
    if !CATEGORIES.contains(&category.as_str()) {
        return Err(GraphError::invalid_param(
            "category must be one of {MARKETING, UTILITY, AUTHENTICATION}",
        ));
    }
    let components = match body.get("components") {
        Some(Value::Array(a)) if !a.is_empty() => Value::Array(a.clone()),
        _ => return Err(GraphError::required("components")),
    };
    Ok(SimTemplate {
        id,
        waba_id: waba.to_owned(),
        name: name.to_owned(),
        language: language.to_owned(),
        category,
        parameter_format: text("parameter_format").map(str::to_owned),
        components,
        status: "PENDING".to_owned(),
        reason: None,
    })
}

/// `POST /{version}/{waba_id}/message_templates`.
pub async fn create(
    State(shared): State<Arc<Shared>>,
    Path((_version, waba)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(e) = authorise(&shared, &waba, crate::bearer(&headers)) {
        return graph(e);
    }
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return graph(GraphError::invalid_param(
            "The request body is not valid JSON.",
        ));
    };
    let id = shared.templates.next_id.fetch_add(1, AO::Relaxed);
    let mut t = match parse_definition(&waba, &value, id) {
        Ok(t) => t,
        Err(e) => return graph(e),
    };
    let cfg = shared.config();
    let delay = cfg.template_approval_delay_ms;
    let auto = cfg.template_auto_status.clone();
    if delay == 0 {
        t.status = auto.clone();
        if auto == "REJECTED" {
            t.reason = Some("INVALID_FORMAT".to_owned());
        }
    }
    {
        let mut list = shared.templates.lock();
        if list
            .iter()
            .any(|x| x.waba_id == waba && x.name == t.name && x.language == t.language)
        {
            let mut e = GraphError::new(
                StatusCode::BAD_REQUEST,
                100,
                "(#100) Invalid parameter",
                format!(
                    "Message template \"{}\" already exists in {}",
                    t.name, t.language
                ),
            );
            e.subcode = Some(2_388_024);
            return graph(e);
        }
        if list.len() >= MAX_TEMPLATES {
            return graph(GraphError::invalid_param(format!(
                "at most {MAX_TEMPLATES} templates per simulator"
            )));
        }
        list.push(t.clone());
    }
    shared.templates.created.fetch_add(1, AO::Relaxed);
    metrics::counter!("ezpulze_sim_templates_created_total").increment(1);
    if delay > 0 && auto != "PENDING" {
        let shared = shared.clone();
        let reason = (auto == "REJECTED").then(|| "INVALID_FORMAT".to_owned());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            set_status(&shared, id, &auto, reason.as_deref(), true).await;
        });
    }
    Json(json!({"id": id.to_string(), "status": t.status, "category": t.category})).into_response()
}

/// `GET /{version}/{waba_id}/message_templates?limit=&after=&name=`: Meta's page shape
/// (`data`, `paging.cursors.{before,after}`, `paging.next` while there are more).
pub async fn list(
    State(shared): State<Arc<Shared>>,
    Path((version, waba)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = authorise(&shared, &waba, crate::bearer(&headers)) {
        return graph(e);
    }
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(l)) if (1..=MAX_LIMIT).contains(&l) => l,
        Some(_) => {
            return graph(GraphError::invalid_param(format!(
                "limit must be within 1..={MAX_LIMIT}"
            )))
        }
    };
    // The cursor is the id of the last template of the previous page.
    let after: u64 = match q.get("after").map(|a| a.parse::<u64>()) {
        None => 0,
        Some(Ok(a)) => a,
        Some(Err(_)) => return graph(GraphError::invalid_param("after: not a valid cursor")),
    };
    let name = q.get("name");
    let list = shared.templates.lock();
    let mut matching = list
        .iter()
        .filter(|t| t.waba_id == waba && t.id > after)
        .filter(|t| name.is_none_or(|n| &t.name == n));
    let page: Vec<&SimTemplate> = matching.by_ref().take(limit).collect();
    let more = matching.next().is_some();
    let data: Vec<Value> = page.iter().map(|t| t.json()).collect();
    let mut paging = Map::new();
    if let (Some(first), Some(last)) = (page.first(), page.last()) {
        paging.insert(
            "cursors".into(),
            json!({"before": (first.id - 1).to_string(), "after": last.id.to_string()}),
        );
        if more {
            paging.insert(
                "next".into(),
                json!(format!(
                    "/{version}/{waba}/message_templates?limit={limit}&after={}",
                    last.id
                )),
            );
        }
    }
    Json(json!({"data": data, "paging": paging})).into_response()
}

/// `GET /_sim/templates`: every template.
pub async fn all(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let list = shared.templates.lock();
    let items: Vec<Value> = list
        .iter()
        .map(|t| {
            let mut v = t.json();
            v["waba_id"] = json!(t.waba_id);
            v
        })
        .collect();
    Json(json!({"templates": items}))
}

/// `POST /_sim/templates`: a template made at Meta without the engine.
pub async fn seed(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return bad("the body must be JSON");
    };
    let Some(waba) = value.get("waba_id").and_then(Value::as_str) else {
        return bad("waba_id is required");
    };
    let id = shared.templates.next_id.fetch_add(1, AO::Relaxed);
    let mut t = match parse_definition(waba, &value, id) {
        Ok(t) => t,
        Err(e) => return bad(e.details),
    };
    let status = value
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("APPROVED");
    if !STATUSES.contains(&status) {
        return bad(format!("status must be one of {STATUSES:?}"));
    }
    t.status = status.to_owned();
    let mut list = shared.templates.lock();
    if list
        .iter()
        .any(|x| x.waba_id == t.waba_id && x.name == t.name && x.language == t.language)
    {
        return bad("this template exists");
    }
    if list.len() >= MAX_TEMPLATES {
        return bad("too many templates");
    }
    list.push(t.clone());
    (StatusCode::CREATED, Json(t.json())).into_response()
}

/// `POST /_sim/templates/{name}/status`.
pub async fn post_status(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&body) else {
        return bad("the body must be a JSON object");
    };
    let text = |k: &str| req.get(k).and_then(Value::as_str);
    let Some(status) = text("status") else {
        return bad("status is required");
    };
    if !STATUSES.contains(&status) {
        return bad(format!("status must be one of {STATUSES:?}"));
    }
    let (language, waba, reason) = (text("language"), text("waba_id"), text("reason"));
    let ids: Vec<u64> = shared
        .templates
        .lock()
        .iter()
        .filter(|t| t.name == name)
        .filter(|t| language.is_none_or(|l| t.language == l))
        .filter(|t| waba.is_none_or(|w| t.waba_id == w))
        .map(|t| t.id)
        .collect();
    if ids.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no template {name:?} matches")})),
        )
            .into_response();
    }
    let mut webhooks = Vec::new();
    for id in &ids {
        webhooks.push(set_status(&shared, *id, status, reason, false).await);
    }
    Json(json!({"changed": ids.len(), "webhooks": webhooks})).into_response()
}

/// Sets template `id`'s status (with `only_pending`: only while it is still `PENDING`) and
/// posts the status webhook; what the receiver answered.
async fn set_status(
    shared: &Shared,
    id: u64,
    status: &str,
    reason: Option<&str>,
    only_pending: bool,
) -> Value {
    let changed = {
        let mut list = shared.templates.lock();
        let Some(t) = list.iter_mut().find(|t| t.id == id) else {
            return Value::Null;
        };
        if only_pending && t.status != "PENDING" {
            return Value::Null;
        }
        t.status = status.to_owned();
        t.reason = reason.map(str::to_owned);
        t.clone()
    };
    shared.templates.status_changes.fetch_add(1, AO::Relaxed);
    metrics::counter!("ezpulze_sim_template_status_changes_total").increment(1);
    post_webhook(shared, &changed).await
}

/// Posts `message_template_status_update` for `t`; the receiver's answer.
async fn post_webhook(shared: &Shared, t: &SimTemplate) -> Value {
    let rt = shared.runtime();
    let cfg = &rt.cfg;
    let number = rt
        .numbers
        .values()
        .map(|(n, _, _)| n)
        .find(|n| n.waba_id == t.waba_id);
    let Some(url) = number
        .and_then(|n| n.webhook_url.clone())
        .or_else(|| cfg.webhook_url.clone())
    else {
        shared.templates.webhooks_skipped.fetch_add(1, AO::Relaxed);
        return json!({"delivered": false, "status": null});
    };
    let secret = number
        .and_then(|n| n.app_secret.clone())
        .unwrap_or_else(|| cfg.app_secret.clone());
    let envelope = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": t.waba_id, "time": crate::limits::unix_now(), "changes": [{
            "field": "message_template_status_update",
            "value": {
                "event": t.status,
                "message_template_id": t.id,
                "message_template_name": t.name,
                "message_template_language": t.language,
                "reason": t.reason.as_deref().unwrap_or("NONE"),
            }
        }]}]
    });
    let raw = serde_json::to_vec(&envelope).unwrap_or_default();
    let body = if cfg.webhook_meta_escaping {
        crate::webhook::meta_escape(&raw)
    } else {
        raw
    };
    let signature = crate::webhook::sign(&secret, &body);
    let client = reqwest::Client::new();
    let body = bytes::Bytes::from(body);
    let mut last: Option<u16> = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .timeout(Duration::from_millis(cfg.webhook_timeout_ms.max(1)))
            .body(body.clone())
            .send()
            .await;
        last = r.ok().map(|r| r.status().as_u16());
        if last.is_some_and(|s| s < 500) {
            break;
        }
    }
    let delivered = last.is_some_and(|s| (200..300).contains(&s));
    if delivered {
        shared
            .templates
            .webhooks_delivered
            .fetch_add(1, AO::Relaxed);
    } else {
        shared.templates.webhooks_failed.fetch_add(1, AO::Relaxed);
    }
    json!({"delivered": delivered, "status": last})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_languages_follow_metas_rules() {
        assert!(valid_name("order_update_2"));
        assert!(!valid_name("Order"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(513)));
        for ok in ["en", "en_US", "pt_BR", "es_419", "fil"] {
            assert!(valid_language(ok), "{ok}");
        }
        for bad in ["english", "EN", "en_us", "e", "en-US", ""] {
            assert!(!valid_language(bad), "{bad}");
        }
    }

    #[test]
    fn a_definition_needs_metas_fields() {
        let ok = json!({"name": "x", "language": "en", "category": "utility",
            "components": [{"type": "BODY", "text": "hi"}]});
        let t = parse_definition("1", &ok, 7).expect("valid");
        assert_eq!(
            (t.category.as_str(), t.status.as_str()),
            ("UTILITY", "PENDING")
        );
        for bad in [
            json!({"language": "en", "category": "UTILITY", "components": [{}]}),
            json!({"name": "x", "language": "en", "category": "PROMO", "components": [{}]}),
            json!({"name": "x", "language": "en", "category": "UTILITY", "components": []}),
        ] {
            assert!(parse_definition("1", &bad, 1).is_err(), "{bad}");
        }
    }
}
