//! The portfolio messaging limit against the simulator enforcing the same tier
//! (`docs/messaging-limits.md`): messages over the budget wait as `deferred` and go once the
//! (shortened) window moves; recipients inside a customer-service window do not count; two
//! accounts' budgets are independent.

mod common;

use std::time::Duration;

use common::{fast_tuning, recipients, TestEnv, TOKEN};
use ezpulze_common::jobs::{VerifiedNumber, WebhookBody};
use ezpulze_testkit::wait_until;
use serde_json::{json, Value};
use uuid::Uuid;

/// The window of the tests (the engine's and the simulator's): long enough for a loaded host
/// to check a few thousand recipients well inside it, so what is over the budget is.
const WINDOW_SECS: u64 = 30;

async fn set_tier(env: &TestEnv, account: Uuid, tier: &str) {
    sqlx::query("UPDATE accounts SET messaging_tier = $2 WHERE id = $1")
        .bind(account)
        .bind(tier)
        .execute(&env.db)
        .await
        .expect("tier");
}

/// A simulator knowing `numbers` (each its own portfolio), at `tier` with the test's window.
fn sim(numbers: &[&str], tier: &str) -> Value {
    json!({
        "numbers": numbers.iter().map(|n| json!({"phone_number_id": n, "access_token": TOKEN})).collect::<Vec<_>>(),
        "pair_gap_ms": 0, "mps_limit": 0,
        "messaging_tier": tier, "messaging_window_ms": WINDOW_SECS * 1000,
    })
}

/// The value of a counter series in a Prometheus text (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn counts_of(env: &TestEnv, dispatch: Uuid) -> std::collections::HashMap<String, i64> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM messages WHERE dispatch_id = $1 GROUP BY status",
    )
    .bind(dispatch)
    .fetch_all(&env.db)
    .await
    .expect("counts");
    rows.into_iter().collect()
}

