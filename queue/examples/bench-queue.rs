//! Queue benchmark (`make bench-queue` runs it through `scripts/bench-queue.sh`).
//!
//! Pushes and consumes `JOBS` ~150-byte jobs with a no-op handler under apalis, on our
//! Redis Streams backend and on apalis-redis 1.0.0, against the Redis at `REDIS_URL` (the
//! script starts a private one: the memory figures read the server's `used_memory`).
//! The last line of output is one JSON object.
//!
//! Env: `REDIS_URL` (default redis://127.0.0.1:6379/), `JOBS` (default 200000),
//! `APALIS_REDIS_JOBS` (default 7500: apalis-redis 1.0.0 wedges with
//! "too many results to unpack" when ~8,000 or more jobs are waiting when its workers start), `WORKERS` (default 2), `CONCURRENCY` (default 64),
//! `PHASE_TIMEOUT_S` (default 120).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use apalis::prelude::*;
use ezpulze_queue::{JobError, Queue, QueueConfig, RedisTarget};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Notify;

/// mimalloc, which the worker binaries should use too (glibc malloc was ~25% of the
/// consumer's CPU profile). Build with `--features bench-system-alloc` to measure glibc malloc.
#[cfg(not(feature = "bench-system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ALLOCATOR: &str = if cfg!(feature = "bench-system-alloc") {
    "system (glibc malloc)"
} else {
    "mimalloc"
};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct BenchJob {
    message_id: u64,
    dispatch_id: u64,
    phone_number_id: String,
    to: String,
    template: String,
    lang: String,
}

fn job(n: u64) -> BenchJob {
    BenchJob {
        message_id: 1_000_000_000 + n,
        dispatch_id: 42_424_242,
        phone_number_id: "106540352242922".to_owned(),
        to: format!("+4915{:09}", n % 1_000_000_000),
        template: "order_update_notification_v2".to_owned(),
        lang: "en_US".to_owned(),
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Counts handled jobs and wakes the waiter when the target is reached.
struct Counter {
    done: AtomicU64,
    target: AtomicU64,
    notify: Notify,
}

impl Counter {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            done: AtomicU64::new(0),
            target: AtomicU64::new(u64::MAX),
            notify: Notify::new(),
        })
    }

    fn hit(&self) {
        let d = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if d >= self.target.load(Ordering::Relaxed) {
            self.notify.notify_one();
        }
    }

    fn expect(&self, target: u64) {
        self.done.store(0, Ordering::SeqCst);
        self.target.store(target, Ordering::SeqCst);
    }

    /// Waits for the `n` jobs started at `t`; their rate when all were done, reported as `who`.
    async fn consumed(
        &self,
        who: &str,
        n: u64,
        t: Instant,
        timeout: Duration,
        workers: &Running,
    ) -> Option<f64> {
        let ok = self.wait(timeout, workers).await;
        let consume = ok.then(|| rate(n, t.elapsed()));
        eprintln!(
            "{who}: consumed {} in {:.2}s ({consume:?}/s)",
            self.done.load(Ordering::SeqCst),
            t.elapsed().as_secs_f64()
        );
        consume
    }

    async fn wait(&self, timeout: Duration, workers: &Running) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.done.load(Ordering::SeqCst) >= self.target.load(Ordering::SeqCst) {
                return true;
            }
            if workers.handle.is_finished() {
                return false; // the workers died (e.g. a backend error)
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let _ =
                tokio::time::timeout(left.min(Duration::from_millis(50)), self.notify.notified())
                    .await;
        }
    }
}

/// Redis memory per job that `n` pushed jobs added over `baseline`, rounded.
async fn bytes_per_job(
    conn: &mut redis::aio::MultiplexedConnection,
    baseline: u64,
    n: u64,
) -> Result<f64> {
    let loaded = used_memory(conn).await?;
    Ok((loaded.saturating_sub(baseline) as f64 / n as f64).round())
}

async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> Result<u64> {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .context("INFO memory")?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("used_memory in INFO")
}

fn rate(n: u64, d: Duration) -> f64 {
    (n as f64 / d.as_secs_f64()).round()
}

struct Setup {
    url: String,
    workers: usize,
    concurrency: usize,
    timeout: Duration,
    batch: usize,
}

async fn noop_ours(_job: BenchJob, c: Data<Arc<Counter>>) -> Result<(), JobError> {
    c.hit();
    Ok(())
}

async fn noop_theirs(_job: BenchJob, c: Data<Arc<Counter>>) -> Result<(), BoxDynError> {
    c.hit();
    Ok(())
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(self, timeout: Duration) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(timeout, self.handle).await;
    }
}

