//! A small load generator for the simulator (short runs only):
//!
//! ```text
//! cargo run --release -p ezpulze-simulator --example loadgen -- \
//!   --url http://127.0.0.1:8090 --requests 100000 --concurrency 64 [--sink 127.0.0.1:9099]
//! ```
//!
//! Sends template messages to distinct recipients over several phone numbers and prints one JSON
//! line with requests/s; with `--sink` it also runs a webhook receiver and waits until the
//! simulator reports no pending statuses, then prints statuses/s received.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use clap::Parser;
use serde_json::json;

#[derive(Debug, Parser)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    url: String,
    #[arg(long, default_value_t = 50_000)]
    requests: u64,
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// Phone number ids, comma separated (registered with token `tok-<id>` when --configure).
    #[arg(long, default_value = "1001,1002,1003,1004")]
    numbers: String,
    /// Address for a webhook receiver (e.g. 127.0.0.1:9099); the simulator is pointed at it.
    #[arg(long)]
    sink: Option<String>,
}

#[derive(Default)]
struct Sink {
    posts: AtomicU64,
    statuses: AtomicU64,
}

async fn receive(State(s): State<Arc<Sink>>, body: Bytes) -> &'static str {
    s.posts.fetch_add(1, Ordering::Relaxed);
    let n = body.windows(10).filter(|w| w == b"\"status\":\"").count() as u64;
    s.statuses.fetch_add(n, Ordering::Relaxed);
    "ok"
}

async fn get_json(client: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    Ok(client.get(url).send().await?.json().await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency as usize)
        .build()?;
    let numbers: Vec<String> = args.numbers.split(',').map(str::to_owned).collect();
    let sink = Arc::new(Sink::default());
    let mut patch = json!({
        "numbers": numbers.iter().map(|n| json!({"phone_number_id": n, "display_phone_number": n, "access_token": format!("tok-{n}")})).collect::<Vec<_>>(),
        "mps_limit": 0,
        "pair_gap_ms": 0,
    });
    if let Some(addr) = &args.sink {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let app = axum::Router::new()
            .route("/wh", post(receive))
            .with_state(sink.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        patch["webhook_url"] = json!(format!("http://{addr}/wh"));
        patch["webhook_batch_size"] = json!(1000);
    } else {
        patch["webhook_url"] = serde_json::Value::Null;
    }
    let r = client
        .put(format!("{}/_sim/config", args.url))
        .json(&patch)
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "config refused: {}",
        r.text().await?
    );
    client
        .post(format!("{}/_sim/reset", args.url))
        .send()
        .await?;

    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let client = client.clone();
        let next = next.clone();
        let errors = errors.clone();
        let numbers = numbers.clone();
        let base = args.url.clone();
        let total = args.requests;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let n = &numbers[(i as usize) % numbers.len()];
                // Pre-formatted JSON: the generator should cost less CPU than the simulator.
                let body = format!(
                    r#"{{"messaging_product":"whatsapp","recipient_type":"individual","to":"49170{i:07}","type":"template","biz_opaque_callback_data":"m-{i}","template":{{"name":"promo","language":{{"code":"en_US"}},"components":[{{"type":"header","parameters":[{{"type":"image","image":{{"link":"https://cdn.example.com/a.jpg"}}}}]}},{{"type":"body","parameters":[{{"type":"text","text":"Maria"}},{{"type":"text","text":"20%"}}]}},{{"type":"button","sub_type":"url","index":"0","parameters":[{{"type":"text","text":"abc"}}]}}]}}}}"#
                );
                let ok = client
                    .post(format!("{base}/v23.0/{n}/messages"))
                    .bearer_auth(format!("tok-{n}"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let send_secs = start.elapsed().as_secs_f64();
    let mut statuses_per_s = 0.0;
    if args.sink.is_some() {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let p = get_json(&client, &format!("{}/_sim/pending", args.url)).await?;
            if p["webhook_statuses_pending"].as_u64() == Some(0) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        statuses_per_s =
            sink.statuses.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    }
    let stats = get_json(&client, &format!("{}/_sim/stats", args.url)).await?;
    println!(
        "{}",
        json!({
            "requests": args.requests,
            "concurrency": args.concurrency,
            "errors": errors.load(Ordering::Relaxed),
            "requests_per_s": (args.requests as f64 / send_secs).round(),
            "webhook_posts": sink.posts.load(Ordering::Relaxed),
            "webhook_statuses": sink.statuses.load(Ordering::Relaxed),
            "webhook_statuses_per_s": statuses_per_s.round(),
            "sim_stats": stats,
        })
    );
    Ok(())
}
