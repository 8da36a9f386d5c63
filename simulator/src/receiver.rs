//! A test receiver for the engine's integrator events (signed outbound webhooks, Standard
//! Webhooks signing): `POST /_recv/{name}` verifies and counts what it is sent, and answers as
//! configured (`PUT /_recv/{name}/config`); `GET /_recv/{name}/stats` is its ground truth and
//! `POST /_recv/{name}/reset` clears it.
//!
//! The verifier is written here, independently of the engine's signing code. Every receiver
//! lives in memory, is created on first use of its name, and costs one map lookup, one HMAC per
//! configured secret and one short lock per request.
//!
//! `max_per_second` is a **sliding** window: the highest number of requests (every POST to the
//! target, verified or not) whose arrivals fell within any half-open interval of one second
//! `(t - 1 s, t]`, measured on the monotonic clock at arrival.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use dashmap::DashMap;
use hmac::{Hmac, Mac};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Shared;

/// The largest body the target reads (larger: 413, not counted).
pub const BODY_LIMIT: usize = 1 << 20;
/// How far `webhook-timestamp` may be from now, either way (Standard Webhooks' default).
pub const TOLERANCE_SECS: i64 = 5 * 60;
/// The longest `latency_ms` a receiver takes.
const MAX_LATENCY_MS: u64 = 600_000;

type HmacSha256 = Hmac<Sha256>;

/// Every named receiver.
#[derive(Debug, Default)]
pub struct Receivers {
    map: DashMap<String, Arc<Receiver>>,
}

impl Receivers {
    /// The receiver `name`, created on first use.
    fn get(&self, name: &str) -> Arc<Receiver> {
        if let Some(r) = self.map.get(name) {
            return r.clone();
        }
        self.map.entry(name.to_owned()).or_default().clone()
    }
}

#[derive(Debug, Default)]
struct Receiver {
    config: RwLock<Arc<Config>>,
    counters: Mutex<Counters>,
}

impl Receiver {
    fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A receiver's configuration: its secrets (as given and as keyed HMACs) and its answers.
#[derive(Clone, Default)]
struct Config {
    secrets: Vec<String>,
    keys: Vec<HmacSha256>,
    fail_status: Option<u16>,
    fail_first_n: Option<u64>,
    retry_after: Option<u64>,
    latency_ms: u64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("secrets", &self.secrets.len())
            .field("fail_status", &self.fail_status)
            .field("fail_first_n", &self.fail_first_n)
            .field("retry_after", &self.retry_after)
            .field("latency_ms", &self.latency_ms)
            .finish()
    }
}

impl Config {
    fn view(&self) -> Value {
        json!({
            "secrets": self.secrets,
            "fail_status": self.fail_status,
            "fail_first_n": self.fail_first_n,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
        })
    }

    /// This configuration with `patch` merged in; the second value says whether the failure
    /// settings were touched (which restarts the `fail_first_n` tally).
    fn merged(&self, patch: &Value) -> Result<(Config, bool), String> {
        let Some(obj) = patch.as_object() else {
            return Err("the configuration must be a JSON object".into());
        };
        let mut c = self.clone();
        let mut fail_touched = false;
        for (k, v) in obj {
            match k.as_str() {
                "secrets" => {
                    let Some(list) = v.as_array() else {
                        return Err("secrets: an array of strings".into());
                    };
                    let mut secrets = Vec::with_capacity(list.len());
                    let mut keys = Vec::with_capacity(list.len());
                    for s in list {
                        let Some(s) = s.as_str() else {
                            return Err("secrets: an array of strings".into());
                        };
                        let key = decode_secret(s).map_err(|e| format!("secrets: {e}"))?;
                        let mac = HmacSha256::new_from_slice(&key)
                            .map_err(|_| "secrets: unusable key".to_string())?;
                        secrets.push(s.to_owned());
                        keys.push(mac);
                    }
                    c.secrets = secrets;
                    c.keys = keys;
                }
                "fail_status" => {
                    c.fail_status = match v {
                        Value::Null => None,
                        _ => match v.as_u64() {
                            Some(n @ 200..=599) => Some(n as u16),
                            _ => return Err("fail_status: null or an HTTP status 200..599".into()),
                        },
                    };
                    fail_touched = true;
                }
                "fail_first_n" => {
                    c.fail_first_n = opt_u64(k, v)?;
                    fail_touched = true;
                }
                "retry_after" => c.retry_after = opt_u64(k, v)?,
                "latency_ms" => {
                    let ms = opt_u64(k, v)?.unwrap_or(0);
                    if ms > MAX_LATENCY_MS {
                        return Err(format!("latency_ms: at most {MAX_LATENCY_MS}"));
                    }
                    c.latency_ms = ms;
                }
                other => return Err(format!("unknown field `{other}`")),
            }
        }
        Ok((c, fail_touched))
    }
}

