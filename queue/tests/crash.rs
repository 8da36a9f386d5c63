//! kill -9 of a worker process holding a batch in flight: every job is processed after the
//! lease, none is lost, and the jobs processed twice are exactly those the dead worker had
//! processed but not yet acknowledged.
mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use apalis::prelude::*;
use common::*;
use ezpulze_queue::{JobError, JobMeta, Queue, RedisTarget};
use redis::AsyncCommands;

const JOBS: u64 = 4000;
const LEASE: Duration = Duration::from_millis(1500);

fn seen_key(ns: &str) -> String {
    format!("{{{ns}:q}}:test-seen")
}

async fn record(
    job: TJob,
    meta: Data<JobMeta>,
    conn: Data<redis::aio::MultiplexedConnection>,
    key: Data<String>,
) -> Result<(), JobError> {
    let _ = job;
    let mut c = (*conn).clone();
    let _: i64 = c
        .hincr(&*key, meta.id(), 1)
        .await
        .map_err(|e| JobError::retry(e.to_string()))?;
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
}

/// The victim process (started by the test below with EZQ_CHILD_NS set; a no-op otherwise).
#[test]
#[ignore = "child process of kill9_worker_process_loses_nothing"]
fn crash_child_worker() {
    let Ok(ns) = std::env::var("EZQ_CHILD_NS") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut c = cfg(&ns).with_lease(LEASE);
        // Hold acknowledgements back so the kill always lands on processed-but-unacked jobs.
        c.ack_linger = Duration::from_millis(400);
        c.ack_batch = 100_000;
        let q: Queue<TJob> = Queue::connect(RedisTarget::single(redis_url()), c)
            .await
            .expect("connect");
        let client = redis::Client::open(redis_url()).expect("client");
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("conn");
        let worker = WorkerBuilder::new("victim")
            .backend(q.backend())
            .data(conn)
            .data(seen_key(&ns))
            .concurrency(16)
            .build(record);
        let _ = worker.run().await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_worker_process_loses_nothing() {
    let ns = ns("crash");
    let q = queue(&ns, cfg(&ns).with_lease(LEASE)).await;
    q.push_bulk(&jobs(0..JOBS)).await.expect("push");
    let client = redis::Client::open(redis_url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let key = seen_key(&ns);

    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "crash_child_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("EZQ_CHILD_NS", &ns)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child worker");
    wait_until(
        "child processed a good share",
        Duration::from_secs(60),
        || {
            let mut conn = conn.clone();
            let key = key.clone();
            async move { conn.hlen::<_, u64>(&key).await.unwrap_or(0) >= JOBS / 4 }
        },
    )
    .await;
    child.kill().expect("kill -9"); // SIGKILL
    child.wait().expect("reap");

    // What the dead consumer held, and what it had already processed.
    let pending: redis::Value = redis::cmd("XPENDING")
        .arg(format!("{{{ns}:q}}:stream"))
        .arg("workers")
        .arg("-")
        .arg("+")
        .arg(JOBS)
        .arg("victim")
        .query_async(&mut conn)
        .await
        .expect("xpending");
    let mut in_flight: HashSet<String> = HashSet::new();
    if let redis::Value::Array(rows) = pending {
        for r in rows {
            if let redis::Value::Array(cols) = r {
                if let Some(redis::Value::BulkString(id)) = cols.first() {
                    in_flight.insert(String::from_utf8_lossy(id).into_owned());
                }
            }
        }
    }
    let before: HashMap<String, u32> = conn.hgetall(&key).await.expect("hgetall");
    let processed_unacked: HashSet<String> = in_flight
        .iter()
        .filter(|id| before.contains_key(*id))
        .cloned()
        .collect();
    assert!(!in_flight.is_empty(), "the kill landed with jobs in flight");
    assert!(
        !processed_unacked.is_empty(),
        "some in-flight jobs were processed but unacked"
    );

    // A live worker in this process takes over after the lease.
    let client2 = redis::Client::open(redis_url()).expect("client");
    let c2 = client2
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    let q2 = q.clone();
    let k2 = key.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let monitor = tokio::spawn(async move {
        Monitor::new()
            .register(move |_| {
                WorkerBuilder::new("rescuer")
                    .backend(q2.backend())
                    .data(c2.clone())
                    .data(k2.clone())
                    .concurrency(32)
                    .build(record)
            })
            .run_with_signal(async move {
                let _ = rx.await;
                Ok(())
            })
            .await
            .expect("monitor");
    });
    wait_until("every job processed", Duration::from_secs(90), || {
        let mut conn = conn.clone();
        let key = key.clone();
        async move { conn.hlen::<_, u64>(&key).await.unwrap_or(0) >= JOBS }
    })
    .await;
    wait_until("queue drained", Duration::from_secs(30), || {
        let q = q.clone();
        async move {
            q.stats()
                .await
                .map(|s| s.depth == 0 && s.in_flight == 0)
                .unwrap_or(false)
        }
    })
    .await;
    let _ = tx.send(());
    monitor.await.expect("monitor task");

    let after: HashMap<String, u32> = conn.hgetall(&key).await.expect("hgetall");
    assert_eq!(after.len() as u64, JOBS, "no job lost");
    assert!(
        after.values().all(|&c| c <= 2),
        "nothing processed three times"
    );
    let doubles: HashSet<String> = after
        .iter()
        .filter(|(_, &c)| c == 2)
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        doubles.is_subset(&in_flight),
        "only in-flight jobs run twice"
    );
    assert_eq!(
        doubles, processed_unacked,
        "double processing equals the jobs processed but unacked at the kill"
    );
    eprintln!(
        "in flight at kill: {}, of which processed: {}, doubles: {}",
        in_flight.len(),
        processed_unacked.len(),
        doubles.len()
    );
    let _: () = conn.del(&key).await.expect("del");
    q.purge().await.expect("purge");
}
