//! Tenants made through the API and the load: sends of unique recipients, each request with
//! its own Idempotency-Key, retried as the docs advise (same key, same body) on connection
//! errors, 5xx, 429 and the in-progress 409 until it is answered 202.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::stack::{Stack, APP_SECRET, ROOT_TOKEN};

/// An account with a full-access key, a broadcast and its own business number.
#[derive(Clone)]
pub struct Tenant {
    pub key: String,
    pub broadcast: String,
    pub number: String,
    pub token: String,
}

/// Messages per second the engine may send from each number (the simulator has no cap).
pub const NUMBER_MPS: u32 = 250;

/// `n` tenants whose numbers may send `mps` messages per second each.
pub async fn provision(stack: &Stack, n: usize, mps: u32) -> anyhow::Result<Vec<Tenant>> {
    let api = &stack.apis[0].base;
    let mut tenants = Vec::new();
    for i in 0..n {
        let (admin, key, broadcast) = ezpulze_e2e::prepare(&stack.http, api, ROOT_TOKEN).await?;
        let number = format!("10900000000{i:02}");
        let token = format!("faults-token-{i}");
        let r = stack
            .http
            .put(format!("{api}/admin/v1/whatsapp"))
            .bearer_auth(&admin)
            .json(&json!({"phone_numbers": [{"phone_number_id": number, "display_phone_number": format!("1555000{i:04}"),
                "access_token": token, "messages_per_second": mps}], "app_secret": APP_SECRET}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "registering a number: {}",
                r.text().await.unwrap_or_default()
            );
        }
        tenants.push(Tenant {
            key,
            broadcast,
            number,
            token,
        });
    }
    Ok(tenants)
}

/// What the load got answered.
#[derive(Default, Debug)]
pub struct Sent {
    /// Requests answered 202, and the recipients they accepted.
    pub requests: usize,
    pub recipients: usize,
    /// Idempotency-Key -> dispatch id of its 202.
    pub dispatches: HashMap<String, String>,
    /// Attempts that failed (connection error, 5xx, 409 in progress, 429) and were retried.
    pub retried_attempts: usize,
    /// Requests whose 202 was a replay after a failed attempt (their first try committed).
    pub replayed_after_failure: usize,
    /// The longest time from a request's first failed attempt to its 202.
    pub longest_recovery: Duration,
}

pub struct Plan {
    pub requests: usize,
    pub per_request: usize,
    pub clients: usize,
    /// Offset of the recipients' phone numbers (unique over the whole scenario).
    pub offset: usize,
    /// A request is given up (the suite fails) after this long.
    pub deadline: Duration,
    pub label: String,
    /// Each client waits this long between two requests.
    pub pace: Duration,
    /// Requests answered so far (for the scenario's trigger).
    pub answered: Arc<AtomicUsize>,
}

/// Sends `plan.requests` requests from `plan.clients` concurrent clients, round-robin over
/// the tenants and the api processes (a retry goes to the next api, as a load balancer would).
pub async fn send_all(
    http: &reqwest::Client,
    apis: &[String],
    tenants: &[Tenant],
    plan: &Plan,
) -> anyhow::Result<Sent> {
    let next = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(Mutex::new(Sent::default()));
    let mut tasks = Vec::new();
    for _ in 0..plan.clients {
        let (next, sent) = (next.clone(), sent.clone());
        let (http, apis, tenants) = (http.clone(), apis.to_vec(), tenants.to_vec());
        let (n, per, offset, deadline, label, pace, answered) = (
            plan.requests,
            plan.per_request,
            plan.offset,
            plan.deadline,
            plan.label.clone(),
            plan.pace,
            plan.answered.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                let t = &tenants[i % tenants.len()];
                let body = ezpulze_e2e::send_body(per, offset + i * per);
                let key = format!("{label}-{i}");
                let one = send_one(&http, &apis, i, t, &key, body, deadline).await?;
                answered.fetch_add(1, Ordering::SeqCst);
                {
                    let mut s = sent.lock().unwrap_or_else(|p| p.into_inner());
                    s.requests += 1;
                    s.recipients += one.accepted;
                    s.retried_attempts += one.failures;
                    if one.failures > 0 && one.replayed {
                        s.replayed_after_failure += 1;
                    }
                    s.longest_recovery = s.longest_recovery.max(one.recovery);
                    s.dispatches.insert(key, one.dispatch_id);
                }
                tokio::time::sleep(pace).await;
            }
        }));
    }
    for t in tasks {
        t.await.context("load client")??;
    }
    let s = std::mem::take(&mut *sent.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(s)
}

struct One {
    dispatch_id: String,
    accepted: usize,
    failures: usize,
    replayed: bool,
    recovery: Duration,
}

async fn send_one(
    http: &reqwest::Client,
    apis: &[String],
    i: usize,
    t: &Tenant,
    key: &str,
    body: Vec<u8>,
    deadline: Duration,
) -> anyhow::Result<One> {
    let start = Instant::now();
    let mut failures = 0;
    let mut first_failure: Option<Instant> = None;
    loop {
        if start.elapsed() > deadline {
            bail!(
                "request {key} not answered 202 within {deadline:?} ({failures} failed attempts)"
            );
        }
        let api = &apis[(i + failures) % apis.len()];
        let r = http
            .post(format!("{api}/api/v1/broadcasts/{}/send", t.broadcast))
            .bearer_auth(&t.key)
            .header("Idempotency-Key", key)
            .header("content-type", "application/json")
            .body(body.clone())
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        let wait = match r {
            Ok(r) if r.status().as_u16() == 202 => {
                let replayed = r.headers().contains_key("idempotent-replayed");
                let v: Value = r.json().await?;
                return Ok(One {
                    dispatch_id: v["dispatch_id"].as_str().unwrap_or_default().to_owned(),
                    accepted: v["accepted"].as_u64().unwrap_or(0) as usize,
                    failures,
                    replayed,
                    recovery: first_failure.map(|f| f.elapsed()).unwrap_or_default(),
                });
            }
            Ok(r) if r.status().is_server_error() || matches!(r.status().as_u16(), 409 | 429) => {
                let s = r.status().as_u16();
                let after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let text = r.text().await.unwrap_or_default();
                if s == 409 && !text.contains("still being processed") {
                    bail!("request {key}: 409 that is not the in-progress answer: {text}");
                }
                Duration::from_secs(after.unwrap_or(0)).max(Duration::from_millis(200))
            }
            Ok(r) => {
                let s = r.status();
                bail!("request {key}: {s} {}", r.text().await.unwrap_or_default())
            }
            // The api died or is restarting: retry (on the next api).
            Err(_) => Duration::from_millis(200),
        };
        failures += 1;
        first_failure.get_or_insert_with(Instant::now);
        tokio::time::sleep(wait).await;
    }
}
