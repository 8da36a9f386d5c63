//! The scheduler against real Postgres and Redis: one leader at a time with take-over,
//! scheduled dispatches released with their jobs, stuck sends swept per policy, retention.

use chrono::{DateTime, Utc};
use ezpulze_common::config::UnknownOutcomePolicy;
use ezpulze_scheduler::{tasks, Scheduler};
use ezpulze_testkit::app::{recipients, Sender, TestApp};
use ezpulze_testkit::db::count;
use ezpulze_testkit::{db::TestDb, redis::TestRedis, templates, wait_until, DEADLINE};
use serde_json::json;
use uuid::Uuid;

/// A scheduler on a fresh database and Redis prefix (no API).
async fn scheduler() -> Scheduler {
    scheduler_on_redis().await.0
}

async fn scheduler_on_redis() -> (Scheduler, TestRedis) {
    let (db, redis) = (TestDb::new().await, TestRedis::new().await);
    let config = db.settings().redis_prefix(&redis.prefix).config();
    let s = Scheduler::connect(config).await.expect("scheduler");
    (s, redis)
}

/// The API and a scheduler on one database and prefix, and a sender of the text template:
/// fixtures are made through the API.
struct Env {
    app: TestApp,
    s: Scheduler,
    sender: Sender,
}

async fn env() -> Env {
    let app = TestApp::spawn().await;
    let s = Scheduler::connect(app.config()).await.expect("scheduler");
    let sender = app.sender(templates::text(), json!({})).await;
    Env { app, s, sender }
}

impl Env {
    /// A dispatch of `n` messages through the API, sent now or scheduled at `at`.
    async fn dispatch(&self, n: usize, at: Option<DateTime<Utc>>) -> Uuid {
        let at = at.map(|t| t.to_rfc3339());
        let id = self
            .app
            .dispatch(&self.sender, recipients(n, 0), at.as_deref())
            .await;
        id.parse().expect("dispatch id")
    }

    async fn status(&self, dispatch: Uuid) -> String {
        sqlx::query_scalar("SELECT status FROM dispatches WHERE id = $1")
            .bind(dispatch)
            .fetch_one(&self.s.db)
            .await
            .expect("dispatch status")
    }
}

/// Waits until the wall clock has passed `at` (a scheduled time is a time of day).
async fn wait_past(at: DateTime<Utc>) {
    let at = at + chrono::Duration::milliseconds(50);
    wait_until(
        "the scheduled time",
        DEADLINE,
        || async move { Utc::now() > at },
    )
    .await;
}

#[tokio::test]
async fn one_leader_at_a_time_and_a_standby_takes_over() {
    let a = scheduler().await;
    let b = Scheduler::connect(a.config.clone()).await.expect("b");
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
    let e = env().await;
    let at = Utc::now() + chrono::Duration::seconds(1);
    let due = e.dispatch(3, Some(at)).await;
    let later = e
        .dispatch(2, Some(Utc::now() + chrono::Duration::hours(1)))
        .await;
    wait_past(at).await;
    let report = e.s.tick().await.expect("tick");
    assert_eq!(
        (report.released_dispatches, report.released_messages),
        (1, 3)
    );
    assert_eq!(e.s.lanes.lanes().stats().await.expect("stats").ready, 3);
    assert_eq!(
        (e.status(due).await, e.status(later).await),
        ("queued".into(), "scheduled".into())
    );
    assert_eq!(
        e.s.tick().await.expect("tick").released_messages,
        0,
        "released once"
    );
}

#[tokio::test]
async fn stuck_sends_follow_the_unknown_outcome_policy() {
    let e = env().await;
    let s = &e.s;
    let d = e.dispatch(4, None).await;
    // Rows stuck in `sending` (a worker that died mid-send) are a state the API cannot
    // produce: faked here, two claimed an hour ago and one just now.
    sqlx::query("UPDATE messages SET status = 'sending', claimed_at = now() - interval '1 hour', updated_at = now() - interval '1 hour' WHERE id IN (SELECT id FROM messages WHERE dispatch_id = $1 ORDER BY id LIMIT 2)")
        .bind(d).execute(&s.db).await.expect("stuck");
    sqlx::query("UPDATE messages SET status = 'sending', claimed_at = now() WHERE status = 'queued' AND dispatch_id = $1 AND id IN (SELECT id FROM messages WHERE dispatch_id = $1 ORDER BY id DESC LIMIT 1)")
        .bind(d).execute(&s.db).await.expect("fresh");
    assert_eq!(sweep(&s.db, UnknownOutcomePolicy::Fail).await, 2);
    let failed = count(
        &s.db,
        "SELECT count(*) FROM messages WHERE status = 'failed' AND error_title LIKE 'outcome unknown%'",
    )
    .await;
    assert_eq!(failed, 2, "never sent twice: marked failed");
    sqlx::query(
        "UPDATE messages SET claimed_at = now() - interval '1 hour', updated_at = now() - interval '1 hour' WHERE status = 'sending'",
    )
    .execute(&s.db)
    .await
    .expect("age");
    assert_eq!(sweep(&s.db, UnknownOutcomePolicy::Resend).await, 1);
    let queued = count(
        &s.db,
        "SELECT count(*) FROM messages WHERE status = 'queued'",
    )
    .await;
    assert_eq!(queued, 2);
}

