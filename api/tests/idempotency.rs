//! Idempotency-Key records are small and a request whose process died never holds its key
//! for long: the record keeps the dispatch id, the request's digest and a summary, the replay
//! is rebuilt from Postgres byte for byte, and a lock left by a dead request expires within
//! `LOCK_SECS` (its 409 says how long with `Retry-After`).

mod support;

use std::time::Duration;

use ezpulze_common::keyspace::Keyspace;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::*;

async fn send_with_key(
    app: &TestApp,
    sender: &Sender,
    key: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/api/v1/broadcasts/{}/send", sender.broadcast_id)))
        .bearer_auth(&sender.key)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn a_replay_is_rebuilt_byte_for_byte_from_a_small_record() {
    let app = TestApp::spawn().await;
    let sender = app.sender(templates::text(), json!({})).await;
    let mut recipients = recipients(1_000, 0);
    for (i, r) in recipients.iter_mut().enumerate() {
        r["ref"] = json!(format!("order-{i}"));
    }
    // Rejections in the middle and at both ends: an invalid number, a duplicate, a missing
    // variable.
    recipients[0]["to"] = json!("not a phone");
    recipients[500]["to"] = recipients[499]["to"].clone();
    recipients[999]["variables"] = json!({"body": ["only one"]});
    let body = json!({"recipients": recipients});
    let first = send_with_key(&app, &sender, "big-1", &body).await;
    assert_eq!(first.status(), 202);
    let original = first.bytes().await.expect("body");
    let v: Value = serde_json::from_slice(&original).expect("json");
    assert_eq!(v["accepted"], 997, "{}", v["rejected"]);

    let again = send_with_key(&app, &sender, "big-1", &body).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let replayed = again.bytes().await.expect("body");
    assert!(
        replayed == original,
        "the replay differs:\n{}\n---\n{}",
        String::from_utf8_lossy(&original[..400.min(original.len())]),
        String::from_utf8_lossy(&replayed[..400.min(replayed.len())])
    );

    // What the record keeps: a summary of the three rejections, not the 997 messages.
    let (kept, whole): (i32, Option<i32>) = sqlx::query_as(
        "SELECT octet_length(summary), octet_length(response) FROM idempotency_records",
    )
    .fetch_one(&app.pool().await)
    .await
    .expect("record");
    assert!(whole.is_none(), "the whole answer is not stored");
    assert!(
        (kept as usize) < original.len() / 50,
        "record {kept} bytes for a {} byte answer",
        original.len()
    );
}

#[tokio::test]
async fn a_record_written_with_its_whole_answer_is_replayed_from_it() {
    let app = TestApp::spawn().await;
    let sender = app.sender(templates::text(), json!({})).await;
    let body = json!({"recipients": recipients(1, 0)});
    assert_eq!(
        send_with_key(&app, &sender, "old", &body).await.status(),
        202
    );
    // A record as the engine wrote them before summaries (the whole answer).
    sqlx::query(
        "UPDATE idempotency_records SET response = '{\"stored\":\"as sent\"}', summary = NULL",
    )
    .execute(&app.pool().await)
    .await
    .expect("legacy record");
    let r = send_with_key(&app, &sender, "old", &body).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.text().await.expect("body"), "{\"stored\":\"as sent\"}");
}

#[tokio::test]
async fn a_lock_left_by_a_dead_request_holds_its_key_for_seconds_only() {
    let app = TestApp::spawn().await;
    let sender = app.sender(templates::text(), json!({})).await;
    let body = json!({"recipients": recipients(2, 0)});
    // What an api killed after taking the lock and before its commit leaves behind: the lock
    // (with its full lifetime) and no record.
    let digest = hex::encode(Sha256::digest(b"crashed-1"));
    let lock = Keyspace::new(&app.prefix).idempotency(&format!("k:{}", sender.key_id), &digest);
    let client = redis::Client::open(redis_url()).expect("redis");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("SET")
        .arg(&lock)
        .arg("left by a dead process")
        .arg("EX")
        .arg(ezpulze_api::idempotency::LOCK_SECS)
        .query_async(&mut conn)
        .await
        .expect("set lock");

    let r = send_with_key(&app, &sender, "crashed-1", &body).await;
    let retry_after: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After on the in-progress 409");
    let (s, v) = status_json(r).await;
    assert_error(s, &v, 409, "idempotency_conflict");
    assert!(
        (1..=10).contains(&retry_after),
        "retry after {retry_after} s"
    );

    // Following the answer's advice, the retry runs as a new request, once.
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(200)).await;
    let r = send_with_key(&app, &sender, "crashed-1", &body).await;
    assert_eq!(r.status(), 202);
    assert!(r.headers().get("idempotent-replayed").is_none());
    let r = send_with_key(&app, &sender, "crashed-1", &body).await;
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let pool = app.pool().await;
    let dispatches: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatches")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(dispatches, 1);
}
