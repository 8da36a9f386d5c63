//! Unauthenticated traffic is cheap, and the api bounds what it holds: random admin tokens,
//! random checksum-valid keys and random `phone_number_id`s on the webhook cost no Postgres
//! query each, keep nothing new in Redis and leave the process's memory where it was, and the api bounds both
//! the requests it serves at once and how long each runs.

mod support;

use std::time::Duration;

use ezpulze_common::keys::{self, KeyMode};
use futures::StreamExt;
use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Transactions Postgres counted for the api's database, once its statistics are flushed
/// (a backend reports them at most about every ten seconds when idle). Every statement the
/// api sends outside a transaction is one.
async fn transactions(pool: &sqlx::PgPool) -> i64 {
    tokio::time::sleep(Duration::from_secs(11)).await;
    sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database
          WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await
    .expect("pg_stat_database")
}

/// The keys under the api's Redis prefix and the bytes they take (the Redis server is
/// shared with other tests, so its total says nothing of this api).
async fn redis_keys(prefix: &str) -> (usize, i64) {
    let client = redis::Client::open(redis_url()).expect("redis");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut c)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut bytes = 0i64;
    for k in &keys {
        let b: Option<i64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(k)
            .query_async(&mut c)
            .await
            .expect("MEMORY USAGE");
        bytes += b.unwrap_or(0);
    }
    (keys.len(), bytes)
}

fn rss_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

const EACH: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_credentials_and_numbers_cost_no_query_each() {
    let app = TestApp::spawn().await;
    let acc = app.account("Acme").await;
    let (s, v) = app
        .send(
            "PUT",
            "/admin/v1/whatsapp",
            &acc.admin,
            Some(json!({"phone_numbers": [{"phone_number_id": "106540352241111", "display_phone_number": "15550000000",
                                           "access_token": "t"}], "app_secret": "s"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let pool = app.pool().await;
    // Warm up the paths (pools, caches), then take the baselines.
    let (s, _) = app
        .get("/api/v1/ping", &keys::generate(KeyMode::Live))
        .await;
    assert_eq!(s, 401);
    let before = transactions(&pool).await;
    let (redis_before, rss_before) = (redis_keys(&app.prefix).await, rss_bytes());
    let started = std::time::Instant::now();

    let requests = (0..EACH * 3).map(|i| {
        let app = &app;
        async move {
            match i % 3 {
                0 => {
                    let key = keys::generate(KeyMode::Live);
                    app.get("/api/v1/ping", &key).await.0
                }
                1 => {
                    let token = keys::generate_admin_token();
                    app.get("/admin/v1/api-keys", &token).await.0
                }
                _ => {
                    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
                        {"field": "messages", "value": {"metadata": {"phone_number_id": format!("{}", 900_000_000 + i)}, "statuses": []}}]}]});
                    let sig = format!("sha256={}", "ab".repeat(32));
                    let headers = [
                        ("content-type", "application/json"),
                        ("x-hub-signature-256", sig.as_str()),
                    ];
                    let bytes = serde_json::to_vec(&body).expect("body");
                    app.request_with("POST", "/webhooks/whatsapp", "", &headers, Some(bytes))
                        .await
                        .status()
                        .as_u16()
                }
            }
        }
    });
    let statuses: Vec<u16> = futures::stream::iter(requests)
        .buffer_unordered(32)
        .collect()
        .await;
    let took = started.elapsed();
    let mut odd: Vec<u16> = statuses
        .iter()
        .copied()
        .filter(|s| !matches!(s, 401 | 404))
        .collect();
    odd.dedup();
    assert!(odd.is_empty(), "answers other than 401/404: {odd:?}");
    let after = transactions(&pool).await;
    let queries = after - before;
    let (redis_after, rss_after) = (redis_keys(&app.prefix).await, rss_bytes());
    // The api's own background work (the audience expanders' poll, the import runner, the
    // key caches' refresh) runs meanwhile, more of it the longer a loaded host makes the
    // burst: the same time idle afterwards measures it, and only the rest is the requests'.
    tokio::time::sleep(took).await;
    let idle = transactions(&pool).await - after;
    eprintln!(
        "{queries} Postgres transactions for {} requests in {took:?}; {idle} in as long idle",
        EACH * 3
    );
    assert!(
        queries.saturating_sub(idle) < 100,
        "{queries} transactions for {} requests ({idle} idle)",
        EACH * 3
    );
    // Nothing new is kept in Redis for them (the webhook stream included).
    assert_eq!(redis_after.0, redis_before.0, "keys under the prefix");
    let redis_growth = redis_after.1 - redis_before.1;
    assert!(redis_growth < 64 * 1024, "Redis grew {redis_growth} bytes");
    let rss_growth = rss_after - rss_before;
    assert!(rss_growth < 64 * 1024 * 1024, "RSS grew {rss_growth} bytes");
}

/// A request whose body never comes, over a raw connection; returns it (held open).
async fn stalled_request(app: &TestApp) -> tokio::net::TcpStream {
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        b"POST /webhooks/whatsapp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    )
    .await
    .expect("write");
    s
}

#[tokio::test]
async fn requests_beyond_the_bound_are_shed_and_a_long_one_is_stopped() {
    let app = TestApp::spawn_with(&[
        ("API_MAX_CONCURRENT_REQUESTS", "1"),
        ("API_REQUEST_TIMEOUT_SECS", "2"),
    ])
    .await;
    let mut held = stalled_request(&app).await;
    // Let the stalled request reach its handler (it holds the one permit).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, v) = app.get("/healthz", "").await;
    assert_error(s, &v, 503, "overloaded");
    // The stalled one is stopped after its time.
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), held.read(&mut answer))
        .await
        .expect("an answer within the timeout")
        .expect("read");
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("\"timeout\""), "{text}");
    // And the api serves again.
    let (s, _) = app.get("/healthz", "").await;
    assert_eq!(s, 200);
}
