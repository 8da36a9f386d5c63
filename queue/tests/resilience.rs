//! Redis restarts, killed connections and graceful shutdown.
mod common;

use std::time::Duration;

use common::*;
use ezpulze_queue::{Queue, RedisTarget};

async fn private_queue(redis: &PrivateRedis, ns: &str) -> Queue<TJob> {
    // A short lease: a fetch whose reply died with a killed connection leaves its jobs
    // pending on the dead connection's consumer; they are taken over after the lease.
    let mut c = cfg(ns).with_lease(Duration::from_secs(2));
    c.response_timeout = Duration::from_secs(2);
    c.connect_timeout = Duration::from_secs(1);
    Queue::connect(RedisTarget::single(redis.url()), c)
        .await
        .expect("connect private redis")
}

async fn push_retrying(q: &Queue<TJob>, js: &[TJob]) {
    for _ in 0..100 {
        if q.push_bulk(js).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("push never succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_a_redis_restart_in_process() {
    let mut redis = PrivateRedis::start();
    let ns = ns("restart");
    let q = private_queue(&redis, &ns).await;
    let seen = Seen::new(4000);
    let w = run_workers(&q, "w", 2, 16, seen.clone(), ok_behavior());
    q.push_bulk(&jobs(0..2000)).await.expect("push");
    seen.wait_distinct("first half processed", Duration::from_secs(20), 2000)
        .await;

    redis.restart(); // no persistence: the stream and group are gone too
    tokio::time::sleep(Duration::from_millis(300)).await;
    push_retrying(&q, &jobs(2000..4000)).await;
    wait_until(
        "second half processed after the restart",
        Duration::from_secs(30),
        || {
            let seen = seen.clone();
            async move { (2000..4000).all(|n| seen.get(n) >= 1) }
        },
    )
    .await;
    w.stop().await;
    assert_eq!(seen.total(), 4000, "each job once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_survive_killed_connections_without_losing_jobs() {
    let redis = PrivateRedis::start();
    let ns = ns("clientkill");
    let q = private_queue(&redis, &ns).await;
    let n = 20_000u64;
    q.push_bulk(&jobs(0..n)).await.expect("push");
    let seen = Seen::new(n as usize);
    let slow = slow_behavior(Duration::from_micros(50));
    let w = run_workers(&q, "w", 2, 16, seen.clone(), slow);
    for round in 0..3 {
        wait_until("progress", Duration::from_secs(20), || {
            let seen = seen.clone();
            async move { seen.distinct() as u64 >= n / 5 * (round + 1) }
        })
        .await;
        let out = redis.cli(&["CLIENT", "KILL", "TYPE", "normal"]);
        assert!(
            out.trim().parse::<u64>().unwrap_or(0) >= 1,
            "killed clients: {out}"
        );
    }
    seen.wait_distinct("every job processed", Duration::from_secs(60), n as usize)
        .await;
    w.stop().await;
    let s = q.stats().await.expect("stats");
    assert_eq!(
        (s.depth, s.in_flight, s.dead),
        (0, 0, 0),
        "nothing lost, nothing stuck"
    );
    // Settlements cut off by a kill are written again on the new connection, and running
    // jobs keep their leases, so no job ran twice.
    assert_eq!(seen.total(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_or_hands_back_in_flight_jobs() {
    let ns = ns("graceful");
    let q = queue(&ns, cfg(&ns)).await;
    let n = 20_000u64;
    q.push_bulk(&jobs(0..n)).await.expect("push");
    let seen = Seen::new(n as usize);
    let slow = slow_behavior(Duration::from_micros(100));
    for round in 0..3 {
        let w = run_workers(&q, &format!("g{round}"), 2, 32, seen.clone(), slow.clone());
        wait_until("some progress", Duration::from_secs(20), || {
            let seen = seen.clone();
            async move { seen.distinct() as u64 >= n / 4 * (round + 1) }
        })
        .await;
        w.stop().await;
        let s = q.stats().await.expect("stats");
        assert_eq!(
            s.in_flight, 0,
            "nothing left in flight after a graceful stop"
        );
        assert_eq!(
            s.depth + seen.distinct() as u64,
            n,
            "every job is either done or back in the queue"
        );
    }
    // The same worker names come back at once and finish the rest.
    let w = run_workers(&q, "g0", 2, 32, seen.clone(), ok_behavior());
    seen.wait_distinct("rest processed", Duration::from_secs(30), n as usize)
        .await;
    w.stop().await;
    assert_eq!(seen.total(), n, "no job ran twice across graceful stops");
    q.purge().await.expect("purge");
}
