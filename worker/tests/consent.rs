//! Consent in the status consumer against a real Postgres and Redis (`docs/consent.md`):
//! inbound STOP / START keywords (the account's own or the defaults) suppress their sender or
//! lift the suppression, the latest message of a phone in a batch wins, a malformed message
//! never fails its body's statuses, and failure 131050 (async status or synchronous Graph error)
//! adds a `marketing` suppression that leaves an existing `all` row alone.

use ezpulze_common::jobs::{VerifiedNumber, WebhookBody};
use ezpulze_testkit::app::TestApp;
use ezpulze_testkit::{templates, wait_until, DEADLINE};
use ezpulze_worker::db::{record_failed, Failures};
use ezpulze_worker::status::{apply, fold};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const NUMBER: &str = "106540352242922";
const T0: i64 = 1_700_000_000;

struct Fixture {
    app: TestApp,
    pool: PgPool,
    account: Uuid,
    /// The dispatch's messages (`accepted`, wamid `wamid.<i>`), to `+1415000000<i>`.
    messages: Vec<Uuid>,
    dispatch: Uuid,
}

async fn fixture(n: usize) -> Fixture {
    let app = TestApp::spawn().await;
    let sender = app.sender(templates::text(), json!({})).await;
    let pool = app.pool().await;
    // What a worker does (claim, the Graph API's answer with a wamid) is faked: no worker runs.
    let (dispatch, messages) = app.accepted_dispatch(&sender, n).await;
    sqlx::query("UPDATE dispatches SET phone_number_id = $1")
        .bind(NUMBER)
        .execute(&pool)
        .await
        .expect("number");
    Fixture {
        account: sender.account.id.parse().expect("account id"),
        app,
        pool,
        messages,
        dispatch,
    }
}

/// An inbound message in Meta's shape.
fn text_message(from: &str, text: &str, ts: i64) -> Value {
    json!({"from": from, "id": format!("wamid.in.{from}.{ts}"), "timestamp": (T0 + ts).to_string(),
           "type": "text", "text": {"body": text}})
}

