//! Test harness: a fresh Postgres database and Redis prefix per test (the test kit's `TestDb`
//! and `TestRedis`), the simulator as the Graph API, jobs pushed with the real queue, workers
//! started with `run_on`.
//!
//! The fixtures are rows written directly, not made through the API: these tests drive the
//! worker below the API with what the API would refuse to create (bodies whose parameter
//! counts no longer match what Meta holds, several numbers of one account each with its own
//! dispatches, dispatches without a key, stored tokens Meta has expired). The harnesses above
//! the worker (`status_reducer.rs`, the api, scheduler and e2e suites) make theirs through the
//! API with `ezpulze_testkit::TestApp`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use ezpulze_common::jobs::SendJob;
use ezpulze_common::Config;
use ezpulze_simulator::{SimConfig, SimHandle};
use ezpulze_testkit::db::TestDb;
use ezpulze_testkit::redis::TestRedis;
use ezpulze_testkit::sim::SimClient;
use ezpulze_testkit::{redis_url, wait_until};
use ezpulze_worker::classify::{RetrySchedules, Schedule};
use ezpulze_worker::Tuning;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const TOKEN: &str = "EAAtest-token-0123456789";

/// Short retry delays (the classes and minimums stay as in production).
pub fn fast_tuning() -> Tuning {
    Tuning {
        retry: RetrySchedules {
            fast: Schedule {
                min_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
                factor: 2.0,
            },
            slow: Schedule {
                min_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(400),
                factor: 2.0,
            },
        },
        ..Tuning::default()
    }
}

pub struct TestEnv {
    pub db: PgPool,
    pub db_url: String,
    pub prefix: String,
    pub sim: SimHandle,
    /// The send lanes (pushes go to the dispatch's lane) and the legacy stream.
    pub queue: ezpulze_testkit::send_jobs::SendJobs,
    pub account: Uuid,
    pub key: Uuid,
    pub http: reqwest::Client,
}

pub struct Worker {
    pub cancel: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), ezpulze_worker::WorkerError>>,
    pub addr: SocketAddr,
}

impl Worker {
    pub async fn stop(self) {
        self.cancel.cancel();
        let r = tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("worker stops in time")
            .expect("worker task");
        r.expect("worker ran");
    }
}

