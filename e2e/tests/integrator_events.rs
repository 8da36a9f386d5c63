//! Integrator events end to end: the API, two workers (senders, status consumers and event
//! deliverers), the scheduler and the simulator (WhatsApp and the signed-webhook test
//! receiver), over real HTTP, Postgres and Redis.
//!
//! - 20,000 messages with WhatsApp's webhooks duplicated and reordered: every real transition
//!   of every message is exactly one distinct event id at the receiver, every request
//!   verifies, a receiver never sees more than its endpoint's `max_per_second`, filters (types,
//!   phone) hold, and a receiver failing for a while then recovering loses nothing.
//! - Recovery: 4xx answers are final; `recover` re-sends exactly the failed ones, `retry` one.
//! - An endpoint whose every attempt fails past the horizon is disabled with a reason; turned
//!   back on, its backlog goes out.

use std::time::{Duration, Instant};

use ezpulze_common::model::MessageStatus;
use ezpulze_testkit::app::{recipients, Sender, TestApp};
use ezpulze_testkit::receiver::Receiver;
use ezpulze_testkit::sim::SimClient;
use ezpulze_testkit::templates;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "events-app-secret";

/// The simulator, the API on it (with `extra` settings), `n` accounts with a number, key,
/// template and broadcast each, two workers and the scheduler.
async fn stack(
    n: usize,
    sim_patch: Value,
    extra: &[(&str, &str)],
    cancel: &CancellationToken,
) -> (
    TestApp,
    SimClient,
    Vec<Sender>,
    ezpulze_simulator::SimHandle,
) {
    let sim = ezpulze_simulator::spawn(ezpulze_simulator::SimConfig::default())
        .await
        .expect("sim");
    let sim_url = sim.url();
    let mut settings = vec![
        ("SEND_TIMEOUT_MS", "5000"),
        ("DATABASE_MAX_CONNECTIONS", "8"),
    ];
    settings.extend_from_slice(extra);
    let app = TestApp::spawn_against(&sim_url, &settings).await;
    let numbers: Vec<(String, String)> = (0..n)
        .map(|i| (format!("10654035224{i:04}"), format!("1555000{i:04}")))
        .collect();
    let simulator = SimClient::new(&sim_url);
    let mut patch = json!({
        "numbers": numbers.iter().map(|(id, d)| json!({"phone_number_id": id, "display_phone_number": d, "access_token": format!("token-{id}")})).collect::<Vec<_>>(),
        "webhook_url": format!("{}/webhooks/whatsapp", app.base), "app_secret": SECRET,
        "mps_limit": 5000, "pair_gap_ms": 0, "seed": 11,
        "sent_delay_ms": 5, "delivered_delay_ms": 20, "read_delay_ms": 40, "delay_jitter_ms": 20
    });
    if let (Some(p), Some(extra)) = (patch.as_object_mut(), sim_patch.as_object()) {
        p.extend(extra.clone());
    }
    simulator.configure(&patch).await;
    let mut senders = Vec::new();
    for (i, (id, display)) in numbers.iter().enumerate() {
        let account = app.account(&format!("events{i}")).await;
        app.expect_status("PUT", "/admin/v1/whatsapp", &account.admin, json!({
            "phone_numbers": [{"phone_number_id": id, "display_phone_number": display, "access_token": format!("token-{id}"), "messages_per_second": 4000}],
            "app_secret": SECRET, "verify_token": format!("v{i}")
        }), 200).await;
        senders.push(app.sender_in(account, templates::text(), json!({})).await);
    }
    let config = app.config();
    for _ in 0..2 {
        let (cfg, c) = (config.clone(), cancel.clone());
        tokio::spawn(async move { ezpulze_worker::run(cfg, c).await });
    }
    {
        let (cfg, c) = (config.clone(), cancel.clone());
        tokio::spawn(async move { ezpulze_scheduler::run(cfg, c).await });
    }
    (app, simulator, senders, sim)
}

/// Registers an endpoint with `key`; returns its id and secret.
async fn endpoint(app: &TestApp, key: &str, body: Value) -> (String, String) {
    let v = app.webhook_endpoint(key, body).await;
    (
        v["id"].as_str().expect("endpoint id").to_owned(),
        v["secret"].as_str().expect("secret").to_owned(),
    )
}

