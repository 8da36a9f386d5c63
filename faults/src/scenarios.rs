//! The scenarios: one fault each, injected while a load is being sent, then the checks.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::checks::{self, Tally};
use crate::load::{self, Plan, NUMBER_MPS};
use crate::proxy::Proxy;
use crate::services::{Postgres, Redis};
use crate::stack::{Stack, Target};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    WorkerKill,
    ApiKill,
    RedisKill,
    PostgresRestart,
    SimFailures,
    SchedulerKill,
    ApiKillAfterCommit,
    SlowSends,
    /// The whole stack on a 3-primary/3-replica Redis Cluster, no fault.
    RedisCluster,
    /// ... and one primary killed mid-run (its replica takes over).
    RedisPrimaryKill,
    /// Every api killed while an audience send is being expanded (`expansion.rs`).
    ApiKillMidExpansion,
}

impl Fault {
    pub const ALL: [Fault; 11] = [
        Fault::WorkerKill,
        Fault::ApiKill,
        Fault::ApiKillAfterCommit,
        Fault::ApiKillMidExpansion,
        Fault::RedisKill,
        Fault::PostgresRestart,
        Fault::SimFailures,
        Fault::SchedulerKill,
        Fault::SlowSends,
        Fault::RedisCluster,
        Fault::RedisPrimaryKill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::WorkerKill => "worker-kill-9",
            Fault::ApiKill => "api-kill-9",
            Fault::RedisKill => "redis-kill-9",
            Fault::PostgresRestart => "postgres-restart",
            Fault::SimFailures => "whatsapp-fails-20pct",
            Fault::SchedulerKill => "scheduler-kill-9",
            Fault::ApiKillAfterCommit => "api-kill-9-at-commit",
            Fault::SlowSends => "slow-sends-10pct",
            Fault::RedisCluster => "redis-cluster",
            Fault::RedisPrimaryKill => "redis-cluster-primary-kill-9",
            Fault::ApiKillMidExpansion => "api-kill-9-mid-expansion",
        }
    }

    /// Whether the scenario runs on its own Redis Cluster.
    pub fn on_cluster(self) -> bool {
        matches!(self, Fault::RedisCluster | Fault::RedisPrimaryKill)
    }

    /// Tenants (accounts, one number each) of the scenario: six numbers on a cluster, so
    /// their lanes spread over its three primaries.
    fn tenants(self) -> usize {
        match self {
            _ if self.on_cluster() => 6,
            // One account: the audience is its contacts.
            Fault::ApiKillMidExpansion => 1,
            _ => TENANTS,
        }
    }

    /// Messages per second each tenant's number may send: [`NUMBER_MPS`], except for the
    /// audience send, whose one number sends the whole audience.
    fn number_mps(self, size: &Size) -> u32 {
        match self {
            Fault::ApiKillMidExpansion => size.audience_mps,
            _ => NUMBER_MPS,
        }
    }

    /// Second sends this fault may cause under the default unknown-outcome policy (`fail`):
    /// none, except when Redis loses its last second of writes (AOF `everysec`), which can
    /// take send intents with it (worker/README.md, "Unknown outcomes").
    fn allows_duplicates(self) -> bool {
        // A killed primary loses what it had not replicated yet, send intents included.
        matches!(self, Fault::RedisKill | Fault::RedisPrimaryKill)
    }
}

/// How big each scenario's load is.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    pub requests: usize,
    pub per_request: usize,
    pub clients: usize,
    /// How long the simulator fails 20% of sends, and how: the small size answers them 500
    /// code 131000 (retried fast), the long one 500 code 1 or 503 code 2 (the latter retried
    /// after 30 s, 60 s, ...: its drain bound covers that schedule).
    pub failure_window: Duration,
    pub failure_rates: &'static str,
    /// Every message must be final within this after the load has been answered.
    pub drain_bound: Duration,
    /// Contacts of the account in the audience scenario (every fifth tagged `vip`, the
    /// audience), the api's `AUDIENCE_CHUNK` there, and the rate of the account's number
    /// (not higher than the workers can keep: once a number's rate is beyond what they can
    /// start within 50 ms of each slot, nearly every send is late and takes a new slot;
    /// 10,000/s with debug workers sent 1,500 messages and counted 160,000 late in 75 s).
    pub audience_contacts: usize,
    pub audience_chunk: usize,
    pub audience_mps: u32,
}

