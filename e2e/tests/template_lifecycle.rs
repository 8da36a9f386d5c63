//! Templates with Meta, black-box: the API, a worker and the simulator over real HTTP,
//! Postgres and Redis. A template is submitted to the simulator when created and keeps
//! Meta's status: while it is PENDING a send is refused (409, nothing reaches the Graph API);
//! once Meta approves it (its status webhook, or a sync) the send goes out. A sync follows
//! Meta's rejections and registers what exists at Meta only (every page). Names and
//! languages Meta refuses, an account without a WABA or a token, Meta's refusals and an
//! unreachable Graph API answer clear errors and store nothing.

use std::time::Duration;

use ezpulze_testkit::app::{assert_error, recipients, Account, Sender, TestApp};
use ezpulze_testkit::drain::Engine;
use ezpulze_testkit::sim::SimClient;
use ezpulze_testkit::{templates, wait_until};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const NUMBER: &str = "106540352249001";
const TOKEN: &str = "lifecycle-token";
const SECRET: &str = "lifecycle-app-secret";
const WABA: &str = "2000000000000001";
const SETTLE: Duration = Duration::from_secs(60);

struct Stack {
    app: TestApp,
    _sim: ezpulze_simulator::SimHandle,
    sim: SimClient,
    http: reqwest::Client,
    cancel: CancellationToken,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Stack {
    /// The simulator (reviews end `auto_status`), the API against it and a worker.
    async fn new(auto_status: &str) -> Stack {
        let _ = ezpulze_runtime::telemetry::metrics_handle();
        let handle = ezpulze_simulator::spawn(ezpulze_simulator::SimConfig::default())
            .await
            .expect("simulator");
        let app = TestApp::spawn_against(&handle.url(), &[]).await;
        let sim = SimClient::new(handle.url());
        sim.configure(&json!({
            "numbers": [{"phone_number_id": NUMBER, "display_phone_number": "15550009001",
                "access_token": TOKEN, "waba_id": WABA,
                "webhook_url": format!("{}/webhooks/whatsapp", app.base), "app_secret": SECRET}],
            "template_auto_status": auto_status,
            "mps_limit": 1000, "pair_gap_ms": 0, "sent_delay_ms": 0, "delivered_delay_ms": 0,
            "read_delay_ms": 0, "delay_jitter_ms": 0
        }))
        .await;
        let cancel = CancellationToken::new();
        let (config, c) = (app.config(), cancel.clone());
        tokio::spawn(async move { ezpulze_worker::run(config, c).await });
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Stack {
            app,
            _sim: handle,
            sim,
            http,
            cancel,
        }
    }

    /// An account wired to the simulator's number and WABA.
    async fn account(&self, name: &str) -> Account {
        let account = self.app.account(name).await;
        let (status, v) = self
            .app
            .send(
                "PUT",
                "/admin/v1/whatsapp",
                &account.admin,
                Some(json!({
                    "phone_numbers": [{"phone_number_id": NUMBER, "display_phone_number": "15550009001",
                        "access_token": TOKEN, "messages_per_second": 1000}],
                    "app_secret": SECRET, "waba_id": WABA
                })),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["waba_id"], WABA);
        account
    }

    async fn sim_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.sim.base))
            .json(&body)
            .send()
            .await
            .expect("simulator");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn template(&self, s: &Sender) -> Value {
        let (status, v) = self
            .app
            .get(&format!("/api/v1/templates/{}", s.template_id), &s.key)
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    async fn sync(&self, key: &str) -> Value {
        self.app
            .expect_status("POST", "/api/v1/templates/sync", key, json!({}), 200)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_template_is_refused_at_send_time_then_sent_once_approved() {
    let st = Stack::new("PENDING").await;
    let account = st.account("Lifecycle").await;
    let s = st
        .app
        .sender_in(account, templates::text(), json!({}))
        .await;
    let t = st.template(&s).await;
    assert_eq!(t["status"], "PENDING", "{t}");
    let meta_id = t["meta_template_id"]
        .as_str()
        .expect("Meta's id")
        .to_owned();
    let stats = st.sim.stats().await;
    assert_eq!(stats["templates"]["created"], 1, "{stats}");

    // Refused while pending: 409, and nothing reaches the Graph API.
    let path = format!("/api/v1/broadcasts/{}/send", s.broadcast_id);
    let body = json!({"recipients": recipients(3, 0)});
    let (status, v) = st.app.send("POST", &path, &s.key, Some(body.clone())).await;
    assert_error(status, &v, 409, "template_not_approved");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("PENDING"), "{message}");
    let dispatches = st.app.pool().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM dispatches")
        .fetch_one(&dispatches)
        .await
        .expect("count");
    assert_eq!(n, 0, "a refused send records nothing");

    // Meta approves: its status webhook goes to the engine; a sync brings the status in
    // whether or not the engine reads that webhook.
    let (status, v) = st
        .sim_post(
            "/_sim/templates/order_update/status",
            json!({"status": "APPROVED", "language": "en_US"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["webhooks"][0]["delivered"], true, "{v}");
    let report = st.sync(&s.key).await;
    assert_eq!(report["seen"], 1, "{report}");
    let t = st.template(&s).await;
    assert_eq!(
        (t["status"].as_str(), t["meta_template_id"].as_str()),
        (Some("APPROVED"), Some(meta_id.as_str()))
    );

    let v = st.app.send_broadcast(&s.key, &s.broadcast_id, body).await;
    assert_eq!(v["accepted"], 3, "{v}");
    Engine::of(&st.app).await.drain(SETTLE).await;
    let stats = st.sim.stats().await;
    assert_eq!(stats["accepted"], 3, "{stats}");
    assert_eq!(stats["templates"]["refused_sends"], 0, "{stats}");
}

/// Once the engine reads Meta's template webhooks, the approval alone (no sync) lets the
/// send through, and a pause halts the template's dispatches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_webhook_alone_lets_the_send_through() {
    let st = Stack::new("PENDING").await;
    let account = st.account("Webhooked").await;
    let s = st
        .app
        .sender_in(account, templates::text(), json!({}))
        .await;
    let path = format!("/api/v1/broadcasts/{}/send", s.broadcast_id);
    let body = json!({"recipients": recipients(2, 0)});
    let (status, v) = st.app.send("POST", &path, &s.key, Some(body.clone())).await;
    assert_error(status, &v, 409, "template_not_approved");

    let (status, v) = st
        .sim_post(
            "/_sim/templates/order_update/status",
            json!({"status": "APPROVED"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["webhooks"][0]["delivered"], true, "{v}");
    wait_until("the approval webhook applied", SETTLE, || async {
        st.template(&s).await["status"] == "APPROVED"
    })
    .await;
    let v = st.app.send_broadcast(&s.key, &s.broadcast_id, body).await;
    assert_eq!(v["accepted"], 2, "{v}");
    Engine::of(&st.app).await.drain(SETTLE).await;
    assert_eq!(st.sim.stats().await["accepted"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_follows_rejections_and_registers_what_exists_at_meta_only() {
    let st = Stack::new("APPROVED").await;
    let account = st.account("Syncing").await;
    let s = st
        .app
        .sender_in(account, templates::text(), json!({}))
        .await;
    // The simulator approves at once by default: the template is sendable right away.
    assert_eq!(st.template(&s).await["status"], "APPROVED");

    // 120 templates made at Meta without the engine (more than one page of 100), one the
    // engine cannot send (no components it accepts): registered, every page read.
    for i in 0..120 {
        let (status, v) = st
            .sim_post(
                "/_sim/templates",
                json!({"waba_id": WABA, "name": format!("made_at_meta_{i}"), "language": "en",
                    "category": "MARKETING", "status": if i == 0 { "REJECTED" } else { "APPROVED" },
                    "components": [{"type": "BODY", "text": "Hello {{1}}", "example": {"body_text": [["Ann"]]}}]}),
            )
            .await;
        assert_eq!(status, 201, "{v}");
    }
    let (status, v) = st
        .sim_post(
            "/_sim/templates",
            json!({"waba_id": WABA, "name": "odd_one", "language": "en", "category": "UTILITY",
                "components": [{"type": "NOT_A_COMPONENT"}]}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    // Meta rejects the engine's template, with a reason.
    let (status, v) = st
        .sim_post(
            "/_sim/templates/order_update/status",
            json!({"status": "REJECTED", "reason": "INVALID_FORMAT"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    let report = st.sync(&s.key).await;
    assert_eq!(report["seen"], 122, "{report}");
    assert_eq!(report["registered"], 120, "{report}");
    assert_eq!(report["skipped"], 1, "{report}");
    let t = st.template(&s).await;
    assert_eq!(t["status"], "REJECTED", "{t}");
    assert_eq!(t["status_reason"], "INVALID_FORMAT", "{t}");
    let (_, list) = st.app.get("/api/v1/templates", &s.key).await;
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 121);
    let first = items
        .iter()
        .find(|t| t["name"] == "made_at_meta_0")
        .expect("registered");
    assert_eq!(first["status"], "REJECTED");
    assert!(first["meta_template_id"].as_str().is_some(), "{first}");

    // A rejected template is refused at send time.
    let path = format!("/api/v1/broadcasts/{}/send", s.broadcast_id);
    let (status, v) = st
        .app
        .send(
            "POST",
            &path,
            &s.key,
            Some(json!({"recipients": recipients(1, 0)})),
        )
        .await;
    assert_error(status, &v, 409, "template_not_approved");

    // A second sync changes nothing.
    let report = st.sync(&s.key).await;
    assert_eq!(
        (report["registered"].as_u64(), report["updated"].as_u64()),
        (Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_missing_credentials_and_graph_errors_store_nothing() {
    let st = Stack::new("APPROVED").await;
    let account = st.account("Strict").await;
    let key = st.app.scoped_key(&account.admin, &["template:all"]).await;
    let mut bad_name = templates::text();
    bad_name["name"] = json!("Order Update");
    let mut bad_language = templates::text();
    bad_language["language"] = json!("english");
    let mut long_name = templates::text();
    long_name["name"] = json!("a".repeat(513));
    for body in [bad_name, bad_language, long_name] {
        let (status, v) = st
            .app
            .send("POST", "/api/v1/templates", &key, Some(body))
            .await;
        assert_error(status, &v, 422, "validation_failed");
    }
    assert_eq!(
        st.sim.stats().await["templates"]["created"],
        0,
        "no Graph call"
    );

    // Meta refuses a template it holds already (made, then deleted here only).
    let t = st.app.create_template(&key, templates::text()).await;
    let (status, _) = st
        .app
        .send(
            "DELETE",
            &format!("/api/v1/templates/{}", t["id"].as_str().expect("id")),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, v) = st
        .app
        .send("POST", "/api/v1/templates", &key, Some(templates::text()))
        .await;
    assert_error(status, &v, 422, "template_refused_by_meta");
    let (_, list) = st.app.get("/api/v1/templates", &key).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");

    // No WABA: sync refused; a WABA but no number with a token: refused too.
    let bare = st.app.account("Bare").await;
    let bare_key = st.app.scoped_key(&bare.admin, &["template:all"]).await;
    let (status, v) = st
        .app
        .send("POST", "/api/v1/templates/sync", &bare_key, Some(json!({})))
        .await;
    assert_error(status, &v, 409, "waba_not_configured");
    let (status, v) = st
        .app
        .send(
            "PUT",
            "/admin/v1/whatsapp",
            &bare.admin,
            Some(json!({"waba_id": "3000000000000001"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = st
        .app
        .send("POST", "/api/v1/templates/sync", &bare_key, Some(json!({})))
        .await;
    assert_error(status, &v, 409, "no_access_token");
    let (status, v) = st
        .app
        .send(
            "POST",
            "/api/v1/templates",
            &bare_key,
            Some(templates::text()),
        )
        .await;
    assert_error(status, &v, 409, "no_access_token");
    // A WABA id that is not digits, or another account's: refused.
    for (waba, want) in [("12ab", 422), ("", 422), (WABA, 409)] {
        let (status, v) = st
            .app
            .send(
                "PUT",
                "/admin/v1/whatsapp",
                &bare.admin,
                Some(json!({"waba_id": waba})),
            )
            .await;
        assert_eq!(status, want, "{waba:?}: {v}");
    }
    // A key without template:create cannot sync.
    let reader = st.app.scoped_key(&account.admin, &["template:read"]).await;
    let (status, v) = st
        .app
        .send("POST", "/api/v1/templates/sync", &reader, Some(json!({})))
        .await;
    assert_error(status, &v, 403, "insufficient_scope");

    // The Graph API unreachable: 502, nothing stored.
    let down = st
        .app
        .replica_with(&[("GRAPH_API_BASE", "http://127.0.0.1:9")])
        .await;
    let mut other = templates::text();
    other["name"] = json!("while_down");
    let (status, v) = down
        .send("POST", "/api/v1/templates", &key, Some(other))
        .await;
    assert_error(status, &v, 502, "graph_unavailable");
    let (status, v) = down
        .send("POST", "/api/v1/templates/sync", &key, Some(json!({})))
        .await;
    assert_error(status, &v, 502, "graph_unavailable");
    let (_, list) = st.app.get("/api/v1/templates", &key).await;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
}
