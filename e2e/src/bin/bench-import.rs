//! Contact CSV import benchmark (issue 15; `scripts/bench-import.sh`, and the import half of
//! `make bench-audience`): generates a file of `BENCH_IMPORT_ROWS` contacts (phone, name,
//! tags, two attribute columns), uploads it to a running API (`API_URL`, `ROOT_TOKEN`) into a
//! fresh account, waits for the import to be `done`, then uploads the same file again (every
//! row unchanged). Last line: one JSON object with `contacts_imported_per_s` (rows of the
//! first import per second, from the start of the upload to `done`).
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use serde_json::{json, Value};

/// The file: `+1 555` numbers (distinct), a name, 1-2 tags of 20, a city of 50 and a plan.
pub fn file(rows: usize) -> Vec<u8> {
    let mut s = String::with_capacity(rows * 64 + 64);
    s.push_str("phone,name,tags,city,plan\n");
    const CITIES: [&str; 5] = ["Lisbon", "Porto", "Braga", "Faro", "Coimbra"];
    for i in 0..rows {
        let _ = writeln!(
            s,
            "+1555{:07},Contact {i},tag{};bench,{} {},{}",
            i,
            i % 20,
            CITIES[i % 5],
            i % 50,
            if i % 3 == 0 { "gold" } else { "basic" }
        );
    }
    s.into_bytes()
}

async fn admin_key(http: &reqwest::Client, base: &str, root: &str) -> anyhow::Result<String> {
    let acc: Value = http
        .post(format!("{base}/admin/v1/accounts"))
        .bearer_auth(root)
        .json(&json!({"name": "bench-import"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let admin = acc["admin_token"].as_str().context("admin token")?;
    let key: Value = http
        .post(format!("{base}/admin/v1/api-keys"))
        .bearer_auth(admin)
        .json(&json!({"name": "bench", "scope_group": "full_access", "rate_limit_per_hour": null}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(key["key"].as_str().context("key")?.to_string())
}

/// Uploads `body` and waits for `done`: (the final import, seconds to 202, seconds to done).
async fn import(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    body: Vec<u8>,
) -> anyhow::Result<(Value, f64, f64)> {
    let started = Instant::now();
    let resp = http
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
        let v: Value = http
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = std::env::var("API_URL").context("API_URL")?;
    let root = std::env::var("ROOT_TOKEN").context("ROOT_TOKEN")?;
    let rows: usize = std::env::var("BENCH_IMPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let http = reqwest::Client::builder().no_proxy().build()?;
    let key = admin_key(&http, &base, &root).await?;
    // Built before the clock starts: the harness measures the API, not itself.
    let body = file(rows);
    let bytes = body.len();
    let (first, accepted_s, first_s) = import(&http, &base, &key, body.clone()).await?;
    ensure!(
        first["created"].as_u64() == Some(rows as u64),
        "expected {rows} created: {first}"
    );
    eprintln!("[bench-import] {rows} rows ({bytes} bytes): 202 after {accepted_s:.2} s, done after {first_s:.2} s");
    let (again, _, again_s) = import(&http, &base, &key, body).await?;
    ensure!(
        again["unchanged"].as_u64() == Some(rows as u64),
        "expected {rows} unchanged: {again}"
    );
    eprintln!("[bench-import] the same file again: done after {again_s:.2} s");
    println!(
        "{}",
        json!({
            "contacts_imported_per_s": (rows as f64 / first_s).round(),
            "rows": rows,
            "file_bytes": bytes,
            "upload_to_202_s": (accepted_s * 100.0).round() / 100.0,
            "import_s": (first_s * 100.0).round() / 100.0,
            "reimport_unchanged_rows_per_s": (rows as f64 / again_s).round(),
        })
    );
    Ok(())
}
