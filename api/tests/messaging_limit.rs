//! The portfolio's messaging limit (`docs/messaging-limits.md`): the admin reads and sets the
//! tier (`/admin/v1/whatsapp/messaging-limit`), a key with a broadcast scope reads it
//! (`/api/v1/whatsapp/messaging-limit`); a tier Meta does not use, wrong types and unknown
//! fields are refused with the contract's 422 and change nothing; each account sees only its
//! own; a deferred message shows in its dispatch's progress and in the message lookup.

mod support;

use serde_json::{json, Value};
use support::*;
use uuid::Uuid;

const ADMIN: &str = "/admin/v1/whatsapp/messaging-limit";
const PUBLIC: &str = "/api/v1/whatsapp/messaging-limit";

async fn put(app: &TestApp, bearer: &str, body: Value) -> (u16, Value) {
    status_json(app.request("PUT", ADMIN, bearer, Some(body)).await).await
}

#[tokio::test]
async fn the_admin_sets_the_tier_and_a_key_reads_it() {
    let (app, acc) = acme().await;
    let (s, v) = app.get(ADMIN, &acc.admin).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["tier"], Value::Null, "not known: not enforced");
    assert_eq!(v["enforced"], false);
    assert_eq!(v["limit"], Value::Null);
    assert_eq!(v["used"], 0);
    assert_eq!(v["window_secs"], 86_400);

    let (s, v) = put(&app, &acc.admin, json!({"tier": "TIER_2K"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (&v["tier"], &v["limit"], &v["enforced"], &v["remaining"]),
        (&json!("TIER_2K"), &json!(2000), &json!(true), &json!(2000))
    );
    let key = app.scoped_key(&acc.admin, &["broadcast:read"]).await;
    let (s, v) = app.get(PUBLIC, &key).await;
    assert_eq!((s, &v["tier"]), (200, &json!("TIER_2K")), "{v}");
    let send = app.scoped_key(&acc.admin, &["broadcast:send"]).await;
    assert_eq!(app.get(PUBLIC, &send).await.0, 200);

    let (s, v) = put(&app, &acc.admin, json!({"tier": "TIER_UNLIMITED"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!((&v["limit"], &v["enforced"]), (&Value::Null, &json!(false)));
    let (s, v) = put(&app, &acc.admin, json!({"tier": null})).await;
    assert_eq!((s, &v["tier"]), (200, &Value::Null), "{v}");
}

#[tokio::test]
async fn bad_tiers_types_and_fields_are_refused_and_change_nothing() {
    let (app, acc) = acme().await;
    assert_eq!(
        put(&app, &acc.admin, json!({"tier": "TIER_10K"})).await.0,
        200
    );
    for body in [
        json!({"tier": "TIER_1K"}),
        json!({"tier": "tier_2k"}),
        json!({"tier": "2000"}),
        json!({"tier": ""}),
        json!({"tier": 2000}),
        json!({"tier": ["TIER_2K"]}),
        json!({"tier": "TIER_2K", "limit": 5}),
        json!({}),
        json!("TIER_2K"),
        json!(null),
    ] {
        let (s, v) = put(&app, &acc.admin, body.clone()).await;
        assert_error(s, &v, 422, "validation_failed");
        let (_, now) = app.get(ADMIN, &acc.admin).await;
        assert_eq!(now["tier"], "TIER_10K", "{body} changed the tier");
    }
    let (s, v) = app
        .send_raw_json("PUT", ADMIN, &acc.admin, "{\"tier\":")
        .await;
    assert!(s == 400 || s == 422, "{s} {v}");
    let (_, now) = app.get(ADMIN, &acc.admin).await;
    assert_eq!(now["tier"], "TIER_10K");
}

#[tokio::test]
async fn keys_cannot_set_it_and_need_a_broadcast_scope_to_read_it() {
    let (app, acc) = acme().await;
    let full = app.scoped_key(&acc.admin, &["contacts:read"]).await;
    let (s, v) = app.get(PUBLIC, &full).await;
    assert_error(s, &v, 403, "insufficient_scope");
    let send = app.scoped_key(&acc.admin, &["broadcast:send"]).await;
    let (s, v) = put(&app, &send, json!({"tier": "TIER_250"})).await;
    assert_eq!(s, 401, "{v}");
    let (s, v) = app.get(PUBLIC, "").await;
    assert_error(s, &v, 401, "missing_api_key");
    let (_, now) = app.get(ADMIN, &acc.admin).await;
    assert_eq!(now["tier"], Value::Null);
}

#[tokio::test]
async fn each_account_sees_and_sets_only_its_own() {
    let (app, a) = acme().await;
    let b = app.account("Beta").await;
    assert_eq!(
        put(&app, &a.admin, json!({"tier": "TIER_250"})).await.0,
        200
    );
    let (_, vb) = app.get(ADMIN, &b.admin).await;
    assert_eq!(vb["tier"], Value::Null);
    assert_eq!(
        put(&app, &b.admin, json!({"tier": "TIER_100K"})).await.0,
        200
    );
    let (_, va) = app.get(ADMIN, &a.admin).await;
    assert_eq!(va["tier"], "TIER_250");
}

#[tokio::test]
async fn a_deferred_message_shows_in_progress_and_lookup_and_is_cancelled_with_its_dispatch() {
    let app = TestApp::spawn().await;
    let sender = app.sender(templates::text(), json!({})).await;
    let dispatch = app.dispatch(&sender, recipients(3, 0), None).await;
    let pool = app.pool().await;
    // What a worker does when the budget is full, written directly.
    let held: Uuid = sqlx::query_scalar(
        "UPDATE messages SET status = 'deferred', deferred_reason = 'messaging_limit',
                next_attempt_at = now() + interval '1 hour'
          WHERE id = (SELECT id FROM messages WHERE dispatch_id = $1::uuid ORDER BY id LIMIT 1) RETURNING id",
    )
    .bind(&dispatch)
    .fetch_one(&pool)
    .await
    .expect("defer");
    sqlx::query("UPDATE messages SET status = 'read' WHERE dispatch_id = $1::uuid AND id <> $2")
        .bind(&dispatch)
        .bind(held)
        .execute(&pool)
        .await
        .expect("others read");
    let (s, p) = app
        .get(&format!("/api/v1/dispatches/{dispatch}"), &sender.key)
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (&p["deferred"], &p["queued"]),
        (&json!(1), &json!(0)),
        "{p}"
    );
    assert_ne!(
        p["status"], "completed",
        "a deferred message is still waiting: {p}"
    );
    let (s, m) = app
        .get(&format!("/api/v1/messages/{held}"), &sender.key)
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["status"], "deferred");
    assert_eq!(m["deferred_reason"], "messaging_limit");
    assert!(m["deferred_until"].is_string(), "{m}");
    let (s, p) = app
        .post(
            &format!("/api/v1/dispatches/{dispatch}/cancel"),
            &sender.key,
            json!({}),
        )
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (&p["deferred"], &p["cancelled"]),
        (&json!(0), &json!(1)),
        "{p}"
    );
    let (_, m) = app
        .get(&format!("/api/v1/messages/{held}"), &sender.key)
        .await;
    assert_eq!(
        (&m["status"], &m["deferred_reason"]),
        (&json!("cancelled"), &Value::Null)
    );
}