impl Size {
    pub const SMALL: Size = Size {
        requests: 24,
        per_request: 125,
        clients: 4,
        failure_window: Duration::from_secs(10),
        failure_rates: r#"{"131000": 0.2}"#,
        drain_bound: Duration::from_secs(90),
        // 5,000 messages (debug workers send them well within the 30 s the fan-out waits for
        // the dead chunks' leases), in chunks of 250: four slices of five chunks.
        audience_contacts: 25_000,
        audience_chunk: 250,
        audience_mps: 1_000,
    };
    pub const LONG: Size = Size {
        requests: 160,
        per_request: 250,
        clients: 4,
        failure_window: Duration::from_secs(30),
        failure_rates: r#"{"5xx": 0.2}"#,
        drain_bound: Duration::from_secs(600),
        audience_contacts: 1_000_000,
        audience_chunk: 5_000,
        audience_mps: 4_000,
    };

    fn messages(&self) -> usize {
        self.requests * self.per_request
    }

    /// The cluster scenarios' load: 20,000 messages (40 requests of 500).
    pub const CLUSTER: Size = Size {
        requests: 40,
        per_request: 500,
        clients: 4,
        failure_window: Duration::from_secs(10),
        failure_rates: r#"{"131000": 0.2}"#,
        drain_bound: Duration::from_secs(120),
        audience_contacts: 25_000,
        audience_chunk: 250,
        audience_mps: 1_000,
    };
}

/// One scenario's report line.
#[derive(Debug, Default)]
pub struct Outcome {
    pub scenario: &'static str,
    pub accepted: usize,
    pub lost: i64,
    pub duplicated: i64,
    pub unknown: i64,
    pub failed_other: i64,
    pub retried_attempts: usize,
    pub replayed_after_failure: usize,
    pub longest_client_recovery_s: f64,
    /// From the fault to the next message WhatsApp accepted.
    pub resumed_s: f64,
    /// From the load's last answer to every message final.
    /// From the load's last answer to every message final.
    pub final_s: f64,
    /// ... and to the queues empty again (Redis back to its baseline).
    pub drain_s: f64,
    pub takeover_s: Option<f64>,
    /// Messages per second, clean and with slow sends (the slow-sends scenario).
    pub throughput: Option<(f64, f64)>,
    /// The audience send's fan-out (the mid-expansion scenario).
    pub fanout: Option<crate::expansion::Fanout>,
    pub redis_persistent_growth_bytes: i64,
    /// The keys that grew most (for the report).
    pub redis_growth_top: String,
    pub deadlocks: usize,
    pub tally: Tally,
    pub problems: Vec<String>,
}

/// The suite's services and where it writes.
pub struct Suite {
    pub redis: Redis,
    /// The Redis Cluster of the scenario running on one (started per scenario).
    pub cluster: Option<crate::services::RedisCluster>,
    root: PathBuf,
    pub pg: Postgres,
    pub bin_dir: PathBuf,
    pub out_dir: PathBuf,
    pub size: Size,
}

const TENANTS: usize = 2;

impl Suite {
    pub fn start(
        root: &Path,
        bin_dir: PathBuf,
        out_dir: PathBuf,
        size: Size,
    ) -> anyhow::Result<Suite> {
        Ok(Suite {
            redis: Redis::start(root)?,
            cluster: None,
            root: root.to_path_buf(),
            pg: Postgres::start(root)?,
            bin_dir,
            out_dir,
            size,
        })
    }

    /// [`checks::drain`] of the scenario's database and prefix within the size's bound; the
    /// outcome gets when messages were final and when the queues were empty.
    pub(crate) async fn drain(
        &self,
        db: &PgPool,
        stack: &Stack,
        prefix: &str,
        out: &mut Outcome,
    ) -> anyhow::Result<checks::Drain> {
        let bound = if self.cluster.is_some() {
            Size::CLUSTER.drain_bound
        } else {
            self.size.drain_bound
        };
        let d = checks::drain(db, stack, &self.redis_seeds(), prefix, bound).await?;
        out.final_s = d.final_after.map_or(f64::NAN, |t| t.as_secs_f64());
        out.drain_s = d.empty_after.map_or(f64::NAN, |t| t.as_secs_f64());
        Ok(d)
    }

