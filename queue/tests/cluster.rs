//! Push and consume on a real 3-node Redis Cluster started by the test (loopback ports).
mod common;

use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ezpulze_queue::{JobError, Queue, RedisTarget, Redrive};

/// A port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    for _ in 0..200 {
        let p = free_port();
        if p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair for a cluster node");
}

fn start_cluster() -> Vec<PrivateRedis> {
    let dir = std::env::temp_dir().join(format!("ezq-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("cluster dir");
    let nodes: Vec<PrivateRedis> = (0..3)
        .map(|_| {
            let port = cluster_port();
            let conf = dir.join(format!("nodes-{port}.conf"));
            PrivateRedis::start_with(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    conf.to_str().expect("utf-8 path"),
                    "--cluster-node-timeout",
                    "5000",
                ],
            )
        })
        .collect();
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new("redis-cli")
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli --cluster create");
    assert!(
        out.status.success(),
        "cluster create failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !nodes
        .iter()
        .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "cluster never became ok"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_consume_retry_and_dead_letters_on_a_3_node_cluster() {
    let nodes = start_cluster();
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    // Two queues whose hash tags land on different nodes of the cluster.
    let mut seen_all = Vec::new();
    for qname in ["alpha", "omega"] {
        let ns = ns("cluster");
        let mut c = cfg(&ns).with_max_attempts(2);
        c.queue = qname.to_owned();
        c.retry.min_delay = Duration::from_millis(50);
        c.retry.jitter = false;
        let q: Queue<TJob> = Queue::connect(RedisTarget::Cluster(urls.clone()), c)
            .await
            .expect("connect cluster");
        q.push_bulk(&jobs(0..3000)).await.expect("push");
        q.push_delayed(&jobs(3000..3100), Duration::from_millis(300))
            .await
            .expect("push delayed");
        let seen = Seen::new(3200);
        let beh: Behavior = Arc::new(|j, _| {
            if j.n == 3199 {
                Err(JobError::retry("always"))
            } else {
                Ok(())
            }
        });
        let w = run_workers(&q, "cw", 2, 32, seen.clone(), beh);
        q.push(&job(3199)).await.expect("push one");
        wait_until(
            "all processed on the cluster",
            Duration::from_secs(30),
            || {
                let seen = seen.clone();
                async move { seen.distinct() == 3100 }
            },
        )
        .await;
        wait_until(
            "dead letter on the cluster",
            Duration::from_secs(10),
            || {
                let q = q.clone();
                async move { q.stats().await.map(|s| s.dead == 1).unwrap_or(false) }
            },
        )
        .await;
        w.stop().await;
        assert_eq!(seen.total(), 3100);
        let dead = q.dead_letters(5).await.expect("dead letters");
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].attempts, 2);
        assert_eq!(q.redrive(Redrive::All).await.expect("redrive"), 1);
        let s = q.stats().await.expect("stats");
        assert_eq!((s.depth, s.in_flight, s.dead), (1, 0, 0));
        seen_all.push(format!("{{{}:{}}}", q.config().namespace, q.config().queue));
    }
    // Every key of a queue hashes to one slot (the `{ns:queue}` tag).
    for tag in &seen_all {
        let slot = |suffix: &str| nodes[0].cli(&["cluster", "keyslot", &format!("{tag}:{suffix}")]);
        assert_eq!(slot("stream"), slot("delayed"));
        assert_eq!(slot("stream"), slot("dead"));
    }
    drop(nodes);
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("ezq-cluster-{}", std::process::id())),
    );
}