fn spawn_monitor(monitor: Monitor) -> Running {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let r = monitor
            .run_with_signal(async move {
                let _ = rx.await;
                Ok(())
            })
            .await;
        if let Err(e) = r {
            eprintln!("monitor ended with an error: {e}");
        }
    });
    Running { stop: tx, handle }
}

fn run_ours(q: &Queue<BenchJob>, s: &Setup, counter: &Arc<Counter>) -> Running {
    let q = q.clone();
    let c = counter.clone();
    let conc = s.concurrency;
    spawn_monitor(Monitor::new().register_n(s.workers, move |i, _| {
        WorkerBuilder::new(format!("bench-{i}"))
            .backend(q.backend())
            .data(c.clone())
            .concurrency(conc)
            .build(noop_ours)
    }))
}

async fn bench_ours(
    s: &Setup,
    n: u64,
    admin: &mut redis::aio::MultiplexedConnection,
) -> Result<serde_json::Value> {
    let ns = format!("bench-{}", std::process::id());
    let mut cfg = QueueConfig::new(&ns, "dispatch");
    cfg.batch_size = s.batch;
    let q: Queue<BenchJob> = Queue::connect(RedisTarget::single(&s.url), cfg)
        .await
        .context("connect queue")?;
    q.purge().await.context("purge")?;
    let payload_bytes = serde_json::to_vec(&job(0)).context("encode")?.len();
    let all: Vec<BenchJob> = (0..n).map(job).collect();
    let baseline = used_memory(admin).await?;

    // 1. push everything
    let t = Instant::now();
    q.push_bulk(&all).await.context("push_bulk")?;
    let push = rate(n, t.elapsed());
    let per_job = bytes_per_job(admin, baseline, n).await?;
    eprintln!(
        "ours: pushed {n} in {:.2}s ({push}/s), {per_job} bytes per pending job",
        t.elapsed().as_secs_f64()
    );

    // 2. consume what was pushed
    let counter = Counter::new();
    counter.expect(n);
    let t = Instant::now();
    let w = run_ours(&q, s, &counter);
    let consume = counter.consumed("ours", n, t, s.timeout, &w).await;

    // 3. overlap: workers running while the same number of jobs is pushed
    counter.expect(n);
    let t = Instant::now();
    let qp = q.clone();
    let producer = tokio::spawn(async move { qp.push_bulk(&all).await });
    let ok2 = counter.wait(s.timeout, &w).await;
    producer
        .await
        .context("producer task")?
        .context("overlap push")?;
    let overlap = ok2.then(|| rate(n, t.elapsed()));
    eprintln!(
        "ours: overlap {n} in {:.2}s ({overlap:?}/s)",
        t.elapsed().as_secs_f64()
    );
    w.stop(Duration::from_secs(30)).await;

    // 4. the plain batch consumer (fetch_batch + complete), one per worker, same jobs
    q.push_bulk(&(0..n).map(job).collect::<Vec<_>>())
        .await
        .context("push for plain")?;
    let t = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for i in 0..s.workers {
        let q = q.clone();
        let done = done.clone();
        let batch = s.batch;
        loops.push(tokio::spawn(async move {
            let mut c = q.consumer(format!("plain-{i}"));
            while done.load(Ordering::Relaxed) < n {
                let jobs = c.fetch_batch(batch).await?;
                done.fetch_add(jobs.len() as u64, Ordering::Relaxed);
                q.complete(jobs.into_iter().map(|j| (j.meta, Ok(()))))
                    .await?;
            }
            Ok::<(), ezpulze_queue::QueueError>(())
        }));
    }
    for l in loops {
        l.await
            .context("plain consumer task")?
            .context("plain consumer")?;
    }
    let plain = rate(n, t.elapsed());
    eprintln!(
        "ours: plain batch consumer {n} in {:.2}s ({plain}/s)",
        t.elapsed().as_secs_f64()
    );
    let stats = q.stats().await.context("stats")?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = used_memory(admin).await?;
    let left = after as i64 - baseline as i64;
    eprintln!("ours: after drain {stats:?}, memory left {left} bytes");
    q.purge().await.context("purge")?;
    Ok(json!({
        "jobs": n,
        "payload_bytes": payload_bytes,
        "push_jobs_per_s": push,
        "consume_jobs_per_s": consume,
        "overlap_jobs_per_s": overlap,
        "redis_bytes_per_pending_job": per_job,
        "memory_left_after_drain_bytes": left,
        "left_in_queue_after_drain": stats.depth + stats.in_flight,
        "plain_consume_jobs_per_s": plain,
        "batch_size": s.batch,
        "allocator": ALLOCATOR,
        "workers": s.workers,
        "concurrency": s.concurrency,
    }))
}