#[tokio::test]
async fn retention_keeps_partitions_ahead_and_drops_old_ones() {
    let s = scheduler().await;
    sqlx::query("SELECT ezp_ensure_message_partitions(((now() AT TIME ZONE 'UTC')::date - 40), 2)")
        .execute(&s.db)
        .await
        .expect("old");
    let dropped = tasks::retention(&s.db, 30).await.expect("retention");
    assert_eq!(dropped.len(), 2, "{dropped:?}");
    let ahead = count(&s.db, "SELECT count(*) FROM pg_class WHERE relname = 'messages_' || to_char((now() AT TIME ZONE 'UTC')::date + 1, 'YYYYMMDD')").await;
    assert_eq!(ahead, 1);
}

#[tokio::test]
async fn retention_keeps_a_partition_that_still_holds_unsent_messages() {
    let e = env().await;
    sqlx::query("SELECT ezp_ensure_message_partitions(((now() AT TIME ZONE 'UTC')::date - 40), 2)")
        .execute(&e.s.db)
        .await
        .expect("old partitions");
    // A message accepted 40 days ago and scheduled far ahead (sends may be scheduled up to 90
    // days out): its row lives in the partition of the day it was accepted. Moving a row of a
    // send made through the API there is the only way to have one without waiting 40 days.
    let d = e
        .dispatch(1, Some(Utc::now() + chrono::Duration::days(60)))
        .await;
    let old: Uuid = sqlx::query_scalar(
        "UPDATE messages SET id = ezp_uuid7_floor(now() - interval '40 days')
          WHERE dispatch_id = $1 RETURNING id",
    )
    .bind(d)
    .fetch_one(&e.s.db)
    .await
    .expect("move the row to the old partition");
    let kept = format!(
        "messages_{}",
        (Utc::now() - chrono::Duration::days(40)).format("%Y%m%d")
    );
    let dropped = tasks::retention(&e.s.db, 30).await.expect("retention");
    assert!(!dropped.contains(&kept), "{dropped:?}");
    assert_eq!(
        dropped.len(),
        1,
        "only the empty old partition: {dropped:?}"
    );
    // Once the message is final, its partition goes too.
    sqlx::query("UPDATE messages SET status = 'cancelled' WHERE id = $1")
        .bind(old)
        .execute(&e.s.db)
        .await
        .expect("cancel");
    let dropped = tasks::retention(&e.s.db, 30).await.expect("retention");
    assert_eq!(dropped, vec![kept]);
}

/// One stuck-send sweep; how many rows it settled.
async fn sweep(db: &sqlx::PgPool, policy: UnknownOutcomePolicy) -> usize {
    tasks::sweep_unknown(db, policy).await.expect("sweep")
}

/// Dispatches already overdue that fill the safety-net scan's batch, so that the scan cannot
/// reach a dispatch scheduled after them: only its release job can release it.
const OVERDUE: i64 = 1000;

