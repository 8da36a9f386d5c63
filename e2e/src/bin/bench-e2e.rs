//! `make bench-e2e`: the whole engine in one release process (API, two workers with their
//! status consumers, the scheduler) against the simulator, on the machine's Postgres and Redis.
//!
//! Phase 1, throughput: N messages sent through the API (1,000 per request, 4 clients), the
//! simulator's limits raised and every message delivered and read; the clock runs from the
//! first request to the last status applied.
//! Phase 2, webhooks: M message rows, then signed webhook bodies carrying sent, delivered and
//! read for each (250 statuses per POST, 8 clients) straight to the receiver; the clock runs
//! until the consumer has applied them all.
//! Phase 3, latency: N/2 messages whose only status is `sent`; accept-to-sent-applied is each
//! row's last update minus its creation.
//! Integrator events: `BENCH_EVENT_ENDPOINTS` (default 1) webhook endpoints per account at
//! 1000/s each take every event of phase 1 (and of the later phases) to simulator receivers;
//! `BENCH_MESSAGING_TIER` sets every account's messaging tier, so every send is checked
//! against the portfolio budget (`docs/messaging-limits.md`).
//! `BENCH_ACCOUNTS` (default 1) spreads the sends over that many accounts, each with its own
//! number, key, broadcast and endpoints; `events_delivered_per_s` is phase 1's events over the time until all were
//! delivered, `events_open_when_reads_applied` the backlog when its last status was applied.
//! Last line: {"messages_per_s", "webhook_events_per_s", "events_delivered_per_s", "accept_to_sent_p50_ms",
//! "accept_to_sent_p99_ms", ...} with, for phase 1, the rate per window (`window_secs`: 60 s
//! once the phase lasts 3 minutes, 5 s from 30 s, else 1 s) and the last full window against the first (a
//! rate that decays as tables and streams grow shows below 1), Postgres' `messages` table and
//! index bytes per million messages, Redis' `used_memory` before, at its peak and once drained
//! (`BENCH_REDIS_CLUSTER=<node URLs>` runs on a Redis Cluster; memory is then the first node's),
//! and the CPU spent per message (the whole machine's, and this process's: api, workers,
//! scheduler and simulator).
//!
//! The sustained mode is the same run, larger: `BENCH_MESSAGES=1000000` (every request is sent
//! at once, so the backlog stands for the whole phase). `BENCH_WORKERS` (default 2) sets the
//! number of worker instances in the process, for the scale curve.
#![forbid(unsafe_code)]

// mimalloc is the global allocator through ezpulze-runtime.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ezpulze_common::{db, Config};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const ROOT: &str = "bench-root-token-0123456789";
const SECRET: &str = "bench-app-secret";
const NUMBER: &str = "106540352242999";
/// Progress is read from the key's usage counters (one row, updated in the same transaction
/// as the messages), so polling costs the database nothing while it is measured.
const READ_APPLIED: &str = "SELECT COALESCE(sum(read), 0)::bigint FROM api_key_usage";
const SENT_APPLIED: &str = "SELECT COALESCE(sum(sent), 0)::bigint FROM api_key_usage";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn ok_json(r: reqwest::Response) -> anyhow::Result<Value> {
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status.is_success(), "{status}: {v}");
    Ok(v)
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

/// Redis' `used_memory` in bytes (the whole server's: run on a quiet machine).
async fn redis_used_memory(conn: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no used_memory in INFO memory"))
}

/// CPU time so far in seconds: the whole machine's busy time (`/proc/stat`, every state but
/// idle and iowait) and this process's (`/proc/self/stat`, user + system).
fn cpu_seconds() -> (f64, f64) {
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<u64> = s
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal, in USER_HZ (100 on Linux)
            (f.len() >= 8).then(|| (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) as f64 / 100.0)
        })
        .unwrap_or(0.0);
    let own = ezpulze_runtime::telemetry::process_cpu_seconds().unwrap_or(0.0);
    (machine, own)
}

/// One progress sample of phase 1.
struct Sample {
    at: f64,
    applied: i64,
    redis_bytes: u64,
}

/// Samples phase 1 every second until `stop`: messages applied (read) and Redis memory.
async fn sample_progress(
    pool: sqlx::PgPool,
    mut redis: redis::aio::MultiplexedConnection,
    started: Instant,
    stop: CancellationToken,
) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return out,
        }
        let (Ok(applied), Ok(redis_bytes)) = (
            count(&pool, READ_APPLIED).await,
            redis_used_memory(&mut redis).await,
        ) else {
            continue;
        };
        out.push(Sample {
            at: started.elapsed().as_secs_f64(),
            applied,
            redis_bytes,
        });
    }
}

