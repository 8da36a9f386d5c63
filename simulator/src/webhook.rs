//! Status webhooks: planned per accepted message, released when due, batched per POST,
//! signed with `X-Hub-Signature-256`, retried with backoff until the receiver answers 2xx.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering as AO};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::config::SimConfig;
use crate::limits::unix_now;
use crate::rng;
use crate::Shared;

/// A status kind; its discriminant is its bit in `Msg::acked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Sent = 0,
    Delivered = 1,
    Read = 2,
    Failed = 3,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Delivered => "delivered",
            Status::Read => "read",
            Status::Failed => "failed",
        }
    }
}

/// The business number a message went out from.
#[derive(Debug)]
pub struct NumberInfo {
    pub phone_number_id: String,
    pub display_phone_number: String,
    pub waba_id: String,
    /// Per-number overrides (numbers of different apps/accounts).
    pub webhook_url: Option<String>,
    pub app_secret: Option<String>,
}

impl NumberInfo {
    /// Statuses of numbers with the same route share POSTs.
    fn route(&self) -> (Option<&str>, Option<&str>) {
        (self.webhook_url.as_deref(), self.app_secret.as_deref())
    }
}

/// One accepted message whose statuses are being reported.
#[derive(Debug)]
pub struct Msg {
    pub wamid: String,
    pub recipient: String,
    pub number: Arc<NumberInfo>,
    pub biz_opaque: Option<String>,
    pub category: String,
    pub error_code: Option<u32>,
    /// Bit per status acknowledged by the receiver at least once.
    pub acked: AtomicU8,
    pub generation: u64,
}

/// A status due at `due`.
#[derive(Debug)]
pub struct Event {
    pub due: Instant,
    pub seq: u64,
    pub msg: Arc<Msg>,
    pub status: Status,
}

impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        self.due == o.due && self.seq == o.seq
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Event {
    /// Reversed so that `BinaryHeap` pops the earliest first.
    fn cmp(&self, o: &Self) -> Ordering {
        o.due.cmp(&self.due).then_with(|| o.seq.cmp(&self.seq))
    }
}

/// Counters and the queue into the scheduler.
#[derive(Debug)]
pub struct Hooks {
    tx: mpsc::UnboundedSender<Event>,
    pub pending: AtomicU64,
    pub dropped: AtomicU64,
    pub posts_ok: AtomicU64,
    pub posts_failed: AtomicU64,
    pub in_flight_posts: AtomicU64,
    event_seq: AtomicU64,
}

impl Hooks {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx,
                pending: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                posts_ok: AtomicU64::new(0),
                posts_failed: AtomicU64::new(0),
                in_flight_posts: AtomicU64::new(0),
                event_seq: AtomicU64::new(0),
            },
            rx,
        )
    }

    /// Plans the statuses of one accepted message (no-op without a webhook URL).
    pub fn plan(&self, cfg: &SimConfig, seq: u64, msg: Arc<Msg>) {
        if cfg.webhook_url.is_none() && msg.number.webhook_url.is_none() {
            return;
        }
        let seed = cfg.seed;
        let now = Instant::now();
        let mut plan: [(Status, u64); 3] = [(Status::Sent, 0); 3];
        let mut n = 0;
        let mut push = |s: Status, delay: u64| {
            if let Some(slot) = plan.get_mut(n) {
                *slot = (s, delay);
                n += 1;
            }
        };
        if msg.error_code.is_some() {
            push(Status::Failed, cfg.failed_delay_ms);
        } else {
            let u = rng::draw(seed, seq, 10);
            let read_rate = cfg.read_rate.min(cfg.delivered_rate);
            let read = u < read_rate;
            push(Status::Sent, cfg.sent_delay_ms);
            // Meta may send `read` without `delivered` (user in the chat).
            let skip_delivered = read
                && cfg.skip_delivered_rate > 0.0
                && rng::draw(seed, seq, 11) < cfg.skip_delivered_rate;
            if u < cfg.delivered_rate && !skip_delivered {
                push(Status::Delivered, cfg.delivered_delay_ms);
            }
            if read {
                push(Status::Read, cfg.read_delay_ms);
            }
        }
        let max_pending = cfg.webhook_max_pending;
        let mut last = 0u64;
        for (i, (status, base)) in plan.iter().take(n).enumerate() {
            let salt = 20 + i as u64 * 8;
            let mut at = base + rng::draw_upto(seed, seq, salt, cfg.delay_jitter_ms);
            // Without reordering, a message's statuses stay in order.
            at = at.max(last);
            last = at;
            if cfg.reorder_rate > 0.0 && rng::draw(seed, seq, salt + 1) < cfg.reorder_rate {
                at += cfg.reorder_delay_ms;
            }
            let copies = if cfg.duplicate_rate > 0.0
                && rng::draw(seed, seq, salt + 2) < cfg.duplicate_rate
            {
                2
            } else {
                1
            };
            for c in 0..copies {
                let extra = if c == 0 {
                    0
                } else {
                    1 + rng::draw_upto(seed, seq, salt + 3, cfg.webhook_linger_ms.max(10) * 3)
                };
                if self.pending.fetch_add(1, AO::Relaxed) >= max_pending {
                    self.pending.fetch_sub(1, AO::Relaxed);
                    self.dropped.fetch_add(1, AO::Relaxed);
                    metrics::counter!("ezpulze_sim_webhook_statuses_dropped_total").increment(1);
                    continue;
                }
                let ev = Event {
                    due: now + Duration::from_millis(at + extra),
                    seq: self.event_seq.fetch_add(1, AO::Relaxed),
                    msg: msg.clone(),
                    status: *status,
                };
                if self.tx.send(ev).is_err() {
                    self.pending.fetch_sub(1, AO::Relaxed);
                    self.dropped.fetch_add(1, AO::Relaxed);
                }
            }
        }
    }
}

