//! The scheduler against real Postgres and Redis: one leader at a time with take-over,
//! scheduled dispatches released with their jobs, stuck sends swept per policy, retention.

use std::collections::HashMap;

use ezpulze_common::config::UnknownOutcomePolicy;
use ezpulze_common::{db, Config};
use ezpulze_scheduler::{tasks, Scheduler};
use uuid::Uuid;

async fn config() -> Config {
    let server = std::env::var("EZPULZE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let id = Uuid::new_v4().simple().to_string();
    let name = format!("ezp_t_{}", &id[..16]);
    db::create_database(&server, &name).await.expect("db");
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert(
        "DATABASE_URL".into(),
        db::with_database(&server, &name).expect("url"),
    );
    env.insert("DATABASE_MAX_CONNECTIONS".into(), "4".into());
    env.insert(
        "REDIS_URL".into(),
        std::env::var("EZPULZE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into()),
    );
    env.insert("REDIS_PREFIX".into(), format!("ezp_t_{}", &id[..16]));
    Config::from_source(&env).expect("config")
}

async fn seed(s: &Scheduler, status: &str, scheduled_in_secs: i64, n: usize) -> Uuid {
    let account = Uuid::now_v7();
    let dispatch = Uuid::now_v7();
    sqlx::query("INSERT INTO accounts (id, name) VALUES ($1, 'a')")
        .bind(account)
        .execute(&s.db)
        .await
        .expect("a");
    sqlx::query("INSERT INTO dispatches (id, account_id, status, total, scheduled_at) VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))")
        .bind(dispatch).bind(account).bind(status).bind(n as i32).bind(scheduled_in_secs as f64).execute(&s.db).await.expect("d");
    for _ in 0..n {
        sqlx::query("INSERT INTO messages (id, dispatch_id, account_id, to_phone, payload, status) VALUES ($1, $2, $3, '+14155550100', '{}', $4)")
            .bind(Uuid::now_v7()).bind(dispatch).bind(account).bind(if status == "scheduled" { "scheduled" } else { "queued" })
            .execute(&s.db).await.expect("m");
    }
    dispatch
}

#[tokio::test]
async fn one_leader_at_a_time_and_a_standby_takes_over() {
    let cfg = config().await;
    let a = Scheduler::connect(cfg.clone()).await.expect("a");
    let b = Scheduler::connect(cfg).await.expect("b");
    assert!(a.lease.acquire_or_renew().await.expect("lease"));
    assert!(
        !b.lease.acquire_or_renew().await.expect("lease"),
        "only one leader"
    );
    assert!(
        a.lease.acquire_or_renew().await.expect("renew"),
        "the leader keeps it"
    );
    a.lease.release().await.expect("release");
    assert!(
        b.lease.acquire_or_renew().await.expect("lease"),
        "the standby takes over"
    );
    assert!(!a.lease.acquire_or_renew().await.expect("lease"));
}

#[tokio::test]
async fn scheduled_dispatches_are_released_when_due() {
    let s = Scheduler::connect(config().await).await.expect("s");
    let due = seed(&s, "scheduled", -1, 3).await;
    let later = seed(&s, "scheduled", 3600, 2).await;
    let report = s.tick().await.expect("tick");
    assert_eq!(
        (report.released_dispatches, report.released_messages),
        (1, 3)
    );
    assert_eq!(s.queue.stats().await.expect("stats").depth, 3);
    let st: Vec<(Uuid, String)> = sqlx::query_as("SELECT id, status FROM dispatches ORDER BY id")
        .fetch_all(&s.db)
        .await
        .expect("st");
    assert!(st.contains(&(due, "queued".into())) && st.contains(&(later, "scheduled".into())));
    assert_eq!(
        s.tick().await.expect("tick").released_messages,
        0,
        "released once"
    );
}

#[tokio::test]
async fn stuck_sends_follow_the_unknown_outcome_policy() {
    let s = Scheduler::connect(config().await).await.expect("s");
    let d = seed(&s, "sending", 0, 4).await;
    sqlx::query("UPDATE messages SET status = 'sending', claimed_at = now() - interval '1 hour', updated_at = now() - interval '1 hour' WHERE id IN (SELECT id FROM messages WHERE dispatch_id = $1 ORDER BY id LIMIT 2)")
        .bind(d).execute(&s.db).await.expect("stuck");
    sqlx::query("UPDATE messages SET status = 'sending', claimed_at = now() WHERE status = 'queued' AND dispatch_id = $1 AND id IN (SELECT id FROM messages WHERE dispatch_id = $1 ORDER BY id DESC LIMIT 1)")
        .bind(d).execute(&s.db).await.expect("fresh");
    assert_eq!(
        tasks::sweep_unknown(&s.db, UnknownOutcomePolicy::Fail)
            .await
            .expect("sweep"),
        2
    );
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = 'failed' AND error_title LIKE 'outcome unknown%'").fetch_one(&s.db).await.expect("n");
    assert_eq!(failed, 2, "never sent twice: marked failed");
    sqlx::query(
        "UPDATE messages SET claimed_at = now() - interval '1 hour', updated_at = now() - interval '1 hour' WHERE status = 'sending'",
    )
    .execute(&s.db)
    .await
    .expect("age");
    assert_eq!(
        tasks::sweep_unknown(&s.db, UnknownOutcomePolicy::Resend)
            .await
            .expect("sweep"),
        1
    );
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE status = 'queued'")
        .fetch_one(&s.db)
        .await
        .expect("n");
    assert_eq!(queued, 2);
}

#[tokio::test]
async fn retention_keeps_partitions_ahead_and_drops_old_ones() {
    let s = Scheduler::connect(config().await).await.expect("s");
    sqlx::query("SELECT ezp_ensure_message_partitions(((now() AT TIME ZONE 'UTC')::date - 40), 2)")
        .execute(&s.db)
        .await
        .expect("old");
    let dropped = tasks::retention(&s.db, 30).await.expect("retention");
    assert_eq!(dropped.len(), 2, "{dropped:?}");
    let ahead: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relname = 'messages_' || to_char((now() AT TIME ZONE 'UTC')::date + 1, 'YYYYMMDD')")
        .fetch_one(&s.db).await.expect("n");
    assert_eq!(ahead, 1);
}

#[tokio::test]
async fn a_due_release_job_releases_its_dispatch() {
    let s = Scheduler::connect(config().await).await.expect("s");
    let d = seed(&s, "scheduled", -1, 2).await;
    let due = std::time::SystemTime::now() + std::time::Duration::from_millis(300);
    s.schedule
        .push_at(&[ezpulze_common::jobs::ReleaseJob { dispatch_id: d }], due)
        .await
        .expect("push");
    assert_eq!(s.schedule.stats().await.expect("stats").delayed, 1);
    // Not due yet: the job waits (the safety-net scan may release the row, the job stays).
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let report = s.tick().await.expect("tick");
    assert_eq!(report.released_messages, 2);
    let stats = s.schedule.stats().await.expect("stats");
    assert_eq!(
        (stats.delayed, stats.depth),
        (0, 0),
        "the release job was consumed: {stats:?}"
    );
    assert_eq!(s.queue.stats().await.expect("stats").depth, 2);
}

/// The consumer names of the send queue's group, sorted.
async fn consumers(conn: &mut redis::aio::MultiplexedConnection, stream: &str) -> Vec<String> {
    let reply: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg("workers")
        .query_async(conn)
        .await
        .expect("xinfo");
    let mut v: Vec<String> = reply.consumers.into_iter().map(|c| c.name).collect();
    v.sort();
    v
}

#[tokio::test]
async fn consumers_of_stopped_workers_are_forgotten_unless_they_hold_jobs() {
    let cfg = config().await;
    let prefix = cfg.redis_prefix.clone();
    let s = Scheduler::connect(cfg).await.expect("s");
    // Nothing to prune where no stream or group exists yet (the status stream before any worker).
    assert_eq!(
        s.prune_consumers(std::time::Duration::ZERO)
            .await
            .expect("prune"),
        0
    );
    s.queue
        .push_bulk(&[ezpulze_common::jobs::SendJob {
            message_id: Uuid::now_v7(),
            dispatch_id: Uuid::now_v7(),
            account_id: Uuid::now_v7(),
        }])
        .await
        .expect("push");
    let mut busy = s.queue.consumer("busy");
    assert_eq!(busy.fetch_batch(10).await.expect("fetch").len(), 1);
    let client = redis::Client::open(
        std::env::var("EZPULZE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into()),
    )
    .expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let stream = format!("{{{prefix}:send}}:stream");
    // A worker that read once and stopped.
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg(&stream)
        .arg("workers")
        .arg("gone")
        .query_async(&mut conn)
        .await
        .expect("createconsumer");
    assert_eq!(consumers(&mut conn, &stream).await, vec!["busy", "gone"]);
    // An hour of silence is not over yet: nothing goes.
    assert_eq!(
        s.queue
            .prune_consumers(std::time::Duration::from_secs(3600))
            .await
            .expect("prune"),
        0
    );
    assert_eq!(
        s.queue
            .prune_consumers(std::time::Duration::ZERO)
            .await
            .expect("prune"),
        1
    );
    assert_eq!(
        consumers(&mut conn, &stream).await,
        vec!["busy"],
        "the consumer holding a job stays"
    );
}
