//! Outcomes of attempts, written in batches: the delivery's new state (succeeded, pending
//! again after the retry schedule's next wait, or failed), its last answer, and each
//! endpoint's failure streak (an endpoint whose attempts all failed for `disable_after` is
//! disabled with a reason).

use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use sqlx::PgPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::claim::Claimed;
use super::post::{Attempt, Outcome};

/// Outcomes written per statement at most.
const BATCH: usize = 1000;
/// A failed write is tried this often, then left to the leases.
const TRIES: u32 = 5;

/// A finished attempt.
pub struct Done {
    pub row: Claimed,
    pub attempt: Attempt,
}

/// The wait before the next attempt after `attempts` attempts, or `None` when the schedule is
/// used up (the delivery is failed). `Retry-After` (already capped) replaces the schedule's
/// wait; the schedule's wait gets ±10% jitter.
pub fn next_attempt_delay(
    attempts: i32,
    schedule: &[Duration],
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let i = usize::try_from(attempts.max(1) - 1).unwrap_or(0);
    let base = *schedule.get(i)?;
    if let Some(r) = retry_after {
        return Some(r);
    }
    let jitter = rand::rng().random_range(0.9..=1.1);
    Some(base.mul_f64(jitter))
}

/// Writes outcomes until the channel closes (every sender dropped).
pub async fn run(
    db: PgPool,
    mut rx: mpsc::Receiver<Done>,
    schedule: Vec<Duration>,
    disable_after: Duration,
) -> anyhow::Result<()> {
    let mut batch: Vec<Done> = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut tries = 0;
        loop {
            tries += 1;
            match write(&db, &batch, &schedule, disable_after).await {
                Ok(()) => break,
                Err(e) if tries < TRIES => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "writing webhook outcomes failed; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(tries))).await;
                }
                Err(e) => {
                    tracing::error!(
                        error = format!("{e:#}"),
                        deliveries = batch.len(),
                        "writing webhook outcomes failed; their leases will send them again"
                    );
                    break;
                }
            }
        }
        batch.clear();
    }
    Ok(())
}

async fn write(
    db: &PgPool,
    batch: &[Done],
    schedule: &[Duration],
    disable_after: Duration,
) -> anyhow::Result<()> {
    let n = batch.len();
    let mut ids = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut delays: Vec<Option<f64>> = Vec::with_capacity(n);
    let mut codes: Vec<Option<i32>> = Vec::with_capacity(n);
    let mut ms: Vec<i32> = Vec::with_capacity(n);
    let mut errors: Vec<Option<String>> = Vec::with_capacity(n);
    let mut endpoints: Vec<Uuid> = Vec::with_capacity(n);
    let mut oks: Vec<bool> = Vec::with_capacity(n);
    let (mut succeeded, mut retried, mut failed) = (0u64, 0u64, 0u64);
    for d in batch {
        let (state, delay) = match d.attempt.outcome {
            Outcome::Succeeded => {
                succeeded += 1;
                ("succeeded", None)
            }
            Outcome::Failed => {
                failed += 1;
                ("failed", None)
            }
            Outcome::Retry { retry_after } => {
                match next_attempt_delay(d.row.attempts, schedule, retry_after) {
                    Some(w) => {
                        retried += 1;
                        ("pending", Some(w.as_secs_f64()))
                    }
                    None => {
                        failed += 1;
                        ("failed", None)
                    }
                }
            }
        };
        ids.push(d.row.id);
        states.push(state);
        delays.push(delay);
        codes.push(d.attempt.status.map(i32::from));
        ms.push(i32::try_from(d.attempt.latency.as_millis()).unwrap_or(i32::MAX));
        errors.push(d.attempt.error.clone());
        endpoints.push(d.row.endpoint_id);
        oks.push(d.attempt.outcome == Outcome::Succeeded);
    }
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE webhook_deliveries w
            SET state = u.state, lease_until = NULL,
                next_attempt_at = CASE WHEN u.delay IS NULL THEN w.next_attempt_at
                                       ELSE now() + make_interval(secs => u.delay) END,
                last_attempt_at = now(), last_status = u.code, last_latency_ms = u.ms,
                last_error = u.err, updated_at = now()
           FROM UNNEST($1::uuid[], $2::text[], $3::float8[], $4::int[], $5::int[], $6::text[],
                       $7::uuid[])
                AS u(id, state, delay, code, ms, err, eid)
          WHERE w.endpoint_id = u.eid AND w.id = u.id AND w.state = 'delivering'",
    )
    .bind(&ids)
    .bind(&states)
    .bind(&delays)
    .bind(&codes)
    .bind(&ms)
    .bind(&errors)
    .bind(&endpoints)
    .execute(&mut *tx)
    .await
    .context("recording webhook outcomes")?;
    // Each endpoint's streak: any success ends it; a batch of only failures starts it (or
    // keeps it), and one older than `disable_after` disables the endpoint. Rows in id order.
    let disabled: i64 = sqlx::query_scalar(
        "WITH a AS (
             SELECT eid, bool_or(ok) AS any_ok FROM UNNEST($1::uuid[], $2::bool[]) AS r(eid, ok)
              GROUP BY eid),
         s AS (
             SELECT e.id, a.any_ok,
                    (NOT a.any_ok AND e.active AND e.failing_since IS NOT NULL
                     AND e.failing_since < now() - make_interval(secs => $3)) AS now_off
               FROM webhook_endpoints e JOIN a ON a.eid = e.id
              WHERE (a.any_ok AND e.failing_since IS NOT NULL) OR NOT a.any_ok
              ORDER BY e.id FOR NO KEY UPDATE OF e),
         u AS (
             UPDATE webhook_endpoints e
                SET failing_since = CASE WHEN s.any_ok THEN NULL ELSE COALESCE(e.failing_since, now()) END,
                    active = e.active AND NOT s.now_off,
                    disabled_at = CASE WHEN s.now_off THEN now() ELSE e.disabled_at END,
                    disabled_reason = CASE WHEN s.now_off
                        THEN 'every delivery attempt failed since '
                             || to_char(e.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
                             || ' UTC' ELSE e.disabled_reason END
               FROM s WHERE e.id = s.id
                 AND (s.any_ok OR e.failing_since IS NULL OR s.now_off)
             RETURNING s.now_off)
         SELECT count(*) FILTER (WHERE now_off) FROM u",
    )
    .bind(&endpoints)
    .bind(&oks)
    .bind(disable_after.as_secs_f64())
    .fetch_one(&mut *tx)
    .await
    .context("tracking endpoint failures")?;
    tx.commit().await?;
    if disabled > 0 {
        metrics::counter!("ezpulze_webhook_endpoints_disabled_total")
            .increment(u64::try_from(disabled).unwrap_or(0));
        tracing::warn!(
            endpoints = disabled,
            "webhook endpoints disabled: every attempt failed for the disable horizon"
        );
    }
    metrics::counter!("ezpulze_webhook_deliveries_total", "result" => "succeeded")
        .increment(succeeded);
    metrics::counter!("ezpulze_webhook_deliveries_total", "result" => "retry").increment(retried);
    metrics::counter!("ezpulze_webhook_deliveries_total", "result" => "failed").increment(failed);
    Ok(())
}