/// A webhook body for the business number with these inbound messages and statuses.
fn body(messages: Vec<Value>, statuses: Vec<Value>) -> Vec<u8> {
    let contacts: Vec<Value> = messages
        .iter()
        .filter_map(|m| m["from"].as_str())
        .map(|f| json!({"profile": {"name": "Ann"}, "wa_id": f}))
        .collect();
    let mut value = json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550100", "phone_number_id": NUMBER}});
    if !messages.is_empty() {
        value["contacts"] = json!(contacts);
        value["messages"] = json!(messages);
    }
    if !statuses.is_empty() {
        value["statuses"] = json!(statuses);
    }
    serde_json::to_vec(&json!({"object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}]}))
    .expect("json")
}

async fn queue(f: &Fixture) -> ezpulze_queue::Queue<WebhookBody> {
    let config = f.app.config();
    ezpulze_runtime::queues::connect(&config, ezpulze_runtime::queues::webhooks(&config))
        .await
        .expect("queue")
}

async fn push(q: &ezpulze_queue::Queue<WebhookBody>, account: Uuid, b: &[u8]) {
    let raw: Box<serde_json::value::RawValue> = serde_json::from_slice(b).expect("json");
    q.push(&WebhookBody {
        numbers: Some(vec![VerifiedNumber {
            phone_number_id: NUMBER.into(),
            account_id: account,
        }]),
        wabas: Vec::new(),
        body: raw,
    })
    .await
    .expect("push");
}

/// Runs the consumer until every pushed body is settled; returns how many were dead-lettered.
async fn consume(f: &Fixture, q: &ezpulze_queue::Queue<WebhookBody>) -> u64 {
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(ezpulze_worker::status::run(
        f.pool.clone(),
        q.clone(),
        f.app.config().status_batch,
        cancel.clone(),
    ));
    wait_until("every body settled", DEADLINE, || async {
        let stats = q.stats().await.expect("stats");
        (stats.depth, stats.in_flight) == (0, 0)
    })
    .await;
    cancel.cancel();
    task.await.expect("join").expect("run");
    q.stats().await.expect("stats").dead
}

/// The account's suppressions: (phone, reason, scope, source).
async fn rows(pool: &PgPool, account: Uuid) -> Vec<(String, String, String, String)> {
    sqlx::query_as(
        "SELECT phone, reason, scope, source FROM suppressions WHERE account_id = $1 ORDER BY phone",
    )
    .bind(account)
    .fetch_all(pool)
    .await
    .expect("suppressions")
}

fn row(phone: &str, reason: &str, scope: &str, source: &str) -> (String, String, String, String) {
    (phone.into(), reason.into(), scope.into(), source.into())
}

#[tokio::test]
async fn inbound_keywords_suppress_and_lift_and_the_latest_wins() {
    let f = fixture(1).await;
    let q = queue(&f).await;
    // Already on the list: a manual marketing entry (an opt-out widens it, an opt-in keeps it).
    sqlx::query(
        "INSERT INTO suppressions (account_id, phone, reason, scope, source)
         VALUES ($1, '+15550000004', 'manual', 'marketing', 'crm')",
    )
    .bind(f.account)
    .execute(&f.pool)
    .await
    .expect("manual");
    // Several bodies, read as one batch: per phone the latest keyword message wins, texts that
    // are no keyword are ignored, a malformed message is skipped without failing the status
    // in its body.
    let bodies = [
        body(
            vec![
                text_message("15550000001", " stop ", 20),
                text_message("15550000002", "STOP", 10),
                text_message("15550000003", "hello", 10),
                text_message("15550000004", "Unsubscribe", 10),
            ],
            vec![],
        ),
        body(
            vec![
                text_message("15550000002", "start", 30),
                text_message("15550000001", "START", 5),
                text_message("15550000001", "thanks", 40),
                json!({"from": 15550000005u64, "type": "text", "text": {"body": "STOP"}}),
                json!({"from": "15550000006", "type": "button", "button": {"text": "Stop promotions", "payload": "STOP"}}),
                json!({"from": "15550000007", "type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "b1", "title": "QUIT"}}}),
                json!({"from": "0123", "type": "text", "text": {"body": "STOP"}}),
                json!({"from": "15550000008", "type": "image", "image": {"id": "1"}, "unknown": {"x": 1}}),
            ],
            vec![
                json!({"id": "wamid.0", "status": "delivered", "timestamp": (T0 + 1).to_string(),
                       "recipient_id": "14150000000", "biz_opaque_callback_data": f.messages[0].simple().to_string()}),
            ],
        ),
    ];
    for b in &bodies {
        push(&q, f.account, b).await;
    }
    assert_eq!(consume(&f, &q).await, 0, "no body was dead-lettered");
    let status: String = sqlx::query_scalar("SELECT status FROM messages WHERE id = $1")
        .bind(f.messages[0])
        .fetch_one(&f.pool)
        .await
        .expect("status");
    assert_eq!(status, "delivered");
    assert_eq!(
        rows(&f.pool, f.account).await,
        vec![
            row("+15550000001", "opt_out", "all", "inbound:STOP"),
            row("+15550000004", "manual", "all", "crm"),
            row("+15550000006", "opt_out", "all", "inbound:STOP"),
            row("+15550000007", "opt_out", "all", "inbound:QUIT"),
        ]
    );

    // START lifts the opt-out; the manual entry stays.
    push(
        &q,
        f.account,
        &body(
            vec![
                text_message("15550000001", "Start", 60),
                text_message("15550000004", "START", 60),
            ],
            vec![],
        ),
    )
    .await;
    assert_eq!(consume(&f, &q).await, 0);
    let phones: Vec<String> = rows(&f.pool, f.account)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(phones, ["+15550000004", "+15550000006", "+15550000007"]);

    // The account's own keywords replace the defaults.
    sqlx::query(
        "INSERT INTO consent_keywords (account_id, opt_out, opt_in) VALUES ($1, '{BASTA}', '{VOLTA}')",
    )
    .bind(f.account)
    .execute(&f.pool)
    .await
    .expect("keywords");
    push(
        &q,
        f.account,
        &body(
            vec![
                text_message("15550000009", "basta", 70),
                text_message("15550000010", "STOP", 70),
                text_message("15550000006", "volta", 70),
            ],
            vec![],
        ),
    )
    .await;
    assert_eq!(consume(&f, &q).await, 0);
    let phones: Vec<String> = rows(&f.pool, f.account)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(phones, ["+15550000004", "+15550000007", "+15550000009"]);

    // Another account's body never touches this account's list.
    push(
        &q,
        Uuid::now_v7(),
        &body(vec![text_message("15550000007", "START", 80)], vec![]),
    )
    .await;
    assert_eq!(consume(&f, &q).await, 0);
    assert!(rows(&f.pool, f.account)
        .await
        .iter()
        .any(|r| r.0 == "+15550000007"));
}

#[tokio::test]
async fn failure_131050_adds_a_marketing_suppression_from_statuses_and_graph_errors() {
    let f = fixture(4).await;
    let phone_of = |i: usize| format!("+1415{i:07}");
    // Message 1's phone is already suppressed for everything: it stays so.
    sqlx::query(
        "INSERT INTO suppressions (account_id, phone, reason, scope, source)
         VALUES ($1, $2, 'opt_out', 'all', 'inbound:STOP')",
    )
    .bind(f.account)
    .bind(phone_of(1))
    .execute(&f.pool)
    .await
    .expect("existing");
    let failed = |i: usize, code: i64| {
        json!({"id": format!("wamid.{i}"), "status": "failed", "timestamp": (T0 + 5).to_string(),
               "recipient_id": "1", "biz_opaque_callback_data": f.messages[i].simple().to_string(),
               "errors": [{"code": code, "title": "stopped"}]})
    };
    let b = body(
        vec![],
        vec![failed(0, 131050), failed(1, 131050), failed(2, 131049)],
    );
    let unmatched = apply(&f.pool, &fold(std::slice::from_ref(&b)))
        .await
        .expect("apply");
    assert!(unmatched.is_empty());
    // Applied twice: nothing changes.
    apply(&f.pool, &fold(&[b])).await.expect("apply again");
    assert_eq!(
        rows(&f.pool, f.account).await,
        vec![
            row(&phone_of(0), "opt_out", "marketing", "whatsapp:131050"),
            row(&phone_of(1), "opt_out", "all", "inbound:STOP"),
        ]
    );

    // A synchronous Graph error 131050 while sending (message 3, claimed `sending`).
    sqlx::query("UPDATE messages SET status = 'sending', claimed_at = now() WHERE id = $1")
        .bind(f.messages[3])
        .execute(&f.pool)
        .await
        .expect("sending");
    let mut failures = Failures::default();
    failures.push(f.messages[3], Some(131050), "stopped marketing".into());
    assert_eq!(
        record_failed(&f.pool, &failures, None)
            .await
            .expect("record"),
        1
    );
    assert!(rows(&f.pool, f.account).await.contains(&row(
        &phone_of(3),
        "opt_out",
        "marketing",
        "whatsapp:131050"
    )));
}

#[tokio::test]
async fn a_test_mode_failure_131050_adds_nothing() {
    let f = fixture(1).await;
    sqlx::query("UPDATE dispatches SET test_mode = true WHERE id = $1")
        .bind(f.dispatch)
        .execute(&f.pool)
        .await
        .expect("test mode");
    let b = body(
        vec![],
        vec![
            json!({"id": "wamid.0", "status": "failed", "timestamp": (T0 + 5).to_string(),
               "recipient_id": "1", "biz_opaque_callback_data": f.messages[0].simple().to_string(),
               "errors": [{"code": 131050, "title": "stopped"}]}),
        ],
    );
    apply(&f.pool, &fold(&[b])).await.expect("apply");
    let status: String = sqlx::query_scalar("SELECT status FROM messages WHERE id = $1")
        .bind(f.messages[0])
        .fetch_one(&f.pool)
        .await
        .expect("status");
    assert_eq!(status, "failed");
    assert!(rows(&f.pool, f.account).await.is_empty());
}
