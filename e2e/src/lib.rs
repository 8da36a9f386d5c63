//! Shared helpers of the benchmark harnesses: talking to a running stack over HTTP.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use serde_json::{json, Value};

/// Creates an account named `name` (root token) and a full-access key without rate limit;
/// returns (admin token, API key).
pub async fn account(
    client: &reqwest::Client,
    base: &str,
    root: &str,
    name: &str,
) -> anyhow::Result<(String, String)> {
    let acc: Value = client
        .post(format!("{base}/admin/v1/accounts"))
        .bearer_auth(root)
        .json(&json!({ "name": name }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let admin = acc["admin_token"]
        .as_str()
        .context("admin token")?
        .to_string();
    let key: Value = client
        .post(format!("{base}/admin/v1/api-keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "bench", "scope_group": "full_access", "rate_limit_per_hour": null}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((admin, key["key"].as_str().context("key")?.to_string()))
}

/// Creates an account (root token), a full-access key without rate limit ([`account`]), a text
/// template and a broadcast; returns (admin token, API key, broadcast id).
pub async fn prepare(
    client: &reqwest::Client,
    base: &str,
    root: &str,
) -> anyhow::Result<(String, String, String)> {
    let (admin, key) = account(client, base, root, "bench").await?;
    let t: Value = client
        .post(format!("{base}/api/v1/templates"))
        .bearer_auth(&key)
        .json(&json!({"name": "bench_order_update", "language": "en_US", "category": "UTILITY", "components": [
            {"type": "BODY", "text": "Hi {{1}}, your order {{2}} has shipped and arrives {{3}}.", "example": {"body_text": [["Maria", "4721", "Monday"]]}},
            {"type": "BUTTONS", "buttons": [{"type": "URL", "text": "Track", "url": "https://shop.example.com/track/{{1}}", "example": ["https://shop.example.com/track/1"]}]}
        ]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let b: Value = client
        .post(format!("{base}/api/v1/broadcasts"))
        .bearer_auth(&key)
        .json(&json!({"name": "bench", "template_id": t["id"]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((
        admin,
        key,
        b["id"].as_str().context("broadcast id")?.to_string(),
    ))
}

/// Uploads a contacts CSV (`text/csv`) and waits for the import to be `done`; returns (the
/// final import, seconds from the start of the upload to its 202, seconds to `done`).
pub async fn import_contacts(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    body: Vec<u8>,
) -> anyhow::Result<(Value, f64, f64)> {
    let started = Instant::now();
    let resp = client
        .post(format!("{base}/api/v1/contacts/import"))
        .bearer_auth(key)
        .header("content-type", "text/csv")
        .body(body)
        .timeout(Duration::from_secs(120))
        .send()
        .await?;
    let status = resp.status();
    let v: Value = resp.json().await?;
    ensure!(status.as_u16() == 202, "upload answered {status}: {v}");
    let accepted = started.elapsed().as_secs_f64();
    let id = v["id"].as_str().context("import id")?.to_string();
    loop {
        let v: Value = client
            .get(format!("{base}/api/v1/contacts/imports/{id}"))
            .bearer_auth(key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        match v["state"].as_str() {
            Some("done") => return Ok((v, accepted, started.elapsed().as_secs_f64())),
            Some("failed") => anyhow::bail!("import failed: {v}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A send body of `n` recipients with phones unique over `offset`.
pub fn send_body(n: usize, offset: usize) -> Vec<u8> {
    let recipients: Vec<Value> = (0..n)
        .map(|i| {
            let k = offset + i;
            json!({"to": format!("+1{:010}", 2_000_000_000u64 + k as u64), "ref": format!("r{k}"),
                   "variables": {"body": ["Maria", format!("{k}"), "Monday"], "buttons": [{"index": 0, "text": format!("{k}")}]}})
        })
        .collect();
    serde_json::to_vec(&json!({ "recipients": recipients })).unwrap_or_default()
}

/// The value at a percentile of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}
