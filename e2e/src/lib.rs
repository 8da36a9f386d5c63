//! Shared helpers of the benchmark harnesses: talking to a running stack over HTTP.
#![forbid(unsafe_code)]

use anyhow::Context;
use serde_json::{json, Value};

/// Creates an account (root token), a full-access key without rate limit, a text template and
/// a broadcast; returns (admin token, API key, broadcast id).
pub async fn prepare(
    client: &reqwest::Client,
    base: &str,
    root: &str,
) -> anyhow::Result<(String, String, String)> {
    let acc: Value = client
        .post(format!("{base}/admin/v1/accounts"))
        .bearer_auth(root)
        .json(&json!({"name": "bench"}))
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
    let key = key["key"].as_str().context("key")?.to_string();
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
