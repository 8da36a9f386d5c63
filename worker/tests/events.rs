//! Integrator events of the worker's own transitions: a pause (an account-level error) is
//! one `dispatch.paused` event per paused dispatch, for the endpoints of its account and mode.

use ezpulze_testkit::app::{recipients, TestApp};
use ezpulze_testkit::templates;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn a_pause_is_a_dispatch_paused_event() {
    let app = TestApp::spawn().await;
    let sender = app.sender(templates::text(), json!({})).await;
    let other = app.sender(templates::text(), json!({})).await;
    for s in [&sender, &other] {
        app.webhook_endpoint(
            &s.key,
            json!({"url": "http://127.0.0.1:9/hook", "events": ["dispatch.paused"]}),
        )
        .await;
    }
    let d: Uuid = app
        .dispatch(&sender, recipients(2, 0), None)
        .await
        .parse()
        .expect("id");
    let account: Uuid = sender.account.id.parse().expect("account");
    let db = app.pool().await;
    let n = ezpulze_worker::db::pause(&db, "dispatch", "", account, d, None)
        .await
        .expect("pause");
    assert_eq!(n, 1);
    let rows: Vec<(Uuid, String, serde_json::Value)> =
        sqlx::query_as("SELECT account_id, event_type, body FROM webhook_deliveries")
            .fetch_all(&db)
            .await
            .expect("rows");
    assert_eq!(
        rows.len(),
        1,
        "only the paused dispatch's account: {rows:?}"
    );
    assert_eq!(rows[0].0, account);
    assert_eq!(rows[0].1, "dispatch.paused");
    let body = &rows[0].2;
    assert_eq!(body["type"], "dispatch.paused");
    assert_eq!(body["data"]["dispatch_id"], d.to_string());
    assert_eq!(body["data"]["status"], "paused");
    assert_eq!(body["data"]["total"], 2);
    assert!(body["id"].as_str().is_some_and(|i| i.starts_with("evt_")));
    // Paused again (nothing to pause): no second event.
    assert_eq!(
        ezpulze_worker::db::pause(&db, "dispatch", "", account, d, None)
            .await
            .expect("pause"),
        0
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(n, 1);
}

/// A delivery left `delivering` by a worker that died mid-attempt (its lease past) is sent
/// again, with the same event id, and ends succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_delivery_goes_out_after_its_lease() {
    let sim = ezpulze_simulator::spawn(ezpulze_simulator::SimConfig::default())
        .await
        .expect("sim");
    let app = TestApp::spawn_against(&sim.url(), &[]).await;
    let sender = app.sender(templates::text(), json!({})).await;
    let rx = ezpulze_testkit::receiver::Receiver::unique(sim.url());
    let v = app
        .webhook_endpoint(&sender.key, json!({"url": rx.url()}))
        .await;
    rx.configure(&json!({"secrets": [v["secret"]]})).await;
    let endpoint: Uuid = v["id"].as_str().expect("id").parse().expect("uuid");
    let db = app.pool().await;
    add_delivery(&db, endpoint, "evt_leased", true).await;
    let cancel = tokio_util::sync::CancellationToken::new();
    let (cfg, c) = (app.config(), cancel.clone());
    tokio::spawn(async move { ezpulze_worker::run(cfg, c).await });
    rx.wait_distinct(1, std::time::Duration::from_secs(30))
        .await;
    let s = rx.stats_with_ids().await;
    assert_eq!(s["ids"], json!(["evt_leased"]), "{s}");
    assert_eq!(s["verify_failures"], 0, "{s}");
    ezpulze_testkit::wait_until(
        "the delivery recorded",
        std::time::Duration::from_secs(30),
        || async {
            let row: (String, i32) =
                sqlx::query_as("SELECT state, attempts FROM webhook_deliveries")
                    .fetch_one(&db)
                    .await
                    .expect("row");
            row == ("succeeded".to_owned(), 2)
        },
    )
    .await;
    cancel.cancel();
}

/// After a rotation both secrets sign for the grace period: a receiver that still holds the
/// old secret verifies, and so does one that has the new one already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_signs_beside_the_old_one() {
    let sim = ezpulze_simulator::spawn(ezpulze_simulator::SimConfig::default())
        .await
        .expect("sim");
    let app = TestApp::spawn_against(&sim.url(), &[]).await;
    let sender = app.sender(templates::text(), json!({})).await;
    let old_rx = ezpulze_testkit::receiver::Receiver::unique(sim.url());
    let new_rx = ezpulze_testkit::receiver::Receiver::unique(sim.url());
    let mut ids = Vec::new();
    let mut secrets = Vec::new();
    for rx in [&old_rx, &new_rx] {
        let v = app
            .webhook_endpoint(&sender.key, json!({"url": rx.url()}))
            .await;
        let id = v["id"].as_str().expect("id").to_owned();
        let rotated = app
            .expect_status(
                "POST",
                &format!("/api/v1/webhook-endpoints/{id}/rotate-secret"),
                &sender.key,
                json!({}),
                200,
            )
            .await;
        assert_ne!(rotated["secret"], v["secret"]);
        assert!(rotated["secret_rotated_until"].is_string(), "{rotated}");
        secrets.push((v["secret"].clone(), rotated["secret"].clone()));
        ids.push(id);
    }
    old_rx.configure(&json!({"secrets": [secrets[0].0]})).await;
    new_rx.configure(&json!({"secrets": [secrets[1].1]})).await;
    let db = app.pool().await;
    for id in &ids {
        let endpoint: Uuid = id.parse().expect("uuid");
        add_delivery(&db, endpoint, "evt_rotated", false).await;
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let (cfg, c) = (app.config(), cancel.clone());
    tokio::spawn(async move { ezpulze_worker::run(cfg, c).await });
    for rx in [&old_rx, &new_rx] {
        rx.wait_distinct(1, std::time::Duration::from_secs(30))
            .await;
        assert_eq!(rx.stats().await["verify_failures"], 0);
    }
    cancel.cancel();
}

/// A `message.sent` delivery of `event_id` for `endpoint`, as the status statement writes one;
/// `leased`: as a dead worker left it (`delivering`, one attempt, its lease past).
async fn add_delivery(db: &sqlx::PgPool, endpoint: Uuid, event_id: &str, leased: bool) {
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, account_id, event_id, event_type, body,
                                         state, attempts, lease_until)
         SELECT ezp_uuid7(), id, account_id, $2, 'message.sent',
                jsonb_build_object('id', $2::text, 'type', 'message.sent', 'data', '{}'::jsonb),
                CASE WHEN $3 THEN 'delivering' ELSE 'pending' END, $3::int,
                CASE WHEN $3 THEN now() - interval '1 second' END
           FROM webhook_endpoints WHERE id = $1",
    )
    .bind(endpoint)
    .bind(event_id)
    .bind(leased)
    .execute(db)
    .await
    .expect("delivery");
}
