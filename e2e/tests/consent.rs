//! Consent end to end (`docs/consent.md`): the API, a worker (sender and status consumer) and
//! the simulator over real HTTP, Postgres and Redis. An inbound STOP from the simulator's user
//! suppresses the phone within seconds and the next send drops it as `suppressed`; START lifts
//! it; a message failing with 131050 at the simulator adds a `marketing` suppression, so the
//! next marketing send drops the phone while a utility one still goes.

use std::time::{Duration, Instant};

use ezpulze_testkit::app::{id_of, TestApp};
use ezpulze_testkit::sim::SimClient;
use ezpulze_testkit::{templates, wait_until};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const NUMBER: &str = "106540352247001";
const TOKEN: &str = "token-consent";
const SECRET: &str = "consent-app-secret";
/// How long an inbound keyword may take to reach the list ("within seconds").
const WITHIN: Duration = Duration::from_secs(10);

async fn inbound(sim: &str, from: &str, text: &str) {
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("{sim}/_sim/inbound"))
        .json(&json!({"from": from, "to_number": NUMBER, "text": text}))
        .send()
        .await
        .expect("inbound");
    assert_eq!(r.status().as_u16(), 202, "{:?}", r.text().await);
}

/// The account's suppression of `phone` (E.164), if any.
async fn suppression(app: &TestApp, key: &str, phone: &str) -> Option<Value> {
    let path = format!("/api/v1/suppressions?phone={}", phone.replace('+', "%2B"));
    let (s, page) = app.get(&path, key).await;
    assert_eq!(s, 200, "{page}");
    page["items"].as_array().expect("items").first().cloned()
}

