//! Authentication of `/api/v1`: every 401, 403 and 429 case, rate-limit headers, two replicas.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{acme, acme_key, assert_error, status_json, wait_until, TestApp};

#[tokio::test]
async fn bearer_and_x_api_key_both_work_and_me_describes_the_key() {
    let key =
        json!({"name": "Website", "scope_group": "message_sender", "rate_limit_per_hour": 500});
    let (app, acc, k) = acme_key(key).await;
    let r = me_with(&app, "", &[("X-API-Key", &k)]).await;
    assert_eq!(r.status(), 200);
    for h in [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "ratelimit-policy",
        "ratelimit",
        "x-request-id",
    ] {
        assert!(r.headers().contains_key(h), "missing header {h}");
    }
    assert_eq!(r.headers()["x-ratelimit-limit"], "500");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "499");
    let reset: u64 = r.headers()["x-ratelimit-reset"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("epoch");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    assert!(
        reset > now && reset <= now + 3601,
        "reset {reset} vs now {now}"
    );
    assert_eq!(r.headers()["ratelimit-policy"], "\"hourly\";q=500;w=3600");
    let me: Value = r.json().await.expect("json");
    assert_eq!(me["name"], "Website");
    assert_eq!(me["scopes"], json!(["broadcast:send", "template:read"]));
    assert_eq!(me["rate_limit_per_hour"], 500);
    let r = me_with(&app, "", &[("Authorization", &format!("Bearer {k}"))]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "498");
    // An admin token reaches the public API with full access.
    let (s, me) = app.get("/api/v1/me", &acc.admin).await;
    assert_eq!(s, 200);
    assert_eq!(me["type"], "admin");
}