#[tokio::test]
async fn a_due_release_job_releases_its_dispatch() {
    let e = env().await;
    // Overdue scheduled dispatches are a state the API cannot produce (a past `scheduled_at`
    // sends now): inserted here, without messages, an hour overdue.
    sqlx::query(
        "INSERT INTO dispatches (id, account_id, status, total, scheduled_at)
         SELECT gen_random_uuid(), $1::uuid, 'scheduled', 0, now() - interval '1 hour'
         FROM generate_series(1, $2)",
    )
    .bind(&e.sender.account.id)
    .bind(OVERDUE)
    .execute(&e.s.db)
    .await
    .expect("overdue dispatches");
    // The API pushes the release job, due at `scheduled_at`.
    let at = Utc::now() + chrono::Duration::seconds(3);
    let d = e.dispatch(2, Some(at)).await;
    assert_eq!(e.s.schedule.stats().await.expect("stats").delayed, 1);

    // Before its time: the job waits and the dispatch stays scheduled.
    e.s.tick().await.expect("tick");
    assert_eq!(e.s.schedule.stats().await.expect("stats").delayed, 1);
    assert_eq!(e.status(d).await, "scheduled", "released before its time");

    wait_past(at).await;
    let report = e.s.tick().await.expect("tick");
    let stats = e.s.schedule.stats().await.expect("stats");
    assert_eq!(
        (stats.delayed, stats.depth, stats.in_flight),
        (0, 0, 0),
        "the release job was consumed: {stats:?}"
    );
    assert_eq!(
        e.status(d).await,
        "queued",
        "the tick that consumed the release job released its dispatch"
    );
    assert_eq!(report.released_messages, 2);
    assert_eq!(e.s.lanes.lanes().stats().await.expect("stats").ready, 2);
    // The test's premise: the scan's batch did not reach every due dispatch, so the scan is
    // not what released this one.
    let overdue_left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dispatches WHERE status = 'scheduled' AND scheduled_at <= now()",
    )
    .fetch_one(&e.s.db)
    .await
    .expect("left");
    assert!(
        overdue_left > 0,
        "the scan released every due dispatch: raise OVERDUE above its batch"
    );
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
    let (s, redis) = scheduler_on_redis().await;
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
    let mut conn = redis.conn.clone();
    let stream = redis.stream("send");
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

/// A free local port (bound, read, released).
async fn free_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test]
async fn readiness_checks_redis_and_answers_fast_when_it_stalls() {
    use ezpulze_testkit::stall::StallProxy;
    let (db, redis) = (TestDb::new().await, TestRedis::new().await);
    let (proxy, redis_url) = StallProxy::for_url(&ezpulze_testkit::redis_url(), 6379).await;
    let port = free_port().await;
    let addr = format!("127.0.0.1:{port}");
    let config = db
        .settings()
        .redis_prefix(&redis.prefix)
        .extend(&[
            ("REDIS_URL", redis_url.as_str()),
            ("SCHEDULER_METRICS_ADDR", addr.as_str()),
        ])
        .config();
    let cancel = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(ezpulze_scheduler::run(config, cancel.clone()));
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/readyz");
    wait_until("the scheduler is ready", DEADLINE, || async {
        http.get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200)
    })
    .await;
    proxy.stall();
    let started = std::time::Instant::now();
    let r = http.get(&url).send().await.expect("readyz");
    let took = started.elapsed();
    let status = r.status().as_u16();
    let body = r.text().await.expect("body");
    assert_eq!(
        (status, body.as_str()),
        (503, "redis did not answer within 500 ms")
    );
    assert!(
        took < std::time::Duration::from_millis(1500),
        "answered after {took:?}"
    );
    cancel.cancel();
    task.abort();
}

#[tokio::test]
async fn accepted_messages_without_a_status_are_settled_as_sent_past_the_horizon() {
    let e = env().await;
    let s = &e.s;
    let d = e.dispatch(4, None).await;
    let horizon = ezpulze_common::config::DEFAULT_ACCEPTED_STATUS_HORIZON;
    // A worker's accepted-write (wamid stored) nine days ago for two rows whose status
    // webhooks were lost, an hour ago for a third (its statuses may still come), and one row
    // that already got its `sent` nine days ago: states faked, no worker or webhook runs.
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM messages WHERE dispatch_id = $1 ORDER BY id")
            .bind(d)
            .fetch_all(&s.db)
            .await
            .expect("ids");
    for (i, (id, age, status)) in [
        (ids[0], "9 days", "accepted"),
        (ids[1], "9 days", "accepted"),
        (ids[2], "1 hour", "accepted"),
        (ids[3], "9 days", "sent"),
    ]
    .into_iter()
    .enumerate()
    {
        sqlx::query(&format!(
            "UPDATE messages SET status = $2, wamid = $3, updated_at = now() - interval '{age}'
              WHERE id = $1"
        ))
        .bind(id)
        .bind(status)
        .bind(format!("wamid.{i}"))
        .execute(&s.db)
        .await
        .expect("accepted");
    }
    let key: Uuid = e.sender.key_id.parse().expect("key id");
    let sent_before: i64 = sqlx::query_scalar("SELECT sent FROM api_key_usage WHERE key_id = $1")
        .bind(key)
        .fetch_one(&s.db)
        .await
        .expect("usage");
    let swept = tasks::sweep_accepted(&s.db, horizon, 1)
        .await
        .expect("sweep");
    assert_eq!(swept, 1, "bounded by its limit");
    let swept = tasks::sweep_accepted(&s.db, horizon, 100)
        .await
        .expect("sweep");
    assert_eq!(swept, 1, "the other old one");
    assert_eq!(
        tasks::sweep_accepted(&s.db, horizon, 100)
            .await
            .expect("sweep"),
        0,
        "settled once"
    );
    let rows: Vec<(String, Option<String>, bool)> = sqlx::query_as(
        "SELECT status, error_title, sent_at IS NOT NULL FROM messages WHERE dispatch_id = $1 ORDER BY id",
    )
    .bind(d)
    .fetch_all(&s.db)
    .await
    .expect("rows");
    let note = Some(tasks::NO_STATUS_NOTE.to_owned());
    assert_eq!(
        rows,
        vec![
            ("sent".into(), note.clone(), true),
            ("sent".into(), note, true),
            ("accepted".into(), None, false),
            ("sent".into(), None, false),
        ]
    );
    let sent_after: i64 = sqlx::query_scalar("SELECT sent FROM api_key_usage WHERE key_id = $1")
        .bind(key)
        .fetch_one(&s.db)
        .await
        .expect("usage");
    assert_eq!(sent_after - sent_before, 2, "counted as sent, once each");
    // The tick runs it with the configured horizon (default: 8 days): nothing left to do.
    assert_eq!(e.s.tick().await.expect("tick").accepted_swept, 0);
}