/// Waits (at most [`WITHIN`]) until the suppression of `phone` satisfies `f`; returns it.
async fn until(
    app: &TestApp,
    key: &str,
    phone: &str,
    what: &str,
    f: impl Fn(&Option<Value>) -> bool,
) -> Option<Value> {
    let started = Instant::now();
    loop {
        let s = suppression(app, key, phone).await;
        if f(&s) {
            return s;
        }
        assert!(
            started.elapsed() < WITHIN,
            "{phone}: {what} not seen within {WITHIN:?} (now {s:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn recipient(to: &str) -> Value {
    json!({"to": to, "variables": {"body": ["Ann", "1"]}})
}

/// Sends `to` through broadcast `b`; returns the answer (202).
async fn send(app: &TestApp, key: &str, b: &str, to: &[&str]) -> Value {
    let recipients: Vec<Value> = to.iter().map(|t| recipient(t)).collect();
    app.send_broadcast(key, b, json!({"recipients": recipients}))
        .await
}

fn rejected_codes(v: &Value) -> Vec<(u64, String)> {
    v["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().expect("index"),
                r["code"].as_str().expect("code").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inbound_stop_and_131050_suppress_and_the_next_send_drops_the_phone() {
    let _ = ezpulze_runtime::telemetry::metrics_handle();
    let sim = ezpulze_simulator::spawn(ezpulze_simulator::SimConfig::default())
        .await
        .expect("sim");
    let sim_url = sim.url();
    let app = TestApp::spawn_against(&sim_url, &[]).await;
    let simulator = SimClient::new(&sim_url);
    simulator
        .configure(&json!({
            "numbers": [{"phone_number_id": NUMBER, "display_phone_number": "15550007001", "access_token": TOKEN}],
            "webhook_url": format!("{}/webhooks/whatsapp", app.base), "app_secret": SECRET,
            "mps_limit": 1000, "pair_gap_ms": 0, "sent_delay_ms": 5, "delivered_delay_ms": 10,
            "read_delay_ms": 20, "failed_delay_ms": 5, "delay_jitter_ms": 0, "webhook_linger_ms": 10
        }))
        .await;
    let account = app.account("Acme").await;
    app.expect_status(
        "PUT",
        "/admin/v1/whatsapp",
        &account.admin,
        json!({
            "phone_numbers": [{"phone_number_id": NUMBER, "display_phone_number": "15550007001",
                               "access_token": TOKEN, "messages_per_second": 1000}],
            "app_secret": SECRET, "verify_token": "v"
        }),
        200,
    )
    .await;
    let (key, _) = app
        .key(
            &account.admin,
            json!({"name": "sender", "scope_group": "full_access", "rate_limit_per_hour": null}),
        )
        .await;
    // A utility and a marketing template, a broadcast of each.
    let mut marketing = templates::text();
    marketing["name"] = json!("weekly_offer");
    marketing["category"] = json!("MARKETING");
    let mut broadcasts = Vec::new();
    for t in [templates::text(), marketing] {
        let t = id_of(&app.create_template(&key, t).await);
        broadcasts.push(id_of(&app.create_broadcast(&key, "b", &t, json!({})).await));
    }
    let (utility, marketing) = (broadcasts[0].as_str(), broadcasts[1].as_str());

    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let (config, c) = (app.config(), cancel.clone());
    tokio::spawn(async move { ezpulze_worker::run(config, c).await });

    // An inbound STOP: the phone is suppressed for everything within seconds.
    let stopper = "+15551230001";
    inbound(&sim_url, stopper, "Stop").await;
    let s = until(&app, &key, stopper, "the STOP suppression", Option::is_some)
        .await
        .expect("row");
    assert_eq!(
        (&s["reason"], &s["scope"], &s["source"]),
        (&json!("opt_out"), &json!("all"), &json!("inbound:STOP")),
        "{s}"
    );
    // The next send drops it as `suppressed` (never queued), the other recipient goes.
    let v = send(&app, &key, utility, &[stopper, "+15551230002"]).await;
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(rejected_codes(&v), vec![(0, "suppressed".to_owned())]);

    // START lifts it.
    inbound(&sim_url, stopper, "START").await;
    until(&app, &key, stopper, "the START", Option::is_none).await;
    let v = send(&app, &key, utility, &[stopper]).await;
    assert_eq!(v["accepted"], 1, "{v}");

    // A message the simulator fails with 131050: a marketing suppression.
    simulator
        .configure(&json!({"error_rates": {"131050": 1.0}}))
        .await;
    let stopped = "+15551230003";
    let v = send(&app, &key, marketing, &[stopped]).await;
    assert_eq!(v["accepted"], 1, "{v}");
    let s = until(
        &app,
        &key,
        stopped,
        "the 131050 suppression",
        Option::is_some,
    )
    .await
    .expect("row");
    assert_eq!(
        (&s["reason"], &s["scope"], &s["source"]),
        (
            &json!("opt_out"),
            &json!("marketing"),
            &json!("whatsapp:131050")
        ),
        "{s}"
    );
    let dispatch = v["dispatch_id"].as_str().expect("dispatch id");
    let pool = app.pool().await;
    wait_until("the message failed with 131050", WITHIN, || async {
        let code: Option<i32> = sqlx::query_scalar(
            "SELECT error_code FROM messages WHERE dispatch_id = $1::uuid AND status = 'failed'",
        )
        .bind(dispatch)
        .fetch_optional(&pool)
        .await
        .expect("message")
        .flatten();
        code == Some(131050)
    })
    .await;
    simulator
        .configure(&json!({"error_rates": {"131050": 0.0}}))
        .await;
    // Marketing sends drop the phone; utility ones still go.
    let v = send(&app, &key, marketing, &[stopped, "+15551230004"]).await;
    assert_eq!(rejected_codes(&v), vec![(0, "suppressed".to_owned())]);
    let v = send(&app, &key, utility, &[stopped]).await;
    assert_eq!(v["accepted"], 1, "{v}");
    assert_eq!(rejected_codes(&v), vec![]);

    // The simulator counted both inbound messages as delivered.
    let stats = simulator.stats().await;
    assert_eq!(stats["inbound"]["delivered"], 2, "{stats}");
}