#[tokio::test]
async fn every_401_case() {
    let (app, acc) = acme().await;
    let read_only = json!({"name": "k", "scope_group": "read_only"});
    let (k, id) = app.key(&acc.admin, read_only).await;

    let (s, v) = app.get("/api/v1/me", "").await;
    assert_error(s, &v, 401, "missing_api_key");
    let r = me_with(&app, "", &[("Authorization", "Basic abc")]).await;
    assert_eq!(r.status(), 401);

    let mut wrong_checksum = k.clone().into_bytes();
    let i = 20;
    wrong_checksum[i] = if wrong_checksum[i] == b'a' {
        b'b'
    } else {
        b'a'
    };
    let wrong_checksum = String::from_utf8(wrong_checksum).expect("utf8");
    let unknown = ezpulze_common::keys::generate(ezpulze_common::keys::KeyMode::Live);
    for bad in [
        "pk_live_abcdefghijklmnopqrstuvwxyz0123456789ABCD".to_string(),
        "sk_live_short".to_string(),
        format!("{k}extra"),
        k.replace("sk_live_", "sk_test_"),
        wrong_checksum,
        unknown,
        format!("{}!{}", &k[..20], &k[21..]),
    ] {
        let (s, v) = app.get("/api/v1/me", &bad).await;
        assert_error(s, &v, 401, "invalid_api_key");
    }

    app.set_key_active(&acc.admin, &id, false).await;
    let (s, v) = app.get("/api/v1/me", &k).await;
    assert_error(s, &v, 401, "key_inactive");

    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let temp = json!({"name": "temp", "scope_group": "read_only", "expires_at": soon});
    let (k2, id2) = app.key(&acc.admin, temp).await;
    assert_eq!(app.get("/api/v1/me", &k2).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let (s, v) = app.get("/api/v1/me", &k2).await;
    assert_error(s, &v, 401, "key_expired");
    let (_, obj) = app
        .get(&format!("/admin/v1/api-keys/{id2}"), &acc.admin)
        .await;
    assert_eq!(obj["status"], "expired");
}

#[tokio::test]
async fn ip_allow_list_uses_the_socket_unless_a_trusted_proxy_forwards() {
    let (app, acc) = acme().await;
    let only = |ip: &str| json!({"name": "k", "scope_group": "read_only", "allowed_ips": [ip]});
    let (only_other, _) = app.key(&acc.admin, only("203.0.113.7")).await;
    let (only_local, _) = app.key(&acc.admin, only("127.0.0.0/8")).await;
    let (s, v) = app.get("/api/v1/me", &only_other).await;
    assert_error(s, &v, 403, "ip_not_allowed");
    // Spoofed X-Forwarded-For from an untrusted peer is ignored.
    let forwarded = [("X-Forwarded-For", "203.0.113.7")];
    let r = me_with(&app, &only_other, &forwarded).await;
    assert_eq!(r.status(), 403);
    assert_eq!(app.get("/api/v1/me", &only_local).await.0, 200);

    let proxied = TestApp::spawn_with(&[("TRUSTED_PROXIES", "127.0.0.1")]).await;
    let acc = proxied.account("Acme").await;
    let (k, _) = proxied.key(&acc.admin, only("203.0.113.7")).await;
    for (from, want) in [("203.0.113.7", 200), ("198.51.100.1", 403)] {
        let r = me_with(&proxied, &k, &[("X-Forwarded-For", from)]).await;
        assert_eq!(r.status(), want, "forwarded for {from}");
    }
}

#[tokio::test]
async fn rate_limited_requests_get_429_with_retry_after() {
    let three = json!({"name": "k", "scope_group": "read_only", "rate_limit_per_hour": 3});
    let (app, acc, k) = acme_key(three).await;
    for left in (0..3).rev() {
        let r = me_with(&app, &k, &[]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers()["x-ratelimit-remaining"],
            left.to_string().as_str()
        );
    }
    let r = me_with(&app, &k, &[]).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("secs");
    assert!((1..=1200).contains(&retry), "{retry}");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert!(r.headers().contains_key("x-ratelimit-reset"));
    let (s, v) = status_json(r).await;
    assert_error(s, &v, 429, "rate_limited");
    // A key with no limit is never limited.
    let unlimited = json!({"name": "k", "scope_group": "read_only", "rate_limit_per_hour": null});
    let (free, _) = app.key(&acc.admin, unlimited).await;
    for _ in 0..20 {
        assert_eq!(app.get("/api/v1/me", &free).await.0, 200);
    }
}

#[tokio::test]
async fn two_replicas_share_the_limit_and_see_changes_before_their_cache_expires() {
    // Cached keys live a minute: a change seen by the other replica within half of it came
    // over the invalidation channel, not from the entry expiring.
    let a = TestApp::spawn_with(&[("KEY_CACHE_TTL_SECS", "60")]).await;
    let b = a.replica().await;
    let acc = a.account("Acme").await;
    let hundred = json!({"name": "k", "scope_group": "read_only", "rate_limit_per_hour": 100});
    let (k, id) = a.key(&acc.admin, hundred).await;

    // 100/hour across both replicas, requests interleaved and concurrent.
    let mut tasks = Vec::new();
    for i in 0..160 {
        let app_client = if i % 2 == 0 {
            a.client.clone()
        } else {
            b.client.clone()
        };
        let url = if i % 2 == 0 {
            a.url("/api/v1/me")
        } else {
            b.url("/api/v1/me")
        };
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            app_client
                .get(url)
                .bearer_auth(k)
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        match t.await.expect("join") {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok <= 100, "{ok} accepted across both replicas");
    assert_eq!(ok + limited, 160);
    assert!(ok >= 99, "the limit admits its full burst ({ok})");

    // Disabling through A is seen by B (which has the key cached) before its entry expires.
    let f = json!({"name": "f", "scope_group": "read_only", "rate_limit_per_hour": null});
    let (free, free_id) = a.key(&acc.admin, f).await;
    assert_eq!(b.get("/api/v1/me", &free).await.0, 200);
    assert_eq!(a.set_key_active(&acc.admin, &free_id, false).await, 200);
    wait_status(&b, &free, 401).await;
    // Regenerating through B kills the old value on A likewise; deleting too.
    a.set_key_active(&acc.admin, &free_id, true).await;
    wait_status(&b, &free, 200).await;
    assert_eq!(a.get("/api/v1/me", &free).await.0, 200);
    let key_path = format!("/admin/v1/api-keys/{free_id}");
    let regenerate = format!("{key_path}/regenerate");
    let (_, r) = b.send("POST", &regenerate, &acc.admin, None).await;
    wait_status(&a, &free, 401).await;
    let fresh = r["key"].as_str().expect("key").to_string();
    assert_eq!(a.get("/api/v1/me", &fresh).await.0, 200);
    b.delete(&key_path, &acc.admin).await;
    wait_status(&a, &fresh, 401).await;
    let _ = id;
}

/// Waits until `key` gets `want` on `app`, for at most half the key cache's lifetime.
async fn wait_status(app: &TestApp, key: &str, want: u16) {
    wait_until(
        &format!("{want} on /api/v1/me before the cached entry expires"),
        Duration::from_secs(30),
        || async { app.get("/api/v1/me", key).await.0 == want },
    )
    .await;
}

#[tokio::test]
async fn tenant_keys_cannot_reach_another_account() {
    let app = TestApp::spawn().await;
    let a = app.account("A").await;
    let b = app.account("B").await;
    let full = json!({"name": "k", "scope_group": "full_access"});
    let (ka, _) = app.key(&a.admin, full).await;
    let (_, me) = app.get("/api/v1/me", &ka).await;
    assert_eq!(me["name"], "k");
    let (_, meb) = app.get("/api/v1/me", &b.admin).await;
    assert_eq!(meb["account_id"], b.id.as_str());
}

#[tokio::test]
async fn operations_endpoints_and_request_ids() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz", "").await.0, 200);
    let (s, v) = app.get("/readyz", "").await;
    assert_eq!(s, 200);
    assert_eq!(v, json!({"postgres": true, "redis": true, "failed": []}));
    let (s, v) = app.get("/openapi.json", "").await;
    assert_eq!(s, 200);
    assert!(
        v["paths"]["/admin/v1/api-keys"].is_object(),
        "openapi documents the key routes"
    );
    let _ = app.get("/api/v1/me", "").await;
    let text = app.get_text("/metrics").await;
    assert!(text.contains("ezpulze_http_requests_total"), "{text}");
    assert!(
        text.contains("ezpulze_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("ezpulze_auth_failures_total"), "{text}");
    // A sane incoming request id is kept, and errors carry it.
    let r = me_with(&app, "", &[("X-Request-Id", "abc-123")]).await;
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["request_id"], "abc-123");
    let (s, v) = app.get("/no/such/route", "").await;
    assert_error(s, &v, 404, "not_found");
}

#[tokio::test]
async fn unknown_public_routes_authenticate_before_answering_404() {
    let fifty = json!({"name": "k", "scope_group": "read_only", "rate_limit_per_hour": 50});
    let (app, _, k) = acme_key(fifty).await;
    for (bearer, code) in [("", "missing_api_key"), ("sk_live_nope", "invalid_api_key")] {
        let (s, v) = app.get("/api/v1/no-such-route", bearer).await;
        assert_error(s, &v, 401, code);
    }
    let r = app.request("GET", "/api/v1/no-such-route", &k, None).await;
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("x-ratelimit-remaining"));
    let (s, _) = app.get("/no-such-route", "").await;
    assert_eq!(s, 404);
}

/// GET /api/v1/me with a bearer credential (none if empty) and extra headers.
async fn me_with(app: &TestApp, bearer: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    app.request_with("GET", "/api/v1/me", bearer, headers, None)
        .await
}
