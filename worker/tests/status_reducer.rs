//! The status reducer against a real Postgres: monotone states, first timestamps, duplicates
//! and reordering as no-ops, counters moved by real transitions only, unknown messages parked.

use chrono::{TimeZone, Utc};
use ezpulze_common::jobs::WebhookBody;
use ezpulze_testkit::app::TestApp;
use ezpulze_testkit::db::count;
use ezpulze_testkit::{templates, wait_until, DEADLINE};
use ezpulze_worker::status::{apply, fold, retry_parked, Folded};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

struct Fixture {
    app: TestApp,
    pool: PgPool,
    key: Uuid,
    messages: Vec<Uuid>,
}

/// One dispatch of `n` messages sent through the API; message `i` then stands `accepted`
/// with wamid `wamid.<i>`.
async fn fixture(n: usize) -> Fixture {
    let app = TestApp::spawn().await;
    let sender = app.sender(templates::text(), json!({})).await;
    let pool = app.pool().await;
    // What a worker does (claim, the Graph API's answer with a wamid) is faked: no worker runs.
    let (_, messages) = app.accepted_dispatch(&sender, n).await;
    Fixture {
        app,
        pool,
        key: sender.key_id.parse().expect("key id"),
        messages,
    }
}

/// Event times of these tests: seconds after this (a plausible time; the consumer refuses
/// timestamps before 2000).
const T0: i64 = 1_700_000_000;

/// A webhook body of `(message, wamid, status, seconds after T0)` events.
fn body(events: &[(Uuid, &str, &str, i64)]) -> Vec<u8> {
    let statuses: Vec<_> = events
        .iter()
        .map(|(id, wamid, status, ts)| {
            let mut s = json!({"id": wamid, "status": status, "timestamp": (T0 + ts).to_string(), "recipient_id": "14155550100", "biz_opaque_callback_data": id.simple().to_string()});
            if *status == "failed" {
                s["errors"] = json!([{"code": 131049, "title": "engagement"}]);
            }
            s
        })
        .collect();
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "1", "display_phone_number": "1"}, "statuses": statuses}}]}]})).expect("json")
}

async fn usage(f: &Fixture) -> (i64, i64, i64, i64) {
    sqlx::query_as("SELECT sent, delivered, read, failed FROM api_key_usage WHERE key_id = $1")
        .bind(f.key)
        .fetch_one(&f.pool)
        .await
        .expect("usage")
}

async fn state(f: &Fixture, i: usize) -> (String, Option<i32>) {
    sqlx::query_as("SELECT status, error_code FROM messages WHERE id = $1")
        .bind(f.messages[i])
        .fetch_one(&f.pool)
        .await
        .expect("state")
}

#[tokio::test]
async fn monotone_states_and_counters_for_real_transitions_only() {
    let f = fixture(4).await;
    let m = &f.messages;
    // Message 0: read arrives before sent and delivered; duplicates everywhere.
    // Message 1: sent, then failed (an async failure after sent).
    // Message 2: failed, then delivered (delivery evidence outranks failed).
    // Message 3: only sent.
    // (message index, status, seconds after T0); message i has wamid `wamid.i`.
    let events: [&[(usize, &str, i64)]; 4] = [
        &[(0, "read", 30), (1, "sent", 10), (3, "sent", 10)],
        &[(0, "sent", 10), (0, "delivered", 20), (2, "failed", 15)],
        &[(1, "failed", 20), (0, "read", 30), (3, "sent", 10)],
        &[(2, "delivered", 25), (0, "sent", 10)],
    ];
    let wamids: Vec<String> = (0..m.len()).map(|i| format!("wamid.{i}")).collect();
    let batches: Vec<Vec<u8>> = events
        .iter()
        .map(|evs| {
            let evs: Vec<_> = evs
                .iter()
                .map(|&(i, status, ts)| (m[i], wamids[i].as_str(), status, ts))
                .collect();
            body(&evs)
        })
        .collect();
    for b in &batches {
        let unmatched = apply(&f.pool, &fold(std::slice::from_ref(b)))
            .await
            .expect("apply");
        assert!(unmatched.is_empty());
    }
    assert_eq!(state(&f, 0).await.0, "read");
    assert_eq!(state(&f, 1).await, ("failed".to_string(), Some(131049)));
    assert_eq!(state(&f, 2).await.0, "delivered");
    assert_eq!(state(&f, 3).await.0, "sent");
    // sent: 0, 1, 2 (delivered implies sent), 3; delivered: 0, 2; read: 0; failed: 1.
    assert_eq!(usage(&f).await, (4, 2, 1, 1));
    // Replaying everything changes nothing.
    for b in &batches {
        apply(&f.pool, &fold(std::slice::from_ref(b)))
            .await
            .expect("apply");
    }
    assert_eq!(usage(&f).await, (4, 2, 1, 1));
    let (sent_at,): (Option<chrono::DateTime<Utc>>,) =
        sqlx::query_as("SELECT sent_at FROM messages WHERE id = $1")
            .bind(m[0])
            .fetch_one(&f.pool)
            .await
            .expect("ts");
    assert_eq!(
        sent_at,
        Utc.timestamp_opt(T0 + 10, 0).single(),
        "the first timestamp is kept"
    );
}