/// The scheduler: moves due events into batches and hands batches to senders.
pub async fn scheduler(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let mut heap: BinaryHeap<Event> = BinaryHeap::new();
    let mut ready: Vec<Event> = Vec::new();
    let mut ready_since: Option<Instant> = None;
    let initial = shared.config().webhook_concurrency;
    let sem = Arc::new(Semaphore::new(initial));
    let mut permits = initial;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap_or_default();
    let mut batch_no: u64 = 0;
    loop {
        let cfg = shared.config();
        if cfg.webhook_concurrency > permits {
            sem.add_permits(cfg.webhook_concurrency - permits);
            permits = cfg.webhook_concurrency;
        } else if cfg.webhook_concurrency < permits {
            permits -= sem.forget_permits(permits - cfg.webhook_concurrency);
        }
        let linger = Duration::from_millis(cfg.webhook_linger_ms);
        let now = Instant::now();
        let mut wake = now + Duration::from_millis(250);
        if let Some(top) = heap.peek() {
            wake = wake.min(top.due);
        }
        if let Some(since) = ready_since {
            wake = wake.min(since + linger);
        }
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            got = rx.recv() => {
                match got {
                    Some(ev) => {
                        heap.push(ev);
                        // Drain what is already queued without waking up per event.
                        for _ in 0..4096 {
                            match rx.try_recv() {
                                Ok(ev) => heap.push(ev),
                                Err(_) => break,
                            }
                        }
                    }
                    None => return,
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
        let now = Instant::now();
        let generation = shared.generation.load(AO::Relaxed);
        while heap.peek().is_some_and(|e| e.due <= now) {
            let Some(ev) = heap.pop() else { break };
            if ev.msg.generation != generation {
                shared.hooks.pending.fetch_sub(1, AO::Relaxed);
                continue;
            }
            if ready.is_empty() {
                ready_since = Some(now);
            }
            ready.push(ev);
        }
        let batch_size = cfg.webhook_batch_size.max(1);
        let lingered = ready_since.is_some_and(|s| now >= s + linger);
        if ready.len() >= batch_size || (lingered && !ready.is_empty()) {
            for mut batch in split_batches(std::mem::take(&mut ready), batch_size) {
                batch_no += 1;
                if cfg.reorder_rate > 0.0 {
                    shuffle(&mut batch, cfg.seed, batch_no);
                }
                let Ok(permit) = sem.clone().acquire_owned().await else {
                    return;
                };
                let shared2 = shared.clone();
                let client2 = client.clone();
                shared.hooks.in_flight_posts.fetch_add(1, AO::Relaxed);
                tokio::spawn(async move {
                    deliver(shared2, client2, batch).await;
                    drop(permit);
                });
            }
        }
        ready_since = if ready.is_empty() {
            None
        } else {
            ready_since.or(Some(now))
        };
    }
}

/// Splits ready statuses into POSTs: one route (URL and secret) per POST, at most `size` each.
fn split_batches(ready: Vec<Event>, size: usize) -> Vec<Vec<Event>> {
    let mut groups: Vec<Vec<Event>> = Vec::new();
    for ev in ready {
        let idx = {
            let route = ev.msg.number.route();
            groups.iter().rposition(|g| {
                g.len() < size && g.first().is_some_and(|f| f.msg.number.route() == route)
            })
        };
        match idx.and_then(|i| groups.get_mut(i)) {
            Some(g) => g.push(ev),
            None => {
                let mut g = Vec::with_capacity(size.min(1024));
                g.push(ev);
                groups.push(g);
            }
        }
    }
    groups
}

fn shuffle(batch: &mut [Event], seed: u64, batch_no: u64) {
    for i in (1..batch.len()).rev() {
        let j = rng::draw_upto(seed, batch_no, 1000 + i as u64, i as u64) as usize;
        batch.swap(i, j);
    }
}

#[derive(Serialize)]
struct Payload<'a> {
    object: &'static str,
    entry: Vec<Entry<'a>>,
}
#[derive(Serialize)]
struct Entry<'a> {
    id: &'a str,
    changes: [Change<'a>; 1],
}
#[derive(Serialize)]
struct Change<'a> {
    value: Value<'a>,
    field: &'static str,
}
#[derive(Serialize)]
struct Value<'a> {
    messaging_product: &'static str,
    metadata: Metadata<'a>,
    statuses: Vec<StatusJson<'a>>,
}
#[derive(Serialize)]
struct Metadata<'a> {
    display_phone_number: &'a str,
    phone_number_id: &'a str,
}
#[derive(Serialize)]
struct StatusJson<'a> {
    id: &'a str,
    status: &'static str,
    timestamp: String,
    recipient_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    biz_opaque_callback_data: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation: Option<Conversation<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pricing: Option<Pricing<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<[ErrorJson; 1]>,
}
#[derive(Serialize)]
struct Conversation<'a> {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_timestamp: Option<String>,
    origin: Origin<'a>,
}
#[derive(Serialize)]
struct Origin<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
}
#[derive(Serialize)]
struct Pricing<'a> {
    billable: bool,
    pricing_model: &'static str,
    category: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}
