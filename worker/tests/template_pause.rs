//! A send that meets Meta's `132015` (the template is paused) halts its dispatch with
//! `pause_reason = 'template_paused'`, so the template's approval (its webhook or a sync,
//! through `template_status::apply`) resumes it and its messages go out; a dispatch paused by
//! hand stays paused.

mod common;

use std::time::Duration;

use common::{fast_tuning, recipients, rejected, TestEnv, TOKEN};
use ezpulze_common::template_status::{apply, TemplateChange, TemplateStatus};
use ezpulze_testkit::wait_until;
use serde_json::json;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_paused_at_meta_halts_its_dispatch_until_the_template_is_approved() {
    let env = TestEnv::new(json!({
        "numbers": [{"phone_number_id": "9101", "access_token": TOKEN}],
        "pair_gap_ms": 0, "mps_limit": 1000
    }))
    .await;
    env.number("9101", 1000, TOKEN).await;
    // The template the dispatches use ("t", "en") is paused at Meta (the number's WABA is its
    // id in the simulator).
    let r = env
        .http
        .post(format!("{}/_sim/templates", env.sim.url()))
        .json(
            &json!({"waba_id": "9101", "name": "t", "language": "en", "category": "UTILITY",
            "status": "PAUSED", "components": [{"type": "BODY", "text": "Hi {{1}}"}]}),
        )
        .send()
        .await
        .expect("seed");
    assert_eq!(r.status().as_u16(), 201);
    let template = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO templates (id, account_id, name, language, category, definition, status)
         VALUES ($1, $2, 't', 'en', 'UTILITY', '{}', 'APPROVED')",
    )
    .bind(template)
    .bind(env.account)
    .execute(&env.db)
    .await
    .expect("template");
    let (halted, _) = env.dispatch("9101", &recipients(10, 0), false, true).await;
    let (by_hand, _) = env.dispatch("9101", &recipients(5, 100), false, true).await;
    env.set_dispatch_status(by_hand, "paused").await;
    sqlx::query("UPDATE dispatches SET template_id = $1")
        .bind(template)
        .execute(&env.db)
        .await
        .expect("template of the dispatches");

    let w = env.worker(&[], fast_tuning()).await;
    wait_until(
        "the dispatch halted, its messages queued again",
        Duration::from_secs(15),
        || async {
            env.dispatch_status(halted).await == "paused" && env.count("sending").await == 0
        },
    )
    .await;
    let reason: Option<String> =
        sqlx::query_scalar("SELECT pause_reason FROM dispatches WHERE id = $1")
            .bind(halted)
            .fetch_one(&env.db)
            .await
            .expect("reason");
    assert_eq!(reason.as_deref(), Some("template_paused"));
    assert!(rejected(&env.sim_stats().await, "132015") >= 1);
    assert_eq!(env.sim_stats().await["accepted"], 0);

    // Meta approves it again: the simulator takes sends, the engine resumes the halted dispatch.
    let r = env
        .http
        .post(format!("{}/_sim/templates/t/status", env.sim.url()))
        .json(&json!({"status": "APPROVED"}))
        .send()
        .await
        .expect("approve");
    assert_eq!(r.status().as_u16(), 200);
    let change = TemplateChange {
        status: Some(TemplateStatus::Approved),
        ..Default::default()
    };
    let applied = apply(&env.db, env.account, "t", "en", &change)
        .await
        .expect("apply");
    assert_eq!(applied.resumed_dispatches, 1);
    env.queue.push_bulk(&applied.jobs).await.expect("push");
    wait_until(
        "the resumed dispatch sent",
        Duration::from_secs(20),
        || async { env.sim_stats().await["accepted"] == 10 },
    )
    .await;
    assert_eq!(env.dispatch_status(by_hand).await, "paused");
    w.stop().await;
}
