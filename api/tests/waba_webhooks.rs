//! WABA-level webhooks (number quality and throughput, account updates, template status,
//! quality and category): matched to the account owning `entry[].id` as its `waba_id`, signed
//! with that account's app secret, queued with the verified WABA; unknown WABAs, bad or mixed
//! signatures refused as status webhooks are, with nothing queued.

mod support;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::{acme, assert_error, TestApp};

const SECRET: &str = "app-secret-for-tests";
const OTHER_SECRET: &str = "another-apps-secret";
const WABA: &str = "102290129340398";
const OTHER_WABA: &str = "203301230451409";

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("hmac");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Two accounts, each with a number, an app secret and a WABA id.
async fn configured() -> (TestApp, String, String) {
    let (app, acc) = acme().await;
    let other = app.account("Other").await;
    for (admin, number, secret) in [
        (&acc.admin, "106540352242922", SECRET),
        (&other.admin, "106540352242933", OTHER_SECRET),
    ] {
        let (s, v) = app
            .send("PUT", "/admin/v1/whatsapp", admin, Some(json!({
                "phone_numbers": [{"phone_number_id": number, "display_phone_number": "15550783881", "access_token": "EAAG-token"}],
                "app_secret": secret,
            })))
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let pool = app.pool().await;
    for (account, waba) in [(&acc.id, WABA), (&other.id, OTHER_WABA)] {
        sqlx::query("UPDATE whatsapp_settings SET waba_id = $2 WHERE account_id = $1::uuid")
            .bind(account)
            .bind(waba)
            .execute(&pool)
            .await
            .expect("waba id");
    }
    (app, acc.id, other.id)
}

async fn stream_entries(app: &TestApp) -> Vec<String> {
    let client = redis::Client::open(support::redis_url()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(format!("{{{}:webhooks}}:stream", app.prefix))
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .expect("xrange");
    let mut out = Vec::new();
    collect_strings(&v, &mut out);
    out.retain(|s| s.contains("\"body\""));
    out
}

fn collect_strings(v: &redis::Value, out: &mut Vec<String>) {
    match v {
        redis::Value::BulkString(b) => out.push(String::from_utf8_lossy(b).into_owned()),
        redis::Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}

fn waba_body(waba: &str, field: &str, value: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "time": 1_749_416_383, "changes": [{"field": field, "value": value}]}]
    }))
    .expect("json")
}

async fn post(app: &TestApp, body: &[u8], sig: Option<String>) -> (u16, Value) {
    let mut rb = app
        .client
        .post(app.url("/webhooks/whatsapp"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = sig {
        rb = rb.header("X-Hub-Signature-256", s);
    }
    let r = rb.send().await.expect("post");
    let s = r.status().as_u16();
    let text = r.text().await.expect("text");
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_signed_waba_level_body_is_queued_with_its_verified_waba_and_account() {
    let (app, account, _) = configured().await;
    let body = waba_body(
        WABA,
        "phone_number_quality_update",
        json!({"display_phone_number": "15550783881", "event": "THROUGHPUT_UPGRADE", "current_limit": "TIER_10K", "some_future_field": {"x": 1}}),
    );
    let (s, v) = post(&app, &body, Some(sign(SECRET, &body))).await;
    assert_eq!(s, 200, "{v}");
    // Template fields and a field the engine does not apply: accepted (the latter counted).
    for field in [
        "message_template_status_update",
        "message_template_quality_update",
        "template_category_update",
        "account_update",
        "business_capability_update",
    ] {
        let b = waba_body(WABA, field, json!({"event": "APPROVED"}));
        let (s, v) = post(&app, &b, Some(sign(SECRET, &b))).await;
        assert_eq!(s, 200, "{field}: {v}");
    }
    let entries = stream_entries(&app).await;
    assert_eq!(entries.len(), 6, "{entries:?}");
    let job: Value = serde_json::from_str(&entries[0]).expect("job json");
    assert_eq!(
        job["wabas"],
        json!([{"waba_id": WABA, "account_id": account}])
    );
    assert_eq!(job["numbers"], json!([]));
    assert_eq!(
        job["body"]["entry"][0]["changes"][0]["value"]["event"],
        "THROUGHPUT_UPGRADE"
    );
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("ezpulze_webhook_waba_changes_total{field=\"other\"} 1"),
        "an unknown field is counted"
    );
}

#[tokio::test]
async fn unknown_wabas_bad_and_mixed_signatures_are_refused_and_nothing_is_queued() {
    let (app, _, _) = configured().await;
    let value = json!({"display_phone_number": "15550783881", "event": "FLAGGED"});
    let good = waba_body(WABA, "phone_number_quality_update", value.clone());
    let unknown = waba_body("999000999", "phone_number_quality_update", value.clone());
    let not_digits = waba_body("abc", "phone_number_quality_update", value.clone());
    // One body with both accounts' WABAs: two apps' secrets.
    let mixed = serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [
            {"id": WABA, "changes": [{"field": "account_update", "value": {"event": "ACCOUNT_RESTRICTION"}}]},
            {"id": OTHER_WABA, "changes": [{"field": "account_update", "value": {"event": "ACCOUNT_RESTRICTION"}}]}
        ]
    }))
    .expect("json");
    // Not a WhatsApp Business Account body: nothing names a number or a WABA.
    let other_object = serde_json::to_vec(&json!({
        "object": "page",
        "entry": [{"id": WABA, "changes": [{"field": "account_update", "value": {}}]}]
    }))
    .expect("json");
    let cases: Vec<(Vec<u8>, Option<String>, u16, &str)> = vec![
        (good.clone(), None, 401, "invalid_signature"),
        (
            good.clone(),
            Some(sign(OTHER_SECRET, &good)),
            401,
            "invalid_signature",
        ),
        (
            good.clone(),
            Some("sha256=00".into()),
            401,
            "invalid_signature",
        ),
        (
            unknown.clone(),
            Some(sign(SECRET, &unknown)),
            404,
            "not_found",
        ),
        (
            not_digits.clone(),
            Some(sign(SECRET, &not_digits)),
            404,
            "not_found",
        ),
        (
            mixed.clone(),
            Some(sign(SECRET, &mixed)),
            401,
            "invalid_signature",
        ),
        (
            other_object.clone(),
            Some(sign(SECRET, &other_object)),
            422,
            "validation_failed",
        ),
    ];
    for (body, sig, status, code) in cases {
        let (s, v) = post(&app, &body, sig).await;
        assert_error(s, &v, status, code);
    }
    // The unknown WABA again (remembered as unknown): still 404.
    let (s, _) = post(&app, &unknown, Some(sign(SECRET, &unknown))).await;
    assert_eq!(s, 404);
    assert!(stream_entries(&app).await.is_empty(), "nothing was queued");
    // The other account's WABA with its own secret is that account's.
    let theirs = waba_body(OTHER_WABA, "phone_number_quality_update", value);
    let (s, _) = post(&app, &theirs, Some(sign(OTHER_SECRET, &theirs))).await;
    assert_eq!(s, 200);
    assert_eq!(stream_entries(&app).await.len(), 1);
}