fn n(c: &std::collections::HashMap<String, i64>, s: &str) -> i64 {
    c.get(s).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2k_tier_sends_2000_defers_500_and_sends_them_once_the_window_moves() {
    let env = TestEnv::new(sim(&["1001"], "TIER_2K")).await;
    env.number("1001", 1000, TOKEN).await;
    set_tier(&env, env.account, "TIER_2K").await;
    let window = WINDOW_SECS.to_string();
    let w = env
        .worker(&[("MESSAGING_WINDOW_SECS", &window)], fast_tuning())
        .await;
    let (dispatch, _) = env
        .dispatch("1001", &recipients(2_500, 0), false, true)
        .await;
    // Every message went through the budget once: 2,000 sent, 500 held.
    wait_until(
        "every message sent or deferred",
        Duration::from_secs(WINDOW_SECS),
        || async {
            let c = counts_of(&env, dispatch).await;
            n(&c, "accepted") + n(&c, "deferred") == 2_500
        },
    )
    .await;
    let c = counts_of(&env, dispatch).await;
    assert_eq!(
        (n(&c, "accepted"), n(&c, "deferred")),
        (2_000, 500),
        "{c:?}"
    );
    // A deferred row says why and when, and used no attempt.
    let (reasons, attempts, due): (Vec<String>, i64, i64) = sqlx::query_as(
        "SELECT array_agg(DISTINCT deferred_reason), max(attempts)::int8,
                count(*) FILTER (WHERE next_attempt_at > now())
           FROM messages WHERE dispatch_id = $1 AND status = 'deferred'",
    )
    .bind(dispatch)
    .fetch_one(&env.db)
    .await
    .expect("deferred rows");
    assert_eq!(reasons, vec!["messaging_limit".to_owned()]);
    assert_eq!(attempts, 0);
    assert!(due > 0, "the deferred rows wait for the window");
    let text = env.metrics(&w).await;
    assert!(
        metric(
            &text,
            "ezpulze_worker_deferred_total{reason=\"messaging_limit\"}"
        ) >= 500.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "ezpulze_worker_messaging_budget_max_used_ratio"),
        1.0
    );
    assert_eq!(
        metric(&text, "ezpulze_worker_messaging_budget_near_limit_accounts"),
        1.0
    );
    // The window moves: the held 500 go.
    wait_until(
        "the deferred messages sent",
        Duration::from_secs(WINDOW_SECS * 4),
        || async { n(&counts_of(&env, dispatch).await, "accepted") == 2_500 },
    )
    .await;
    let stats = env.sim_stats().await;
    assert_eq!(stats["accepted"], 2_500, "{stats}");
    // The simulator enforced the same tier and saw no message over it.
    assert_eq!(stats["messaging_limit"]["over_limit"], 0, "{stats}");
    assert_eq!(stats["messaging_limit"]["counted"], 2_500, "{stats}");
    let text = env.metrics(&w).await;
    assert_eq!(
        metric(
            &text,
            "ezpulze_worker_messaging_budget_checks_total{result=\"counted\"}"
        ),
        2_500.0,
        "the engine's count is the simulator's"
    );
    assert_eq!(env.count("failed").await, 0);
    assert_eq!(env.usage_failed().await, 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_in_a_customer_service_window_is_not_counted() {
    let mut cfg = sim(&["1001"], "TIER_250");
    cfg["webhook_url"] = json!("http://127.0.0.1:9/unused");
    let env = TestEnv::new(cfg).await;
    env.number("1001", 1000, TOKEN).await;
    set_tier(&env, env.account, "TIER_250").await;
    let window = WINDOW_SECS.to_string();
    let w = env
        .worker(&[("MESSAGING_WINDOW_SECS", &window)], fast_tuning())
        .await;
    // 10 users wrote to the business: the status consumer records their windows from the
    // inbound webhook (as the api queues it, the number verified), and the simulator knows.
    let chatting = recipients(10, 9_000);
    let config = ezpulze_common::Config::from_source(&env.settings(&[])).expect("config");
    let webhooks: ezpulze_queue::Queue<WebhookBody> =
        ezpulze_runtime::queues::connect(&config, ezpulze_runtime::queues::webhooks(&config))
            .await
            .expect("webhook queue");
    let now = chrono::Utc::now().timestamp();
    let messages: Vec<Value> = chatting
        .iter()
        .enumerate()
        .map(|(i, from)| {
            // A text and, for one user, an image: any message opens the window.
            if i == 0 {
                json!({"from": from, "id": format!("wamid.in.{i}"), "timestamp": now.to_string(),
                       "type": "image", "image": {"id": "1", "mime_type": "image/jpeg"}})
            } else {
                json!({"from": from, "id": format!("wamid.in.{i}"), "timestamp": now.to_string(),
                       "type": "text", "text": {"body": "hello"}})
            }
        })
        .collect();
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1001"},
                  "contacts": chatting.iter().map(|f| json!({"profile": {"name": "A"}, "wa_id": f})).collect::<Vec<_>>(),
                  "messages": messages}}]}]});
    webhooks
        .push(&WebhookBody {
            numbers: Some(vec![VerifiedNumber {
                phone_number_id: "1001".into(),
                account_id: env.account,
            }]),
            wabas: Vec::new(),
            body: serde_json::value::to_raw_value(&body).expect("raw"),
        })
        .await
        .expect("push");
    for r in &chatting {
        let resp = env
            .http
            .post(format!("{}/_sim/inbound", env.sim.url()))
            .json(&json!({"from": r, "to_number": "1001", "text": "hello"}))
            .send()
            .await
            .expect("inbound");
        assert_eq!(resp.status(), 202);
    }
    let keys = ezpulze_common::keyspace::Keyspace::new(env.prefix.clone());
    let mut conn = redis::Client::open(ezpulze_testkit::redis_url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    wait_until(
        "the senders' windows recorded",
        Duration::from_secs(10),
        || {
            let mut conn = conn.clone();
            let key = keys.budget_inbound(&env.account);
            async move {
                let n: i64 = redis::cmd("ZCARD")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .expect("zcard");
                n == 10
            }
        },
    )
    .await;
    let _ = &mut conn;
    // 250 new users fill the budget; the 10 in their windows still go.
    let mut to = recipients(250, 0);
    to.extend(chatting.iter().cloned());
    let (dispatch, _) = env.dispatch("1001", &to, false, true).await;
    wait_until("all 260 sent", Duration::from_secs(WINDOW_SECS), || async {
        n(&counts_of(&env, dispatch).await, "accepted") == 260
    })
    .await;
    // One more new user is over the budget.
    let (more, _) = env
        .dispatch("1001", &recipients(1, 5_000), false, true)
        .await;
    wait_until(
        "the 251st user deferred",
        Duration::from_secs(10),
        || async { n(&counts_of(&env, more).await, "deferred") == 1 },
    )
    .await;
    let stats = env.sim_stats().await;
    assert_eq!(stats["messaging_limit"]["service_window"], 10, "{stats}");
    assert_eq!(stats["messaging_limit"]["over_limit"], 0, "{stats}");
    let text = env.metrics(&w).await;
    assert!(
        metric(
            &text,
            "ezpulze_worker_messaging_budget_checks_total{result=\"service_window\"}"
        ) >= 10.0,
        "a message planned again (a late slot) is checked again: {text}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_budgets_are_independent_and_test_mode_is_not_counted() {
    let mut cfg = sim(&["1001", "2002"], "TIER_250");
    cfg["sandbox_token"] = json!(ezpulze_common::config::DEFAULT_TEST_GRAPH_API_TOKEN);
    let env = TestEnv::new(cfg).await;
    env.number("1001", 1000, TOKEN).await;
    let other = env.other_account().await;
    env.number_of(other, "2002", 1000, TOKEN).await;
    set_tier(&env, env.account, "TIER_250").await;
    set_tier(&env, other, "TIER_250").await;
    let window = WINDOW_SECS.to_string();
    let w = env
        .worker(&[("MESSAGING_WINDOW_SECS", &window)], fast_tuning())
        .await;
    // The first account goes over its budget; the other's is untouched by it.
    let (a, _) = env.dispatch("1001", &recipients(300, 0), false, true).await;
    let (b, _) = env
        .dispatch_of(
            other,
            "2002",
            &recipients(250, 10_000),
            false,
            false,
            false,
            |_| vec![json!({"type": "text", "text": "Ana"})],
        )
        .await;
    // Test mode never reaches Meta: not counted, even past the budget.
    let (t, _) = env
        .dispatch("1001", &recipients(20, 20_000), true, true)
        .await;
    wait_until(
        "every message sent or deferred",
        Duration::from_secs(WINDOW_SECS),
        || async {
            let ca = counts_of(&env, a).await;
            let cb = counts_of(&env, b).await;
            let ct = counts_of(&env, t).await;
            n(&ca, "accepted") + n(&ca, "deferred") == 300
                && n(&cb, "accepted") == 250
                && n(&ct, "accepted") == 20
        },
    )
    .await;
    let ca = counts_of(&env, a).await;
    assert_eq!(
        (n(&ca, "accepted"), n(&ca, "deferred")),
        (250, 50),
        "{ca:?}"
    );
    let stats = env.sim_stats().await;
    assert_eq!(stats["messaging_limit"]["over_limit"], 0, "{stats}");
    assert_eq!(stats["sandbox_sends"], 20, "{stats}");
    w.stop().await;
}