#[tokio::test]
async fn events_match_by_wamid_without_callback_data_and_unknown_ones_wait() {
    let f = fixture(1).await;
    let by_wamid = Folded {
        wamid: Some("wamid.0".into()),
        sent: Utc.timestamp_opt(5, 0).single(),
        ..Folded::default()
    };
    let unknown_id = Uuid::now_v7();
    let early = Folded {
        message_id: Some(unknown_id),
        wamid: Some("wamid.x".into()),
        delivered: Utc.timestamp_opt(6, 0).single(),
        ..Folded::default()
    };
    let unmatched = apply(&f.pool, &[by_wamid, early.clone()])
        .await
        .expect("apply");
    assert_eq!(state(&f, 0).await.0, "sent");
    assert_eq!(unmatched.len(), 1);
    assert_eq!(unmatched[0].message_id, Some(unknown_id));
    // Park it the way the consumer does, then let the message appear: the retry applies it.
    sqlx::query("INSERT INTO pending_statuses (message_id, wamid, status, event_at) VALUES ($1, 'wamid.x', 'delivered', now())")
        .bind(unknown_id).execute(&f.pool).await.expect("park");
    assert_eq!(
        retry_parked(&f.pool).await.expect("retry"),
        0,
        "still unknown"
    );
    let dispatch: Uuid = sqlx::query_scalar("SELECT dispatch_id FROM messages LIMIT 1")
        .fetch_one(&f.pool)
        .await
        .expect("d");
    // A message appearing after its status (with the id the status named) is a state the API
    // cannot produce: copied from the dispatch's other message.
    sqlx::query("INSERT INTO messages (id, dispatch_id, account_id, key_id, to_phone, payload, status) SELECT $1, dispatch_id, account_id, key_id, to_phone, payload, 'accepted' FROM messages WHERE dispatch_id = $2 LIMIT 1")
        .bind(unknown_id).bind(dispatch).execute(&f.pool).await.expect("late message");
    assert_eq!(retry_parked(&f.pool).await.expect("retry"), 1);
    let s: String = sqlx::query_scalar("SELECT status FROM messages WHERE id = $1")
        .bind(unknown_id)
        .fetch_one(&f.pool)
        .await
        .expect("s");
    assert_eq!(s, "delivered");
    let left = count(&f.pool, "SELECT count(*) FROM pending_statuses").await;
    assert_eq!(left, 0);
}

#[tokio::test]
async fn the_consumer_loop_reads_the_queue_applies_and_acks() {
    let f = fixture(1).await;
    let config = f.app.config();
    let queue: ezpulze_queue::Queue<WebhookBody> =
        ezpulze_runtime::queues::connect(&config, ezpulze_runtime::queues::webhooks(&config))
            .await
            .expect("queue");
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(ezpulze_worker::status::run(
        f.pool.clone(),
        queue.clone(),
        config.status_batch,
        cancel.clone(),
    ));
    let b = body(&[(f.messages[0], "wamid.0", "delivered", 10)]);
    let raw: Box<serde_json::value::RawValue> = serde_json::from_slice(&b).expect("json");
    queue
        .push(&WebhookBody {
            numbers: None,
            wabas: Vec::new(),
            body: raw,
        })
        .await
        .expect("push");
    wait_until("the consumer applied the event", DEADLINE, || async {
        state(&f, 0).await.0 == "delivered"
    })
    .await;
    wait_until("the event acked and deleted", DEADLINE, || async {
        let stats = queue.stats().await.expect("stats");
        (stats.depth, stats.in_flight) == (0, 0)
    })
    .await;
    cancel.cancel();
    task.await.expect("join").expect("run");
}

