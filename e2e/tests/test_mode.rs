//! Test mode, black-box: `sk_test_` keys' messages go only to `TEST_GRAPH_API_BASE` (a
//! sandbox simulator) with the sandbox token, whatever route made them, and a key reads,
//! cancels and resumes only dispatches of its own mode. The API, a worker, the scheduler and
//! two simulators (live and sandbox) over real HTTP, Postgres and Redis.

use std::time::Duration;

use ezpulze_common::config::DEFAULT_TEST_GRAPH_API_TOKEN;
use ezpulze_testkit::app::{id_of, recipients, TestApp};
use ezpulze_testkit::sim::SimClient;
use ezpulze_testkit::{templates, wait_until};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const NUMBER: &str = "106540352249001";
const LIVE_TOKEN: &str = "token-of-the-account";
const SETTLE: Duration = Duration::from_secs(120);

/// A simulator knowing [`NUMBER`] with `token` (and, for the sandbox, the sandbox token).
async fn simulator(token: &str, sandbox: bool) -> (ezpulze_simulator::SimHandle, SimClient) {
    let mut cfg = json!({
        "numbers": [{"phone_number_id": NUMBER, "access_token": token}],
        "mps_limit": 1000, "pair_gap_ms": 0
    });
    if sandbox {
        cfg["sandbox_token"] = json!(DEFAULT_TEST_GRAPH_API_TOKEN);
    }
    let sim = ezpulze_simulator::spawn(
        ezpulze_simulator::SimConfig::default()
            .merged(&cfg)
            .expect("simulator config"),
    )
    .await
    .expect("simulator");
    let client = SimClient::new(sim.url());
    (sim, client)
}

struct Keys {
    admin: String,
    live: String,
    test: String,
}

/// A full-access key of `mode` without hourly limit.
async fn key(app: &TestApp, admin: &str, mode: &str) -> String {
    let spec = json!({"name": mode, "scope_group": "full_access", "mode": mode,
                      "rate_limit_per_hour": null});
    app.key(admin, spec).await.0
}

/// The text template under a name of its own (names are unique per account).
fn template(n: usize) -> Value {
    let mut t = templates::text();
    t["name"] = json!(format!("order_update_{n}"));
    t
}

/// Sends through a new broadcast of `key` (now, or `at`); returns the dispatch id.
async fn broadcast_send(app: &TestApp, key: &str, first: usize, at: Option<&str>) -> String {
    let t = id_of(&app.create_template(key, template(first)).await);
    let b = id_of(&app.create_broadcast(key, "promo", &t, json!({})).await);
    let mut body = json!({"recipients": recipients(2, first)});
    if let Some(at) = at {
        body["scheduled_at"] = json!(at);
    }
    let v = app.send_broadcast(key, &b, body).await;
    assert_eq!(v["accepted"], 2, "{v}");
    v["dispatch_id"].as_str().expect("dispatch id").to_string()
}

