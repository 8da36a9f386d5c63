//! `make bench-ingest`: concurrent clients POST 1,000-recipient send requests to a running API
//! (started by scripts/bench-ingest.sh) and count recipients accepted (rows recorded and jobs
//! queued: the API answers 202 only after both). Last line: one JSON object.
#![forbid(unsafe_code)]

// mimalloc is the global allocator through ezpulze-runtime.
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Mutex;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base = std::env::var("API_URL").context("API_URL")?;
    let root = std::env::var("ROOT_TOKEN").context("ROOT_TOKEN")?;
    let clients: usize = std::env::var("BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let requests: usize = std::env::var("BENCH_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let per_request: usize = std::env::var("BENCH_RECIPIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(clients)
        .build()?;
    let (_, key, broadcast) = ezpulze_e2e::prepare(&http, &base, &root).await?;
    let url = format!("{base}/api/v1/broadcasts/{broadcast}/send");
    // Bodies are built before the clock starts: the harness measures the API, not itself.
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..requests)
            .map(|r| ezpulze_e2e::send_body(per_request, r * per_request))
            .collect(),
    );
    // Warm-up request.
    http.post(&url)
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(ezpulze_e2e::send_body(10, 900_000_000))
        .send()
        .await?
        .error_for_status()?;
    let next = Arc::new(Mutex::new(0usize));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(requests)));
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, url, key, bodies, next, latencies, accepted) = (
            http.clone(),
            url.clone(),
            key.clone(),
            bodies.clone(),
            next.clone(),
            latencies.clone(),
            accepted.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = {
                    let mut n = next.lock().await;
                    if *n >= bodies.len() {
                        return anyhow::Ok(());
                    }
                    *n += 1;
                    *n - 1
                };
                let t = Instant::now();
                let resp = http
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(bodies[i].clone())
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await?;
                let status = resp.status();
                let v: serde_json::Value = resp.json().await?;
                anyhow::ensure!(status.as_u16() == 202, "status {status}: {v}");
                accepted.fetch_add(
                    v["accepted"].as_u64().unwrap_or(0) as usize,
                    std::sync::atomic::Ordering::Relaxed,
                );
                latencies
                    .lock()
                    .await
                    .push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().await.clone();
    lat.sort_by(|a, b| a.total_cmp(b));
    let accepted = accepted.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("[bench-ingest] {requests} requests x {per_request} recipients, {clients} clients, {secs:.2} s");
    println!(
        "{}",
        serde_json::json!({
            "recipients_per_s": (accepted as f64 / secs).round(),
            "requests_per_s": ((requests as f64 / secs) * 10.0).round() / 10.0,
            "p50_ms": (ezpulze_e2e::percentile(&lat, 0.50) * 10.0).round() / 10.0,
            "p99_ms": (ezpulze_e2e::percentile(&lat, 0.99) * 10.0).round() / 10.0,
            "accepted": accepted,
            "clients": clients,
            "recipients_per_request": per_request,
        })
    );
    Ok(())
}