/// Pushes one webhook body onto `queue`, verified for `account` (or unscoped).
async fn push_body(queue: &ezpulze_queue::Queue<WebhookBody>, b: &[u8], account: Option<Uuid>) {
    let raw: Box<serde_json::value::RawValue> = serde_json::from_slice(b).expect("json");
    let numbers = account.map(|account_id| {
        vec![ezpulze_common::jobs::VerifiedNumber {
            phone_number_id: "1".into(),
            account_id,
        }]
    });
    queue
        .push(&WebhookBody {
            numbers,
            wabas: Vec::new(),
            body: raw,
        })
        .await
        .expect("push");
}

#[tokio::test]
async fn batches_are_read_in_steps_and_parked_events_are_bounded_per_account() {
    let f = fixture(300).await;
    let account: Uuid = sqlx::query_scalar("SELECT account_id FROM messages LIMIT 1")
        .fetch_one(&f.pool)
        .await
        .expect("account");
    let config = f.app.config();
    let queue: ezpulze_queue::Queue<WebhookBody> =
        ezpulze_runtime::queues::connect(&config, ezpulze_runtime::queues::webhooks(&config))
            .await
            .expect("queue");
    // The bodies are verified for the account's number "1", the dispatch's.
    sqlx::query("UPDATE dispatches SET phone_number_id = '1'")
        .execute(&f.pool)
        .await
        .expect("number");
    // One body per message, more than one read step of the consumer holds.
    for (i, id) in f.messages.iter().enumerate() {
        let b = body(&[(*id, &format!("wamid.{i}"), "delivered", 10)]);
        push_body(&queue, &b, Some(account)).await;
    }
    // The account already holds as many parked events as it may; another account holds none.
    sqlx::query(
        "INSERT INTO pending_statuses (message_id, wamid, status, event_at, account_id)
         SELECT gen_random_uuid(), 'wamid.p' || i, 'sent', now(), $1
           FROM generate_series(1, $2) i",
    )
    .bind(account)
    .bind(ezpulze_worker::status::MAX_PENDING_PER_ACCOUNT)
    .execute(&f.pool)
    .await
    .expect("fill");
    let other = Uuid::now_v7();
    for (who, n) in [(account, 0), (other, 1)] {
        let b = body(&[(Uuid::now_v7(), &format!("wamid.unknown{n}"), "sent", 10)]);
        push_body(&queue, &b, Some(who)).await;
    }
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(ezpulze_worker::status::run(
        f.pool.clone(),
        queue.clone(),
        config.status_batch,
        cancel.clone(),
    ));
    wait_until("every body settled", DEADLINE, || async {
        let stats = queue.stats().await.expect("stats");
        (stats.depth, stats.in_flight) == (0, 0)
    })
    .await;
    cancel.cancel();
    task.await.expect("join").expect("run");
    let delivered = count(
        &f.pool,
        "SELECT count(*) FROM messages WHERE status = 'delivered'",
    )
    .await;
    assert_eq!(delivered, 300);
    let parked: Vec<(Option<Uuid>, i64)> = sqlx::query_as(
        "SELECT account_id, count(*) FROM pending_statuses GROUP BY account_id ORDER BY 2",
    )
    .fetch_all(&f.pool)
    .await
    .expect("parked");
    assert_eq!(
        parked,
        vec![
            (Some(other), 1),
            (
                Some(account),
                ezpulze_worker::status::MAX_PENDING_PER_ACCOUNT
            )
        ]
    );
}

