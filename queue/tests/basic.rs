//! Push/consume, delays, retries, dead letters, redrive, bad payloads, stats (real Redis).
mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use ezpulze_queue::{JobError, Queue, RedisTarget, Redrive, RetryPolicy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_workers_process_everything_and_memory_is_freed() {
    let ns = ns("basic");
    let q = queue(&ns, cfg(&ns)).await;
    let n = 5_000;
    assert_eq!(q.push_bulk(&jobs(0..n)).await.expect("push"), n as usize);
    let s = q.stats().await.expect("stats");
    assert_eq!(s.depth, n);
    assert!(s.oldest_pending_age.is_some());
    let seen = Seen::new(n as usize);
    let w = run_workers(&q, "w", 2, 32, seen.clone(), ok_behavior());
    seen.wait_distinct("all processed", Duration::from_secs(30), n as usize)
        .await;
    w.stop().await;
    assert_eq!(seen.total(), n, "no job processed twice");
    let s = q.report_metrics().await.expect("stats");
    assert_eq!((s.depth, s.in_flight, s.delayed, s.dead), (0, 0, 0, 0));
    assert_eq!(s.oldest_pending_age, None);
    q.purge().await.expect("purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_consumer_is_woken_by_a_push() {
    // One read that blocks for two minutes (the fetch every worker runs, `BLOCK` included):
    // it can return the job pushed while it waits only if the push wakes it, since nothing
    // else (block expiry, a later poll) happens within the read.
    let ns = ns("idle");
    // A Redis of this test alone, so that a blocked client there is this consumer.
    let redis = PrivateRedis::start();
    let q: Queue<TJob> = Queue::connect(
        RedisTarget::single(redis.url()),
        cfg(&ns).with_block(Duration::from_secs(120)),
    )
    .await
    .expect("connect");
    let mut c = q.consumer("idle");
    let read = tokio::spawn(async move { c.fetch_batch(10).await });
    wait_until(
        "the consumer blocks in its read",
        Duration::from_secs(30),
        || {
            let clients = redis.cli(&["client", "list"]);
            async move {
                clients
                    .lines()
                    .any(|l| l.contains("flags=b ") && l.contains("cmd=xreadgroup"))
            }
        },
    )
    .await;
    q.push(&job(3)).await.expect("push");
    let got = read.await.expect("join").expect("fetch");
    assert_eq!(
        got.iter().map(|j| j.payload.n).collect::<Vec<_>>(),
        vec![3],
        "the blocked read returned the pushed job"
    );
    q.purge().await.expect("purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_push_runs_no_earlier_than_due() {
    let ns = ns("delayed");
    // No polling for due jobs (an hour apart): they run only because the consumer moves them
    // at the due time it learnt from the delayed set.
    let mut c = cfg(&ns);
    c.promote_interval = Duration::from_secs(3600);
    let q = queue(&ns, c).await;
    let seen = Seen::new(100);
    let first_run: Arc<Mutex<Option<Instant>>> = Arc::default();
    let fr = first_run.clone();
    let beh: Behavior = Arc::new(move |_, _| {
        fr.lock().expect("lock").get_or_insert_with(Instant::now);
        Ok(())
    });
    let t0 = Instant::now();
    q.push_delayed(&jobs(0..100), Duration::from_millis(700))
        .await
        .expect("push delayed");
    assert_eq!(q.stats().await.expect("stats").delayed, 100);
    let w = run_workers(&q, "w", 1, 8, seen.clone(), beh);
    seen.wait_distinct("delayed jobs ran", Duration::from_secs(10), 100)
        .await;
    w.stop().await;
    let ran = first_run.lock().expect("lock").expect("ran");
    // A lower bound is the behaviour itself (never before due) and cannot flake under load.
    assert!(ran.duration_since(t0) >= Duration::from_millis(700));
    assert_eq!(q.stats().await.expect("stats").delayed, 0);
    assert_eq!(seen.total(), 100);
    q.purge().await.expect("purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_respect_delay_then_dead_letter_and_redrive() {
    let ns = ns("retry");
    let mut c = cfg(&ns).with_max_attempts(3);
    c.retry = RetryPolicy {
        min_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(2),
        factor: 2.0,
        jitter: false,
    };
    let q = queue(&ns, c).await;
    // job 0: always fails retryably (backoff) -> dead after 3 attempts
    // job 1: asks for Retry-After 600 ms once, then succeeds
    // job 2: permanent failure at once
    // job 3: succeeds after the redrive (flag flipped below)
    let times: Arc<Mutex<Vec<(u64, u32, Instant)>>> = Arc::default();
    let redriven = Arc::new(AtomicU32::new(0));
    let (t, r) = (times.clone(), redriven.clone());
    let beh: Behavior = Arc::new(move |j, m| {
        t.lock()
            .expect("lock")
            .push((j.n, m.attempt(), Instant::now()));
        match j.n {
            0 if r.load(Ordering::SeqCst) == 0 => Err(JobError::retry("upstream 503")),
            1 if m.attempt() == 1 => Err(JobError::retry_after(
                Duration::from_millis(600),
                "429 Retry-After",
            )),
            2 if r.load(Ordering::SeqCst) == 0 => {
                Err(JobError::permanent("invalid recipient 131026"))
            }
            _ => Ok(()),
        }
    });
    let seen = Seen::new(10);
    let w = run_workers(&q, "w", 1, 8, seen.clone(), beh);
    q.push_bulk(&jobs(0..4)).await.expect("push");
    wait_until("two dead letters", Duration::from_secs(15), || {
        let q = q.clone();
        async move { q.stats().await.map(|s| s.dead == 2).unwrap_or(false) }
    })
    .await;
    wait_until("job 1 retried ok", Duration::from_secs(5), || {
        let seen = seen.clone();
        async move { seen.get(1) == 1 }
    })
    .await;
    {
        let times = times.lock().expect("lock");
        let of = |n: u64| -> Vec<(u32, Instant)> {
            times
                .iter()
                .filter(|x| x.0 == n)
                .map(|x| (x.1, x.2))
                .collect()
        };
        let j0 = of(0);
        assert_eq!(j0.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(j0[1].1 - j0[0].1 >= Duration::from_millis(200), "backoff 1");
        assert!(j0[2].1 - j0[1].1 >= Duration::from_millis(400), "backoff 2");
        let j1 = of(1);
        assert_eq!(j1.len(), 2);
        assert!(
            j1[1].1 - j1[0].1 >= Duration::from_millis(600),
            "Retry-After honoured"
        );
        assert_eq!(of(2).len(), 1, "permanent failure is not retried");
    }
    let dead = q.dead_letters(10).await.expect("dead letters");
    assert_eq!(dead.len(), 2);
    let d0 = dead
        .iter()
        .find(|d| d.decode::<TJob>().expect("decode").n == 0)
        .expect("job 0 dead");
    assert_eq!(d0.attempts, 3);
    assert!(d0.error.contains("upstream 503"), "{}", d0.error);
    assert!(d0.failed_at().is_some());
    let d2 = dead
        .iter()
        .find(|d| d.decode::<TJob>().expect("decode").n == 2)
        .expect("job 2 dead");
    assert_eq!(d2.attempts, 1);
    assert!(d2.error.contains("131026"));

    redriven.store(1, Ordering::SeqCst);
    assert_eq!(
        q.redrive(Redrive::Ids(vec![d0.id.clone()]))
            .await
            .expect("redrive"),
        1
    );
    assert_eq!(q.redrive(Redrive::All).await.expect("redrive all"), 1);
    wait_until("redriven jobs done", Duration::from_secs(10), || {
        let seen = seen.clone();
        async move { seen.get(0) == 1 && seen.get(2) == 1 }
    })
    .await;
    w.stop().await;
    assert_empty(&q).await;
    q.purge().await.expect("purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payload_is_dead_lettered_and_the_worker_goes_on() {
    let ns = ns("badpayload");
    let q = queue(&ns, cfg(&ns)).await;
    let client = redis::Client::open(redis_url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let stream = format!("{{{ns}:q}}:stream");
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("d")
        .arg("{not json")
        .query_async(&mut conn)
        .await
        .expect("xadd");
    q.push_bulk(&jobs(0..10)).await.expect("push");
    let seen = Seen::new(10);
    let w = run_workers(&q, "w", 1, 4, seen.clone(), ok_behavior());
    seen.wait_distinct("good jobs done", Duration::from_secs(10), 10)
        .await;
    wait_until("bad job dead", Duration::from_secs(5), || {
        let q = q.clone();
        async move { q.stats().await.map(|s| s.dead == 1).unwrap_or(false) }
    })
    .await;
    w.stop().await;
    let dead = q.dead_letters(10).await.expect("dead");
    assert!(dead[0].error.contains("undecodable"), "{}", dead[0].error);
    q.purge().await.expect("purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_batch_consumer_fetches_and_settles_batches() {
    let ns = ns("plain");
    let q = queue(&ns, cfg(&ns).with_max_attempts(2)).await;
    q.push_bulk(&jobs(0..1000)).await.expect("push");
    let mut c = q.consumer("batcher");
    let mut seen = vec![0u32; 1000];
    let mut batches = 0;
    let mut failed_once = false;
    while seen.contains(&0) {
        let batch = c.fetch_batch(200).await.expect("fetch");
        assert!(batch.len() <= 200);
        batches += 1;
        assert!(batches < 100, "too many rounds");
        let results: Vec<_> = batch
            .into_iter()
            .map(|j| {
                if j.payload.n == 7 && !failed_once {
                    failed_once = true;
                    return (j.meta, Err(JobError::retry_after(Duration::ZERO, "once")));
                }
                seen[j.payload.n as usize] += 1;
                (j.meta, Ok(()))
            })
            .collect();
        q.complete(results).await.expect("complete");
    }
    assert!(seen.iter().all(|&x| x == 1));
    assert_empty(&q).await;
    q.purge().await.expect("purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_longer_than_the_lease_keeps_its_job() {
    let ns = ns("renew");
    // Lease 600 ms, handlers take 1.5 s: without renewal the second worker would take the
    // jobs over and run them again.
    let q = queue(&ns, cfg(&ns).with_lease(Duration::from_millis(600))).await;
    let seen = Seen::new(4);
    let w = run_workers(&q, "w", 2, 4, seen.clone(), ok_behavior());
    let slow: Vec<TJob> = (0..4)
        .map(|n| TJob {
            n,
            pad: "sleep:1500".to_owned(),
        })
        .collect();
    q.push_bulk(&slow).await.expect("push");
    wait_until("all done", Duration::from_secs(20), || {
        let q = q.clone();
        let seen = seen.clone();
        async move {
            seen.distinct() == 4
                && q.stats()
                    .await
                    .map(|s| s.in_flight == 0 && s.depth == 0)
                    .unwrap_or(false)
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    w.stop().await;
    assert_eq!(seen.total(), 4, "no job taken over while its handler ran");
    q.purge().await.expect("purge");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_consumer_can_extend_its_lease() {
    let ns = ns("extend");
    let q = queue(&ns, cfg(&ns).with_lease(Duration::from_millis(300))).await;
    q.push_bulk(&jobs(0..3)).await.expect("push");
    let mut a = q.consumer("a");
    let mut b = q.consumer("b");
    let batch = a.fetch_batch(10).await.expect("fetch");
    assert_eq!(batch.len(), 3);
    let metas: Vec<_> = batch.iter().map(|j| j.meta.clone()).collect();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(q.extend_lease("a", &metas).await.expect("extend"), 3);
        assert!(
            b.fetch_batch(10).await.expect("fetch b").is_empty(),
            "b took a renewed job"
        );
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let taken = b.fetch_batch(10).await.expect("fetch b");
    assert_eq!(
        taken.len(),
        3,
        "after the lease runs out b takes the jobs over"
    );
    assert!(taken
        .iter()
        .all(|j| j.meta.reclaimed() && j.meta.attempt() == 2));
    // a's renewal no longer touches jobs b owns
    assert_eq!(q.extend_lease("a", &metas).await.expect("extend"), 0);
    q.ack(&taken.iter().map(|j| j.meta.clone()).collect::<Vec<_>>())
        .await
        .expect("ack");
    assert_eq!(q.stats().await.expect("stats").in_flight, 0);
    q.purge().await.expect("purge");
}