async fn epoch(app: &TestApp) -> i64 {
    let client = redis::Client::open(support::redis_url()).expect("client");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let v: Option<i64> = redis::cmd("GET")
        .arg(format!("{}:numbers:epoch", app.prefix))
        .query_async(&mut c)
        .await
        .expect("get");
    v.unwrap_or(0)
}

#[tokio::test]
async fn number_limits_show_only_the_callers_numbers_and_a_rate_change_moves_the_epoch() {
    let (app, _, other_id) = configured().await;
    // An account with no numbers at all.
    let acc = app.account("Third").await;
    let pool = app.pool().await;
    sqlx::query(
        "UPDATE phone_numbers SET flagged = true, quality_event = 'FLAGGED', quality_changed_at = now()
          WHERE account_id = $1::uuid",
    )
    .bind(&other_id)
    .execute(&pool)
    .await
    .expect("flag the other account's number");
    // The third account sees no number, and nothing of the other account's.
    let (s, v) = app.get("/api/v1/whatsapp/numbers/limits", &acc.admin).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v, json!({"messaging_tier": null, "numbers": []}));
    // A key without a broadcast scope: 403.
    let key = app.scoped_key(&acc.admin, &["contacts:read"]).await;
    let (s, v) = app.get("/api/v1/whatsapp/numbers/limits", &key).await;
    assert_error(s, &v, 403, "insufficient_scope");
    let (s, v) = app.get("/api/v1/whatsapp/numbers/limits", "").await;
    assert_eq!(s, 401, "{v}");
    // A rate set by hand: the numbers' epoch moves (every worker reloads its numbers).
    let before = epoch(&app).await;
    let (s, v) = app
        .send("PUT", "/admin/v1/whatsapp", &acc.admin, Some(json!({
            "phone_numbers": [{"phone_number_id": "106540352242944", "display_phone_number": "+1 555 0100", "access_token": "EAAG-token", "messages_per_second": 40}],
        })))
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(epoch(&app).await > before);
    let (_, v) = app.get("/api/v1/whatsapp/numbers/limits", &acc.admin).await;
    assert_eq!(
        v["numbers"],
        json!([{"phone_number_id": "106540352242944", "display_phone_number": "+1 555 0100",
                "messages_per_second": 40, "throughput_level": "STANDARD", "flagged": false,
                "quality_event": null, "quality_changed_at": null, "paused_dispatches": 0}])
    );
}