    /// Where the running scenario's Redis is: the cluster's nodes, or the one server.
    fn redis_seeds(&self) -> Vec<String> {
        match &self.cluster {
            Some(c) => c.seeds(),
            None => vec![self.redis.url()],
        }
    }

    async fn database(&self, name: &str) -> anyhow::Result<String> {
        let admin = PgPool::connect(&self.pg.url("postgres")).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        Ok(self.pg.url(name))
    }

    /// A fresh database and Redis prefix, the stack on them, two tenants, the simulator set up.
    pub(crate) async fn setup(
        &mut self,
        fault: Fault,
        proxy: Option<&Proxy>,
    ) -> anyhow::Result<Env> {
        let name = fault.name();
        let id = name.replace('-', "_");
        let database_url = self.database(&format!("faults_{id}")).await?;
        let prefix = format!("f_{id}");
        self.cluster = None;
        if fault.on_cluster() {
            self.cluster = Some(crate::services::RedisCluster::start(&self.root)?);
        }
        let target = Target {
            bin_dir: &self.bin_dir,
            log_dir: &self.out_dir.join(name),
            database_url: database_url.clone(),
            redis_url: self.redis.url(),
            redis_prefix: prefix.clone(),
            api0_redis_url: proxy.map(|p| format!("redis://127.0.0.1:{}/0", p.port)),
            redis_cluster_urls: self.cluster.as_ref().map(|c| c.seeds().join(",")),
            api_env: match fault {
                Fault::ApiKillMidExpansion => {
                    vec![
                        ("AUDIENCE_CHUNK", self.size.audience_chunk.to_string()),
                        // A killed process's slices are taken over after this.
                        ("AUDIENCE_LEASE_SECS", "5".to_string()),
                    ]
                }
                _ => Vec::new(),
            },
        };
        let stack = Stack::start(&target).await?;
        let tenants =
            load::provision(&stack, fault.tenants(), fault.number_mps(&self.size)).await?;
        let numbers: Vec<(String, String)> = tenants
            .iter()
            .map(|t| (t.number.clone(), t.token.clone()))
            .collect();
        stack.configure_sim(&stack.sim_config(&numbers)).await?;
        let db = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&database_url)
            .await?;
        let baseline = checks::persistent_keys(&self.redis_seeds(), &prefix).await?;
        Ok(Env {
            stack,
            tenants,
            db,
            prefix,
            baseline,
            deadlocks_before: self.pg.deadlocks(),
        })
    }

    pub async fn run(&mut self, fault: Fault) -> anyhow::Result<Outcome> {
        if fault == Fault::ApiKillAfterCommit {
            return self.run_kill_at_commit().await;
        }
        if fault == Fault::SlowSends {
            return self.run_slow_sends().await;
        }
        if fault == Fault::ApiKillMidExpansion {
            return self.run_kill_mid_expansion().await;
        }
        let name = fault.name();
        let env = self.setup(fault, None).await?;
        let mut out = Outcome {
            scenario: name,
            ..Outcome::default()
        };
        let Env {
            mut stack,
            tenants,
            db,
            prefix,
            baseline,
            deadlocks_before,
        } = env;
        let size = if fault.on_cluster() {
            Size::CLUSTER
        } else {
            self.size
        };
        // Requests and recipients sent outside the load (the scheduled dispatch).
        let (mut extra_requests, mut extra_recipients) = (0, 0);
        if fault == Fault::SchedulerKill {
            // A scheduled dispatch, due while the active scheduler is dead: the stand-by must
            // release it.
            let t = &tenants[0];
            let mut body: Value =
                serde_json::from_slice(&ezpulze_e2e::send_body(size.per_request, 10_000_000))?;
            let at = chrono::Utc::now() + chrono::Duration::seconds(4);
            body["scheduled_at"] = json!(at.to_rfc3339());
            let r = stack
                .http
                .post(format!(
                    "{}/api/v1/broadcasts/{}/send",
                    stack.apis[0].base, t.broadcast
                ))
                .bearer_auth(&t.key)
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(r.status().as_u16() == 202, "scheduled send: {}", r.status());
            extra_requests += 1;
            extra_recipients += size.per_request;
        }
        if fault == Fault::SimFailures {
            let rates: Value = serde_json::from_str(size.failure_rates)?;
            stack
                .configure_sim(&json!({ "error_rates": rates }))
                .await?;
        }

        // The load: paced so that the api keeps receiving while the workers send (the kill of
        // an api then finds requests in flight), except that the api scenario sends as fast as
        // it can with small requests (many in flight at any moment).
        let send_secs = size.messages() as f64 / (fault.tenants() as f64 * NUMBER_MPS as f64);
        let (requests, per_request, pace) = if fault == Fault::ApiKill {
            (size.requests * 5, size.per_request / 5, Duration::ZERO)
        } else {
            let per_client = size.requests.div_ceil(size.clients) as f64;
            (
                size.requests,
                size.per_request,
                Duration::from_secs_f64(send_secs * 0.8 / per_client),
            )
        };
        let answered = Arc::new(AtomicUsize::new(0));
        let plan = Plan {
            requests,
            per_request,
            clients: size.clients,
            offset: 0,
            deadline: Duration::from_secs(120),
            label: name.to_owned(),
            pace,
            answered: answered.clone(),
        };
        let (http, apis, ts) = (stack.http.clone(), stack.api_urls(), tenants.clone());
        let load = tokio::spawn(async move { load::send_all(&http, &apis, &ts, &plan).await });
        let load_started = Instant::now();

        // The trigger: a quarter of the messages accepted by WhatsApp (the api scenario: a
        // third of its requests answered).
        let trigger = Instant::now();
        loop {
            let due = if fault == Fault::ApiKill {
                answered.load(Ordering::SeqCst) * 3 >= requests
            } else {
                stack.sim_accepted().await as usize * 4 >= size.messages()
            };
            if due || trigger.elapsed() > Duration::from_secs(60) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(if fault == Fault::ApiKill {
                5
            } else {
                50
            }))
            .await;
        }
        let fault_at = Instant::now();
        match fault {
            // Run by `run_kill_at_commit`, `run_slow_sends` and `run_kill_mid_expansion`.
            Fault::ApiKillAfterCommit
            | Fault::SlowSends
            | Fault::ApiKillMidExpansion
            | Fault::RedisCluster => {}
            Fault::RedisPrimaryKill => {
                // The primary that holds the first tenant's lane: jobs, leases and intents
                // in flight on it are what a lost node takes along.
                let cluster = self.cluster.as_mut().context("no cluster")?;
                let lane = format!("{{{prefix}:send:{}}}:tp", tenants[0].number);
                let port = cluster.kill_primary_of(&lane)?;
                let killed = Instant::now();
                let cluster = self.cluster.take().context("no cluster")?;
                let cluster = tokio::task::spawn_blocking(move || {
                    let ok = cluster.wait_failover(port, Duration::from_secs(30));
                    (cluster, ok)
                })
                .await?;
                self.cluster = Some(cluster.0);
                cluster.1.with_context(|| {
                    format!("no failover after killing the primary on port {port}")
                })?;
                out.takeover_s = Some(killed.elapsed().as_secs_f64());
            }
            Fault::WorkerKill => stack.workers[0].kill()?,
            Fault::ApiKill => {
                stack.apis[0].kill()?;
                tokio::time::sleep(Duration::from_secs(2)).await;
                stack.restart_api(0).await?;
            }
            Fault::RedisKill => self.redis.crash_and_restart(Duration::from_secs(1))?,
            Fault::PostgresRestart => self.pg.restart_immediate()?,
            Fault::SimFailures => {
                let left = size.failure_window.saturating_sub(load_started.elapsed());
                tokio::time::sleep(left).await;
                stack
                    .configure_sim(&json!({"error_rates": {"5xx": 0.0, "131000": 0.0}}))
                    .await?;
            }
            Fault::SchedulerKill => {
                let leader = wait_for_leader(&stack, None)
                    .await
                    .context("no active scheduler")?;
                stack.schedulers[leader].kill()?;
                let killed = Instant::now();
                let next = wait_for_leader(&stack, Some(leader)).await;
                out.takeover_s = next.map(|_| killed.elapsed().as_secs_f64());
                if next.is_none() {
                    out.problems
                        .push("the stand-by scheduler did not take the lease".into());
                }
            }
        }
        out.resumed_s = resumed_after(&stack, fault_at).await;

        let sent = load.await.context("load task")??;
        let drained = self.drain(&db, &stack, &prefix, &mut out).await?;
        let expected_requests = requests + extra_requests;
        let expected_recipients = requests * per_request + extra_recipients;
        out.accepted = sent.recipients + extra_recipients;
        out.retried_attempts = sent.retried_attempts;
        out.replayed_after_failure = sent.replayed_after_failure;
        out.longest_client_recovery_s = sent.longest_recovery.as_secs_f64();
        if sent.requests != requests {
            out.problems.push(format!(
                "{} of {requests} requests answered 202",
                sent.requests
            ));
        }
        let env = Env {
            stack,
            tenants,
            db,
            prefix,
            baseline,
            deadlocks_before,
        };
        self.verify(
            fault,
            env,
            out,
            drained,
            expected_requests,
            expected_recipients,
        )
        .await
    }

    /// The checks every scenario ends with.
    pub(crate) async fn verify(
        &mut self,
        fault: Fault,
        env: Env,
        mut out: Outcome,
        drained: checks::Drain,
        expected_requests: usize,
        expected_recipients: usize,
    ) -> anyhow::Result<Outcome> {
        let Env {
            mut stack,
            db,
            prefix,
            baseline,
            deadlocks_before,
            ..
        } = env;
        let size = self.size;
        let t = checks::tally(&db, &stack).await?;
        let after = checks::persistent_keys(&self.redis_seeds(), &prefix).await?;
        let (grown, top) = checks::growth(&baseline, &after);
        out.redis_persistent_growth_bytes = grown;
        out.redis_growth_top = top.clone();
        out.deadlocks = self.pg.deadlocks() - deadlocks_before;
        out.duplicated = t.duplicated();
        out.unknown = t.unknown;
        out.failed_other = t.failed_other;
        out.lost = (expected_recipients as i64 - t.rows).max(0) + t.not_final;

        let p = &mut out.problems;
        if t.rows != expected_recipients as i64 || t.distinct_phones != t.rows {
            p.push(format!(
                "{} recipients answered, {} message rows for {} phones",
                expected_recipients, t.rows, t.distinct_phones
            ));
        }
        if t.dispatches != expected_requests as i64 {
            p.push(format!(
                "{expected_requests} requests made {} dispatches",
                t.dispatches
            ));
        }
        if drained.final_after.is_none() {
            p.push(format!(
                "{} messages not final {:?} after the load: {}",
                t.not_final,
                size.drain_bound,
                checks::open_messages(&db).await
            ));
        }
        if t.counters != t.recount {
            p.push(format!(
                "key counters {:?} != the messages' recount {:?}",
                t.counters, t.recount
            ));
        }
        let dup = t.duplicated();
        for (i, what) in ["sent", "delivered", "read"].iter().enumerate() {
            let (ours, truth) = (t.counters[i], t.truth[i]);
            if ours > truth || truth - ours > dup {
                p.push(format!(
                    "{what}: counters {ours}, simulator {truth} (duplicated {dup})"
                ));
            }
        }
        if t.counters[3] < t.truth[3] {
            p.push(format!(
                "failed: counters {}, simulator {}",
                t.counters[3], t.truth[3]
            ));
        }
        if dup > 0 && !fault.allows_duplicates() {
            p.push(format!("{dup} messages sent twice"));
        }
        let not_ready = stack.all_ready().await;
        if !not_ready.is_empty() {
            p.push(format!(
                "not ready without a restart: {}",
                not_ready.join(", ")
            ));
        }
        if out.deadlocks > 0 {
            p.push(format!("{} deadlocks in the Postgres log", out.deadlocks));
        }
        if drained.empty_after.is_none() {
            p.push(format!(
                "the queues were not empty {:?} after the load",
                size.drain_bound
            ));
        }
        if out.redis_persistent_growth_bytes > REDIS_GROWTH_BOUND {
            p.push(format!(
                "Redis keys without a TTL grew by {} bytes after the drain: {top}",
                out.redis_persistent_growth_bytes
            ));
        }
        out.tally = t;
        db.close().await;
        drop(stack);
        Ok(out)
    }
}

