//! The whole engine in one test: API, two workers (with their status consumers), the
//! scheduler and the simulator, over real HTTP, Postgres and Redis. 20,000 messages over
//! three numbers (three accounts), with injected errors, duplicated and reordered webhooks;
//! afterwards every key's counters and every dispatch's counts equal the simulator's ground
//! truth exactly, and no message is left in a non-final state.

use std::time::{Duration, Instant};

use ezpulze_common::model::MessageStatus;
use ezpulze_testkit::app::{recipients, TestApp};
use ezpulze_testkit::drain::Engine;
use ezpulze_testkit::sim::SimClient;
use ezpulze_testkit::templates;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "e2e-app-secret";

/// The JSON answer of a GET (with a bearer credential if given), asserting success.
async fn get_json(http: &reqwest::Client, url: String, bearer: Option<&str>) -> Value {
    let mut req = http.get(&url);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    json_of(
        req.send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}")),
    )
    .await
}

async fn json_of(r: reqwest::Response) -> Value {
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_thousand_messages_counters_equal_the_ground_truth() {
    let cancel = CancellationToken::new();
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");

    // The simulator first (its URL goes into the engine's config), then the API.
    let sim = ezpulze_simulator::spawn(ezpulze_simulator::SimConfig::default())
        .await
        .expect("sim");
    let sim_url = sim.url();
    let app = TestApp::spawn_against(
        &sim_url,
        &[
            ("SEND_TIMEOUT_MS", "5000"),
            ("DATABASE_MAX_CONNECTIONS", "6"),
        ],
    )
    .await;
    let api_url = app.base.clone();
    let config = app.config();

    let numbers = [
        ("106540352242901", "15550000001"),
        ("106540352242902", "15550000002"),
        ("106540352242903", "15550000003"),
    ];
    let sim_numbers: Vec<Value> = numbers
        .iter()
        .map(|(id, display)| json!({"phone_number_id": id, "display_phone_number": display, "access_token": format!("token-{id}")}))
        .collect();
    let simulator = SimClient::new(&sim_url);
    simulator
        .configure(&json!({
            "numbers": sim_numbers, "webhook_url": format!("{api_url}/webhooks/whatsapp"), "app_secret": SECRET,
            "mps_limit": 5000, "pair_gap_ms": 0, "seed": 7,
            "error_rates": {"5xx": 0.02, "131000": 0.01, "131026": 0.01, "131049": 0.01},
            "delivered_rate": 0.9, "read_rate": 0.6, "duplicate_rate": 0.05, "reorder_rate": 0.05, "reorder_delay_ms": 200,
            "sent_delay_ms": 5, "delivered_delay_ms": 20, "read_delay_ms": 40, "delay_jitter_ms": 20
        }))
        .await;

    // Three accounts, one number, key, template and broadcast each, through the API.
    let mut senders = Vec::new();
    for (i, (id, display)) in numbers.iter().enumerate() {
        let account = app.account(&format!("acc{i}")).await;
        app.expect_status("PUT", "/admin/v1/whatsapp", &account.admin, json!({
            "phone_numbers": [{"phone_number_id": id, "display_phone_number": display, "access_token": format!("token-{id}"), "messages_per_second": 4000}],
            "app_secret": SECRET, "verify_token": format!("v{i}")
        }), 200).await;
        senders.push(app.sender_in(account, templates::text(), json!({})).await);
    }

    // Two workers (retry delays shortened so the test does not wait minutes for R-slow codes)
    // and the scheduler.
    let schedule = |min_ms: u64, max_ms: u64| ezpulze_worker::classify::Schedule {
        min_delay: Duration::from_millis(min_ms),
        max_delay: Duration::from_millis(max_ms),
        factor: 2.0,
    };
    let tuning = ezpulze_worker::Tuning {
        retry: ezpulze_worker::classify::RetrySchedules {
            fast: schedule(100, 1000),
            slow: schedule(200, 2000),
        },
        ..ezpulze_worker::Tuning::default()
    };
    for _ in 0..2 {
        let (cfg, c, t) = (config.clone(), cancel.clone(), tuning.clone());
        tokio::spawn(async move { ezpulze_worker::run_with(cfg, t, c).await });
    }
    {
        let cfg = config.clone();
        let c = cancel.clone();
        tokio::spawn(async move { ezpulze_scheduler::run(cfg, c).await });
    }

    // 20,000 messages: 20 requests of 1,000, spread over the three accounts.
    let total = 20_000usize;
    let mut dispatches = Vec::new();
    for r in 0..20usize {
        let d = app
            .dispatch(&senders[r % 3], recipients(1000, r * 1000), None)
            .await;
        dispatches.push((r % 3, d));
    }

    // Wait until the send side is drained, every message is final, the simulator has
    // delivered every status, and every status body is applied and acked.
    let pool = app.pool().await;
    let engine = Engine::of(&app).await;
    let started = Instant::now();
    loop {
        let left = engine.left().await;
        let waiting: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM messages WHERE status IN ({})",
            MessageStatus::sql_list(&MessageStatus::WAITING)
        ))
        .fetch_one(&pool)
        .await
        .expect("count");
        let pending: Value = simulator.page("pending").await;
        let webhooks = engine.webhooks_left().await;
        if left.is_idle()
            && waiting == 0
            && pending["webhook_statuses_pending"] == 0
            && pending["webhook_posts_in_flight"] == 0
            && webhooks == (0, 0)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(420),
            "not settled: {left}; {waiting} waiting, sim {pending}, webhook bodies (queued, in flight) {webhooks:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let stats: Value = simulator.stats().await;
    let pending: Value = simulator.page("pending").await;
    assert_eq!(pending["webhook_statuses_dropped"], 0, "{pending}");
    let truth = |s: &str| stats["statuses"][s].as_i64().unwrap_or(-1);
    // Failures the Graph API answered synchronously (never accepted, so no status webhook) are
    // ours alone: code 1 is retried once and then final, per the reference's table. Each must
    // be one the simulator really rejected.
    let sync_failed: Vec<(Option<i32>, i64)> = sqlx::query_as(
        "SELECT error_code, count(*) FROM messages WHERE status = 'failed' AND wamid IS NULL GROUP BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("sync failures");
    let sync_total: i64 = sync_failed.iter().map(|r| r.1).sum();
    for (code, n) in &sync_failed {
        let code = code.map(|c| c.to_string()).unwrap_or_default();
        assert!(
            stats["rejected"][&code].as_i64().unwrap_or(0) >= *n,
            "{n} sync failures with code {code} vs {stats}"
        );
    }

    // Keys' counters (usage) against the ground truth.
    let mut sum = [0i64; 5];
    for sender in &senders {
        let (admin, key_id) = (&sender.account.admin, &sender.key_id);
        let u = get_json(
            &http,
            format!("{api_url}/admin/v1/api-keys/{key_id}/usage"),
            Some(admin.as_str()),
        )
        .await;
        for (i, f) in ["total_messages", "sent", "delivered", "read", "failed"]
            .iter()
            .enumerate()
        {
            sum[i] += u[f].as_i64().unwrap_or(0);
        }
    }
    assert_eq!(sum[0], total as i64);
    assert_eq!(
        (sum[1], sum[2], sum[3], sum[4]),
        (
            truth("sent"),
            truth("delivered"),
            truth("read"),
            truth("failed") + sync_total
        ),
        "usage vs simulator {stats}, sync failures {sync_failed:?}"
    );
    // Dispatch counts from the same source of truth.
    let mut dsum = [0i64; 4];
    for (i, d) in &dispatches {
        let v = get_json(
            &http,
            format!("{api_url}/api/v1/dispatches/{d}"),
            Some(senders[*i].key.as_str()),
        )
        .await;
        assert_eq!(v["status"], "completed", "{v}");
        assert_eq!(v["queued"], 0);
        for (j, f) in ["sent", "delivered", "read", "failed"].iter().enumerate() {
            dsum[j] += v[f].as_i64().unwrap_or(0);
        }
    }
    assert_eq!(
        dsum,
        [
            truth("sent"),
            truth("delivered"),
            truth("read"),
            truth("failed") + sync_total
        ],
        "dispatches vs simulator {stats}"
    );
    // Every other message was accepted by the simulator exactly once (no double sends).
    assert_eq!(
        stats["accepted"].as_i64(),
        Some(total as i64 - sync_total),
        "{stats}"
    );
    let distinct_wamids: i64 = sqlx::query_scalar("SELECT count(DISTINCT wamid) FROM messages")
        .fetch_one(&pool)
        .await
        .expect("wamids");
    assert_eq!(distinct_wamids, total as i64 - sync_total);
    eprintln!(
        "e2e: {total} messages settled in {:.1} s; simulator {stats}",
        started.elapsed().as_secs_f64()
    );
    cancel.cancel();
}
