//! Contact CSV import benchmark (issue 15; `scripts/bench-import.sh`, and the import half of
//! `make bench-audience`): generates a file of `BENCH_IMPORT_ROWS` contacts (phone, name,
//! tags, two attribute columns), uploads it to a running API (`API_URL`, `ROOT_TOKEN`) into a
//! fresh account, waits for the import to be `done`, then uploads the same file again (every
//! row unchanged). Last line: one JSON object with `contacts_imported_per_s` (rows of the
//! first import per second, from the start of the upload to `done`).
#![forbid(unsafe_code)]

use anyhow::{ensure, Context};
use serde_json::json;
use std::fmt::Write as _;

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = std::env::var("API_URL").context("API_URL")?;
    let root = std::env::var("ROOT_TOKEN").context("ROOT_TOKEN")?;
    let rows: usize = std::env::var("BENCH_IMPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let http = reqwest::Client::builder().no_proxy().build()?;
    let (_, key) = ezpulze_e2e::account(&http, &base, &root, "bench-import").await?;
    // Built before the clock starts: the harness measures the API, not itself.
    let body = file(rows);
    let bytes = body.len();
    let (first, accepted_s, first_s) =
        ezpulze_e2e::import_contacts(&http, &base, &key, body.clone()).await?;
    ensure!(
        first["created"].as_u64() == Some(rows as u64),
        "expected {rows} created: {first}"
    );
    eprintln!("[bench-import] {rows} rows ({bytes} bytes): 202 after {accepted_s:.2} s, done after {first_s:.2} s");
    let (again, _, again_s) = ezpulze_e2e::import_contacts(&http, &base, &key, body).await?;
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
