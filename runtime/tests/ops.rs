//! The worker's and scheduler's operations endpoints against the real Postgres and Redis.

use std::time::Duration;

use ezpulze_runtime::ops;
use sqlx::postgres::PgPoolOptions;
use tokio_util::sync::CancellationToken;

async fn get(base: &str, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("{base}{path}"))
        .await
        .expect("request");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn spawn(
    db: sqlx::PgPool,
    redis: Option<ezpulze_common::redis_conn::RedisConn>,
) -> (String, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let cancel = CancellationToken::new();
    tokio::spawn(ops::serve(listener, db, redis, cancel.clone()));
    (base, cancel)
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let pg = std::env::var("EZPULZE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let redis_url =
        std::env::var("EZPULZE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let db = sqlx::PgPool::connect(&pg).await.expect("pg");
    let redis = ezpulze_common::redis_conn::RedisConn::Single(
        redis::Client::open(redis_url)
            .expect("url")
            .get_connection_manager()
            .await
            .expect("redis"),
    );
    // The process's recorder (what the ops router exports) is installed before counting.
    ezpulze_runtime::telemetry::metrics_handle();
    metrics::counter!("ezpulze_ops_test_total").increment(1);
    let (base, cancel) = spawn(db.clone(), Some(redis)).await;
    assert_eq!(get(&base, "/healthz").await, (200, "ok".to_string()));
    assert_eq!(get(&base, "/readyz").await, (200, "ready".to_string()));
    let (status, body) = get(&base, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("ezpulze_ops_test_total"), "{body}");
    cancel.cancel();

    // Postgres refusing connections: alive, not ready (the pool gives up before the check's
    // own timeout, so the answer is "unreachable").
    let down = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(200))
        .connect_lazy("postgres://postgres@127.0.0.1:1/postgres")
        .expect("lazy pool");
    let (base, cancel) = spawn(down, None).await;
    assert_eq!(get(&base, "/healthz").await.0, 200);
    assert_eq!(
        get(&base, "/readyz").await,
        (503, "postgres unreachable".to_string())
    );
    cancel.cancel();
}

/// A server that accepts connections and never answers (a stalled Postgres or Redis).
async fn silent_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    addr
}

#[tokio::test]
async fn readiness_names_a_stalled_postgres_before_the_pools_own_timeout() {
    let addr = silent_server().await;
    // The pool as production opens it: 5 s to acquire a connection.
    let stalled = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&format!("postgres://postgres@{addr}/postgres"))
        .expect("lazy pool");
    let (base, cancel) = spawn(stalled, None).await;
    let started = std::time::Instant::now();
    let (status, body) = get(&base, "/readyz").await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body, "postgres did not answer within 500 ms");
    // The check's own 500 ms, well before the pool's 5 s.
    assert!(
        took < Duration::from_millis(1500),
        "answered after {took:?}"
    );
    cancel.cancel();
}