/// One scenario's running stack and what its checks compare against.
pub(crate) struct Env {
    pub(crate) stack: Stack,
    pub(crate) tenants: Vec<load::Tenant>,
    pub(crate) db: PgPool,
    pub(crate) prefix: String,
    pub(crate) baseline: std::collections::BTreeMap<String, (u64, Option<u64>)>,
    pub(crate) deadlocks_before: usize,
}

impl Suite {
    /// One slow send does not stall a batch: the same load sent twice, once clean and once
    /// with the simulator holding 10% of sends past `SEND_TIMEOUT_MS` (they end as unknown
    /// outcomes, never resent); the second run's throughput must stay above
    /// [`SLOW_SENDS_MIN_RATIO`] of the first's.
    async fn run_slow_sends(&mut self) -> anyhow::Result<Outcome> {
        let fault = Fault::SlowSends;
        let env = self.setup(fault, None).await?;
        let mut out = Outcome {
            scenario: fault.name(),
            ..Outcome::default()
        };
        let (requests, per_request) = (self.size.requests / 2, self.size.per_request);
        let half = requests * per_request;
        let mut rates = Vec::new();
        for (run, offset) in [(0usize, 0usize), (1, half)] {
            if run == 1 {
                env.stack
                    .configure_sim(&json!({"error_rates": {"timeout": 0.1}, "timeout_ms": 3000}))
                    .await?;
            }
            let plan = Plan {
                requests,
                per_request,
                clients: self.size.clients,
                offset,
                deadline: Duration::from_secs(120),
                label: format!("{}-{run}", fault.name()),
                pace: Duration::ZERO,
                answered: Arc::new(AtomicUsize::new(0)),
            };
            let start = Instant::now();
            let sent =
                load::send_all(&env.stack.http, &env.stack.api_urls(), &env.tenants, &plan).await?;
            out.accepted += sent.recipients;
            let answered = start.elapsed();
            let d = self
                .drain(&env.db, &env.stack, &env.prefix, &mut out)
                .await?;
            // From the first request to every message of the run final.
            let took = d
                .final_after
                .map_or(f64::NAN, |f| (answered + f).as_secs_f64());
            rates.push(half as f64 / took);
        }
        let ratio = rates[1] / rates[0];
        out.throughput = Some((rates[0], rates[1]));
        if ratio.is_nan() || ratio < SLOW_SENDS_MIN_RATIO {
            out.problems.push(format!(
                "with 10% of sends held, {:.0} messages/s against {:.0} clean ({ratio:.2} < {SLOW_SENDS_MIN_RATIO})",
                rates[1], rates[0]
            ));
        }
        let drained = self
            .drain(&env.db, &env.stack, &env.prefix, &mut out)
            .await?;
        self.verify(fault, env, out, drained, requests * 2, half * 2)
            .await
    }

