//! `make bench-audience`: against a running API (started by scripts/bench-audience.sh), imports
//! a CSV of `BENCH_CONTACTS` contacts (default 1,000,000; every 5th tagged `vip`) and then
//! sends a broadcast to the `vip` audience with variables from the contacts' fields. Measures
//! the import (upload to `done`) and the fan-out (202 to the last slice done), and checks the
//! fan-out created exactly one message per `vip` contact (`BENCH_AUDIENCE=all`: to every
//! contact). Last line: one JSON object.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use serde_json::{json, Value};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The file: phone, name, tags, two attribute columns.
fn csv(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 60);
    out.extend_from_slice(b"phone,name,tags,order_id,city\n");
    for i in 0..n {
        let tags = if i % 5 == 0 {
            "vip;newsletter"
        } else {
            "newsletter"
        };
        let city = if i % 2 == 0 { "Lisbon" } else { "Porto" };
        out.extend_from_slice(format!("+1555{i:07},Name {i},{tags},ORD-{i},{city}\n").as_bytes());
    }
    out
}

async fn get(http: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<Value> {
    Ok(http
        .get(url)
        .bearer_auth(key)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = std::env::var("API_URL").context("API_URL")?;
    let root = std::env::var("ROOT_TOKEN").context("ROOT_TOKEN")?;
    let n = env_or("BENCH_CONTACTS", 1_000_000);
    let http = reqwest::Client::builder().no_proxy().build()?;
    let (_, key, broadcast) = ezpulze_e2e::prepare(&http, &base, &root).await?;

    let file = csv(n);
    let bytes = file.len();
    let (done, accepted_secs, import_secs) =
        ezpulze_e2e::import_contacts(&http, &base, &key, file).await?;
    ensure!(
        done["created"] == n,
        "created {} of {n}: {done}",
        done["created"]
    );
    eprintln!(
        "imported {n} rows ({:.1} MB) in {import_secs:.2} s (202 after {:.2} s)",
        bytes as f64 / 1e6,
        accepted_secs
    );

    // BENCH_AUDIENCE=all sends to every contact (the size curve's other end) instead of the
    // fifth tagged `vip`.
    let everyone = std::env::var("BENCH_AUDIENCE").is_ok_and(|v| v == "all");
    let audience = if everyone {
        json!({"all": true})
    } else {
        json!({"tags_all": ["vip"]})
    };
    let body = json!({
        "audience": audience,
        "variables_from": {
            "body": ["{{contact.name}}", "{{attributes.order_id}}", "{{attributes.city|soon}}"],
            "buttons": [{"index": 0, "text": "{{attributes.order_id}}"}]
        }
    });
    let want = if everyone { n } else { n.div_ceil(5) };
    // BENCH_SENDS sends the audience again and again (each a new dispatch of `want` messages
    // on top of the last one's): the first is the figure, the rest show how it holds up as
    // the messages table grows.
    let sends = env_or("BENCH_SENDS", 1).max(1);
    let mut runs = Vec::with_capacity(sends);
    for _ in 0..sends {
        runs.push(fan_out(&http, &base, &key, &broadcast, &body, want).await?);
    }
    let (fanout_secs, accepted_after) = runs[0];
    println!(
        "{}",
        json!({
            "contacts": n,
            "contacts_imported_per_s": (n as f64 / import_secs).round(),
            "import_seconds": (import_secs * 100.0).round() / 100.0,
            "audience_recipients": want,
            "audience_recipients_per_s": (want as f64 / fanout_secs).round(),
            "audience_seconds": (fanout_secs * 100.0).round() / 100.0,
            "audience_accepted_ms": (accepted_after.as_secs_f64() * 1000.0).round(),
            "audience_recipients_per_s_each": runs
                .iter()
                .map(|(secs, _)| (want as f64 / secs).round())
                .collect::<Vec<_>>(),
        })
    );
    Ok(())
}

/// One audience send: its fan-out time (202 to the last slice done) and the time to its 202.
async fn fan_out(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    broadcast: &str,
    body: &Value,
    want: usize,
) -> anyhow::Result<(f64, Duration)> {
    let started = Instant::now();
    let v: Value = http
        .post(format!("{base}/api/v1/broadcasts/{broadcast}/send"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let dispatch = v["dispatch_id"]
        .as_str()
        .context("dispatch id")?
        .to_string();
    let accepted_after = started.elapsed();
    let progress = loop {
        let v = get(http, &format!("{base}/api/v1/dispatches/{dispatch}"), key).await?;
        if v["audience"]["state"] != "expanding" {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let fanout_secs = started.elapsed().as_secs_f64();
    ensure!(
        progress["total"] == want && progress["rejected"] == 0,
        "the fan-out made {} messages for {want} contacts: {progress}",
        progress["total"]
    );
    eprintln!(
        "expanded {want} recipients in {fanout_secs:.2} s (202 after {:.0} ms)",
        accepted_after.as_secs_f64() * 1000.0
    );
    Ok((fanout_secs, accepted_after))
}
