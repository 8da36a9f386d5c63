//! 1,000,000 jobs pushed before any worker starts are all processed, and Redis memory is back
//! to its baseline after the drain. Runs on a private redis-server so `used_memory` is ours.
mod common;

use std::time::{Duration, Instant};

use common::*;
use ezpulze_queue::{Queue, RedisTarget};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_jobs_pushed_first_are_all_processed_and_memory_returns() {
    let n: u64 = std::env::var("EZQ_MILLION_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let redis = PrivateRedis::start();
    let ns = ns("million");
    let q: Queue<TJob> = Queue::connect(RedisTarget::single(redis.url()), cfg(&ns))
        .await
        .expect("connect");
    let baseline = redis.used_memory();

    let t = Instant::now();
    let chunk = 100_000;
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        q.push_bulk(&jobs(start..end)).await.expect("push");
        start = end;
    }
    let push_time = t.elapsed();
    let s = q.stats().await.expect("stats");
    assert_eq!(s.depth, n, "all pushed before any worker starts");
    let loaded = redis.used_memory();

    let seen = Seen::new(n as usize);
    let t = Instant::now();
    let w = run_workers(&q, "w", 2, 64, seen.clone(), ok_behavior());
    seen.wait_distinct("all processed", Duration::from_secs(600), n as usize)
        .await;
    w.stop().await;
    let consume_time = t.elapsed();
    assert_eq!(seen.total(), n, "each job exactly once");
    assert_empty(&q).await;
    let after = redis.used_memory();
    eprintln!(
        "{n} jobs: push {:.1}s, consume {:.1}s; used_memory baseline {baseline}, loaded {loaded}, after drain {after}",
        push_time.as_secs_f64(),
        consume_time.as_secs_f64()
    );
    assert!(
        after < baseline + 512 * 1024,
        "memory back to near baseline: baseline {baseline}, after {after}"
    );
}