async fn bench_apalis_redis(
    s: &Setup,
    n: u64,
    admin: &mut redis::aio::MultiplexedConnection,
) -> Result<serde_json::Value> {
    use apalis_redis::{Config, RedisStorage};
    let conn = apalis_redis::connect(s.url.as_str())
        .await
        .context("apalis-redis connect")?;
    // Best settings found: big fetch batches, no per-task locking scan, short heartbeat so
    // idle workers see new work, no pub/sub events. Results are kept (persist_results(false)
    // re-runs finished jobs after an orphan sweep).
    let cfg = Config::default()
        .queue(format!("bench-ar-{}", std::process::id()))
        .batch_size(200)
        .lock_tasks(false)
        .emit_events(false)
        .heartbeat_interval(Duration::from_millis(100));
    let storage: RedisStorage<BenchJob> = RedisStorage::new(conn).with_config(cfg);
    let baseline = used_memory(admin).await?;

    let mut sink = storage.clone();
    let t = Instant::now();
    for start in (0..n).step_by(10_000) {
        let chunk: Vec<BenchJob> = (start..(start + 10_000).min(n)).map(job).collect();
        sink.push_bulk(chunk)
            .await
            .map_err(|e| anyhow::anyhow!("apalis-redis push: {e}"))?;
    }
    let push = rate(n, t.elapsed());
    let per_job = bytes_per_job(admin, baseline, n).await?;
    eprintln!(
        "apalis-redis: pushed {n} in {:.2}s ({push}/s)",
        t.elapsed().as_secs_f64()
    );

    let counter = Counter::new();
    counter.expect(n);
    let start_workers = |counter: &Arc<Counter>| {
        let st = storage.clone();
        let c = counter.clone();
        let conc = s.concurrency;
        spawn_monitor(Monitor::new().register_n(s.workers, move |i, _| {
            WorkerBuilder::new(format!("bench-ar-{i}"))
                .backend(st.clone())
                .data(c.clone())
                .concurrency(conc)
                .build(noop_theirs)
        }))
    };
    let t = Instant::now();
    let w = start_workers(&counter);
    let consume = counter.consumed("apalis-redis", n, t, s.timeout, &w).await;

    counter.expect(n);
    let t = Instant::now();
    let mut sink2 = storage.clone();
    let producer = tokio::spawn(async move {
        for start in (0..n).step_by(10_000) {
            let chunk: Vec<BenchJob> = (start..(start + 10_000).min(n)).map(job).collect();
            sink2
                .push_bulk(chunk)
                .await
                .map_err(|e| anyhow::anyhow!("apalis-redis push: {e}"))?;
        }
        Ok::<(), anyhow::Error>(())
    });
    let ok2 = counter.wait(s.timeout, &w).await;
    let overlap = ok2.then(|| rate(n, t.elapsed()));
    let _ = tokio::time::timeout(Duration::from_secs(30), producer).await;
    eprintln!(
        "apalis-redis: overlap {} in {:.2}s ({overlap:?}/s)",
        counter.done.load(Ordering::SeqCst),
        t.elapsed().as_secs_f64()
    );
    w.stop(Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = used_memory(admin).await?;
    Ok(json!({
        "jobs": n,
        "settings": "batch_size 200, lock_tasks false, emit_events false, heartbeat 100 ms",
        "push_jobs_per_s": push,
        "consume_jobs_per_s": consume,
        "overlap_jobs_per_s": overlap,
        "redis_bytes_per_pending_job": per_job,
        "memory_left_after_drain_bytes": after as i64 - baseline as i64,
    }))
}

#[tokio::main]
async fn main() -> Result<()> {
    let s = Setup {
        url: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned()),
        workers: env_u64("WORKERS", 2) as usize,
        concurrency: env_u64("CONCURRENCY", 64) as usize,
        timeout: Duration::from_secs(env_u64("PHASE_TIMEOUT_S", 120)),
        batch: env_u64("BATCH_SIZE", 200) as usize,
    };
    let n = env_u64("JOBS", 200_000);
    let n_ar = env_u64("APALIS_REDIS_JOBS", 7_500);
    let client = redis::Client::open(s.url.as_str()).context("redis url")?;
    let mut admin = client
        .get_multiplexed_async_connection()
        .await
        .context("connect admin")?;
    let ours = bench_ours(&s, n, &mut admin).await.context("our backend")?;
    let theirs = if n_ar == 0 {
        serde_json::Value::Null
    } else {
        match bench_apalis_redis(&s, n_ar, &mut admin).await {
            Ok(v) => v,
            Err(e) => json!({ "error": format!("{e:#}") }),
        }
    };
    let mut out = ours;
    if let Some(o) = out.as_object_mut() {
        o.insert("apalis_redis".to_owned(), theirs);
    }
    println!("{out}");
    Ok(())
}
