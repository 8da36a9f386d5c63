//! Meta's WABA-level webhooks in the status consumer (`docs/whatsapp-events.md`), against a
//! real Postgres, Redis and the simulator: a FLAGGED number's dispatches pause with their
//! reason and UNFLAGGED resumes those only; a THROUGHPUT_UPGRADE raises the number's rate in
//! every running worker within about a second (the numbers' epoch), without a restart; account
//! restrictions pause the account's dispatches; bad input (another account's number, a tier
//! Meta does not use, a WABA the signature did not verify, unknown fields) changes nothing and
//! is counted.

mod common;

use std::time::{Duration, Instant};

use common::{fast_tuning, recipients, TestEnv, Worker, TOKEN};
use ezpulze_common::jobs::{VerifiedWaba, WebhookBody};
use ezpulze_common::Config;
use ezpulze_testkit::wait_until;
use serde_json::{json, Value};
use uuid::Uuid;

const WABA: &str = "4001";

async fn push(env: &TestEnv, account: Uuid, body: Value) {
    let config = Config::from_source(&env.settings(&[])).expect("config");
    let queues: Vec<ezpulze_queue::Queue<WebhookBody>> =
        ezpulze_runtime::queues::connect_webhooks(&config)
            .await
            .expect("webhook queues");
    queues[0]
        .push(&WebhookBody {
            numbers: Some(Vec::new()),
            wabas: vec![VerifiedWaba {
                waba_id: WABA.into(),
                account_id: account,
            }],
            body: serde_json::value::to_raw_value(&body).expect("raw"),
        })
        .await
        .expect("push");
}

fn quality(entry_id: &str, values: &[Value]) -> Value {
    let changes: Vec<Value> = values
        .iter()
        .map(|v| json!({"field": "phone_number_quality_update", "value": v}))
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": entry_id, "time": 1_749_416_383, "changes": changes}]})
}

async fn accepted_of(env: &TestEnv, dispatch: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE dispatch_id = $1 AND status = 'accepted'",
    )
    .bind(dispatch)
    .fetch_one(&env.db)
    .await
    .expect("accepted")
}

async fn dispatch_row(env: &TestEnv, dispatch: Uuid) -> (String, Option<String>) {
    sqlx::query_as("SELECT status, pause_reason FROM dispatches WHERE id = $1")
        .bind(dispatch)
        .fetch_one(&env.db)
        .await
        .expect("dispatch")
}

async fn number_row(env: &TestEnv, pnid: &str) -> (bool, i32, String, Option<String>) {
    sqlx::query_as(
        "SELECT flagged, messages_per_second, throughput_level, quality_event
           FROM phone_numbers WHERE phone_number_id = $1",
    )
    .bind(pnid)
    .fetch_one(&env.db)
    .await
    .expect("number")
}

async fn tier(env: &TestEnv, account: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT messaging_tier FROM accounts WHERE id = $1")
        .bind(account)
        .fetch_one(&env.db)
        .await
        .expect("tier")
}

async fn wait_status(env: &TestEnv, dispatch: Uuid, status: &str) {
    wait_until(
        &format!("dispatch {status}"),
        Duration::from_secs(10),
        || async { dispatch_row(env, dispatch).await.0 == status },
    )
    .await;
}