#[derive(Serialize)]
struct ErrorJson {
    code: u32,
    title: &'static str,
    message: &'static str,
    error_data: ErrorData,
    href: &'static str,
}
#[derive(Serialize)]
struct ErrorData {
    details: &'static str,
}

fn async_error(code: u32) -> ErrorJson {
    let (title, details) = match code {
        131049 => (
            "This message was not delivered to maintain healthy ecosystem engagement.",
            "In order to maintain healthy ecosystem engagement, the message failed to be delivered.",
        ),
        131026 => (
            "Message undeliverable",
            "Message Undeliverable.",
        ),
        131050 => (
            "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
            "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business.",
        ),
        _ => ("Something went wrong", "Message failed to send due to an unknown error."),
    };
    ErrorJson {
        code,
        title,
        message: title,
        error_data: ErrorData { details },
        href: "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }
}

/// Serialises a batch the way Meta does (one entry per business number).
pub fn build_body(batch: &[Event], meta_escaping: bool) -> Vec<u8> {
    let ts = unix_now().to_string();
    let mut entries: Vec<Entry<'_>> = Vec::new();
    for ev in batch {
        let m = &ev.msg;
        let conv_id = || {
            format!(
                "{:016x}{:016x}",
                rng::mix(rng::draw_u64(
                    7,
                    m.recipient.len() as u64,
                    hash_str(&m.recipient)
                )),
                hash_str(&m.number.phone_number_id)
            )
        };
        let (conversation, pricing) = match ev.status {
            Status::Sent | Status::Delivered => (
                Some(Conversation {
                    id: conv_id(),
                    expiration_timestamp: (ev.status == Status::Sent)
                        .then(|| (unix_now() + 86_400).to_string()),
                    origin: Origin { kind: &m.category },
                }),
                Some(Pricing {
                    billable: true,
                    pricing_model: "PMP",
                    category: &m.category,
                    kind: "regular",
                }),
            ),
            _ => (None, None),
        };
        let status = StatusJson {
            id: &m.wamid,
            status: ev.status.as_str(),
            timestamp: ts.clone(),
            recipient_id: &m.recipient,
            biz_opaque_callback_data: m.biz_opaque.as_deref(),
            conversation,
            pricing,
            errors: (ev.status == Status::Failed)
                .then(|| [async_error(m.error_code.unwrap_or(131000))]),
        };
        let pnid = m.number.phone_number_id.as_str();
        if let Some(e) = entries
            .iter_mut()
            .find(|e| e.changes[0].value.metadata.phone_number_id == pnid)
        {
            e.changes[0].value.statuses.push(status);
        } else {
            entries.push(Entry {
                id: &m.number.waba_id,
                changes: [Change {
                    value: Value {
                        messaging_product: "whatsapp",
                        metadata: Metadata {
                            display_phone_number: &m.number.display_phone_number,
                            phone_number_id: pnid,
                        },
                        statuses: vec![status],
                    },
                    field: "messages",
                }],
            });
        }
    }
    let payload = Payload {
        object: "whatsapp_business_account",
        entry: entries,
    };
    let raw = serde_json::to_vec(&payload).unwrap_or_default();
    if meta_escaping && raw.iter().any(|b| *b == b'/' || *b >= 0x80) {
        meta_escape(&raw)
    } else {
        raw
    }
}

fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Escapes `/` as `\/` and non-ASCII characters as lowercase `\uXXXX`, as Meta's JSON does.
/// Only valid on serde_json output, where both can only occur inside strings.
pub fn meta_escape(raw: &[u8]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return raw.to_vec();
    };
    let mut out = String::with_capacity(raw.len() + 64);
    let mut buf = [0u16; 2];
    for c in text.chars() {
        if c == '/' {
            out.push_str("\\/");
        } else if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.into_bytes()
}

/// `sha256=<hex hmac>`
pub fn sign(secret: &str, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn deliver(shared: Arc<Shared>, client: reqwest::Client, batch: Vec<Event>) {
    let n = batch.len() as u64;
    let mut attempt: u32 = 0;
    let body = bytes::Bytes::from(build_body(&batch, shared.config().webhook_meta_escaping));
    let number = batch.first().map(|e| e.msg.number.clone());
    let url_override = number.as_ref().and_then(|n| n.webhook_url.clone());
    let secret_override = number.as_ref().and_then(|n| n.app_secret.clone());
    loop {
        let cfg = shared.config();
        let Some(url) = url_override.clone().or_else(|| cfg.webhook_url.clone()) else {
            // The webhook was switched off: these statuses will never be delivered.
            shared.hooks.dropped.fetch_add(n, AO::Relaxed);
            break;
        };
        attempt += 1;
        let signature = sign(secret_override.as_deref().unwrap_or(&cfg.app_secret), &body);
        let result = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .timeout(Duration::from_millis(cfg.webhook_timeout_ms.max(1)))
            .body(body.clone())
            .send()
            .await;
        let ok = match result {
            Ok(resp) => resp.status().is_success(),
            Err(_) => false,
        };
        if ok {
            shared.hooks.posts_ok.fetch_add(1, AO::Relaxed);
            metrics::counter!("ezpulze_sim_webhook_posts_total", "result" => "ok").increment(1);
            let generation = shared.generation.load(AO::Relaxed);
            for ev in &batch {
                if ev.msg.generation != generation {
                    continue;
                }
                let bit = 1u8 << (ev.status as u8);
                if ev.msg.acked.fetch_or(bit, AO::Relaxed) & bit == 0 {
                    shared.stats.count_status(ev.status);
                }
            }
            break;
        }
        shared.hooks.posts_failed.fetch_add(1, AO::Relaxed);
        metrics::counter!("ezpulze_sim_webhook_posts_total", "result" => "error").increment(1);
        if cfg.webhook_max_attempts > 0 && attempt >= cfg.webhook_max_attempts {
            shared.hooks.dropped.fetch_add(n, AO::Relaxed);
            metrics::counter!("ezpulze_sim_webhook_statuses_dropped_total").increment(n);
            break;
        }
        let backoff = cfg
            .webhook_retry_initial_ms
            .saturating_mul(1u64 << (attempt - 1).min(20))
            .min(cfg.webhook_retry_max_ms.max(cfg.webhook_retry_initial_ms));
        tracing::debug!(
            attempt,
            backoff_ms = backoff,
            "webhook delivery failed; retrying"
        );
        tokio::time::sleep(Duration::from_millis(backoff)).await;
    }
    shared.hooks.pending.fetch_sub(n, AO::Relaxed);
    shared.hooks.in_flight_posts.fetch_sub(1, AO::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_like_meta() {
        let raw = serde_json::to_vec(&serde_json::json!({"a": "café/ü 😀"})).expect("json");
        let esc = String::from_utf8(meta_escape(&raw)).expect("utf8");
        assert_eq!(esc, r#"{"a":"caf\u00e9\/\u00fc \ud83d\ude00"}"#);
        let back: serde_json::Value = serde_json::from_str(&esc).expect("parse");
        assert_eq!(back["a"], "café/ü 😀");
    }

    #[test]
    fn signature_known_vector() {
        // RFC 4231 test case 2.
        let s = sign("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