    /// The api killed between its commit and its answer: the first api reaches Redis through a
    /// proxy that stalls once the request holds its Idempotency-Key lock, so the api commits
    /// and then hangs pushing the jobs; it is killed as soon as its record is in Postgres. The
    /// client's retry (same key and body, on the other api) must be answered at once with
    /// the committed dispatch (`Idempotent-Replayed`), and the outbox must send its messages.
    async fn run_kill_at_commit(&mut self) -> anyhow::Result<Outcome> {
        let fault = Fault::ApiKillAfterCommit;
        let proxy = Proxy::start(self.redis.port).await?;
        let mut env = self.setup(fault, Some(&proxy)).await?;
        let mut out = Outcome {
            scenario: fault.name(),
            ..Outcome::default()
        };
        // One request: at most the API's 10,000 recipients.
        let recipients = (self.size.requests * self.size.per_request).min(10_000);
        let body = ezpulze_e2e::send_body(recipients, 0);
        let t = env.tenants[0].clone();
        let send = |api: String| {
            let (http, body, t) = (env.stack.http.clone(), body.clone(), t.clone());
            async move {
                http.post(format!("{api}/api/v1/broadcasts/{}/send", t.broadcast))
                    .bearer_auth(&t.key)
                    .header("Idempotency-Key", "killed-at-commit")
                    .header("content-type", "application/json")
                    .body(body)
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
            }
        };
        let first = tokio::spawn(send(env.stack.apis[0].base.clone()));
        let redis = redis::Client::open(self.redis.url())?;
        let mut conn = redis.get_multiplexed_async_connection().await?;
        let lock_pattern = format!("{}:idem:*", env.prefix);
        let start = Instant::now();
        loop {
            let (_, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(0)
                .arg("MATCH")
                .arg(&lock_pattern)
                .arg("COUNT")
                .arg(10_000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                proxy.pause(true);
                break;
            }
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(30),
                "the request never took its lock"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let committed: Option<uuid::Uuid> = loop {
            let d: Option<uuid::Uuid> =
                sqlx::query_scalar("SELECT dispatch_id FROM idempotency_records")
                    .fetch_optional(&env.db)
                    .await?;
            if d.is_some() || first.is_finished() || start.elapsed() > Duration::from_secs(30) {
                break d;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let fault_at = Instant::now();
        env.stack.apis[0].kill()?;
        let first_answer = first.await?;
        proxy.pause(false);
        match (&committed, &first_answer) {
            (Some(_), Err(_)) => {}
            _ => out.problems.push(format!(
                "the api was not caught between commit and answer (committed: {committed:?}, answered: {})",
                first_answer.is_ok()
            )),
        }
        // The client retries on the other api, as the docs advise.
        let r = send(env.stack.apis[1].base.clone()).await?;
        out.longest_client_recovery_s = fault_at.elapsed().as_secs_f64();
        let replayed = r.headers().contains_key("idempotent-replayed");
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or_default();
        out.retried_attempts = 1;
        if status == 202 && replayed {
            out.replayed_after_failure = 1;
        } else {
            out.problems.push(format!(
                "the retry was answered {status} (replayed: {replayed}): {v}"
            ));
        }
        if committed.map(|d| d.to_string()).as_deref() != v["dispatch_id"].as_str() {
            out.problems.push(format!(
                "the retry names dispatch {}, the commit {committed:?}",
                v["dispatch_id"]
            ));
        }
        out.accepted = v["accepted"].as_u64().unwrap_or(0) as usize;
        env.stack.restart_api(0).await?;
        out.resumed_s = resumed_after(&env.stack, fault_at).await;
        let drained = self
            .drain(&env.db, &env.stack, &env.prefix, &mut out)
            .await?;
        self.verify(fault, env, out, drained, 1, recipients).await
    }
}

/// The share of the clean run's throughput the engine keeps with 10% of sends held past the
/// send timeout (measured 0.45-0.62 in the worker's own test, `throughput.rs`).
pub const SLOW_SENDS_MIN_RATIO: f64 = 0.35;

/// How much the keys without a TTL under a scenario's prefix may have grown once everything
/// is drained (streams keep their consumer groups and a little bookkeeping; a backlog or a
/// leak of 3,000 messages' jobs would be far more).
pub const REDIS_GROWTH_BOUND: i64 = 256 * 1024;

/// Seconds from `fault_at` until WhatsApp accepted a message again after the fault (at most 60).
pub(crate) async fn resumed_after(stack: &Stack, fault_at: Instant) -> f64 {
    let before = stack.sim_accepted().await;
    while fault_at.elapsed() < Duration::from_secs(60) && stack.sim_accepted().await <= before {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fault_at.elapsed().as_secs_f64()
}

async fn wait_for_leader(stack: &Stack, not: Option<usize>) -> Option<usize> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Some(l) = stack.leader().await {
            if Some(l) != not {
                return Some(l);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
