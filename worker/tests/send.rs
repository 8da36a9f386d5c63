//! Sending against the simulator: acceptance, retry classes, permanent failures, halts,
//! unknown outcomes, test mode, pair gap, graceful shutdown.

mod common;

use std::time::Duration;

use common::{fast_tuning, recipients, rejected, TestEnv, TOKEN};
use ezpulze_testkit::wait_until;
use serde_json::json;
use uuid::Uuid;

fn sim_numbers(ids: &[&str]) -> serde_json::Value {
    json!(ids
        .iter()
        .map(|id| json!({"phone_number_id": id, "access_token": TOKEN}))
        .collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_accepted_with_wamids_and_test_mode_uses_its_base() {
    let env = TestEnv::new(
        json!({"numbers": sim_numbers(&["1001"]), "pair_gap_ms": 0, "mps_limit": 1000}),
    )
    .await;
    // Test-mode sends go to a second simulator, a sandbox that knows the number with another
    // token: only the sandbox token gets them accepted, so the account's token never went.
    let other = ezpulze_simulator::spawn(
        ezpulze_simulator::SimConfig::default()
            .merged(&json!({
                "numbers": [{"phone_number_id": "1001", "access_token": "sandbox-only"}],
                "sandbox_token": ezpulze_common::config::DEFAULT_TEST_GRAPH_API_TOKEN,
                "pair_gap_ms": 0, "mps_limit": 1000
            }))
            .expect("cfg"),
    )
    .await
    .expect("sim");
    env.number("1001", 1000, TOKEN).await;
    let (live, live_ids) = env.dispatch("1001", &recipients(60, 0), false, true).await;
    let (test, test_ids) = env.dispatch("1001", &recipients(15, 100), true, true).await;
    // Every live job twice: duplicates are harmless (a row is claimed once).
    let again: Vec<_> = live_ids
        .iter()
        .map(|&message_id| ezpulze_common::jobs::SendJob {
            message_id,
            dispatch_id: live,
            account_id: env.account,
        })
        .collect();
    env.queue.push_bulk(&again).await.expect("push");
    let w = env
        .worker(&[("TEST_GRAPH_API_BASE", &other.url())], fast_tuning())
        .await;
    let c = env.settle(Duration::from_secs(20)).await;
    assert_eq!(c.get("accepted").copied(), Some(75), "{c:?}");
    let wamids: Vec<(Uuid, Option<String>, i32)> =
        sqlx::query_as("SELECT id, wamid, attempts FROM messages ORDER BY id")
            .fetch_all(&env.db)
            .await
            .expect("rows");
    let mut seen = std::collections::HashSet::new();
    for (id, wamid, attempts) in &wamids {
        let w = wamid
            .as_deref()
            .unwrap_or_else(|| panic!("{id} has no wamid"));
        assert!(w.starts_with("wamid."), "{w}");
        assert!(seen.insert(w.to_owned()), "wamid reused");
        assert_eq!(*attempts, 1);
    }
    assert_eq!(env.sim_stats().await["accepted"], 60);
    let other_stats: serde_json::Value = env
        .http
        .get(format!("{}/_sim/stats", other.url()))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(other_stats["accepted"], 15);
    assert_eq!(other_stats["sandbox_sends"], 15, "{other_stats}");
    for d in [live, test] {
        assert_eq!(env.dispatch_status(d).await, "sending");
    }
    assert_eq!(live_ids.len() + test_ids.len(), 75);
    assert_eq!(env.usage_failed().await, 0);
    let text = env.metrics(&w).await;
    assert!(
        text.contains("ezpulze_worker_sends_total{class=\"accepted\"}"),
        "{text}"
    );
    assert!(
        text.contains("ezpulze_worker_send_duration_seconds_bucket"),
        "{text}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_errors_recover() {
    // 5xx (500 code 1 / 503 code 2), 131000 and held requests answered 504 code 2.
    let env = TestEnv::new(json!({
        "numbers": sim_numbers(&["2001"]), "pair_gap_ms": 0, "mps_limit": 1000,
        "error_rates": {"5xx": 0.2, "131000": 0.1, "timeout": 0.1}, "timeout_ms": 200
    }))
    .await;
    env.number("2001", 1000, TOKEN).await;
    env.dispatch("2001", &recipients(150, 0), false, true).await;
    let w = env
        .worker(&[("SEND_MAX_ATTEMPTS", "10")], fast_tuning())
        .await;
    let c = env.settle(Duration::from_secs(40)).await;
    let accepted = c.get("accepted").copied().unwrap_or(0);
    let failed = c.get("failed").copied().unwrap_or(0);
    assert_eq!(accepted + failed, 150, "{c:?}");
    // Only capped codes may give up: 131000 after 3 attempts, code 1 after 2.
    let reasons: Vec<(Option<i32>, Option<String>)> =
        sqlx::query_as("SELECT error_code, error_title FROM messages WHERE status = 'failed'")
            .fetch_all(&env.db)
            .await
            .expect("failed");
    for (code, title) in &reasons {
        assert!(matches!(code, Some(131000) | Some(1)), "{code:?} {title:?}");
        assert!(
            title.as_deref().unwrap_or_default().contains("gave up"),
            "{title:?}"
        );
    }
    assert!(accepted >= 130, "{c:?}");
    let stats = env.sim_stats().await;
    assert_eq!(stats["accepted"].as_i64(), Some(accepted), "{stats}");
    assert!(
        rejected(&stats, "131000") > 0 && rejected(&stats, "1") + rejected(&stats, "2") > 0,
        "{stats}"
    );
    let retried: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE attempts > 1")
        .fetch_one(&env.db)
        .await
        .expect("retried");
    assert!(retried > 20, "{retried}");
    assert_eq!(env.usage_failed().await, failed);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_failures_are_recorded_with_code_title_and_usage() {
    let env = TestEnv::new(json!({
        "numbers": sim_numbers(&["3001"]), "pair_gap_ms": 0, "mps_limit": 1000,
        "templates": [{"name": "t", "language": "en", "body_params": 1}]
    }))
    .await;
    env.number("3001", 1000, TOKEN).await;
    // Every third message has two body parameters for a one-parameter template: 132000.
    let two = |i: usize| {
        if matches!(i % 3, 0) {
            vec![
                json!({"type": "text", "text": "a"}),
                json!({"type": "text", "text": "b"}),
            ]
        } else {
            vec![json!({"type": "text", "text": "a"})]
        }
    };
    env.dispatch_with("3001", &recipients(30, 0), false, true, two)
        .await;
    // The same mistake without a key (admin UI): not counted in any key's usage.
    env.dispatch_with("3001", &recipients(6, 500), false, false, two)
        .await;
    let w = env.worker(&[], fast_tuning()).await;
    let c = env.settle(Duration::from_secs(20)).await;
    assert_eq!(c.get("failed").copied(), Some(12), "{c:?}");
    assert_eq!(c.get("accepted").copied(), Some(24), "{c:?}");
    let rows: Vec<(Option<i32>, Option<String>, bool, i32)> = sqlx::query_as(
        "SELECT error_code, error_title, failed_at IS NOT NULL, attempts FROM messages WHERE status = 'failed'",
    )
    .fetch_all(&env.db)
    .await
    .expect("rows");
    for (code, title, failed_at, attempts) in rows {
        assert_eq!(code, Some(132000));
        assert!(title.unwrap_or_default().contains("132000"));
        assert!(failed_at);
        assert_eq!(attempts, 1, "permanent errors are not retried");
    }
    assert_eq!(env.usage_failed().await, 10);
    assert_eq!(rejected(&env.sim_stats().await, "132000"), 12);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_halts_the_number_and_pauses_its_dispatches() {
    let env = TestEnv::new(
        json!({"numbers": sim_numbers(&["4001"]), "pair_gap_ms": 0, "mps_limit": 1000}),
    )
    .await;
    // The stored token is not the one Meta knows: 401 code 190.
    env.number("4001", 1000, "EAAexpired-token").await;
    let (d1, _) = env.dispatch("4001", &recipients(40, 0), false, true).await;
    let w = env.worker(&[], fast_tuning()).await;
    wait_until(
        "the dispatch paused, nothing sending",
        Duration::from_secs(15),
        || async { env.dispatch_status(d1).await == "paused" && env.count("sending").await == 0 },
    )
    .await;
    // Every message is back to queued, none failed, none used an attempt.
    let c = env.counts().await;
    assert_eq!(c.get("queued").copied(), Some(40), "{c:?}");
    let used: i64 = sqlx::query_scalar("SELECT COALESCE(sum(attempts), 0)::bigint FROM messages")
        .fetch_one(&env.db)
        .await
        .expect("attempts");
    assert_eq!(used, 0);
    let code: Option<i32> = sqlx::query_scalar("SELECT max(error_code) FROM messages")
        .fetch_one(&env.db)
        .await
        .expect("code");
    assert_eq!(code, Some(190));
    assert_eq!(env.usage_failed().await, 0);
    let text = env.metrics(&w).await;
    assert!(
        text.contains("ezpulze_worker_halts_total{code=\"190\"}"),
        "{text}"
    );
    // Jobs pushed again for a paused dispatch are not sent.
    let before = rejected(&env.sim_stats().await, "190");
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM messages")
        .fetch_all(&env.db)
        .await
        .expect("ids");
    let jobs: Vec<_> = ids
        .iter()
        .map(|&message_id| ezpulze_common::jobs::SendJob {
            message_id,
            dispatch_id: d1,
            account_id: env.account,
        })
        .collect();
    env.queue.push_bulk(&jobs).await.expect("push");
    // Once every one of those jobs is settled (acknowledged, none held back for later).
    env.queue_idle(Duration::from_secs(10)).await;
    assert_eq!(rejected(&env.sim_stats().await, "190"), before);
    assert_eq!(env.counts().await.get("queued").copied(), Some(40));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_follow_the_unknown_outcome_policy() {
    // Every request is held longer than SEND_TIMEOUT_MS, and Meta takes the message anyway.
    let env = TestEnv::new(json!({
        "numbers": sim_numbers(&["5001"]), "pair_gap_ms": 0, "mps_limit": 1000,
        "error_rates": {"timeout": 1.0}, "timeout_ms": 1500, "timeout_accepts": true
    }))
    .await;
    env.number("5001", 1000, TOKEN).await;
    env.dispatch("5001", &recipients(10, 0), false, true).await;
    let w = env
        .worker(&[("SEND_TIMEOUT_MS", "300")], fast_tuning())
        .await;
    let c = env.settle(Duration::from_secs(15)).await;
    assert_eq!(c.get("failed").copied(), Some(10), "{c:?}");
    let titles: Vec<String> = sqlx::query_scalar("SELECT error_title FROM messages")
        .fetch_all(&env.db)
        .await
        .expect("titles");
    assert!(
        titles.iter().all(|t| t.starts_with("outcome unknown")),
        "{titles:?}"
    );
    assert_eq!(env.usage_failed().await, 10);
    // Policy fail never sends twice: one request per message (the simulator counts a held
    // request when it arrives), and no job is left that could send one again.
    env.queue_idle(Duration::from_secs(10)).await;
    assert_eq!(env.sim_stats().await["accepted"], 10);
    w.stop().await;

    // Policy resend: timeouts are retried (a duplicate risk the operator accepted).
    env.sim_put(json!({"error_rates": {"timeout": 0.3}, "timeout_ms": 1000}))
        .await;
    env.dispatch("5001", &recipients(20, 100), false, true)
        .await;
    let w = env
        .worker(
            &[
                ("SEND_TIMEOUT_MS", "300"),
                ("UNKNOWN_OUTCOME_POLICY", "resend"),
                ("SEND_MAX_ATTEMPTS", "20"),
            ],
            fast_tuning(),
        )
        .await;
    let c = env.settle(Duration::from_secs(20)).await;
    assert_eq!(c.get("accepted").copied(), Some(20), "{c:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pair_gap_holds_and_waits_are_not_failures() {
    let env = TestEnv::new(
        json!({"numbers": sim_numbers(&["6001"]), "mps_limit": 1000, "pair_gap_ms": 6000}),
    )
    .await;
    env.number("6001", 1000, TOKEN).await;
    // Three messages to one recipient among others.
    let mut to = recipients(20, 0);
    to.push(to[0].clone());
    to.push(to[0].clone());
    env.dispatch("6001", &to, false, true).await;
    let w = env.worker(&[], fast_tuning()).await;
    let c = env.settle(Duration::from_secs(30)).await;
    assert_eq!(c.get("accepted").copied(), Some(22), "{c:?}");
    // The simulator enforces the same 6 s gap: a message sent inside it would be rejected.
    let stats = env.sim_stats().await;
    assert_eq!(rejected(&stats, "131056"), 0, "{stats}");
    assert_eq!(stats["accepted"], 22);
    let used: i64 = sqlx::query_scalar("SELECT max(attempts)::bigint FROM messages")
        .fetch_one(&env.db)
        .await
        .expect("attempts");
    assert_eq!(used, 1, "a wait is not an attempt");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_sends_in_flight_and_hands_the_rest_back() {
    let env = TestEnv::new(
        json!({"numbers": sim_numbers(&["7001"]), "mps_limit": 1000, "pair_gap_ms": 0}),
    )
    .await;
    // 20/s (18/s with headroom): 200 messages need ~11 s.
    env.number("7001", 20, TOKEN).await;
    env.dispatch("7001", &recipients(200, 0), false, true).await;
    let w = env.worker(&[], fast_tuning()).await;
    env.accepted_at_least(10, Duration::from_secs(15)).await;
    w.stop().await;
    let c = env.counts().await;
    assert_eq!(c.get("sending"), None, "{c:?}");
    let accepted = c.get("accepted").copied().unwrap_or(0);
    assert!(accepted > 0 && accepted < 200, "{c:?}");
    assert_eq!(env.sim_stats().await["accepted"].as_i64(), Some(accepted));
    // Every message not sent is queued with its job back in the queue (none held).
    let q = env.queue.stats().await.expect("stats");
    assert_eq!(q.in_flight, 0, "{q:?}");
    assert_eq!(
        i64::try_from(q.depth + q.delayed).expect("jobs"),
        200 - accepted,
        "{q:?} {c:?}"
    );
    // Nothing lost: a new worker finishes the rest.
    let w = env.worker(&[], fast_tuning()).await;
    env.sim_put(json!({})).await;
    let c = env.settle(Duration::from_secs(30)).await;
    assert_eq!(c.get("accepted").copied(), Some(200), "{c:?}");
    assert_eq!(env.sim_stats().await["accepted"], 200);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_and_paused_dispatches_are_not_sent() {
    let env = TestEnv::new(
        json!({"numbers": sim_numbers(&["7501"]), "mps_limit": 1000, "pair_gap_ms": 0}),
    )
    .await;
    env.number("7501", 1000, TOKEN).await;
    let (cancelled, _) = env.dispatch("7501", &recipients(10, 0), false, true).await;
    let (paused, _) = env
        .dispatch("7501", &recipients(10, 100), false, true)
        .await;
    let (live, _) = env
        .dispatch("7501", &recipients(10, 200), false, true)
        .await;
    env.set_dispatch_status(cancelled, "cancelled").await;
    env.set_dispatch_status(paused, "paused").await;
    let w = env.worker(&[], fast_tuning()).await;
    env.accepted_at_least(10, Duration::from_secs(15)).await;
    // The queue holds nothing for them any more (acknowledged, not retried).
    let q = env.queue_idle(Duration::from_secs(10)).await;
    assert_eq!(q.dead, 0, "{q:?}");
    let c = env.counts().await;
    assert_eq!(c.get("queued").copied(), Some(20), "{c:?}");
    assert_eq!(env.sim_stats().await["accepted"], 10);
    assert_eq!(env.dispatch_status(live).await, "sending");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_messages_going_back_to_the_queue_leave_no_send_intent() {
    // Every send answered 5xx: each message is written once, answered, and re-queued with a
    // backoff. Its send intent must go, or a worker that later dies after claiming it again
    // (before writing its own intent) would make it an unknown outcome it is not.
    let env = TestEnv::new(json!({
        "numbers": sim_numbers(&["8101"]), "pair_gap_ms": 0, "mps_limit": 1000,
        "error_rates": {"5xx": 1.0}
    }))
    .await;
    env.number("8101", 1000, TOKEN).await;
    env.dispatch("8101", &recipients(10, 0), false, true).await;
    let w = env
        .worker(&[("SEND_MAX_ATTEMPTS", "10")], fast_tuning())
        .await;
    wait_until("all 10 answered", Duration::from_secs(15), || async {
        let answered: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM messages WHERE status = 'queued' AND attempts >= 1
               AND error_code IS NOT NULL",
        )
        .fetch_one(&env.db)
        .await
        .expect("count");
        answered == 10
    })
    .await;
    w.stop().await;
    assert!(env.sim_stats().await["rejected"]
        .as_object()
        .is_some_and(|r| !r.is_empty()));
    let queued: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM messages WHERE status = 'queued' AND attempts >= 1")
            .fetch_all(&env.db)
            .await
            .expect("ids");
    assert_eq!(queued.len(), 10);
    for id in queued {
        assert!(
            !env.has_intent(id).await,
            "message {id} still has a send intent"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halted_answer_leaves_no_send_intent_so_a_resumed_dispatch_survives_a_crash() {
    // A halt (190, bad token) is an answer: the request was written and Graph said no. Its
    // send intent must go when the row is re-queued; otherwise, once the dispatch is resumed,
    // a worker that dies after claiming it again (before writing its own intent) would leave
    // it to be failed as "outcome unknown".
    let env = TestEnv::new(
        json!({"numbers": sim_numbers(&["8201"]), "pair_gap_ms": 0, "mps_limit": 1000}),
    )
    .await;
    env.number("8201", 1000, "EAAexpired-token").await;
    let (d, ids) = env.dispatch("8201", &recipients(10, 0), false, true).await;
    let w = env.worker(&[], fast_tuning()).await;
    wait_until(
        "the dispatch paused, all queued",
        Duration::from_secs(15),
        || async { env.dispatch_status(d).await == "paused" && env.count("queued").await == 10 },
    )
    .await;
    w.stop().await;
    let answered: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM messages WHERE error_code = 190 ORDER BY id")
            .fetch_all(&env.db)
            .await
            .expect("answered");
    assert!(!answered.is_empty(), "no message was answered 190");
    assert_eq!(
        rejected(&env.sim_stats().await, "190"),
        answered.len() as u64
    );
    for id in &ids {
        assert!(
            !env.has_intent(*id).await,
            "message {id} still has a send intent"
        );
    }

    // The cause is fixed and the dispatch resumed; a worker claims every row and dies before
    // writing anything (rows `sending`, claims older than the lease, jobs back in the queue).
    env.set_token("8201", TOKEN).await;
    sqlx::query("UPDATE dispatches SET status = 'sending' WHERE id = $1")
        .bind(d)
        .execute(&env.db)
        .await
        .expect("resume");
    sqlx::query(
        "UPDATE messages SET status = 'sending', claimed_at = now() - interval '1 hour',
                attempts = attempts + 1",
    )
    .execute(&env.db)
    .await
    .expect("dead claim");
    let jobs: Vec<_> = ids
        .iter()
        .map(|&message_id| ezpulze_common::jobs::SendJob {
            message_id,
            dispatch_id: d,
            account_id: env.account,
        })
        .collect();
    env.queue.push_bulk(&jobs).await.expect("push");
    // Their requests never left: every one goes out normally, none is an unknown outcome.
    let w = env.worker(&[], fast_tuning()).await;
    let c = env.settle(Duration::from_secs(20)).await;
    assert_eq!(c.get("accepted").copied(), Some(10), "{c:?}");
    assert_eq!(env.sim_stats().await["accepted"], 10);
    assert_eq!(env.usage_failed().await, 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_number_now_belongs_to_another_account_fails_unsent() {
    let env = TestEnv::new(
        json!({"numbers": sim_numbers(&["8301"]), "pair_gap_ms": 0, "mps_limit": 1000}),
    )
    .await;
    env.number("8301", 1000, TOKEN).await;
    let (_, ids) = env.dispatch("8301", &recipients(4, 0), false, true).await;
    // The number moves to another account (whose token Meta would accept) after the send
    // was accepted.
    let other = Uuid::now_v7();
    sqlx::query("INSERT INTO accounts (id, name) VALUES ($1, 'other')")
        .bind(other)
        .execute(&env.db)
        .await
        .expect("account");
    sqlx::query("UPDATE phone_numbers SET account_id = $2 WHERE phone_number_id = $1")
        .bind("8301")
        .bind(other)
        .execute(&env.db)
        .await
        .expect("move");
    let w = env.worker(&[], fast_tuning()).await;
    let c = env.settle(Duration::from_secs(20)).await;
    assert_eq!(c.get("failed").copied(), Some(4), "{c:?}");
    assert_eq!(env.sim_stats().await["accepted"], 0);
    let titles: Vec<Option<String>> =
        sqlx::query_scalar("SELECT error_title FROM messages WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&env.db)
            .await
            .expect("titles");
    assert!(
        titles
            .iter()
            .all(|t| t.as_deref()
                == Some("the dispatch's phone number now belongs to another account")),
        "{titles:?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_messages_keep_no_send_intent() {
    // An intent only matters for a row still `sending`; once a row is written accepted or
    // failed (here: failed as an unknown outcome after a timeout) its intent is cleared, so
    // Redis does not hold one per message sent in the last 4 leases.
    let env = TestEnv::new(json!({
        "numbers": sim_numbers(&["8301"]), "pair_gap_ms": 0, "mps_limit": 0,
        "timeout_ms": 1500, "error_rates": {"timeout": 0.1}
    }))
    .await;
    env.number("8301", 10_000, TOKEN).await;
    let (_, ids) = env.dispatch("8301", &recipients(200, 0), false, true).await;
    let w = env
        .worker(&[("SEND_TIMEOUT_MS", "500")], fast_tuning())
        .await;
    let c = env.settle(Duration::from_secs(30)).await;
    w.stop().await;
    assert!(c.get("failed").copied().unwrap_or(0) > 0, "{c:?}");
    assert!(c.get("accepted").copied().unwrap_or(0) > 0, "{c:?}");
    for id in &ids {
        assert!(
            !env.has_intent(*id).await,
            "final message {id} still has a send intent"
        );
    }
}
