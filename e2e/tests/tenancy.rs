//! Tenants sharing the webhook endpoint and the status consumer, black-box: the API, one
//! worker (sender and status consumer) and the simulator over real HTTP, Postgres and Redis.
//! Tenant A holds its own account, number and app secret, and signs whatever it likes.

use std::time::Duration;

use ezpulze_common::jobs::WebhookBody;
use ezpulze_testkit::app::{recipients, Sender, TestApp};
use ezpulze_testkit::drain::Engine;
use ezpulze_testkit::sim::SimClient;
use ezpulze_testkit::{templates, wait_until};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

const NUMBER_A: &str = "106540352240001";
const NUMBER_B: &str = "106540352240002";
const SECRET_A: &str = "tenant-a-app-secret";
const SECRET_B: &str = "tenant-b-app-secret";
const SETTLE: Duration = Duration::from_secs(120);

struct Stack {
    app: TestApp,
    _sim: ezpulze_simulator::SimHandle,
    simulator: SimClient,
    http: reqwest::Client,
    a: Sender,
    b: Sender,
    engine: Engine,
    cancel: CancellationToken,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Stack {
    /// Two accounts with a number and app secret each (in the engine and the simulator), and
    /// a worker. `reach`: the simulator's delivered and read rates.
    async fn new(reach: f64) -> Stack {
        // The engine's Prometheus recorder first (the simulator would install its own).
        let _ = ezpulze_runtime::telemetry::metrics_handle();
        let sim = ezpulze_simulator::spawn(ezpulze_simulator::SimConfig::default())
            .await
            .expect("simulator");
        let sim_url = sim.url();
        let app = TestApp::spawn_against(&sim_url, &[]).await;
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let hook = format!("{}/webhooks/whatsapp", app.base);
        let simulator = SimClient::new(&sim_url);
        simulator
            .configure(&json!({
                "numbers": [
                    {"phone_number_id": NUMBER_A, "display_phone_number": "15550000001", "access_token": "token-a",
                     "webhook_url": hook, "app_secret": SECRET_A},
                    {"phone_number_id": NUMBER_B, "display_phone_number": "15550000002", "access_token": "token-b",
                     "webhook_url": hook, "app_secret": SECRET_B}
                ],
                "mps_limit": 1000, "pair_gap_ms": 0, "delivered_rate": reach, "read_rate": reach,
                "sent_delay_ms": 0, "delivered_delay_ms": 0, "read_delay_ms": 0, "delay_jitter_ms": 0
            }))
            .await;
        let mut senders = Vec::new();
        for (name, number, token, secret) in [
            ("A", NUMBER_A, "token-a", SECRET_A),
            ("B", NUMBER_B, "token-b", SECRET_B),
        ] {
            let account = app.account(name).await;
            let (status, v) =
                put_numbers(&app, &account.admin, &[(number, token)], Some(secret)).await;
            assert_eq!(status, 200, "{v}");
            senders.push(app.sender_in(account, templates::text(), json!({})).await);
        }
        let cancel = CancellationToken::new();
        let (config, c) = (app.config(), cancel.clone());
        tokio::spawn(async move { ezpulze_worker::run(config, c).await });
        let engine = Engine::of(&app).await;
        let b = senders.pop().expect("B");
        let a = senders.pop().expect("A");
        Stack {
            app,
            _sim: sim,
            simulator,
            http,
            a,
            b,
            engine,
            cancel,
        }
    }

    /// Waits until every message is sent, every webhook the simulator owes is posted and
    /// every queued webhook body is settled.
    async fn settle(&self) {
        self.engine.drain(SETTLE).await;
        self.simulator.webhooks_posted(SETTLE).await;
        wait_until("every webhook body settled", SETTLE, || async {
            self.engine.webhooks_left().await == (0, 0)
        })
        .await;
    }

    async fn get(&self, url: &str, bearer: &str) -> Value {
        let r = self
            .http
            .get(url)
            .bearer_auth(bearer)
            .send()
            .await
            .expect("GET");
        assert!(r.status().is_success(), "GET {url}: {}", r.status());
        r.json().await.expect("JSON")
    }

    /// Posts a webhook body signed with `secret`; returns the answer's status.
    async fn post_signed(&self, body: &Value, secret: &str) -> u16 {
        let bytes = serde_json::to_vec(body).expect("body");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(&bytes);
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        self.http
            .post(format!("{}/webhooks/whatsapp", self.app.base))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sig)
            .body(bytes)
            .send()
            .await
            .expect("POST webhook")
            .status()
            .as_u16()
    }

    /// `sender`'s key counters.
    async fn usage(&self, sender: &Sender) -> Value {
        self.get(
            &format!(
                "{}/admin/v1/api-keys/{}/usage",
                self.app.base, sender.key_id
            ),
            &sender.account.admin,
        )
        .await
    }

