//! Fairness on the lanes: a capped number's big backlog starves no other tenant, a
//! high-priority dispatch goes ahead of bulk on its number while bulk keeps its share, and a
//! cancelled dispatch's jobs leave its lane. Real Postgres, Redis and simulator.
mod common;

use std::time::{Duration, Instant};

use common::*;
use ezpulze_testkit::wait_until;
use serde_json::json;
use uuid::Uuid;

async fn accepted_on(env: &TestEnv, dispatches: &[Uuid]) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE dispatch_id = ANY($1) AND status = 'accepted'",
    )
    .bind(dispatches)
    .fetch_one(&env.db)
    .await
    .expect("count")
}

/// The scenario: account A queues 200,000 messages (`FAIRNESS_BACKLOG`) on NA capped
/// at 80/s (72/s with the 0.9 headroom); while that backlog stands, account B sends 100 on NB
/// and A a 100-message high-priority dispatch on NA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_backlog_starves_no_tenant_and_high_priority_goes_first() {
    let backlog: usize = std::env::var("FAIRNESS_BACKLOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let env = TestEnv::new(json!({"mps_limit": 0, "pair_gap_ms": 0})).await;
    let a = env.account;
    let b = env.other_account().await;
    env.number_of(a, "9401", 80, TOKEN).await;
    env.number_of(b, "9402", 1000, TOKEN).await;
    let w = env.worker(&[], fast_tuning()).await;
    let text = |_| vec![json!({"type": "text", "text": "Ana"})];

    // B on an idle stack.
    let (idle, _) = env
        .dispatch_of(b, "9402", &recipients(100, 0), false, false, true, text)
        .await;
    wait_until(
        "B's idle dispatch sent",
        Duration::from_secs(60),
        || async { accepted_on(&env, &[idle]).await == 100 },
    )
    .await;
    let idle_p99 = p99(&accepted_latencies_ms(&env, idle).await);

    // A's backlog stands; measured alone for 5 s: NA's rate and this process's CPU.
    let (bulk, _) = env
        .dispatch_of(
            a,
            "9401",
            &recipients(backlog, 1_000_000),
            false,
            false,
            true,
            text,
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, na0, t0) = (
        ezpulze_runtime::telemetry::process_cpu_seconds().unwrap_or(f64::NAN),
        accepted_on(&env, &[bulk]).await,
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (cpu1, na1) = (
        ezpulze_runtime::telemetry::process_cpu_seconds().unwrap_or(f64::NAN),
        accepted_on(&env, &[bulk]).await,
    );
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (cpu1 - cpu0) / secs;
    let na_rate = (na1 - na0) as f64 / secs;

    // Then B's 100 and A's 100 high-priority ones, at once.
    let started = Instant::now();
    let bulk_before = accepted_on(&env, &[bulk]).await;
    let (busy, _) = env
        .dispatch_of(
            b,
            "9402",
            &recipients(100, 5_000_000),
            false,
            false,
            true,
            text,
        )
        .await;
    let (high, _) = env
        .dispatch_of(
            a,
            "9401",
            &recipients(100, 6_000_000),
            true,
            false,
            true,
            text,
        )
        .await;
    wait_until(
        "A's high-priority dispatch sent",
        Duration::from_secs(60),
        || async { accepted_on(&env, &[high]).await == 100 },
    )
    .await;
    let high_secs = started.elapsed().as_secs_f64();
    let bulk_during_high = accepted_on(&env, &[bulk]).await - bulk_before;
    wait_until("B's dispatch sent", Duration::from_secs(60), || async {
        accepted_on(&env, &[busy]).await == 100
    })
    .await;
    let busy_p99 = p99(&accepted_latencies_ms(&env, busy).await);
    let still_waiting = i64::try_from(backlog).expect("backlog") - accepted_on(&env, &[bulk]).await;
    println!(
        "{{\"backlog\": {backlog}, \"b_p99_idle_ms\": {idle_p99:.0}, \"b_p99_beside_backlog_ms\": {busy_p99:.0}, \
         \"na_bulk_per_s\": {na_rate:.1}, \"high_100_s\": {high_secs:.2}, \"bulk_during_high\": {bulk_during_high}, \
         \"cpu_cores_while_backlog_waits\": {cpu:.3}}}"
    );
    w.stop().await;

    assert!(still_waiting > 0, "the backlog stood throughout");
    // B is not starved by A's backlog: its p99 within 20% (plus 100 ms) of the idle one.
    assert!(
        busy_p99 <= idle_p99 * 1.2 + 100.0,
        "B's p99 {busy_p99:.0} ms beside the backlog vs {idle_p99:.0} ms idle"
    );
    // A's high-priority dispatch goes ahead of its own bulk: about 100/72 s plus 2 s.
    assert!(
        high_secs <= 100.0 / 72.0 + 2.0,
        "100 high-priority messages took {high_secs:.2} s"
    );
    // Bulk keeps its share meanwhile (one send in five), and its rate (72/s usable of the
    // 80/s cap) while it is alone.
    assert!(
        bulk_during_high >= 10,
        "bulk sent {bulk_during_high} meanwhile"
    );
    assert!(na_rate >= 0.9 * 72.0, "NA's bulk ran at {na_rate:.1}/s");
    // No busy re-fetching of the capped lane: the figure is printed; a bound far above it.
    assert!(
        cpu < 0.5,
        "{cpu:.3} cores while only the capped backlog waits"
    );
}

/// Cancelling a dispatch while its backlog waits: nothing more of it is sent after the
/// cancel is acknowledged, and its jobs leave the lane at once (the api's purge).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_backlog_leaves_its_lane_and_nothing_more_is_sent() {
    let env = TestEnv::new(json!({"mps_limit": 0, "pair_gap_ms": 0})).await;
    env.number("9501", 40, TOKEN).await;
    let text = |_| vec![json!({"type": "text", "text": "Ana"})];
    let (d, _) = env
        .dispatch_of(
            env.account,
            "9501",
            &recipients(20_000, 0),
            false,
            false,
            true,
            text,
        )
        .await;
    let (other, _) = env
        .dispatch_of(
            env.account,
            "9501",
            &recipients(50, 100_000),
            false,
            false,
            true,
            text,
        )
        .await;
    let w = env.worker(&[], fast_tuning()).await;
    wait_until("some sent", Duration::from_secs(30), || async {
        accepted_on(&env, &[d]).await >= 20
    })
    .await;
    // What the cancel route does: rows and dispatch cancelled in one transaction, then the
    // dispatch's jobs purged from its lane.
    let mut tx = env.db.begin().await.expect("tx");
    sqlx::query("UPDATE messages SET status = 'cancelled' WHERE dispatch_id = $1 AND status IN ('queued', 'scheduled')")
        .bind(d)
        .execute(&mut *tx)
        .await
        .expect("cancel rows");
    sqlx::query("UPDATE dispatches SET status = 'cancelled' WHERE id = $1")
        .bind(d)
        .execute(&mut *tx)
        .await
        .expect("cancel dispatch");
    tx.commit().await.expect("commit");
    let cancel_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&env.db)
        .await
        .expect("now");
    // The worker purges a stopped dispatch's jobs itself when it meets one, so this purge
    // may find them gone already: what counts is what the lane still holds.
    env.queue.lanes.purge("9501", d).await.expect("purge");
    let counts = env
        .queue
        .lanes
        .lanes()
        .counts("9501", &[&ezpulze_runtime::send_lanes::group(d)])
        .await
        .expect("counts");
    // What is left are jobs in flight at the cancel (at most a read's worth).
    assert!(
        counts[0] < 100,
        "{counts:?} jobs of the cancelled dispatch left"
    );
    // The other dispatch of the number still goes out.
    wait_until(
        "the other dispatch sent",
        Duration::from_secs(30),
        || async { accepted_on(&env, &[other]).await == 50 },
    )
    .await;
    wait_until(
        "the lane holds nothing of it",
        Duration::from_secs(10),
        || async {
            env.queue
                .lanes
                .lanes()
                .counts("9501", &[&ezpulze_runtime::send_lanes::group(d)])
                .await
                .expect("counts")[0]
                == 0
        },
    )
    .await;
    w.stop().await;
    // Sends claimed before the cancel may still end accepted; nothing was claimed later.
    let claimed_later: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE dispatch_id = $1 AND claimed_at > $2",
    )
    .bind(d)
    .bind(cancel_at)
    .fetch_one(&env.db)
    .await
    .expect("count");
    assert_eq!(claimed_later, 0, "claimed after the cancel");
    let sending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE dispatch_id = $1 AND status NOT IN ('accepted', 'cancelled')",
    )
    .bind(d)
    .fetch_one(&env.db)
    .await
    .expect("count");
    assert_eq!(sending, 0, "every row of it is accepted or cancelled");
}
