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
        app.expect_status(
            "POST",
            "/api/v1/webhook-endpoints",
            &s.key,
            json!({"url": "http://127.0.0.1:9/hook", "events": ["dispatch.paused"]}),
            201,
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
    let n = ezpulze_worker::db::pause(&db, "dispatch", "", account, d)
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
        ezpulze_worker::db::pause(&db, "dispatch", "", account, d)
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