fn opt_u64(key: &str, v: &Value) -> Result<Option<u64>, String> {
    match v {
        Value::Null => Ok(None),
        _ => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("{key}: null or a non-negative integer")),
    }
}

/// What one distinct webhook id has shown.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    with_phone: bool,
    acknowledged: bool,
}

/// A receiver's counters (since its creation or last reset).
#[derive(Debug, Default)]
struct Counters {
    received: u64,
    verify_failures: u64,
    duplicates: u64,
    answered_failure: u64,
    with_phone: u64,
    acknowledged: u64,
    ids: HashMap<Arc<str>, Seen>,
    by_type: HashMap<String, HashSet<Arc<str>>>,
    /// Answers of `fail_status` given toward `fail_first_n` since it was set.
    failed_tally: u64,
    /// Arrivals of the last second (sliding window).
    window: VecDeque<Instant>,
    max_per_second: u64,
}

impl Counters {
    /// Counts one arrival in the sliding one-second window.
    fn arrive(&mut self, now: Instant) {
        self.received += 1;
        while let Some(&front) = self.window.front() {
            if now.duration_since(front) >= Duration::from_secs(1) {
                self.window.pop_front();
            } else {
                break;
            }
        }
        self.window.push_back(now);
        self.max_per_second = self.max_per_second.max(self.window.len() as u64);
    }

    /// Records a verified request; the id as stored (shared with the type sets).
    fn record(&mut self, id: &str, peek: &Peek) -> Arc<str> {
        let id: Arc<str> = match self.ids.get_key_value(id) {
            Some((k, _)) => {
                self.duplicates += 1;
                k.clone()
            }
            None => {
                let k: Arc<str> = Arc::from(id);
                self.ids.insert(k.clone(), Seen::default());
                k
            }
        };
        if let Some(t) = peek.kind.as_deref() {
            match self.by_type.get_mut(t) {
                Some(set) => {
                    if !set.contains(&id) {
                        set.insert(id.clone());
                    }
                }
                None => {
                    self.by_type
                        .insert(t.to_owned(), HashSet::from([id.clone()]));
                }
            }
        }
        if peek.phone {
            if let Some(seen) = self.ids.get_mut(&id) {
                if !seen.with_phone {
                    seen.with_phone = true;
                    self.with_phone += 1;
                }
            }
        }
        id
    }

    fn acknowledge(&mut self, id: &str) {
        if let Some(seen) = self.ids.get_mut(id) {
            if !seen.acknowledged {
                seen.acknowledged = true;
                self.acknowledged += 1;
            }
        }
    }
}

/// Why a request failed verification (the `error` of the 401 answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyError {
    NoSecrets,
    MissingId,
    MissingTimestamp,
    MissingSignature,
    BadTimestamp,
    TimestampOutOfTolerance,
    NoMatchingSignature,
}

impl VerifyError {
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyError::NoSecrets => "no secrets configured for this receiver",
            VerifyError::MissingId => "missing webhook-id",
            VerifyError::MissingTimestamp => "missing webhook-timestamp",
            VerifyError::MissingSignature => "missing webhook-signature",
            VerifyError::BadTimestamp => "webhook-timestamp is not an integer",
            VerifyError::TimestampOutOfTolerance => "webhook-timestamp too far from now",
            VerifyError::NoMatchingSignature => "no matching signature",
        }
    }
}

/// The key of a Standard Webhooks secret: base64 after an optional `whsec_` prefix.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, &'static str> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    match STANDARD.decode(b64) {
        Ok(k) if !k.is_empty() => Ok(k),
        Ok(_) => Err("empty secret"),
        Err(_) => Err("not base64 after `whsec_`"),
    }
}