    /// The messages of one of `sender`'s dispatches.
    async fn messages(&self, sender: &Sender, dispatch: &str) -> Vec<Value> {
        let v = self
            .get(
                &format!(
                    "{}/api/v1/dispatches/{dispatch}/messages?limit=1000",
                    self.app.base
                ),
                &sender.key,
            )
            .await;
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// A counter of the in-process metrics (api and worker share the recorder).
    async fn metric(&self, series: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.app.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter_map(|l| l.strip_prefix(series))
            .filter_map(|rest| rest.trim().parse::<f64>().ok())
            .sum()
    }
}

/// Sets an account's numbers (each with its access token, 1,000 messages/s) and, if given,
/// its app secret.
async fn put_numbers(
    app: &TestApp,
    admin: &str,
    numbers: &[(&str, &str)],
    secret: Option<&str>,
) -> (u16, Value) {
    let numbers: Vec<Value> = numbers
        .iter()
        .map(|(id, token)| {
            json!({"phone_number_id": id, "display_phone_number": "15550000000",
                   "access_token": token, "messages_per_second": 1000})
        })
        .collect();
    let mut body = json!({ "phone_numbers": numbers });
    if let Some(secret) = secret {
        body["app_secret"] = json!(secret);
    }
    app.send("PUT", "/admin/v1/whatsapp", admin, Some(body))
        .await
}

/// A status webhook body for `number` with `statuses`.
fn status_body(number: &str, statuses: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "waba", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp",
                  "metadata": {"display_phone_number": "15550000000", "phone_number_id": number},
                  "statuses": statuses}}]}]})
}

