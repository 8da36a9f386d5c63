//! The engine's real binaries as separate processes: the simulator, two api processes, two
//! workers and two schedulers (one active), on one scenario's database and Redis prefix.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use crate::services::free_port;

/// Settings every scenario's processes share (besides database, Redis and addresses).
pub const ROOT_TOKEN: &str = "root_faults_suite_token_0123456789";
pub const APP_SECRET: &str = "faults-suite-app-secret";
/// A send times out after 2 s here (the simulator answers in milliseconds), so a dead
/// worker's jobs come back after 2 x (2 + 1) + 5 = 11 s instead of 27 s.
pub const SEND_TIMEOUT_MS: &str = "2000";
/// Queued rows whose job was lost (Redis restarted without it, an api died between commit and
/// push) are pushed again after 5 s instead of 300 s.
pub const OUTBOX_AFTER_SECS: &str = "5";

/// One process of the stack.
pub struct Role {
    pub name: String,
    /// Where its `/readyz` and `/metrics` answer.
    pub base: String,
    env: HashMap<String, String>,
    exe: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Role {
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.exe)
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {} ({})", self.name, self.exe.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9`.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill().with_context(|| format!("kill -9 {}", self.name))?;
            let _ = c.wait();
        }
        Ok(())
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        within: Duration,
    ) -> anyhow::Result<()> {
        let start = Instant::now();
        while start.elapsed() < within {
            if !self.is_running() {
                bail!("{} exited; see {}", self.name, self.log.display());
            }
            if let Ok(r) = http.get(format!("{}/readyz", self.base)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "{} not ready after {within:?}; see {}",
            self.name,
            self.log.display()
        )
    }

    /// Whether `/readyz` answers 200 now.
    pub async fn ready(&self, http: &reqwest::Client) -> bool {
        http.get(format!("{}/readyz", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    }

    /// The value of an unlabelled gauge or counter on `/metrics`.
    pub async fn metric(&self, http: &reqwest::Client, name: &str) -> Option<f64> {
        let text = http
            .get(format!("{}/metrics", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// How many processes of a role the stack runs: `name` from the environment (1 to 16),
/// default 2 (the scenarios kill the first and need a second). Two schedulers always run
/// (one active, one stand-by).
fn processes(name: &str) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| (1..=16).contains(n))
        .unwrap_or(2)
}

pub struct Stack {
    pub sim: Role,
    pub apis: Vec<Role>,
    pub workers: Vec<Role>,
    pub schedulers: Vec<Role>,
    pub http: reqwest::Client,
}

/// Where the scenario's processes run against.
pub struct Target<'a> {
    pub bin_dir: &'a Path,
    pub log_dir: &'a Path,
    pub database_url: String,
    pub redis_url: String,
    pub redis_prefix: String,
    /// Where the first api reaches Redis, when not at `redis_url` (through a proxy).
    pub api0_redis_url: Option<String>,
    /// A Redis Cluster's seed nodes (comma-separated) instead of `redis_url`; the status
    /// stream is then spread over 3 shards.
    pub redis_cluster_urls: Option<String>,
    /// Settings of the api processes only.
    pub api_env: Vec<(&'static str, String)>,
}

impl Stack {
    pub async fn start(t: &Target<'_>) -> anyhow::Result<Stack> {
        std::fs::create_dir_all(t.log_dir)?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()?;
        let role = |name: &str, exe: &str, port: u16, env: Vec<(&str, String)>| Role {
            name: name.to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            exe: t.bin_dir.join(exe),
            log: t.log_dir.join(format!("{name}.log")),
            child: None,
        };
        let sim_port = free_port()?;
        let sim_url = format!("http://127.0.0.1:{sim_port}");
        let common = |extra: Vec<(&'static str, String)>| {
            let mut env = vec![
                ("DATABASE_URL", t.database_url.clone()),
                ("REDIS_URL", t.redis_url.clone()),
                ("REDIS_PREFIX", t.redis_prefix.clone()),
                ("EZPULZE_ROOT_TOKEN", ROOT_TOKEN.to_owned()),
                ("GRAPH_API_BASE", sim_url.clone()),
                ("TEST_GRAPH_API_BASE", sim_url.clone()),
                ("SEND_TIMEOUT_MS", SEND_TIMEOUT_MS.to_owned()),
                ("OUTBOX_AFTER_SECS", OUTBOX_AFTER_SECS.to_owned()),
                ("MIGRATE_ON_START", "false".to_owned()),
                ("RUST_LOG", "warn".to_owned()),
            ];
            if let Some(urls) = &t.redis_cluster_urls {
                env.push(("REDIS_CLUSTER_URLS", urls.clone()));
                env.push(("STATUS_SHARDS", "3".to_owned()));
            }
            env.extend(extra);
            env
        };
        let mut sim = role(
            "simulator",
            "ezpulze-simulator",
            sim_port,
            vec![
                ("SIM_LISTEN", format!("127.0.0.1:{sim_port}")),
                ("RUST_LOG", "warn".to_owned()),
            ],
        );
        sim.spawn()?;
        sim.wait_ready(&http, Duration::from_secs(30)).await?;

        let mut apis = Vec::new();
        for i in 0..processes("FAULTS_APIS") {
            let port = free_port()?;
            let mut env = common(vec![
                ("API_ADDR", format!("127.0.0.1:{port}")),
                ("PUBLIC_BASE_URL", format!("http://127.0.0.1:{port}")),
            ]);
            env.extend(t.api_env.iter().cloned());
            if i == 0 {
                // The first api applies the migrations; the others start on a migrated database.
                env.retain(|(k, _)| *k != "MIGRATE_ON_START");
                if let Some(url) = &t.api0_redis_url {
                    env.retain(|(k, _)| *k != "REDIS_URL");
                    env.push(("REDIS_URL", url.clone()));
                }
            }
            let mut api = role(&format!("api-{i}"), "ezpulze-api", port, env);
            api.spawn()?;
            api.wait_ready(&http, Duration::from_secs(60)).await?;
            apis.push(api);
        }
        let mut workers = Vec::new();
        for i in 0..processes("FAULTS_WORKERS") {
            let port = free_port()?;
            let env = common(vec![("WORKER_METRICS_ADDR", format!("127.0.0.1:{port}"))]);
            workers.push(role(&format!("worker-{i}"), "ezpulze-worker", port, env));
        }
        let mut schedulers = Vec::new();
        for i in 0..2 {
            let port = free_port()?;
            let env = common(vec![(
                "SCHEDULER_METRICS_ADDR",
                format!("127.0.0.1:{port}"),
            )]);
            schedulers.push(role(
                &format!("scheduler-{i}"),
                "ezpulze-scheduler",
                port,
                env,
            ));
        }
        for r in workers.iter_mut().chain(schedulers.iter_mut()) {
            r.spawn()?;
        }
        for r in workers.iter_mut().chain(schedulers.iter_mut()) {
            r.wait_ready(&http, Duration::from_secs(60)).await?;
        }
        Ok(Stack {
            sim,
            apis,
            workers,
            schedulers,
            http,
        })
    }

    pub fn api_urls(&self) -> Vec<String> {
        self.apis.iter().map(|a| a.base.clone()).collect()
    }

    /// Merges `patch` into the simulator's configuration.
    pub async fn configure_sim(&self, patch: &Value) -> anyhow::Result<()> {
        let r = self
            .http
            .put(format!("{}/_sim/config", self.sim.base))
            .json(patch)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "simulator config refused: {}",
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    pub async fn sim_json(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}{path}", self.sim.base))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// The simulator's ground-truth count of accepted sends.
    pub async fn sim_accepted(&self) -> u64 {
        self.sim_json("/_sim/stats")
            .await
            .ok()
            .and_then(|v| v["accepted"].as_u64())
            .unwrap_or(0)
    }

    /// Which scheduler holds the lease (its `ezpulze_scheduler_leader` gauge is 1).
    pub async fn leader(&self) -> Option<usize> {
        for (i, s) in self.schedulers.iter().enumerate() {
            if s.metric(&self.http, "ezpulze_scheduler_leader").await == Some(1.0) {
                return Some(i);
            }
        }
        None
    }

    /// Every process still running answers `/readyz` (none was restarted to get there).
    pub async fn all_ready(&mut self) -> Vec<String> {
        let mut not_ready = Vec::new();
        let http = self.http.clone();
        for r in std::iter::once(&mut self.sim)
            .chain(self.apis.iter_mut())
            .chain(self.workers.iter_mut())
            .chain(self.schedulers.iter_mut())
        {
            if r.child.is_some() && (!r.is_running() || !r.ready(&http).await) {
                not_ready.push(r.name.clone());
            }
        }
        not_ready
    }

    /// The simulator's configuration for a scenario: two business numbers, webhooks to the
    /// first api, duplicates and reordering on.
    pub fn sim_config(&self, numbers: &[(String, String)]) -> Value {
        let numbers: Vec<Value> = numbers
            .iter()
            .enumerate()
            .map(|(i, (id, token))| {
                json!({"phone_number_id": id, "display_phone_number": format!("1555000{i:04}"), "access_token": token})
            })
            .collect();
        json!({
            "numbers": numbers,
            "webhook_url": format!("{}/webhooks/whatsapp", self.apis[0].base),
            "app_secret": APP_SECRET,
            "mps_limit": 0, "pair_gap_ms": 0,
            "latency_ms": 5, "latency_jitter_ms": 20,
            "delivered_rate": 0.9, "read_rate": 0.5,
            "sent_delay_ms": 50, "delivered_delay_ms": 150, "read_delay_ms": 300, "delay_jitter_ms": 100,
            "duplicate_rate": 0.05, "reorder_rate": 0.05, "reorder_delay_ms": 300,
            "webhook_batch_size": 500, "webhook_linger_ms": 50, "webhook_concurrency": 4,
            "webhook_retry_initial_ms": 100, "webhook_retry_max_ms": 1000, "webhook_max_attempts": 0
        })
    }

    /// Restarts a killed api (what a supervisor does); it must be ready again.
    pub async fn restart_api(&mut self, i: usize) -> anyhow::Result<()> {
        let http = self.http.clone();
        let api = &mut self.apis[i];
        api.spawn()?;
        api.wait_ready(&http, Duration::from_secs(60)).await
    }
}