/// `base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))` with `mac` keyed already.
fn sign_with(mac: &HmacSha256, id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = mac.clone();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The `v1,<base64>` signature of a message under `key` (the decoded secret).
pub fn signature(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Option<String> {
    let mac = HmacSha256::new_from_slice(key).ok()?;
    Some(format!("v1,{}", sign_with(&mac, id, timestamp, body)))
}

/// Verifies a request against the keyed secrets `keys` at Unix time `now`: the timestamp must
/// be within [`TOLERANCE_SECS`] of `now`, and one `v1,` entry of the space-separated
/// `signatures` must equal the signature under one of the keys (compared in constant time).
fn verify_keys(
    keys: &[HmacSha256],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    if keys.is_empty() {
        return Err(VerifyError::NoSecrets);
    }
    let id = id.filter(|s| !s.is_empty()).ok_or(VerifyError::MissingId)?;
    let timestamp = timestamp
        .filter(|s| !s.is_empty())
        .ok_or(VerifyError::MissingTimestamp)?;
    let signatures = signatures
        .filter(|s| !s.trim().is_empty())
        .ok_or(VerifyError::MissingSignature)?;
    if !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::BadTimestamp);
    }
    let ts: i64 = timestamp.parse().map_err(|_| VerifyError::BadTimestamp)?;
    if ts.abs_diff(now) > TOLERANCE_SECS.unsigned_abs() {
        return Err(VerifyError::TimestampOutOfTolerance);
    }
    let mut ok = subtle::Choice::from(0u8);
    for mac in keys {
        let expected = sign_with(mac, id, timestamp, body);
        for entry in signatures.split_ascii_whitespace() {
            if let Some(("v1", sig)) = entry.split_once(',') {
                ok |= sig.as_bytes().ct_eq(expected.as_bytes());
            }
        }
    }
    if bool::from(ok) {
        Ok(())
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

/// Verifies with secrets as given (`whsec_...`); for tests and callers outside a receiver.
pub fn verify(
    secrets: &[&str],
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let keys: Vec<HmacSha256> = secrets
        .iter()
        .filter_map(|s| decode_secret(s).ok())
        .filter_map(|k| HmacSha256::new_from_slice(&k).ok())
        .collect();
    verify_keys(
        &keys,
        Some(id),
        Some(timestamp),
        Some(signatures),
        body,
        now,
    )
}

/// The two things read from a verified body.
#[derive(Debug, Default)]
struct Peek {
    kind: Option<String>,
    phone: bool,
}

#[derive(Deserialize)]
struct EventPeek<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    data: Option<DataPeek>,
}

#[derive(Deserialize)]
struct DataPeek {
    #[serde(default)]
    phone: Option<IgnoredAny>,
}

/// The event's `type` and whether `data.phone` is present and not null (nothing when the body
/// is not such a JSON object).
fn peek(body: &[u8]) -> Peek {
    match serde_json::from_slice::<EventPeek>(body) {
        Ok(e) => Peek {
            kind: e.kind.map(|k| k.into_owned()),
            phone: e.data.is_some_and(|d| d.phone.is_some()),
        },
        Err(_) => Peek::default(),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// How a delivery is answered.
enum Answer {
    Unauthorized(VerifyError),
    Fail(u16),
    Ok(Arc<str>),
}

/// `POST /_recv/{name}`: the webhook target.
pub(crate) async fn deliver(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    let rx = shared.receivers.get(&name);
    let cfg = rx.config();
    let id = header_str(&headers, "webhook-id");
    let verdict = verify_keys(
        &cfg.keys,
        id,
        header_str(&headers, "webhook-timestamp"),
        header_str(&headers, "webhook-signature"),
        &body,
        unix_now(),
    );
    let peeked = match verdict {
        Ok(()) => peek(&body),
        Err(_) => Peek::default(),
    };
    let answer = {
        let mut c = rx.counters();
        c.arrive(arrived);
        match (verdict, id) {
            (Err(e), _) => {
                c.verify_failures += 1;
                Answer::Unauthorized(e)
            }
            (Ok(()), None) => {
                // verify_keys refuses a request without an id; counted as a failure anyway.
                c.verify_failures += 1;
                Answer::Unauthorized(VerifyError::MissingId)
            }
            (Ok(()), Some(id)) => {
                let id = c.record(id, &peeked);
                let fail = match (cfg.fail_status, cfg.fail_first_n) {
                    (None, _) => None,
                    (Some(s), None) => Some(s),
                    (Some(s), Some(n)) if c.failed_tally < n => {
                        c.failed_tally += 1;
                        Some(s)
                    }
                    (Some(_), Some(_)) => None,
                };
                match fail {
                    Some(s) => {
                        c.answered_failure += 1;
                        Answer::Fail(s)
                    }
                    None => {
                        if cfg.latency_ms == 0 {
                            c.acknowledge(&id);
                        }
                        Answer::Ok(id)
                    }
                }
            }
        }
    };
    if cfg.latency_ms > 0 {
        hold(&shared, cfg.latency_ms).await;
    }
    match answer {
        Answer::Unauthorized(e) => {
            tracing::debug!(receiver = %name, reason = e.as_str(), "webhook refused");
            (StatusCode::UNAUTHORIZED, Json(json!({"error": e.as_str()}))).into_response()
        }
        Answer::Fail(s) => {
            let status = StatusCode::from_u16(s).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut r = (status, Json(json!({"error": "injected failure"}))).into_response();
            if let Some(secs) = cfg.retry_after {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            r
        }
        Answer::Ok(id) => {
            if cfg.latency_ms > 0 {
                // Only now: a client that gave up during the latency was not answered.
                rx.counters().acknowledge(&id);
            }
            StatusCode::OK.into_response()
        }
    }
}

/// Sleeps `ms`, or less when the server is shutting down.
async fn hold(shared: &Shared, ms: u64) {
    let mut closing = shared.closing.clone();
    if *closing.borrow() {
        return;
    }
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
        _ = closing.changed() => {}
    }
}

fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response()
}

/// `GET /_recv/{name}/config`
pub(crate) async fn get_config(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Json<Value> {
    Json(shared.receivers.get(&name).config().view())
}

/// `PUT /_recv/{name}/config`: merges the given fields into the configuration.
pub(crate) async fn put_config(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let patch: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_request(format!("invalid JSON: {e}")),
    };
    let rx = shared.receivers.get(&name);
    let mut w = rx.config.write().unwrap_or_else(PoisonError::into_inner);
    match w.merged(&patch) {
        Ok((cfg, fail_touched)) => {
            let view = cfg.view();
            *w = Arc::new(cfg);
            drop(w);
            if fail_touched {
                rx.counters().failed_tally = 0;
            }
            tracing::debug!(receiver = %name, "receiver configuration updated");
            Json(view).into_response()
        }
        Err(e) => bad_request(e),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct StatsQuery {
    #[serde(default)]
    ids: bool,
}

/// `GET /_recv/{name}/stats[?ids=true]`
pub(crate) async fn stats(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(q): Query<StatsQuery>,
) -> Json<Value> {
    let rx = shared.receivers.get(&name);
    let (mut out, ids) = {
        let c = rx.counters();
        let by_type: Map<String, Value> = c
            .by_type
            .iter()
            .map(|(t, set)| (t.clone(), Value::from(set.len())))
            .collect();
        let out = json!({
            "received": c.received,
            "distinct": c.ids.len(),
            "duplicates": c.duplicates,
            "verify_failures": c.verify_failures,
            "max_per_second": c.max_per_second,
            "by_type": by_type,
            "with_phone": c.with_phone,
            "acknowledged": c.acknowledged,
            "answered_failure": c.answered_failure,
        });
        let ids: Option<Vec<Arc<str>>> = q.ids.then(|| c.ids.keys().cloned().collect());
        (out, ids)
    };
    if let Some(mut ids) = ids {
        ids.sort_unstable();
        out["ids"] = Value::from(ids.iter().map(|s| s.as_ref()).collect::<Vec<&str>>());
    }
    Json(out)
}

/// `POST /_recv/{name}/reset`: clears the counters, keeps the configuration.
pub(crate) async fn reset(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> StatusCode {
    let rx = shared.receivers.get(&name);
    *rx.counters() = Counters::default();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: &str = "1614265330";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn spec_vector() {
        let key = decode_secret(SECRET).expect("secret");
        assert_eq!(signature(&key, ID, TS, BODY).as_deref(), Some(SIG));
        let now = 1_614_265_330;
        assert_eq!(verify(&[SECRET], ID, TS, SIG, BODY, now), Ok(()));
        // Several entries, the valid one second; another version is ignored.
        let two = format!("v1,Zm9vYmFy v1a,xyz {SIG}");
        assert_eq!(verify(&[SECRET], ID, TS, &two, BODY, now), Ok(()));
        // Rotation: any configured secret may match.
        let other = "whsec_c2VjcmV0LW51bWJlci10d28=";
        assert_eq!(verify(&[other, SECRET], ID, TS, SIG, BODY, now), Ok(()));
        assert_eq!(
            verify(&[other], ID, TS, SIG, BODY, now),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn tampering_and_time() {
        let now = 1_614_265_330;
        let e = Err(VerifyError::NoMatchingSignature);
        assert_eq!(
            verify(&[SECRET], ID, TS, SIG, br#"{"test": 2432232315}"#, now),
            e
        );
        assert_eq!(verify(&[SECRET], "msg_other", TS, SIG, BODY, now), e);
        assert_eq!(
            verify(
                &[SECRET],
                ID,
                TS,
                "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                BODY,
                now
            ),
            e
        );
        assert_eq!(verify(&[SECRET], ID, TS, SIG, BODY, now + 300), Ok(()));
        assert_eq!(verify(&[SECRET], ID, TS, SIG, BODY, now - 300), Ok(()));
        let late = Err(VerifyError::TimestampOutOfTolerance);
        assert_eq!(verify(&[SECRET], ID, TS, SIG, BODY, now + 301), late);
        assert_eq!(verify(&[SECRET], ID, TS, SIG, BODY, now - 301), late);
        assert_eq!(
            verify(&[SECRET], ID, "-1614265330", SIG, BODY, now),
            Err(VerifyError::BadTimestamp)
        );
        assert_eq!(
            verify(&[], ID, TS, SIG, BODY, now),
            Err(VerifyError::NoSecrets)
        );
    }

    #[test]
    fn config_merge() {
        let base = Config::default();
        let (c, touched) = base
            .merged(&json!({"secrets": [SECRET], "fail_status": 503, "fail_first_n": 2}))
            .expect("merge");
        assert!(touched);
        assert_eq!(c.keys.len(), 1);
        assert_eq!((c.fail_status, c.fail_first_n), (Some(503), Some(2)));
        let (c, touched) = c.merged(&json!({"latency_ms": 5})).expect("merge");
        assert!(!touched);
        assert_eq!((c.fail_status, c.latency_ms), (Some(503), 5));
        let (c, _) = c.merged(&json!({"fail_status": null})).expect("merge");
        assert_eq!(c.fail_status, None);
        assert!(base.merged(&json!({"nope": 1})).is_err());
        assert!(base.merged(&json!({"secrets": ["whsec_!!"]})).is_err());
        assert!(base.merged(&json!({"fail_status": 99})).is_err());
        assert!(base.merged(&json!({"fail_first_n": -1})).is_err());
        assert!(base.merged(&json!([])).is_err());
    }

    #[test]
    fn peeks_type_and_phone() {
        let p = peek(br#"{"type":"message.sent","data":{"phone":"+4917012345678"}}"#);
        assert_eq!((p.kind.as_deref(), p.phone), (Some("message.sent"), true));
        let p = peek(br#"{"type":"message.sent","data":{"phone":null,"x":1}}"#);
        assert!(!p.phone);
        let p = peek(b"not json");
        assert_eq!((p.kind, p.phone), (None, false));
    }

    #[test]
    fn sliding_window() {
        let mut c = Counters::default();
        let t0 = Instant::now();
        for ms in [0, 100, 200, 999] {
            c.arrive(t0 + Duration::from_millis(ms));
        }
        assert_eq!(c.max_per_second, 4);
        // 1000 ms after the first: the first left the window.
        c.arrive(t0 + Duration::from_millis(1000));
        assert_eq!(c.max_per_second, 4);
        c.arrive(t0 + Duration::from_millis(1050));
        assert_eq!(c.max_per_second, 5);
        assert_eq!(c.received, 6);
    }
}