fn now_secs() -> String {
    chrono::Utc::now().timestamp().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_cannot_change_another_tenants_messages() {
    // Messages that stay `sent`, so a forged `failed` would move them if it were applied.
    let s = Stack::new(0.0).await;
    let dispatch = s.app.dispatch(&s.b, recipients(5, 0), None).await;
    s.settle().await;
    let before = s.messages(&s.b, &dispatch).await;
    assert_eq!(before.len(), 5);
    assert!(before.iter().all(|m| m["status"] == "sent"), "{before:?}");

    // A signs, with its own secret and number, `failed` statuses naming B's wamid and B's id.
    let forged = status_body(
        NUMBER_A,
        json!([
            {"id": before[0]["wamid"], "status": "failed", "timestamp": now_secs(), "recipient_id": "1",
             "errors": [{"code": 131049, "title": "forged"}]},
            {"id": "wamid.forged", "status": "failed", "timestamp": now_secs(), "recipient_id": "1",
             "biz_opaque_callback_data": before[1]["id"], "errors": [{"code": 131049, "title": "forged"}]}
        ]),
    );
    assert_eq!(s.post_signed(&forged, SECRET_A).await, 200);
    s.settle().await;

    let after = s.messages(&s.b, &dispatch).await;
    assert!(
        after
            .iter()
            .all(|m| m["status"] == "sent" && m["error_code"].is_null()),
        "B's messages changed: {after:?}"
    );
    assert_eq!(s.usage(&s.b).await["failed"], 0);
    assert!(
        s.metric("ezpulze_status_rejected_total{reason=\"other_account\"}")
            .await
            >= 2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_bodies_of_one_tenant_do_not_hold_back_anothers_statuses() {
    let s = Stack::new(1.0).await;
    // A value that passes every check but that Postgres refuses (as a future bug might):
    // an error title that this test's trigger rejects.
    let pool = s.app.pool().await;
    for sql in [
        "CREATE FUNCTION ezp_test_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'poison title' USING ERRCODE = '22023'; END $$",
        "CREATE TRIGGER ezp_test_poison BEFORE UPDATE ON messages FOR EACH ROW
         WHEN (NEW.error_title = 'poison') EXECUTE FUNCTION ezp_test_poison()",
    ] {
        sqlx::query(sql).execute(&pool).await.expect("trigger");
    }
    let own = s.app.dispatch(&s.a, recipients(1, 900), None).await;
    s.settle().await;
    let own = s.messages(&s.a, &own).await;
    let own_wamid = own[0]["wamid"].clone();

    // B's traffic and A's poison bodies at once, so that they share batches.
    let poison = |i: usize| match i % 3 {
        0 => {
            json!([{"id": "wamid.\u{0}", "status": "delivered", "timestamp": now_secs(), "recipient_id": "1"}])
        }
        1 => {
            json!([{"id": format!("wamid.t{i}"), "status": "sent", "timestamp": "99999999999999", "recipient_id": "1"}])
        }
        _ => {
            json!([{"id": own_wamid, "status": "failed", "timestamp": now_secs(), "recipient_id": "1",
                     "errors": [{"code": 131049, "title": "poison"}]}])
        }
    };
    let bodies = 30;
    let (sent, ()) = tokio::join!(
        async {
            let mut dispatches = Vec::new();
            for r in 0..3 {
                dispatches.push(s.app.dispatch(&s.b, recipients(100, r * 100), None).await);
            }
            dispatches
        },
        async {
            for i in 0..bodies {
                assert_eq!(
                    s.post_signed(&status_body(NUMBER_A, poison(i)), SECRET_A)
                        .await,
                    200
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    );
    assert_eq!(sent.len(), 3);
    s.settle().await;

    // B's counters equal the simulator's truth: every message of B was delivered and read.
    let u = s.usage(&s.b).await;
    for field in ["total_messages", "sent", "delivered", "read"] {
        assert_eq!(u[field], 300, "{field}: {u}");
    }
    assert_eq!(u["failed"], 0, "{u}");
    let stats = s.simulator.stats().await;
    assert_eq!(stats["accepted"], 301, "{stats}");

    // Every poison body is in the dead-letter stream with its error; nothing is pending.
    let config = s.app.config();
    let queue = ezpulze_runtime::queues::connect::<WebhookBody>(
        &config,
        ezpulze_runtime::queues::webhooks(&config),
    )
    .await
    .expect("webhook queue");
    let dead = queue.dead_letters(1000).await.expect("dead letters");
    assert_eq!(
        dead.len(),
        bodies,
        "{:?}",
        dead.iter().map(|d| &d.error).collect::<Vec<_>>()
    );
    assert!(dead.iter().any(|d| d.error.contains("invalid_id")));
    assert!(dead.iter().any(|d| d.error.contains("invalid_timestamp")));
    assert!(dead.iter().any(|d| d.error.contains("poison title")));
    let q = queue.stats().await.expect("stats");
    assert_eq!((q.depth, q.in_flight), (0, 0), "{q:?}");
    assert!(s.metric("ezpulze_status_dead_lettered_total").await >= bodies as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_number_another_account_takes_over_never_sends_the_first_accounts_messages() {
    let s = Stack::new(1.0).await;
    let (config, c) = (s.app.config(), s.cancel.clone());
    tokio::spawn(async move { ezpulze_scheduler::run(config, c).await });
    // A also registers B's number (with a token of its own): B holds it.
    let a = s.a.account.admin.as_str();
    let (status, v) = put_numbers(&s.app, a, &[(NUMBER_B, "token-a-for-b")], None).await;
    assert_eq!(status, 409, "B holds the number: {v}");
    // So the attack starts from a number nobody holds yet: A registers it, schedules a send
    // from it, then removes it; B registers it with B's token.
    let spare = "106540352240003";
    let (status, v) = put_numbers(&s.app, a, &[(spare, "token-a-spare")], None).await;
    assert_eq!(status, 200, "{v}");
    let at = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let dispatch = s.app.dispatch(&s.a, recipients(5, 700), Some(&at)).await;
    let (status, v) = put_numbers(&s.app, a, &[(NUMBER_A, "token-a")], None).await;
    assert_eq!(status, 200, "{v}");
    let both = [(NUMBER_B, "token-b"), (spare, "token-b")];
    let (status, v) = put_numbers(&s.app, &s.b.account.admin, &both, None).await;
    assert_eq!(status, 200, "{v}");
    // Once the scheduler has taken the dispatch's release job (due at the scheduled time),
    // nothing of A's went out: the dispatch was cancelled with its number, its messages say why.
    let config = s.app.config();
    let releases = ezpulze_runtime::queues::connect::<ezpulze_common::jobs::ReleaseJob>(
        &config,
        ezpulze_runtime::queues::schedule(&config),
    )
    .await
    .expect("schedule queue");
    wait_until("the release job taken", SETTLE, || async {
        let q = releases.stats().await.expect("stats");
        (q.depth, q.delayed, q.in_flight) == (0, 0, 0)
    })
    .await;
    s.settle().await;
    let stats = s.simulator.stats().await;
    assert_eq!(stats["accepted"], 0, "{stats}");
    let (_, d) = s
        .app
        .send(
            "GET",
            &format!("/api/v1/dispatches/{dispatch}"),
            &s.a.key,
            None,
        )
        .await;
    assert_eq!(d["status"], "cancelled", "{d}");
    let messages = s.messages(&s.a, &dispatch).await;
    assert!(
        messages.iter().all(|m| m["status"] == "cancelled"
            && m["error_title"] == "the dispatch's phone number was removed from the account"),
        "{messages:?}"
    );
}