async fn set_display(env: &TestEnv, pnid: &str, display: &str) {
    sqlx::query("UPDATE phone_numbers SET display_phone_number = $2 WHERE phone_number_id = $1")
        .bind(pnid)
        .bind(display)
        .execute(&env.db)
        .await
        .expect("display");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagged_pauses_the_numbers_dispatches_and_unflagged_resumes_only_those() {
    let env = TestEnv::new(json!({
        "numbers": [{"phone_number_id": "7001", "access_token": TOKEN},
                    {"phone_number_id": "7002", "access_token": TOKEN}],
        "mps_limit": 0, "pair_gap_ms": 0
    }))
    .await;
    env.number("7001", 20, TOKEN).await;
    set_display(&env, "7001", "+1 555-000-1111").await;
    let other = env.other_account().await;
    env.number_of(other, "7002", 20, TOKEN).await;
    set_display(&env, "7002", "15550002222").await;
    let (flagged, _) = env.dispatch("7001", &recipients(400, 0), false, true).await;
    // Paused by hand before: UNFLAGGED must not resume it.
    let (by_hand, _) = env
        .dispatch("7001", &recipients(20, 5_000), false, true)
        .await;
    env.set_dispatch_status(by_hand, "paused").await;
    let (theirs, _) = env
        .dispatch_of(
            other,
            "7002",
            &recipients(400, 10_000),
            false,
            false,
            true,
            |_| vec![json!({"type": "text", "text": "Ana"})],
        )
        .await;
    // An endpoint that wants the dispatch events (disabled: its events are kept, not sent).
    sqlx::query(
        "INSERT INTO webhook_endpoints (id, account_id, url, events, secret_enc, active, disabled_at)
         VALUES ($1, $2, 'http://127.0.0.1:9/hook', '{dispatch.paused,dispatch.resumed}', '\\x00',
                 false, now())",
    )
    .bind(Uuid::now_v7())
    .bind(env.account)
    .execute(&env.db)
    .await
    .expect("endpoint");
    let w = env.worker(&[], fast_tuning()).await;
    wait_until("sending", Duration::from_secs(10), || async {
        accepted_of(&env, flagged).await >= 10
    })
    .await;

    // FLAGGED for our number (its display written as Meta does, unknown fields around),
    // FLAGGED for the other account's number, a tier Meta does not use.
    push(
        &env,
        env.account,
        quality(
            WABA,
            &[
                json!({"display_phone_number": "15550001111", "event": "FLAGGED", "current_limit": "TIER_1K",
                       "future_field": {"nested": true}}),
                json!({"display_phone_number": "15550002222", "event": "FLAGGED"}),
            ],
        ),
    )
    .await;
    // A WABA the signature did not verify: ignored.
    push(
        &env,
        env.account,
        quality(
            "4999",
            &[json!({"display_phone_number": "15550001111", "event": "THROUGHPUT_UPGRADE"})],
        ),
    )
    .await;
    wait_status(&env, flagged, "paused").await;
    assert_eq!(
        dispatch_row(&env, flagged).await,
        ("paused".into(), Some("number_flagged".into()))
    );
    let (is_flagged, mps, level, event) = number_row(&env, "7001").await;
    assert!(is_flagged);
    assert_eq!(
        (mps, level.as_str()),
        (20, "STANDARD"),
        "no upgrade from an unverified WABA"
    );
    assert_eq!(event.as_deref(), Some("FLAGGED"));
    assert_eq!(
        tier(&env, env.account).await,
        None,
        "TIER_1K changes nothing"
    );
    // The other account's number and dispatch are untouched.
    assert!(!number_row(&env, "7002").await.0);
    assert_eq!(dispatch_row(&env, theirs).await, ("sending".into(), None));
    assert_eq!(dispatch_row(&env, by_hand).await, ("paused".into(), None));
    // At most the batch in flight goes out after the pause.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let halted = accepted_of(&env, flagged).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(accepted_of(&env, flagged).await, halted, "the pause holds");

    push(
        &env,
        env.account,
        quality(
            WABA,
            &[
                json!({"display_phone_number": "15550001111", "event": "UNFLAGGED",
                     "max_daily_conversations_per_business": "TIER_10K"}),
            ],
        ),
    )
    .await;
    wait_status(&env, flagged, "sending").await;
    assert_eq!(dispatch_row(&env, flagged).await.1, None);
    wait_until("sending again", Duration::from_secs(10), || async {
        accepted_of(&env, flagged).await > halted
    })
    .await;
    assert!(!number_row(&env, "7001").await.0);
    assert_eq!(tier(&env, env.account).await.as_deref(), Some("TIER_10K"));
    assert_eq!(
        dispatch_row(&env, by_hand).await,
        ("paused".into(), None),
        "a pause by hand stays"
    );
    // One dispatch.paused and one dispatch.resumed event, for the flagged number's dispatch.
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_type, body->'data'->>'dispatch_id' FROM webhook_deliveries ORDER BY created_at",
    )
    .fetch_all(&env.db)
    .await
    .expect("deliveries");
    assert_eq!(
        events,
        vec![
            ("dispatch.paused".to_owned(), flagged.to_string()),
            ("dispatch.resumed".to_owned(), flagged.to_string())
        ]
    );
    let metrics = env.metrics(&w).await;
    for line in [
        "ezpulze_status_rejected_total{reason=\"other_account\"}",
        "ezpulze_whatsapp_events_total{field=\"phone_number_quality_update\",outcome=\"unknown_tier\"}",
        "ezpulze_whatsapp_events_total{field=\"phone_number_quality_update\",outcome=\"unverified_waba\"}",
        "ezpulze_dispatches_paused_by_meta_total{reason=\"number_flagged\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    w.stop().await;
}

/// Sim accepted per second over `window`.
async fn rate(env: &TestEnv, window: Duration) -> f64 {
    let before = env.sim_stats().await["accepted"].as_u64().unwrap_or(0);
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let after = env.sim_stats().await["accepted"].as_u64().unwrap_or(0);
    (after - before) as f64 / t.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throughput_upgrade_reaches_every_running_worker_without_a_restart() {
    let env = TestEnv::new(json!({
        "numbers": [{"phone_number_id": "7101", "access_token": TOKEN}],
        "mps_limit": 0, "pair_gap_ms": 0
    }))
    .await;
    env.number("7101", 10, TOKEN).await;
    env.dispatch("7101", &recipients(3_000, 0), false, true)
        .await;
    // Two workers, each caching the number for the default 30 s.
    let workers: Vec<Worker> = vec![
        env.worker(&[], fast_tuning()).await,
        env.worker(&[], fast_tuning()).await,
    ];
    env.accepted_at_least(10, Duration::from_secs(10)).await;
    let slow = rate(&env, Duration::from_secs(2)).await;
    assert!(slow <= 15.0, "10 per second before: {slow}");
    push(
        &env,
        env.account,
        quality(
            WABA,
            &[json!({"display_phone_number": "15550001111", "event": "THROUGHPUT_UPGRADE"})],
        ),
    )
    .await;
    wait_until("the upgrade stored", Duration::from_secs(5), || async {
        number_row(&env, "7101").await.1 == 1000
    })
    .await;
    let upgraded_at = Instant::now();
    assert_eq!(number_row(&env, "7101").await.2, "HIGH");
    // Well above the old rate within seconds (debug build, two loaded cores: 1,000/s is not
    // asserted, the change of rate is: five times the old rate; measured 264/s on an
    // otherwise idle 2-core machine).
    let fast = rate(&env, Duration::from_secs(2)).await;
    eprintln!("before {slow:.1}/s, after {fast:.1}/s");
    assert!(
        fast >= 50.0,
        "the workers took the new rate within {:?}: {fast}/s",
        upgraded_at.elapsed()
    );
    for w in workers {
        w.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_restrictions_pause_the_accounts_dispatches_and_a_reinstatement_resumes_them() {
    let env = TestEnv::new(json!({
        "numbers": [{"phone_number_id": "7201", "access_token": TOKEN}],
        "mps_limit": 0, "pair_gap_ms": 0
    }))
    .await;
    env.number("7201", 20, TOKEN).await;
    let (d, _) = env.dispatch("7201", &recipients(400, 0), false, true).await;
    let w = env.worker(&[], fast_tuning()).await;
    let account_update = |value: Value| json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": "account_update", "value": value}]}]});
    // A violation notice alone changes nothing.
    push(
        &env,
        env.account,
        account_update(
            json!({"event": "ACCOUNT_VIOLATION", "violation_info": {"violation_type": "SPAM"}}),
        ),
    )
    .await;
    push(
        &env,
        env.account,
        account_update(json!({"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "DISABLE", "waba_ban_date": "2026-12-06"}})),
    )
    .await;
    wait_status(&env, d, "paused").await;
    assert_eq!(
        dispatch_row(&env, d).await.1.as_deref(),
        Some("account_disabled")
    );
    push(
        &env,
        env.account,
        account_update(
            json!({"event": "DISABLED_UPDATE", "ban_info": {"waba_ban_state": "REINSTATE"}}),
        ),
    )
    .await;
    wait_status(&env, d, "sending").await;
    push(
        &env,
        env.account,
        account_update(json!({"event": "ACCOUNT_RESTRICTION", "restriction_info": [{"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1_767_000_000}]})),
    )
    .await;
    wait_status(&env, d, "paused").await;
    assert_eq!(
        dispatch_row(&env, d).await.1.as_deref(),
        Some("account_restricted")
    );
    w.stop().await;
}

async fn template_row(env: &TestEnv, id: Uuid) -> (String, String, Option<String>) {
    sqlx::query_as("SELECT status, category, quality_score FROM templates WHERE id = $1")
        .bind(id)
        .fetch_one(&env.db)
        .await
        .expect("template")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_events_apply_to_the_accounts_own_template_only_and_bad_values_change_nothing() {
    let env = TestEnv::new(json!({"mps_limit": 0, "pair_gap_ms": 0})).await;
    let other = env.other_account().await;
    let mut ids = Vec::new();
    for (account, name) in [(env.account, "order_update"), (other, "their_promo")] {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO templates (id, account_id, name, language, category, definition, status)
             VALUES ($1, $2, $3, 'en_US', 'UTILITY', '{}'::jsonb, 'APPROVED')",
        )
        .bind(id)
        .bind(account)
        .bind(name)
        .execute(&env.db)
        .await
        .expect("template");
        ids.push(id);
    }
    let (ours, theirs) = (ids[0], ids[1]);
    let w = env.worker(&[], fast_tuning()).await;
    let change = |field: &str, value: Value| json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field": field, "value": value}]}]});
    // The other account's template, named from our WABA: nothing changes.
    push(
        &env,
        env.account,
        change(
            "message_template_status_update",
            json!({"event": "DISABLED", "message_template_name": "their_promo", "message_template_language": "en_US"}),
        ),
    )
    .await;
    // Values Meta does not use: an unknown status, a category, a quality that is no code.
    for (field, value) in [
        (
            "message_template_status_update",
            json!({"event": "SOMETHING_NEW", "message_template_name": "order_update", "message_template_language": "en_US"}),
        ),
        (
            "template_category_update",
            json!({"new_category": "PROMOTIONAL", "message_template_name": "order_update", "message_template_language": "en_US"}),
        ),
        (
            "message_template_quality_update",
            json!({"new_quality_score": "very good!", "message_template_name": "order_update", "message_template_language": "en_US"}),
        ),
        (
            "message_template_status_update",
            json!({"event": "PAUSED", "message_template_name": "", "message_template_language": "en_US"}),
        ),
    ] {
        push(&env, env.account, change(field, value)).await;
    }
    // Then real ones for our template (unknown fields around).
    push(
        &env,
        env.account,
        change(
            "template_category_update",
            json!({"previous_category": "UTILITY", "new_category": "MARKETING", "message_template_id": 1234,
                   "message_template_name": "order_update", "message_template_language": "en_US", "correct_category": "MARKETING", "x": 1}),
        ),
    )
    .await;
    push(
        &env,
        env.account,
        change(
            "message_template_quality_update",
            json!({"previous_quality_score": "GREEN", "new_quality_score": "YELLOW",
                   "message_template_name": "order_update", "message_template_language": "en_US"}),
        ),
    )
    .await;
    wait_until(
        "the category and quality stored",
        Duration::from_secs(10),
        || async {
            template_row(&env, ours).await
                == ("APPROVED".into(), "MARKETING".into(), Some("YELLOW".into()))
        },
    )
    .await;
    assert_eq!(
        template_row(&env, theirs).await,
        ("APPROVED".into(), "UTILITY".into(), None),
        "the other account's template is untouched"
    );
    let metrics = env.metrics(&w).await;
    for line in [
        "ezpulze_whatsapp_events_total{field=\"message_template_status_update\",outcome=\"other_account\"} 1",
        "ezpulze_whatsapp_events_total{field=\"message_template_status_update\",outcome=\"ignored\"} 1",
        "ezpulze_whatsapp_events_total{field=\"message_template_status_update\",outcome=\"invalid\"} 1",
        "ezpulze_whatsapp_events_total{field=\"template_category_update\",outcome=\"invalid\"} 1",
        "ezpulze_whatsapp_events_total{field=\"message_template_quality_update\",outcome=\"invalid\"} 1",
        "ezpulze_whatsapp_events_total{field=\"template_category_update\",outcome=\"applied\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    w.stop().await;
}