impl TestEnv {
    /// A database, a Redis prefix, a simulator configured with `sim` (merged into defaults;
    /// webhooks off unless given), an account with one API key.
    pub async fn new(sim: Value) -> TestEnv {
        // The worker's Prometheus recorder first (the simulator would install its own).
        let _ = ezpulze_runtime::telemetry::metrics_handle();
        let TestDb {
            url: db_url,
            pool: db,
            ..
        } = TestDb::new().await;
        let cfg = SimConfig::default().merged(&sim).expect("sim config");
        let sim = ezpulze_simulator::spawn(cfg).await.expect("simulator");
        let prefix = TestRedis::new().await.prefix;
        let queue_config = Config::from_source(
            &ezpulze_testkit::settings()
                .database_url(&db_url)
                .redis_prefix(&prefix)
                .into_map(),
        )
        .expect("config");
        let queue =
            ezpulze_testkit::send_jobs::SendJobs::connect(&queue_config, Some(db.clone())).await;
        let account = Uuid::now_v7();
        sqlx::query("INSERT INTO accounts (id, name) VALUES ($1, 'test')")
            .bind(account)
            .execute(&db)
            .await
            .expect("account");
        let key = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO api_keys (id, account_id, name, key_hash, key_head, key_tail, scopes)
             VALUES ($1, $2, 'k', $3, 'sk_live_abcdef', 'wxyz', '{broadcast:send}')",
        )
        .bind(key)
        .bind(account)
        .bind(key.as_bytes().to_vec())
        .execute(&db)
        .await
        .expect("key");
        sqlx::query("INSERT INTO api_key_usage (key_id) VALUES ($1)")
            .bind(key)
            .execute(&db)
            .await
            .expect("usage");
        TestEnv {
            db,
            db_url,
            prefix,
            sim,
            queue,
            account,
            key,
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        }
    }

    /// Worker settings (as environment variables would give them).
    pub fn settings(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
        ezpulze_testkit::settings()
            .database_url(&self.db_url)
            .redis_prefix(&self.prefix)
            .extend(&[
                ("GRAPH_API_BASE", &self.sim.url()),
                ("TEST_GRAPH_API_BASE", &self.sim.url()),
                ("SEND_TIMEOUT_MS", "2000"),
                ("MIGRATE_ON_START", "false"),
            ])
            .extend(extra)
            .into_map()
    }

    /// Starts a worker in this process.
    pub async fn worker(&self, extra: &[(&str, &str)], tuning: Tuning) -> Worker {
        let config = Config::from_source(&self.settings(extra)).expect("config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(ezpulze_worker::run_on(
            config,
            tuning,
            listener,
            cancel.clone(),
        ));
        Worker { cancel, task, addr }
    }

    /// A business number with a sealed token; the simulator learns it too.
    pub async fn number(&self, pnid: &str, mps: i32, token: &str) {
        self.number_of(self.account, pnid, mps, token).await;
    }

    /// Another account (another tenant on the same engine).
    pub async fn other_account(&self) -> Uuid {
        let account = Uuid::now_v7();
        sqlx::query("INSERT INTO accounts (id, name) VALUES ($1, 'other')")
            .bind(account)
            .execute(&self.db)
            .await
            .expect("account");
        account
    }

    /// A number of `account`.
    pub async fn number_of(&self, account: Uuid, pnid: &str, mps: i32, token: &str) {
        let sealer = ezpulze_common::secrets::Sealer::new(ezpulze_common::config::DEV_PEPPER);
        sqlx::query(
            "INSERT INTO phone_numbers (phone_number_id, account_id, display_phone_number, access_token_enc, messages_per_second)
             VALUES ($1, $2, '15550001111', $3, $4)",
        )
        .bind(pnid)
        .bind(account)
        .bind(sealer.seal(token).expect("seal"))
        .bind(mps)
        .execute(&self.db)
        .await
        .expect("number");
    }

    pub async fn sim_put(&self, patch: Value) {
        self.simulator().configure(&patch).await;
    }

    pub async fn sim_stats(&self) -> Value {
        self.simulator().stats().await
    }

    /// The simulator's control client.
    pub fn simulator(&self) -> SimClient {
        SimClient::new(self.sim.url())
    }

    /// A dispatch (status `queued`) and its messages, one per recipient, with jobs pushed.
    /// `body_params` per message; `key` = whether the key sent it.
    pub async fn dispatch(
        &self,
        pnid: &str,
        recipients: &[String],
        test_mode: bool,
        key: bool,
    ) -> (Uuid, Vec<Uuid>) {
        self.dispatch_with(pnid, recipients, test_mode, key, |_| {
            vec![json!({"type": "text", "text": "Ana"})]
        })
        .await
    }

    pub async fn dispatch_with(
        &self,
        pnid: &str,
        recipients: &[String],
        test_mode: bool,
        key: bool,
        params: impl Fn(usize) -> Vec<Value>,
    ) -> (Uuid, Vec<Uuid>) {
        self.dispatch_of(
            self.account,
            pnid,
            recipients,
            false,
            test_mode,
            key,
            params,
        )
        .await
    }

    /// A dispatch of `account` (not necessarily this env's), `high` priority or bulk.
    #[allow(clippy::too_many_arguments)]
    pub async fn dispatch_of(
        &self,
        account: Uuid,
        pnid: &str,
        recipients: &[String],
        high: bool,
        test_mode: bool,
        key: bool,
        params: impl Fn(usize) -> Vec<Value>,
    ) -> (Uuid, Vec<Uuid>) {
        let dispatch = Uuid::now_v7();
        let key_id = key.then_some(self.key);
        sqlx::query(
            "INSERT INTO dispatches (id, account_id, key_id, test_mode, phone_number_id, status, total, priority)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7)",
        )
        .bind(dispatch)
        .bind(account)
        .bind(key_id)
        .bind(test_mode)
        .bind(pnid)
        .bind(i32::try_from(recipients.len()).expect("len"))
        .bind(if high { "high" } else { "normal" })
        .execute(&self.db)
        .await
        .expect("dispatch");
        let mut ids = Vec::with_capacity(recipients.len());
        let mut payloads = Vec::with_capacity(recipients.len());
        for (i, to) in recipients.iter().enumerate() {
            let id = Uuid::now_v7();
            ids.push(id);
            payloads.push(
                json!({
                    "messaging_product": "whatsapp",
                    "to": to,
                    "type": "template",
                    "template": {
                        "name": "t",
                        "language": {"code": "en"},
                        "components": [{"type": "body", "parameters": params(i)}]
                    },
                    "biz_opaque_callback_data": id.to_string()
                })
                .to_string(),
            );
        }
        for chunk in 0..ids.len().div_ceil(5000) {
            let r = chunk * 5000..((chunk + 1) * 5000).min(ids.len());
            sqlx::query(
                "INSERT INTO messages (id, dispatch_id, account_id, key_id, to_phone, payload, status)
                 SELECT u.id, $2, $3, $4, u.to_phone, u.payload, 'queued'
                   FROM UNNEST($1::uuid[], $5::text[], $6::text[]) AS u(id, to_phone, payload)",
            )
            .bind(&ids[r.clone()])
            .bind(dispatch)
            .bind(account)
            .bind(key_id)
            .bind(&recipients[r.clone()])
            .bind(&payloads[r])
            .execute(&self.db)
            .await
            .expect("messages");
        }
        if let Some(k) = key_id {
            sqlx::query(
                "UPDATE api_key_usage SET total_messages = total_messages + $2 WHERE key_id = $1",
            )
            .bind(k)
            .bind(i64::try_from(ids.len()).expect("len"))
            .execute(&self.db)
            .await
            .expect("usage");
        }
        let jobs: Vec<SendJob> = ids
            .iter()
            .map(|&message_id| SendJob {
                message_id,
                dispatch_id: dispatch,
                account_id: account,
            })
            .collect();
        self.queue.push_bulk(&jobs).await.expect("push");
        (dispatch, ids)
    }

    /// Replaces a number's stored token (workers started afterwards read the new one).
    pub async fn set_token(&self, pnid: &str, token: &str) {
        let sealer = ezpulze_common::secrets::Sealer::new(ezpulze_common::config::DEV_PEPPER);
        sqlx::query("UPDATE phone_numbers SET access_token_enc = $2 WHERE phone_number_id = $1")
            .bind(pnid)
            .bind(sealer.seal(token).expect("seal"))
            .execute(&self.db)
            .await
            .expect("token");
    }

    /// Whether a message still has a send intent in Redis (the worker's
    /// `{prefix}:{sending}:<message id>` key).
    pub async fn has_intent(&self, message_id: Uuid) -> bool {
        let mut conn = redis::Client::open(redis_url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        redis::cmd("EXISTS")
            .arg(
                ezpulze_common::keyspace::Keyspace::new(self.prefix.clone())
                    .send_intent(&message_id),
            )
            .query_async(&mut conn)
            .await
            .expect("exists")
    }

    /// Waits until every pushed job is settled: none ready, delayed or delivered-unsettled
    /// (panics after `timeout`). Returns the queue's stats.
    pub async fn queue_idle(&self, timeout: Duration) -> ezpulze_queue::QueueStats {
        wait_until("the send queue is idle", timeout, || async {
            let q = self.queue.stats().await.expect("queue stats");
            (q.depth, q.delayed, q.in_flight) == (0, 0, 0)
        })
        .await;
        self.queue.stats().await.expect("queue stats")
    }

    /// A dispatch's stored status.
    pub async fn dispatch_status(&self, dispatch: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM dispatches WHERE id = $1")
            .bind(dispatch)
            .fetch_one(&self.db)
            .await
            .expect("dispatch status")
    }

    /// Sets a dispatch's status as a cancel or a pause by the API would.
    pub async fn set_dispatch_status(&self, dispatch: Uuid, status: &str) {
        sqlx::query("UPDATE dispatches SET status = $2 WHERE id = $1")
            .bind(dispatch)
            .bind(status)
            .execute(&self.db)
            .await
            .expect("dispatch status");
    }

    /// Messages in `status`.
    pub async fn count(&self, status: &str) -> i64 {
        self.counts().await.get(status).copied().unwrap_or(0)
    }

    /// Waits until at least `n` messages are `accepted`.
    pub async fn accepted_at_least(&self, n: i64, timeout: Duration) {
        wait_until(&format!("{n} messages accepted"), timeout, || async {
            self.count("accepted").await >= n
        })
        .await;
    }

    /// Message counts by status.
    pub async fn counts(&self) -> HashMap<String, i64> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, count(*) FROM messages GROUP BY status")
                .fetch_all(&self.db)
                .await
                .expect("counts");
        rows.into_iter().collect()
    }

    /// Waits until no message is `queued` or `sending` (panics after `timeout`); returns the
    /// counts.
    pub async fn settle(&self, timeout: Duration) -> HashMap<String, i64> {
        wait_until("no message queued or sending", timeout, || async {
            let c = self.counts().await;
            c.get("queued").copied().unwrap_or(0) + c.get("sending").copied().unwrap_or(0) == 0
        })
        .await;
        self.counts().await
    }

    /// Waits until the simulator has posted every status webhook it owes.
    pub async fn webhooks_posted(&self, timeout: Duration) {
        self.simulator().webhooks_posted(timeout).await;
    }

    pub async fn usage_failed(&self) -> i64 {
        sqlx::query_scalar("SELECT failed FROM api_key_usage WHERE key_id = $1")
            .bind(self.key)
            .fetch_one(&self.db)
            .await
            .expect("usage")
    }

    pub async fn metrics(&self, w: &Worker) -> String {
        self.http
            .get(format!("http://{}/metrics", w.addr))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn drop_db(&self) {
        self.db.close().await;
    }
}

/// `n` distinct recipients.
/// Milliseconds from creation to `accepted` of a dispatch's accepted messages, sorted.
pub async fn accepted_latencies_ms(env: &TestEnv, dispatch: Uuid) -> Vec<f64> {
    sqlx::query_scalar(
        "SELECT extract(epoch FROM (updated_at - created_at))::float8 * 1000 FROM messages
          WHERE dispatch_id = $1 AND status = 'accepted' ORDER BY 1",
    )
    .bind(dispatch)
    .fetch_all(&env.db)
    .await
    .expect("latencies")
}

/// The 99th percentile of sorted values (NaN for none).
pub fn p99(sorted: &[f64]) -> f64 {
    sorted
        .get((sorted.len() * 99 / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}

pub fn recipients(n: usize, base: u64) -> Vec<String> {
    (0..n as u64)
        .map(|i| format!("{}", 14_155_000_000 + base + i))
        .collect()
}

pub fn rejected(stats: &Value, code: &str) -> u64 {
    stats["rejected"][code].as_u64().unwrap_or(0)
}