/// A message failed as an unknown outcome (its worker died mid-send) is upgraded by what
/// WhatsApp later reports for it: `sent`/`delivered` make it sent (the wamid is kept, the key's
/// `failed` counter gives it back); a real WhatsApp failure stays failed.
#[tokio::test]
async fn a_status_for_an_unknown_outcome_upgrades_it_and_gives_back_its_failure() {
    let f = fixture(3).await;
    let m = &f.messages;
    // What the recovery of a dead worker's rows leaves: failed, our title, no wamid; message
    // 2 failed with WhatsApp's own error. The key counted three failures.
    sqlx::query(
        "UPDATE messages SET status = 'failed', failed_at = now(), wamid = NULL, error_code = NULL,
                error_title = $2 WHERE id = ANY($1)",
    )
    .bind(&m[..2])
    .bind(ezpulze_common::model::unknown_outcome::WORKER_STOPPED)
    .execute(&f.pool)
    .await
    .expect("unknown");
    sqlx::query(
        "UPDATE messages SET status = 'failed', failed_at = now(), error_code = 131026,
                error_title = 'undeliverable' WHERE id = $1",
    )
    .bind(m[2])
    .execute(&f.pool)
    .await
    .expect("failed");
    sqlx::query("UPDATE api_key_usage SET failed = 3 WHERE key_id = $1")
        .bind(f.key)
        .execute(&f.pool)
        .await
        .expect("usage");

    let b = body(&[
        (m[0], "wamid.late0", "sent", 10),
        (m[1], "wamid.late1", "delivered", 12),
        (m[1], "wamid.late1", "sent", 11),
        (m[2], "wamid.2", "failed", 9),
    ]);
    let unmatched = apply(&f.pool, &fold(std::slice::from_ref(&b)))
        .await
        .expect("apply");
    assert!(unmatched.is_empty());
    let row = |i: usize| {
        let pool = f.pool.clone();
        let id = m[i];
        async move {
            sqlx::query_as::<_, (String, Option<String>, Option<String>, bool)>(
                "SELECT status, wamid, error_title, failed_at IS NOT NULL FROM messages WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&pool)
            .await
            .expect("row")
        }
    };
    assert_eq!(
        row(0).await,
        ("sent".into(), Some("wamid.late0".into()), None, false)
    );
    assert_eq!(
        row(1).await,
        ("delivered".into(), Some("wamid.late1".into()), None, false)
    );
    assert_eq!(row(2).await.0, "failed");
    assert_eq!(
        state(&f, 2).await.1,
        Some(131049),
        "WhatsApp's own error code"
    );
    // sent: 0 and 1; delivered: 1; failed: only 2.
    assert_eq!(usage(&f).await, (2, 1, 0, 1));
    // A replay changes nothing.
    apply(&f.pool, &fold(std::slice::from_ref(&b)))
        .await
        .expect("apply");
    assert_eq!(usage(&f).await, (2, 1, 0, 1));
}

/// The worker's accepted-write and the status reducer on the same rows at the same time:
/// the worker records answers in the order its sends finished (here the reverse of the id
/// order, the worst case), the reducer applies the statuses of the same messages. Both lock
/// the rows in id order, so neither ever waits for the other in a cycle (`deadlock detected`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_accepted_sends_and_applying_their_statuses_never_deadlock() {
    let f = fixture(1).await;
    let n = 2000;
    // More rows of the same dispatch (a batch of answers and statuses), in one statement.
    let template: (Uuid, Uuid, Option<Uuid>) =
        sqlx::query_as("SELECT dispatch_id, account_id, key_id FROM messages LIMIT 1")
            .fetch_one(&f.pool)
            .await
            .expect("template row");
    let mut ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    ids.sort_unstable();
    sqlx::query(
        "INSERT INTO messages (id, dispatch_id, account_id, key_id, to_phone, payload, status)
         SELECT u.id, $2, $3, $4, '14155550100', '{}', 'sending' FROM UNNEST($1::uuid[]) u(id)",
    )
    .bind(&ids)
    .bind(template.0)
    .bind(template.1)
    .bind(template.2)
    .execute(&f.pool)
    .await
    .expect("rows");
    let wamids: Vec<String> = (0..n).map(|i| format!("wamid.d{i}")).collect();
    let sent = Utc.timestamp_opt(T0, 0).single();
    let events: Vec<Folded> = ids
        .iter()
        .map(|id| Folded {
            message_id: Some(*id),
            sent,
            ..Folded::default()
        })
        .collect();
    let mut errors = Vec::new();
    for _round in 0..15 {
        sqlx::query(
            "UPDATE messages SET status = 'sending', wamid = NULL, sent_at = NULL WHERE id = ANY($1)",
        )
        .bind(&ids)
        .execute(&f.pool)
        .await
        .expect("reset");
        let (rev_ids, rev_wamids): (Vec<Uuid>, Vec<String>) = ids
            .iter()
            .copied()
            .zip(wamids.iter().cloned())
            .rev()
            .unzip();
        let pool = f.pool.clone();
        let accepted = tokio::spawn(async move {
            ezpulze_worker::db::record_accepted(&pool, &rev_ids, &rev_wamids).await
        });
        let pool = f.pool.clone();
        let evs = events.clone();
        let statuses = tokio::spawn(async move { apply(&pool, &evs).await.map(|_| ()) });
        let (a, s) = (accepted.await.expect("join"), statuses.await.expect("join"));
        if let Err(e) = a {
            errors.push(format!("record_accepted: {e:#}"));
        }
        if let Err(e) = s {
            errors.push(format!("apply: {e:#}"));
        }
    }
    assert!(errors.is_empty(), "{errors:#?}");
    let sent_rows = count(
        &f.pool,
        "SELECT count(*) FROM messages WHERE status = 'sent' AND wamid LIKE 'wamid.d%'",
    )
    .await;
    assert_eq!(sent_rows, n as i64, "every row ends sent with its wamid");
}