/// The deliveries created so far: (endpoint, event type, data.status), sorted.
async fn deliveries(db: &sqlx::PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT endpoint_id::text, event_type, body->'data'->>'status' FROM webhook_deliveries
          ORDER BY 1, 2, 3",
    )
    .fetch_all(db)
    .await
    .expect("deliveries")
}

#[tokio::test]
async fn sweeps_and_completions_create_the_events_endpoints_asked_for() {
    let e = env().await;
    let s = &e.s;
    let key = &e.sender.key;
    let app = &e.app;
    let create = |body: serde_json::Value| async move {
        let v = app.webhook_endpoint(key, body).await;
        v["id"].as_str().expect("id").to_owned()
    };
    let all = create(json!({"url": "http://127.0.0.1:9/all"})).await;
    let done =
        create(json!({"url": "http://127.0.0.1:9/done", "events": ["dispatch.completed"]})).await;
    // Only another key's messages: gets nothing here.
    let other_key = e
        .app
        .key(
            &e.sender.account.admin,
            json!({"name": "other", "scope_group": "full_access"}),
        )
        .await
        .1;
    create(json!({"url": "http://127.0.0.1:9/other", "key_ids": [other_key]})).await;
    let d = e.dispatch(3, None).await;
    // One stuck in `sending` an hour, one accepted nine days ago, one delivered (not swept).
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM messages WHERE dispatch_id = $1 ORDER BY id")
            .bind(d)
            .fetch_all(&s.db)
            .await
            .expect("ids");
    for (id, set) in [
        (ids[0], "status = 'sending', claimed_at = now() - interval '1 hour', updated_at = now() - interval '1 hour'"),
        (ids[1], "status = 'accepted', wamid = 'wamid.a', updated_at = now() - interval '9 days'"),
        (ids[2], "status = 'delivered', wamid = 'wamid.b', sent_at = now(), delivered_at = now()"),
    ] {
        sqlx::query(&format!("UPDATE messages SET {set} WHERE id = $1"))
            .bind(id)
            .execute(&s.db)
            .await
            .expect("state");
    }
    assert_eq!(
        ezpulze_scheduler::hooks::complete_dispatches(&s.db)
            .await
            .expect("complete"),
        0,
        "still waiting"
    );
    assert_eq!(sweep(&s.db, UnknownOutcomePolicy::Fail).await, 1);
    let horizon = ezpulze_common::config::DEFAULT_ACCEPTED_STATUS_HORIZON;
    assert_eq!(
        tasks::sweep_accepted(&s.db, horizon, 100)
            .await
            .expect("sweep"),
        1
    );
    assert_eq!(
        ezpulze_scheduler::hooks::complete_dispatches(&s.db)
            .await
            .expect("complete"),
        1
    );
    assert_eq!(e.status(d).await, "completed");
    assert_eq!(
        ezpulze_scheduler::hooks::complete_dispatches(&s.db)
            .await
            .expect("complete"),
        0,
        "once"
    );
    let mut want = vec![
        (
            all.clone(),
            "dispatch.completed".to_owned(),
            "completed".to_owned(),
        ),
        (
            all.clone(),
            "message.failed".to_owned(),
            "failed".to_owned(),
        ),
        (all.clone(), "message.sent".to_owned(), "sent".to_owned()),
        (
            done.clone(),
            "dispatch.completed".to_owned(),
            "completed".to_owned(),
        ),
    ];
    want.sort();
    assert_eq!(deliveries(&s.db).await, want);
    // The same event id at every endpoint it goes to; never the message body.
    let ids: Vec<(String, i64)> = sqlx::query_as(
        "SELECT event_id, count(*) FROM webhook_deliveries WHERE event_type = 'dispatch.completed' GROUP BY 1",
    )
    .fetch_all(&s.db)
    .await
    .expect("event ids");
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].1, 2);
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body::text FROM webhook_deliveries")
        .fetch_all(&s.db)
        .await
        .expect("bodies");
    assert!(bodies
        .iter()
        .all(|b| !b.contains("payload") && !b.contains("\"phone\"")));
}

