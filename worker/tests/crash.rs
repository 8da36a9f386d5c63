//! kill -9 one of three worker processes mid-run: nothing is lost, and with the default
//! unknown-outcome policy nothing is sent twice. Duplicates are counted exactly from the
//! simulator's `sent` webhooks: each accepted send gets its own wamid, and every status
//! echoes our message id in `biz_opaque_callback_data`.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use common::{recipients, TestEnv, TOKEN};
use ezpulze_testkit::wait_until;
use serde_json::{json, Value};

type Seen = Arc<Mutex<HashMap<String, HashSet<String>>>>;

/// A webhook receiver that records the wamids of `sent` statuses per callback data.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let mut map = s.lock().unwrap_or_else(|p| p.into_inner());
                for e in v["entry"].as_array().into_iter().flatten() {
                    for c in e["changes"].as_array().into_iter().flatten() {
                        for st in c["value"]["statuses"].as_array().into_iter().flatten() {
                            if st["status"] == "sent" {
                                let cb = st["biz_opaque_callback_data"]
                                    .as_str()
                                    .unwrap_or("")
                                    .to_owned();
                                let wamid = st["id"].as_str().unwrap_or("").to_owned();
                                map.entry(cb).or_default().insert(wamid);
                            }
                        }
                    }
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), seen)
}

/// A worker process that is killed when the test ends, also when it fails: a survivor left
/// running would keep sending and slow every test after it.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn_worker(settings: &HashMap<String, String>) -> Worker {
    Worker(
        Command::new(env!("CARGO_BIN_EXE_ezpulze-worker"))
            .envs(settings)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn worker"),
    )
}

#[test]
fn help_lists_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_ezpulze-worker"))
        .arg("--help")
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for s in [
        "WORKER_BATCH",
        "SEND_MAX_ATTEMPTS",
        "UNKNOWN_OUTCOME_POLICY",
        "GRAPH_API_BASE",
    ] {
        assert!(text.contains(s), "{s} missing from --help");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_one_of_three_workers_loses_nothing_and_sends_nothing_twice() {
    let twice = crash_run("fail").await;
    assert_eq!(twice, 0, "policy fail never sends twice");
    // Policy resend: nothing ends failed; duplicates are possible and counted.
    crash_run("resend").await;
}

/// One run: returns how many messages were sent twice.
async fn crash_run(policy: &str) -> usize {
    let (hook, seen) = receiver().await;
    let numbers = ["9101", "9102", "9103"];
    let env = TestEnv::new(json!({
        "numbers": numbers.iter().map(|id| json!({"phone_number_id": id, "access_token": TOKEN})).collect::<Vec<_>>(),
        "mps_limit": 0, "pair_gap_ms": 0, "latency_ms": 40, "latency_jitter_ms": 20,
        "webhook_url": hook, "delivered_rate": 0.0, "read_rate": 0.0, "sent_delay_ms": 5,
        "webhook_batch_size": 1000
    }))
    .await;
    let per = 2500usize;
    for (i, pn) in numbers.iter().enumerate() {
        env.number(pn, 1000, TOKEN).await;
        env.dispatch(pn, &recipients(per, (i * per) as u64), false, true)
            .await;
    }
    let total = (per * numbers.len()) as i64;
    // Lease = 2 x (2.5 s timeout + 1 s slot wait) + 5 s = 12 s.
    let settings = env.settings(&[
        ("SEND_TIMEOUT_MS", "2500"),
        ("WORKER_BATCH", "100"),
        ("UNKNOWN_OUTCOME_POLICY", policy),
    ]);
    let mut children: Vec<Worker> = (0..3).map(|_| spawn_worker(&settings)).collect();

    // Mid-run: some messages accepted, many still to go.
    wait_until(
        "the workers sent a quarter of the messages",
        Duration::from_secs(60),
        || async { env.counts().await.get("accepted").copied().unwrap_or(0) >= total / 4 },
    )
    .await;
    let in_flight: i64 =
        sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = 'sending'")
            .fetch_one(&env.db)
            .await
            .expect("sending");
    children[0].0.kill().expect("kill -9");
    let _ = children[0].0.wait();
    let killed_at = Instant::now();

    let c = env.settle(Duration::from_secs(90)).await;
    let settled_after = killed_at.elapsed();
    assert_eq!(c.get("queued"), None, "{c:?}");
    assert_eq!(c.get("sending"), None, "{c:?}");
    let accepted = c.get("accepted").copied().unwrap_or(0);
    let failed = c.get("failed").copied().unwrap_or(0);
    assert_eq!(accepted + failed, total, "every message is final: {c:?}");
    let unknown: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE status = 'failed' AND error_title LIKE 'outcome unknown%'",
    )
    .fetch_one(&env.db)
    .await
    .expect("unknown");
    assert_eq!(unknown, failed, "only unknown outcomes fail here");
    let died: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE status = 'failed' AND error_title LIKE 'outcome unknown: the worker stopped%'",
    )
    .fetch_one(&env.db)
    .await
    .expect("died");
    if policy == "resend" {
        assert_eq!(failed, 0, "{c:?}");
    }

    // The survivors stop gracefully on SIGTERM.
    for child in children.iter_mut().skip(1) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.0.id().to_string())
            .status();
    }
    for child in children.iter_mut().skip(1) {
        let status = child.0.wait().expect("wait");
        assert!(status.success(), "{status:?}");
    }

    // Wait for the simulator's `sent` webhooks, then count sends per message.
    env.webhooks_posted(Duration::from_secs(30)).await;
    let stats = env.sim_stats().await;
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let sends: usize = seen.values().map(HashSet::len).sum();
    assert_eq!(Some(sends as u64), stats["accepted"].as_u64(), "{stats}");
    let twice = seen.values().filter(|w| w.len() > 1).count();
    let rows: Vec<(uuid::Uuid, String, Option<String>)> =
        sqlx::query_as("SELECT id, status, wamid FROM messages")
            .fetch_all(&env.db)
            .await
            .expect("rows");
    let mut unknown_but_sent = 0;
    for (id, status, wamid) in &rows {
        let got = seen.get(&id.to_string());
        match status.as_str() {
            "accepted" => {
                let w = wamid.as_deref().expect("accepted rows have a wamid");
                assert!(
                    got.is_some_and(|g| g.contains(w)),
                    "{id}: wamid not among Meta's"
                );
            }
            _ => {
                if got.is_some() {
                    unknown_but_sent += 1;
                }
            }
        }
    }
    eprintln!(
        "{{\"policy\": \"{policy}\", \"messages\": {total}, \"in_flight_at_kill\": {in_flight}, \"accepted\": {accepted}, \
         \"failed_unknown\": {unknown}, \"of_which_worker_died\": {died}, \"unknown_but_meta_took_it\": {unknown_but_sent}, \
         \"sent_twice\": {twice}, \"simulator_accepted\": {}, \"settled_s_after_kill\": {:.1}}}",
        stats["accepted"],
        settled_after.as_secs_f64()
    );
    assert_eq!(stats["rejected"], json!({}), "{stats}");
    twice
}