/// Triggers a new chatbot flow of the account with `key`; returns the dispatch id.
async fn flow_trigger(app: &TestApp, k: &Keys, key: &str, to: &str) -> String {
    let t = id_of(&app.create_template(&k.admin, template(999)).await);
    let body = json!({"name": "Welcome", "template_id": t,
                      "variables": {"body": ["friend", "0000"]}});
    let (s, f) = app.post("/admin/v1/chatbot-flows", &k.admin, body).await;
    assert_eq!(s, 201, "{f}");
    let path = format!("/api/v1/chatbot-flows/{}/webhook", id_of(&f));
    let (s, v) = app.post(&path, key, json!({"to": to})).await;
    assert_eq!(s, 202, "{v}");
    v["dispatch_id"].as_str().expect("dispatch id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn test_keys_send_only_to_the_sandbox_and_see_only_test_dispatches() {
    let _ = ezpulze_runtime::telemetry::metrics_handle();
    let (_live_sim, live) = simulator(LIVE_TOKEN, false).await;
    // The sandbox knows the number by another token: only the sandbox token is accepted there.
    let (_sandbox_sim, sandbox) = simulator("not-the-account-token", true).await;
    let app = TestApp::spawn_with(&[
        ("GRAPH_API_BASE", live.base.as_str()),
        ("TEST_GRAPH_API_BASE", sandbox.base.as_str()),
    ])
    .await;
    let account = app.account("Acme").await;
    let numbers = json!({"phone_numbers": [{"phone_number_id": NUMBER, "display_phone_number": "15550000000",
                                             "access_token": LIVE_TOKEN, "messages_per_second": 1000}]});
    let (s, v) = app
        .send("PUT", "/admin/v1/whatsapp", &account.admin, Some(numbers))
        .await;
    assert_eq!(s, 200, "{v}");
    let k = Keys {
        live: key(&app, &account.admin, "live").await,
        test: key(&app, &account.admin, "test").await,
        admin: account.admin,
    };
    let cancel = CancellationToken::new();
    let _stop = cancel.clone().drop_guard();
    let (config, c) = (app.config(), cancel.clone());
    tokio::spawn(async move { ezpulze_worker::run(config, c).await });
    let (config, c) = (app.config(), cancel.clone());
    tokio::spawn(async move { ezpulze_scheduler::run(config, c).await });

    // Every dispatch-creating route with the test key: a broadcast now, one scheduled, a
    // chatbot flow's trigger. And one live send, so the live path is shown to work.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let test_dispatches = [
        broadcast_send(&app, &k.test, 0, None).await,
        broadcast_send(&app, &k.test, 10, Some(&soon)).await,
        flow_trigger(&app, &k, &k.test, "+16505551234").await,
    ];
    let live_dispatch = broadcast_send(&app, &k.live, 20, None).await;

    wait_until("every message accepted", SETTLE, || async {
        sandbox.stats().await["accepted"] == 5 && live.stats().await["accepted"] == 2
    })
    .await;
    // Nothing more arrives later (the scheduled one was released once).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (sandbox_stats, live_stats) = (sandbox.stats().await, live.stats().await);
    assert_eq!(sandbox_stats["accepted"], 5, "{sandbox_stats}");
    assert_eq!(sandbox_stats["sandbox_sends"], 5, "{sandbox_stats}");
    assert_eq!(sandbox_stats["rejected"], json!({}), "{sandbox_stats}");
    assert_eq!(live_stats["accepted"], 2, "{live_stats}");
    assert_eq!(live_stats["sandbox_sends"], 0, "{live_stats}");

    // Cross-mode reads and changes answer 404, as another account's dispatch would.
    let cases = test_dispatches
        .iter()
        .map(|d| (d.as_str(), k.live.as_str()))
        .chain([(live_dispatch.as_str(), k.test.as_str())]);
    for (dispatch, other_mode) in cases {
        let (_, items) = app
            .get(&format!("/api/v1/dispatches/{dispatch}/messages"), &k.admin)
            .await;
        let message = items["items"][0]["id"]
            .as_str()
            .expect("message")
            .to_string();
        let routes = [
            ("GET", format!("/api/v1/dispatches/{dispatch}")),
            ("GET", format!("/api/v1/dispatches/{dispatch}/messages")),
            ("GET", format!("/api/v1/messages/{message}")),
            ("POST", format!("/api/v1/dispatches/{dispatch}/cancel")),
            ("POST", format!("/api/v1/dispatches/{dispatch}/resume")),
        ];
        for (method, path) in &routes {
            let (s, v) = app.send(method, path, other_mode, None).await;
            assert_eq!(s, 404, "{method} {path} with the other mode's key: {v}");
        }
        // The account's admin sees both modes.
        let (s, v): (u16, Value) = app
            .get(&format!("/api/v1/dispatches/{dispatch}"), &k.admin)
            .await;
        assert_eq!(s, 200, "{v}");
    }
    // And a key reads its own mode's dispatches.
    let (s, v) = app
        .get(
            &format!("/api/v1/dispatches/{}", test_dispatches[0]),
            &k.test,
        )
        .await;
    assert_eq!((s, v["total"].clone()), (200, json!(2)), "{v}");
}