/// Waits until no message waits, every dispatch is stored completed and no delivery is
/// pending or under way.
async fn settle(pool: &PgPool, dispatches: i64, deadline: Duration) {
    let started = Instant::now();
    loop {
        let (waiting, completed, open): (i64, i64, i64) = sqlx::query_as(&format!(
            "SELECT (SELECT count(*) FROM messages WHERE status IN ({})),
                    (SELECT count(*) FROM dispatches WHERE status = 'completed'),
                    (SELECT count(*) FROM webhook_deliveries WHERE state IN ('pending', 'delivering'))",
            MessageStatus::sql_list(&MessageStatus::WAITING)
        ))
        .fetch_one(pool)
        .await
        .expect("progress");
        if waiting == 0 && completed == dispatches && open == 0 {
            eprintln!("settled in {:.1} s", started.elapsed().as_secs_f64());
            return;
        }
        if started.elapsed().as_secs().is_multiple_of(10) {
            eprintln!(
                "{:.0} s: {waiting} messages waiting, {completed}/{dispatches} completed, {open} deliveries open",
                started.elapsed().as_secs_f64()
            );
        }
        assert!(
            started.elapsed() < deadline,
            "not settled: {waiting} messages waiting, {completed}/{dispatches} dispatches completed, {open} deliveries open"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The real transitions of an account's messages, by event type (the ground truth).
async fn transitions(pool: &PgPool, account: &str) -> Value {
    let (sent, delivered, read, failed): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE sent_at IS NOT NULL OR delivered_at IS NOT NULL OR read_at IS NOT NULL),
                count(*) FILTER (WHERE delivered_at IS NOT NULL OR read_at IS NOT NULL),
                count(*) FILTER (WHERE read_at IS NOT NULL),
                count(*) FILTER (WHERE status = 'failed')
           FROM messages WHERE account_id = $1::uuid",
    )
    .bind(account)
    .fetch_one(pool)
    .await
    .expect("transitions");
    json!({"message.sent": sent, "message.delivered": delivered, "message.read": read, "message.failed": failed})
}

fn count(v: &Value, field: &str) -> i64 {
    v[field].as_i64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_transition_is_one_signed_event_within_the_rate() {
    let cancel = CancellationToken::new();
    let (app, sim, senders, _running) = stack(
        2,
        json!({"error_rates": {"131026": 0.03}, "delivered_rate": 0.9, "read_rate": 0.6,
               "duplicate_rate": 0.05, "reorder_rate": 0.05, "reorder_delay_ms": 200}),
        &[("WEBHOOK_RETRY_SCHEDULE", "1s,1s,2s,2s,5s,5s,10s")],
        &cancel,
    )
    .await;
    let pool = app.pool().await;
    // A: every event, 1000/s, its receiver down (503, Retry-After 1) for its first 1,500
    // requests. B: failures and completions only, 50/s, with the recipient's phone.
    let rx_a = Receiver::unique(&sim.base);
    let rx_b = Receiver::unique(&sim.base);
    let (_, secret_a) = endpoint(
        &app,
        &senders[0].key,
        json!({"url": rx_a.url(), "max_per_second": 1000}),
    )
    .await;
    let (_, secret_b) = endpoint(
        &app,
        &senders[1].key,
        json!({"url": rx_b.url(), "max_per_second": 50, "include_phone": true,
               "events": ["message.failed", "dispatch.completed"]}),
    )
    .await;
    rx_a.configure(
        &json!({"secrets": [secret_a], "fail_status": 503, "fail_first_n": 1500, "retry_after": 1}),
    )
    .await;
    rx_b.configure(&json!({"secrets": [secret_b]})).await;

    for r in 0..20usize {
        app.dispatch(&senders[r % 2], recipients(1000, r * 1000), None)
            .await;
    }
    settle(&pool, 20, Duration::from_secs(420)).await;

    let a = rx_a.stats().await;
    let b = rx_b.stats().await;
    let truth_a = transitions(&pool, &senders[0].account.id).await;
    let truth_b = transitions(&pool, &senders[1].account.id).await;
    // Every transition of A is one distinct event, each verified; ten completions.
    for t in [
        "message.sent",
        "message.delivered",
        "message.read",
        "message.failed",
    ] {
        assert_eq!(
            a["by_type"][t], truth_a[t],
            "{t}: receiver {a}, truth {truth_a}"
        );
    }
    assert!(count(&truth_a, "message.read") > 0 && count(&truth_a, "message.failed") > 0);
    assert_eq!(a["by_type"]["dispatch.completed"], 10, "{a}");
    assert_eq!(a["verify_failures"], 0, "{a}");
    assert!(
        count(&a, "answered_failure") >= 1500,
        "the outage happened: {a}"
    );
    assert!(count(&a, "max_per_second") <= 1000, "{a}");
    // B: only its types, within 50/s, with the phone on message events.
    assert_eq!(
        b["by_type"]["message.failed"], truth_b["message.failed"],
        "{b} vs {truth_b}"
    );
    assert_eq!(b["by_type"]["dispatch.completed"], 10, "{b}");
    assert_eq!(
        count(&b, "distinct"),
        count(&truth_b, "message.failed") + 10,
        "no other type: {b}"
    );
    assert_eq!(b["with_phone"], truth_b["message.failed"], "{b}");
    assert_eq!(b["verify_failures"], 0, "{b}");
    assert!(count(&b, "max_per_second") <= 50, "{b}");
    // Every delivery row succeeded; their number is the receivers' distinct ids.
    let (rows, succeeded): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE state = 'succeeded') FROM webhook_deliveries",
    )
    .fetch_one(&pool)
    .await
    .expect("rows");
    assert_eq!(rows, succeeded);
    assert_eq!(rows, count(&a, "distinct") + count(&b, "distinct"));
    eprintln!("events: A {a}, B {b}");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recover_resends_only_failed_ones_and_retry_one() {
    let cancel = CancellationToken::new();
    let (app, sim, senders, _running) = stack(
        1,
        json!({"delivered_rate": 1.0, "read_rate": 0.0}),
        &[],
        &cancel,
    )
    .await;
    let pool = app.pool().await;
    let key = &senders[0].key;
    let rx = Receiver::unique(&sim.base);
    let (id, secret) = endpoint(
        &app,
        key,
        json!({"url": rx.url(), "events": ["message.sent", "message.delivered"]}),
    )
    .await;
    // The first 10 requests are refused for good (400): those deliveries end failed.
    rx.configure(&json!({"secrets": [secret], "fail_status": 400, "fail_first_n": 10}))
        .await;
    let since = chrono::Utc::now().to_rfc3339();
    app.dispatch(&senders[0], recipients(30, 0), None).await;
    settle(&pool, 1, Duration::from_secs(120)).await;
    let before = rx.stats().await;
    assert_eq!(count(&before, "received"), 60, "{before}");
    let failed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries WHERE state = 'failed'")
            .fetch_one(&pool)
            .await
            .expect("failed");
    assert_eq!(failed, 10, "a 400 is final, no retry");
    let page = app
        .expect_status(
            "GET",
            &format!("/api/v1/webhook-endpoints/{id}/deliveries?state=failed"),
            key,
            Value::Null,
            200,
        )
        .await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(10), "{page}");
    assert_eq!(page["items"][0]["last_status"], 400, "{page}");

    let r = app
        .expect_status(
            "POST",
            &format!("/api/v1/webhook-endpoints/{id}/recover"),
            key,
            json!({"since": since}),
            200,
        )
        .await;
    assert_eq!(r["recovered"], 10, "{r}");
    settle(&pool, 1, Duration::from_secs(60)).await;
    let after = rx.stats().await;
    assert_eq!(
        count(&after, "received"),
        70,
        "only the failed ones again: {after}"
    );
    assert_eq!(count(&after, "distinct"), 60, "{after}");

    // One succeeded delivery, retried by hand: the same webhook-id once more.
    let one: String = sqlx::query_scalar("SELECT id::text FROM webhook_deliveries LIMIT 1")
        .fetch_one(&pool)
        .await
        .expect("one");
    app.expect_status(
        "POST",
        &format!("/api/v1/webhook-endpoints/{id}/deliveries/{one}/retry"),
        key,
        json!({}),
        202,
    )
    .await;
    settle(&pool, 1, Duration::from_secs(60)).await;
    let last = rx.stats().await;
    assert_eq!(count(&last, "received"), 71, "{last}");
    assert_eq!(count(&last, "distinct"), 60, "{last}");
    assert_eq!(count(&last, "verify_failures"), 0, "{last}");
    cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endpoint_failing_past_the_horizon_is_disabled_then_catches_up() {
    let cancel = CancellationToken::new();
    let (app, sim, senders, _running) = stack(
        1,
        json!({"delivered_rate": 0.0, "read_rate": 0.0}),
        &[
            ("WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s"),
            ("WEBHOOK_DISABLE_AFTER_SECS", "2"),
        ],
        &cancel,
    )
    .await;
    let pool = app.pool().await;
    let key = &senders[0].key;
    let rx = Receiver::unique(&sim.base);
    let (id, secret) = endpoint(
        &app,
        key,
        json!({"url": rx.url(), "events": ["message.sent"]}),
    )
    .await;
    rx.configure(&json!({"secrets": [secret], "fail_status": 503}))
        .await;
    app.dispatch(&senders[0], recipients(20, 0), None).await;
    let path = format!("/api/v1/webhook-endpoints/{id}");
    let started = Instant::now();
    let disabled = loop {
        let v = app.expect_status("GET", &path, key, Value::Null, 200).await;
        if v["active"] == false {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not disabled: {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let reason = disabled["disabled_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("failed since"), "{disabled}");
    assert!(disabled["disabled_at"].is_string(), "{disabled}");
    // Nothing is attempted while it is off.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let off = count(&rx.stats().await, "received");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&rx.stats().await, "received"), off);
    // Back on, with a working receiver: every event arrives.
    rx.configure(&json!({"fail_status": null})).await;
    app.expect_status("PATCH", &path, key, json!({"active": true}), 200)
        .await;
    settle(&pool, 1, Duration::from_secs(60)).await;
    let s = rx.stats().await;
    assert_eq!(count(&s, "distinct"), 20, "{s}");
    let v = app.expect_status("GET", &path, key, Value::Null, 200).await;
    assert_eq!(v["active"], true, "{v}");
    assert!(v["disabled_reason"].is_null(), "{v}");
    cancel.cancel();
}
