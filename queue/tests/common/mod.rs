//! Shared helpers of the queue's integration tests (real Redis).
#![allow(dead_code, unused_imports)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::*;
use ezpulze_queue::{JobError, JobMeta, Queue, QueueConfig, RedisTarget};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The shared test Redis: `EZPULZE_TEST_REDIS` (as `make test` sets it), default
/// `redis://127.0.0.1:6379/0`. Tests that restart Redis or read `used_memory` start their own.
pub use ezpulze_testkit::redis_url;
pub use ezpulze_testkit::wait_until;

/// A namespace no other test (or test run) uses (`ezp_t_`, which `scripts/test.sh` cleans up).
pub fn ns(test: &str) -> String {
    format!("{}_{test}", ezpulze_testkit::unique_name())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TJob {
    pub n: u64,
    pub pad: String,
}

pub fn job(n: u64) -> TJob {
    TJob {
        n,
        pad: "x".repeat(100),
    }
}

pub fn jobs(range: std::ops::Range<u64>) -> Vec<TJob> {
    range.map(job).collect()
}

pub fn cfg(ns: &str) -> QueueConfig {
    let mut c = QueueConfig::new(ns, "q");
    c.block = Duration::from_millis(100);
    c.promote_interval = Duration::from_millis(50);
    c
}

pub async fn queue(ns: &str, cfg: QueueConfig) -> Queue<TJob> {
    let _ = ns;
    Queue::connect(RedisTarget::single(redis_url()), cfg)
        .await
        .expect("connect to redis at 127.0.0.1:6379")
}

/// Per-job processing counts (index = job number).
pub struct Seen {
    pub counts: Vec<AtomicU32>,
    distinct: AtomicU64,
}

impl Seen {
    pub fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            counts: (0..n).map(|_| AtomicU32::new(0)).collect(),
            distinct: AtomicU64::new(0),
        })
    }

    pub fn mark(&self, n: u64) -> u32 {
        self.counts[n as usize].fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn distinct(&self) -> usize {
        self.counts
            .iter()
            .filter(|c| c.load(Ordering::SeqCst) > 0)
            .count()
    }

    pub fn total(&self) -> u64 {
        self.counts
            .iter()
            .map(|c| u64::from(c.load(Ordering::SeqCst)))
            .sum()
    }

    pub fn get(&self, n: usize) -> u32 {
        self.counts[n].load(Ordering::SeqCst)
    }

    /// Waits (up to `deadline`) until exactly `n` distinct jobs were processed.
    pub async fn wait_distinct(&self, what: &str, deadline: Duration, n: usize) {
        wait_until(what, deadline, || async move { self.distinct() == n }).await;
    }
}

/// Asserts that the queue holds nothing: no waiting, running, delayed or dead job.
pub async fn assert_empty(q: &Queue<TJob>) {
    let s = q.stats().await.expect("stats");
    assert_eq!((s.depth, s.in_flight, s.delayed, s.dead), (0, 0, 0, 0));
}

pub type Behavior = Arc<dyn Fn(&TJob, &JobMeta) -> Result<(), JobError> + Send + Sync>;

pub fn ok_behavior() -> Behavior {
    Arc::new(|_, _| Ok(()))
}

/// Succeeds after blocking its thread for `per_job`.
pub fn slow_behavior(per_job: Duration) -> Behavior {
    Arc::new(move |_, _| {
        std::thread::sleep(per_job);
        Ok(())
    })
}

async fn handle(
    job: TJob,
    meta: Data<JobMeta>,
    seen: Data<Arc<Seen>>,
    beh: Data<Behavior>,
) -> Result<(), JobError> {
    // A job whose pad reads `sleep:<ms>` takes that long (asynchronously).
    if let Some(ms) = job.pad.strip_prefix("sleep:").and_then(|v| v.parse().ok()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let r = (beh)(&job, &meta);
    if r.is_ok() {
        seen.mark(job.n);
    }
    r
}

pub struct Workers {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl Workers {
    /// Graceful stop: waits for in-flight jobs and the final flush.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), &mut self.handle)
            .await
            .expect("workers stop within 30 s")
            .expect("monitor task");
    }
}

/// Runs `n` apalis workers (`concurrency` each) under a Monitor.
pub fn run_workers(
    queue: &Queue<TJob>,
    prefix: &str,
    n: usize,
    concurrency: usize,
    seen: Arc<Seen>,
    beh: Behavior,
) -> Workers {
    let (tx, rx) = oneshot::channel::<()>();
    let q = queue.clone();
    let prefix = prefix.to_owned();
    let monitor = Monitor::new().register_n(n, move |i, _| {
        WorkerBuilder::new(format!("{prefix}-{i}"))
            .backend(q.backend())
            .data(seen.clone())
            .data(beh.clone())
            .concurrency(concurrency)
            .build(handle)
    });
    let handle = tokio::spawn(async move {
        monitor
            .run_with_signal(async move {
                let _ = rx.await;
                Ok(())
            })
            .await
            .expect("monitor ran");
    });
    Workers {
        stop: Some(tx),
        handle,
    }
}

/// A private redis-server on a free loopback port (killed on drop).
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    args: Vec<String>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl PrivateRedis {
    pub fn start() -> Self {
        Self::start_with(free_port(), &[])
    }

    pub fn start_with(port: u16, extra: &[&str]) -> Self {
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--daemonize".into(),
            "no".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut r = Self {
            port,
            child: None,
            args,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = Command::new("redis-cli")
                .args(["-p", &self.port.to_string(), "ping"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("PONG"))
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "private redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn used_memory(&self) -> u64 {
        self.cli(&["info", "memory"])
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("used_memory")
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