/// Messages/s per full window of `window` seconds, from the samples.
fn rates_by_window(samples: &[Sample], window: f64) -> Vec<f64> {
    let mut rates = Vec::new();
    let mut from = (0.0, 0i64);
    for s in samples {
        if s.at - from.0 >= window {
            rates.push(((s.applied - from.1) as f64 / (s.at - from.0)).round());
            from = (s.at, s.applied);
        }
    }
    rates
}

/// Bytes of the `messages` partitions' tables (with TOAST) and of their indexes.
async fn messages_bytes(pool: &sqlx::PgPool) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT COALESCE(sum(pg_table_size(inhrelid)), 0)::bigint,
                COALESCE(sum(pg_indexes_size(inhrelid)), 0)::bigint
         FROM pg_inherits WHERE inhparent = 'messages'::regclass",
    )
    .fetch_one(pool)
    .await?)
}

struct Stack {
    http: reqwest::Client,
    api: String,
    sim: String,
    /// Each account's (API key, broadcast id); requests go round-robin over them.
    senders: Vec<(String, String)>,
    pool: sqlx::PgPool,
}

async fn send_all(s: &Stack, n: usize, offset: usize) -> anyhow::Result<()> {
    let per = 1000usize;
    let requests = n.div_ceil(per);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (http, api, senders, next) = (
            s.http.clone(),
            s.api.clone(),
            s.senders.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let r = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if r >= requests {
                    return anyhow::Ok(());
                }
                let (key, broadcast) = &senders[r % senders.len()];
                let url = format!("{api}/api/v1/broadcasts/{broadcast}/send");
                let body = ezpulze_e2e::send_body(per.min(n - r * per), offset + r * per);
                ok_json(
                    http.post(&url)
                        .bearer_auth(key)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await?,
                )
                .await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn wait_for(
    pool: &sqlx::PgPool,
    sql: &str,
    want: i64,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let n = count(pool, sql).await?;
        if n >= want {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "timed out: {n} of {want} for {sql}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signed(body: &[u8]) -> anyhow::Result<String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(SECRET.as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    mac.update(body);
    Ok(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let n = env_usize("BENCH_MESSAGES", 30_000);
    let workers = env_usize("BENCH_WORKERS", 2).max(1);
    let m = env_usize("BENCH_WEBHOOK_MESSAGES", 30_000);
    let pg = std::env::var("BENCH_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = "ezp_bench_e2e";
    db::create_database(&pg, name).await?;
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("DATABASE_URL".into(), db::with_database(&pg, name)?);
    let redis_url =
        std::env::var("BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    env.insert("REDIS_URL".into(), redis_url.clone());
    // A Redis Cluster instead (`BENCH_REDIS_CLUSTER`: its nodes, comma-separated; Redis memory
    // is then the first node's): the status stream in 3 shards.
    let redis_url = match std::env::var("BENCH_REDIS_CLUSTER") {
        Ok(nodes) if !nodes.is_empty() => {
            env.insert("REDIS_CLUSTER_URLS".into(), nodes.clone());
            env.insert("STATUS_SHARDS".into(), "3".into());
            nodes.split(',').next().unwrap_or_default().to_owned()
        }
        _ => redis_url,
    };
    env.insert("REDIS_PREFIX".into(), name.into());
    env.insert("EZPULZE_ROOT_TOKEN".into(), ROOT.into());
    env.insert("WORKER_METRICS_ADDR".into(), "127.0.0.1:0".into());
    env.insert("SCHEDULER_METRICS_ADDR".into(), "127.0.0.1:0".into());
    env.insert("DATABASE_MAX_CONNECTIONS".into(), "8".into());

    let cancel = CancellationToken::new();
    let http = reqwest::Client::builder().no_proxy().build()?;
    let sim = ezpulze_simulator::spawn(ezpulze_simulator::SimConfig::default()).await?;
    let sim_url = sim.url();
    env.insert("GRAPH_API_BASE".into(), sim_url.clone());
    env.insert("TEST_GRAPH_API_BASE".into(), sim_url.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    let config = Config::from_source(&env).map_err(|e| anyhow::anyhow!("{e}"))?;
    tokio::spawn(ezpulze_api::run(config.clone(), listener, cancel.clone()));
    for _ in 0..200 {
        if http
            .get(format!("{api}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pool = sqlx::PgPool::connect(&env["DATABASE_URL"]).await?;
    sqlx::query(
        "TRUNCATE messages, dispatches, pending_statuses, webhook_deliveries, webhook_endpoints",
    )
    .execute(&pool)
    .await
    .ok();

    // `BENCH_ACCOUNTS` accounts (default 1), each with its own number, key and broadcast
    // (and endpoint); the first one's number is NUMBER.
    let accounts = env_usize("BENCH_ACCOUNTS", 1).max(1);
    let number_of = |i: usize| {
        if i == 0 {
            NUMBER.to_owned()
        } else {
            format!("1065403522{i:05}")
        }
    };
    let sim_numbers: Vec<Value> = (0..accounts)
        .map(|i| json!({"phone_number_id": number_of(i), "display_phone_number": format!("1555{:07}", 9999 + i), "access_token": "bench-token"}))
        .collect();
    let configure = |delivered: f64, read: f64| {
        json!({"numbers": sim_numbers,
               "webhook_url": format!("{api}/webhooks/whatsapp"), "app_secret": SECRET, "mps_limit": 0, "pair_gap_ms": 0,
               "delivered_rate": delivered, "read_rate": read, "sent_delay_ms": 0, "delivered_delay_ms": 0, "read_delay_ms": 0,
               "delay_jitter_ms": 0, "webhook_batch_size": 1000, "webhook_linger_ms": 20, "webhook_concurrency": 8})
    };
    ok_json(
        http.put(format!("{sim_url}/_sim/config"))
            .json(&configure(1.0, 1.0))
            .send()
            .await?,
    )
    .await?;
    let mut senders = Vec::new();
    for i in 0..accounts {
        let (admin, key, broadcast) = ezpulze_e2e::prepare(&http, &api, ROOT).await?;
        ok_json(http.put(format!("{api}/admin/v1/whatsapp")).bearer_auth(&admin).json(&json!({
            "phone_numbers": [{"phone_number_id": number_of(i), "display_phone_number": format!("1555{:07}", 9999 + i), "access_token": "bench-token", "messages_per_second": 10000}],
            "app_secret": SECRET})).send().await?).await?;
        // `BENCH_MESSAGING_TIER` (e.g. TIER_100K): every send is checked against the
        // portfolio's messaging-limit budget (the cost of the check, without deferrals when
        // the tier is above the run's recipients).
        if let Ok(tier) = std::env::var("BENCH_MESSAGING_TIER") {
            ok_json(
                http.put(format!("{api}/admin/v1/whatsapp/messaging-limit"))
                    .bearer_auth(&admin)
                    .json(&json!({ "tier": tier }))
                    .send()
                    .await?,
            )
            .await?;
        }
        senders.push((key, broadcast));
    }
    for _ in 0..workers {
        let (cfg, c) = (config.clone(), cancel.clone());
        tokio::spawn(async move { ezpulze_worker::run(cfg, c).await });
    }
    {
        let (cfg, c) = (config.clone(), cancel.clone());
        tokio::spawn(async move { ezpulze_scheduler::run(cfg, c).await });
    }
    let stack = Stack {
        http: http.clone(),
        api: api.clone(),
        sim: sim_url.clone(),
        senders,
        pool: pool.clone(),
    };

    // Integrator events: `BENCH_EVENT_ENDPOINTS` endpoints per account (default 1) at
    // 1000/s each, every event type, each posting to its own simulator receiver, which
    // verifies every signature.
    let per_account = env_usize("BENCH_EVENT_ENDPOINTS", 1);
    let endpoints = per_account * accounts;
    let mut receivers = Vec::new();
    for i in 0..endpoints {
        let rx = format!("{sim_url}/_recv/bench-{i}");
        let e = ok_json(
            http.post(format!("{api}/api/v1/webhook-endpoints"))
                .bearer_auth(&stack.senders[i % accounts].0)
                .json(&json!({"url": rx, "max_per_second": 1000}))
                .send()
                .await?,
        )
        .await?;
        ok_json(
            http.put(format!("{rx}/config"))
                .json(&json!({"secrets": [e["secret"]]}))
                .send()
                .await?,
        )
        .await?;
        receivers.push(rx);
    }

    // Phase 1: throughput with all three statuses, sampled every second.
    let mut redis = redis::Client::open(redis_url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let redis_before = redis_used_memory(&mut redis).await?;
    let (cpu_machine0, cpu_own0) = cpu_seconds();
    let t1 = Instant::now();
    let stop_sampling = CancellationToken::new();
    let sampler = tokio::spawn(sample_progress(
        pool.clone(),
        redis.clone(),
        t1,
        stop_sampling.clone(),
    ));
    send_all(&stack, n, 0).await?;
    eprintln!(
        "[bench-e2e] phase 1: {n} messages accepted by the api in {:.2} s",
        t1.elapsed().as_secs_f64()
    );
    // At least 10 minutes for the sustained mode's million; a burst never nears it.
    let limit = Duration::from_secs(600).max(Duration::from_millis(n as u64 * 3));
    wait_for(&pool, READ_APPLIED, n as i64, limit).await?;
    let phase1 = t1.elapsed().as_secs_f64();
    let (cpu_machine1, cpu_own1) = cpu_seconds();
    stop_sampling.cancel();
    let samples = sampler.await?;
    let messages_per_s = n as f64 / phase1;
    eprintln!("[bench-e2e] phase 1: {n} messages accept -> read applied in {phase1:.2} s");
    // Events of phase 1: the backlog when its last status was applied, then until every one
    // is delivered.
    let open_sql =
        "SELECT count(*) FROM webhook_deliveries WHERE state IN ('pending', 'delivering')";
    let events_open_at_reads = count(&pool, open_sql).await?;
    let events_limit = Duration::from_secs(900);
    while count(&pool, open_sql).await? > 0 {
        anyhow::ensure!(t1.elapsed() < limit + events_limit, "events did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events_seconds = t1.elapsed().as_secs_f64();
    let events_delivered = count(
        &pool,
        "SELECT count(*) FROM webhook_deliveries WHERE state = 'succeeded'",
    )
    .await?;
    let events_per_s_delivered = events_delivered as f64 / events_seconds;
    let events_status_rate = (3 * n) as f64 / phase1;
    eprintln!(
        "[bench-e2e] phase 1: {events_delivered} events delivered to {endpoints} endpoint(s) in {events_seconds:.2} s ({events_per_s_delivered:.0}/s; statuses applied at {events_status_rate:.0}/s); {events_open_at_reads} still open when the last status was applied"
    );
    let window = match phase1 {
        p if p >= 180.0 => 60.0,
        p if p >= 30.0 => 5.0,
        _ => 1.0,
    };
    let rates = rates_by_window(&samples, window);
    eprintln!("[bench-e2e] phase 1: messages/s per {window} s window: {rates:?}");
    let redis_peak = samples
        .iter()
        .map(|s| s.redis_bytes)
        .max()
        .unwrap_or(redis_before);
    // The queues drain (acks delete their entries) once the last status is applied; the
    // pair-gap keys expire 6 s after their send.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let redis_drained = redis_used_memory(&mut redis).await?;
    let (table_bytes, index_bytes) = messages_bytes(&pool).await?;
    // With autovacuum off (as on the development machine's Postgres) dead row versions are
    // never reclaimed during the run: the table sizes say so.
    let autovacuum: String = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(&pool)
        .await?;
    let per_million = |b: i64| (b as f64 * 1e6 / n as f64).round();
    let cpu_ms = |c: f64| (c * 1000.0 / n as f64 * 1000.0).round() / 1000.0;

    // Phase 2: the webhook path alone.
    // A dispatch of the first account (the one whose number the bodies name).
    let dispatch: Uuid =
        sqlx::query_scalar("SELECT id FROM dispatches WHERE phone_number_id = $1 LIMIT 1")
            .bind(NUMBER)
            .fetch_one(&pool)
            .await?;
    let ids: Vec<Uuid> = (0..m).map(|_| Uuid::now_v7()).collect();
    let wamids: Vec<String> = ids
        .iter()
        .map(|id| format!("wamid.bench{}", id.simple()))
        .collect();
    sqlx::query(
        "INSERT INTO messages (id, dispatch_id, account_id, key_id, to_phone, payload, status, wamid)
         SELECT u.id, d.id, d.account_id, d.key_id, '+14155550100', '{}', 'accepted', u.w
         FROM UNNEST($1::uuid[], $2::text[]) AS u(id, w), dispatches d WHERE d.id = $3",
    )
    .bind(&ids)
    .bind(&wamids)
    .bind(dispatch)
    .execute(&pool)
    .await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut bodies = Vec::new();
    for chunk in ids.chunks(250).zip(wamids.chunks(250)) {
        let statuses: Vec<Value> = chunk
            .0
            .iter()
            .zip(chunk.1)
            .flat_map(|(id, w)| {
                ["sent", "delivered", "read"].into_iter().map(move |s| {
                    json!({"id": w, "status": s, "timestamp": now.to_string(), "recipient_id": "14155550100",
                           "biz_opaque_callback_data": id.simple().to_string()})
                })
            })
            .collect();
        for part in statuses.chunks(250) {
            let body = serde_json::to_vec(
                &json!({"object": "whatsapp_business_account", "entry": [{"id": NUMBER, "changes": [{"field": "messages",
                "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550009999", "phone_number_id": NUMBER}, "statuses": part}}]}]}),
            )?;
            let sig = signed(&body)?;
            bodies.push((body, sig));
        }
    }
    let bodies = Arc::new(bodies);
    let read_before = count(&pool, READ_APPLIED).await?;
    let t2 = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, url, bodies, next) = (
            http.clone(),
            format!("{api}/webhooks/whatsapp"),
            bodies.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((body, sig)) = bodies.get(i) else {
                    return anyhow::Ok(());
                };
                let r = http
                    .post(&url)
                    .header("x-hub-signature-256", sig)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "webhook answered {}", r.status());
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    wait_for(
        &pool,
        READ_APPLIED,
        read_before + m as i64,
        Duration::from_secs(600),
    )
    .await?;
    let phase2 = t2.elapsed().as_secs_f64();
    let events_per_s = (3 * m) as f64 / phase2;
    eprintln!(
        "[bench-e2e] phase 2: {} webhook events applied in {phase2:.2} s",
        3 * m
    );

    // Phase 3: accept -> sent applied.
    ok_json(
        http.put(format!("{sim_url}/_sim/config"))
            .json(&configure(0.0, 0.0))
            .send()
            .await?,
    )
    .await?;
    let n3 = (n / 2).clamp(1000, 15_000);
    let before = count(&pool, SENT_APPLIED).await?;
    send_all(&stack, n3, 10_000_000).await?;
    wait_for(
        &pool,
        SENT_APPLIED,
        before + n3 as i64,
        Duration::from_secs(600),
    )
    .await?;
    let lat: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM (updated_at - created_at))::float8 * 1000 FROM messages WHERE status = 'sent' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    let stats: Value = ok_json(http.get(format!("{}/_sim/stats", stack.sim)).send().await?).await?;
    eprintln!("[bench-e2e] simulator: {stats}");
    let mut verify_failures = 0;
    let mut receiver_max_per_second = 0;
    for rx in &receivers {
        let r: Value = ok_json(http.get(format!("{rx}/stats")).send().await?).await?;
        verify_failures += r["verify_failures"].as_i64().unwrap_or(0);
        receiver_max_per_second =
            receiver_max_per_second.max(r["max_per_second"].as_i64().unwrap_or(0));
    }
    cancel.cancel();
    let _ = (&stack.pool, &stack.http);
    let key_count = stack.senders.len();
    println!(
        "{}",
        json!({
            "messages_per_s": messages_per_s.round(),
            "webhook_events_per_s": events_per_s.round(),
            "accounts": key_count,
            "event_endpoints": endpoints,
            "events_delivered_per_s": events_per_s_delivered.round(),
            "events_delivered": events_delivered,
            "events_open_when_reads_applied": events_open_at_reads,
            "events_drained_seconds": (events_seconds * 100.0).round() / 100.0,
            "events_verify_failures": verify_failures,
            "events_receiver_max_per_second": receiver_max_per_second,
            "accept_to_sent_p50_ms": (ezpulze_e2e::percentile(&lat, 0.50) * 10.0).round() / 10.0,
            "accept_to_sent_p99_ms": (ezpulze_e2e::percentile(&lat, 0.99) * 10.0).round() / 10.0,
            "messages": n,
            "workers": workers,
            "webhook_events": 3 * m,
            "latency_messages": n3,
            "phase1_seconds": (phase1 * 100.0).round() / 100.0,
            "window_secs": window,
            "messages_per_s_by_window": rates,
            "last_over_first_window": match (rates.first(), rates.get(rates.len().saturating_sub(2))) {
                // The last window ends with the drain: compare the one before it.
                (Some(first), Some(last)) if rates.len() >= 3 && *first > 0.0 => ((last / first) * 100.0).round() / 100.0,
                _ => 1.0,
            },
            "postgres_autovacuum": autovacuum,
            "messages_table_bytes_per_million": per_million(table_bytes),
            "messages_index_bytes_per_million": per_million(index_bytes),
            "redis_used_memory_before": redis_before,
            "redis_used_memory_peak": redis_peak,
            "redis_used_memory_drained": redis_drained,
            "machine_cpu_ms_per_message": cpu_ms(cpu_machine1 - cpu_machine0),
            "process_cpu_ms_per_message": cpu_ms(cpu_own1 - cpu_own0),
        })
    );
    Ok(())
}
