//! Revocation never silently waits for the key cache's TTL: two api processes on one database
//! and Redis, one of them reaching Redis through a proxy that can pause its connections (a
//! network stall: nothing is closed, nothing arrives).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to Redis whose connections stop moving bytes while it is paused.
struct PausableProxy {
    url: String,
    paused: Arc<AtomicBool>,
}

impl PausableProxy {
    async fn start() -> PausableProxy {
        let target = redis_url()
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .expect("host:port")
            .to_string();
        let db = redis_url().rsplit('/').next().unwrap_or("0").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let paused = Arc::new(AtomicBool::new(false));
        let p = paused.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, p.clone()));
                tokio::spawn(pump(sr, cw, p.clone()));
            }
        });
        PausableProxy {
            url: format!("redis://{addr}/{db}"),
            paused,
        }
    }

    fn pause(&self, on: bool) {
        self.paused.store(on, Ordering::SeqCst);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    paused: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let n = match tokio::time::timeout(Duration::from_millis(20), from.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        // Bytes read just before a pause are held back too.
        while paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A replica of `app` that reaches Redis through `proxy`.
async fn replica_through(app: &TestApp, proxy: &PausableProxy) -> TestApp {
    let mut settings = app.settings.clone();
    settings.insert("REDIS_URL".into(), proxy.url.clone());
    TestApp::start(settings).await
}

/// A key without hourly limit (its use needs no Redis), used once on `on` so it is cached.
async fn cached_key(app: &TestApp, admin: &str, on: &TestApp) -> (String, String) {
    let body = json!({"name": "k", "scope_group": "read_only", "rate_limit_per_hour": null});
    let (key, id) = app.key(admin, body).await;
    let (s, v) = on.get("/api/v1/ping", &key).await;
    assert_eq!(s, 200, "{v}");
    (key, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_whose_subscription_stalls_stops_serving_cached_keys() {
    let a = TestApp::spawn().await;
    let proxy = PausableProxy::start().await;
    let b = replica_through(&a, &proxy).await;
    let acc = a.account("Acme").await;
    let (key, id) = cached_key(&a, &acc.admin, &b).await;

    // B's Redis connections stall; A deactivates the key (A's publish reaches Redis, B's
    // subscription hears nothing).
    proxy.pause(true);
    assert_eq!(a.set_key_active(&acc.admin, &id, false).await, 200);
    // Within a little more than a second without a heartbeat, B asks Postgres instead of its
    // cache: the key is refused, long before the cache's 60 s TTL.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (s, v) = b.get("/api/v1/ping", &key).await;
    assert_error(s, &v, 401, "key_inactive");

    // Once the connection moves again B resubscribes, flushes, and serves from its cache.
    proxy.pause(false);
    assert_eq!(a.set_key_active(&acc.admin, &id, true).await, 200);
    wait_until("B serves the key again", DEADLINE, || async {
        b.get("/api/v1/ping", &key).await.0 == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_whose_publish_fails_says_so_and_is_published_later() {
    let b = TestApp::spawn().await;
    let proxy = PausableProxy::start().await;
    // A publishes through the proxy; B listens directly.
    let a = replica_through(&b, &proxy).await;
    let acc = a.account("Acme").await;
    let (key, id) = cached_key(&a, &acc.admin, &b).await;

    proxy.pause(true);
    let r = a
        .request(
            "PATCH",
            &format!("/admin/v1/api-keys/{id}"),
            &acc.admin,
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(r.status(), 200, "the change committed");
    assert_eq!(
        r.headers().get("ezpulze-propagation").map(|v| v.as_bytes()),
        Some(&b"pending"[..]),
        "the caller learns the change is not yet effective everywhere"
    );
    // A itself refuses the key at once (its own cache was cleared).
    let (s, v) = a.get("/api/v1/ping", &key).await;
    assert_error(s, &v, 401, "key_inactive");

    // When A reaches Redis again, the retry publishes the change and B forgets the key.
    proxy.pause(false);
    wait_until("B refuses the key", Duration::from_secs(10), || async {
        b.get("/api/v1/ping", &key).await.0 == 401
    })
    .await;
}