#[tokio::test]
async fn retention_deletes_webhook_deliveries_past_it() {
    let e = env().await;
    let s = &e.s;
    let v = e
        .app
        .webhook_endpoint(&e.sender.key, json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    let endpoint: Uuid = v["id"].as_str().expect("id").parse().expect("uuid");
    for (age, event) in [
        ("40 days", "evt_old"),
        ("29 days", "evt_kept"),
        ("0 days", "evt_new"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO webhook_deliveries (id, endpoint_id, account_id, event_id, event_type, body, state)
             SELECT ezp_uuid7_floor(now() - interval '{age}'), $1, account_id, $2, 'message.sent', '{{}}', 'succeeded'
               FROM webhook_endpoints WHERE id = $1"
        ))
        .bind(endpoint)
        .bind(event)
        .execute(&s.db)
        .await
        .expect("delivery");
    }
    tasks::retention(&s.db, 30).await.expect("retention");
    let left: Vec<String> =
        sqlx::query_scalar("SELECT event_id FROM webhook_deliveries ORDER BY id")
            .fetch_all(&s.db)
            .await
            .expect("left");
    assert_eq!(left, vec!["evt_kept".to_owned(), "evt_new".to_owned()]);
}

#[tokio::test]
async fn deferred_messages_keep_their_dispatch_open_and_a_lost_due_one_is_pushed_again() {
    let e = env().await;
    let s = &e.s;
    let d = e.dispatch(3, None).await;
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM messages WHERE dispatch_id = $1 ORDER BY id")
            .bind(d)
            .fetch_all(&s.db)
            .await
            .expect("ids");
    // The messaging limit deferred two (one due again, one not yet); the third was delivered.
    for (id, set) in [
        (ids[0], "status = 'deferred', deferred_reason = 'messaging_limit', next_attempt_at = now() - interval '1 minute', updated_at = now() - interval '1 hour'"),
        (ids[1], "status = 'deferred', deferred_reason = 'messaging_limit', next_attempt_at = now() + interval '1 hour', updated_at = now() - interval '1 hour'"),
        (ids[2], "status = 'delivered', wamid = 'wamid.c', sent_at = now(), delivered_at = now()"),
    ] {
        sqlx::query(&format!("UPDATE messages SET {set} WHERE id = $1"))
            .bind(id)
            .execute(&s.db)
            .await
            .expect("state");
    }
    sqlx::query("UPDATE dispatches SET status = 'sending' WHERE id = $1")
        .bind(d)
        .execute(&s.db)
        .await
        .expect("sending");
    assert_eq!(
        ezpulze_scheduler::hooks::complete_dispatches(&s.db)
            .await
            .expect("complete"),
        0,
        "deferred messages are still waiting"
    );
    assert_eq!(e.status(d).await, "sending");
    // Their delayed jobs were lost (a Redis node): the due one is pushed again, not the other.
    let pn: Option<String> =
        sqlx::query_scalar("SELECT phone_number_id FROM dispatches WHERE id = $1")
            .bind(d)
            .fetch_one(&s.db)
            .await
            .expect("number");
    let lane = pn.unwrap_or_else(|| ezpulze_runtime::send_lanes::NO_NUMBER_LANE.to_owned());
    s.lanes.purge(&lane, d).await.expect("purge");
    let pushed = ezpulze_scheduler::outbox::repush_stale(
        &s.db,
        &s.lanes,
        std::time::Duration::from_secs(60),
        100,
    )
    .await
    .expect("outbox");
    assert_eq!(pushed, 1);
    let counts = s
        .lanes
        .lanes()
        .counts(&lane, &[ezpulze_runtime::send_lanes::group(d).as_str()])
        .await
        .expect("counts");
    assert_eq!(counts, vec![1]);
}
