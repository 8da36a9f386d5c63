//! The outbox sweep: message rows still `queued` after a timeout, whose dispatch has no job
//! left in its lane, get their jobs pushed again.
//!
//! The API commits rows before it pushes their jobs; a crash (or a failed push) in between
//! leaves rows without jobs, and so does a Redis node lost before it replicated a push. A
//! duplicate job is harmless (a worker claims a row `queued -> sending` once), but a capped
//! number's backlog legitimately waits in its lane for longer than the timeout: re-pushing
//! those rows would only churn Postgres and Redis. So the sweep works per dispatch:
//!
//! 1. active dispatches (`queued`, `sending`) with a row queued for longer than
//!    `OUTBOX_AFTER_SECS` (at most [`DISPATCHES`] per sweep);
//! 2. their lanes are marked due (a registry entry lost with a node comes back);
//! 3. a dispatch whose lane holds none of its jobs (ready, delayed or in flight) gets its
//!    stale rows pushed again, up to `limit` rows per sweep.
//!
//! Rows `deferred` by the messaging limit (`docs/messaging-limits.md`) whose time has come
//! count as queued ones here: their delayed job was lost too if the lane holds none.
//!
//! Worst case after a lost Redis node: rows of a dispatch whose lane still holds some of its
//! jobs wait until those have been sent, then `OUTBOX_AFTER_SECS`, then the next sweep.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use ezpulze_runtime::send_lanes::{self, SendLanes};
use sqlx::PgPool;
use uuid::Uuid;

use ezpulze_common::jobs::SendJob;

/// Active dispatches with stale rows looked at per sweep.
pub const DISPATCHES: i64 = 1_000;

/// One sweep (see the module). Returns how many rows were pushed again.
pub async fn repush_stale(
    db: &PgPool,
    lanes: &SendLanes,
    older_than: Duration,
    limit: i64,
) -> anyhow::Result<usize> {
    let stale: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT d.id, d.phone_number_id FROM dispatches d
          WHERE d.status IN ('queued', 'sending')
            AND EXISTS (SELECT 1 FROM messages m
                         WHERE m.dispatch_id = d.id
                           AND (m.status = 'queued'
                                OR (m.status = 'deferred' AND m.next_attempt_at < now()))
                           AND m.updated_at < now() - make_interval(secs => $1))
          LIMIT $2",
    )
    .bind(older_than.as_secs_f64())
    .bind(DISPATCHES)
    .fetch_all(db)
    .await
    .context("selecting dispatches with stale queued messages")?;
    if stale.is_empty() {
        return Ok(0);
    }
    let mut by_lane: HashMap<String, Vec<Uuid>> = HashMap::new();
    for (id, pn) in stale {
        let lane = pn.unwrap_or_else(|| send_lanes::NO_NUMBER_LANE.to_owned());
        by_lane.entry(lane).or_default().push(id);
    }
    let lane_names: Vec<&str> = by_lane.keys().map(String::as_str).collect();
    lanes
        .lanes()
        .touch(&lane_names)
        .await
        .context("marking lanes due")?;
    let mut absent = Vec::new();
    for (lane, ids) in &by_lane {
        let groups: Vec<String> = ids.iter().map(|d| send_lanes::group(*d)).collect();
        let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
        let counts = lanes
            .lanes()
            .counts(lane, &refs)
            .await
            .context("counting a lane's jobs")?;
        absent.extend(
            ids.iter()
                .zip(counts)
                .filter(|(_, n)| *n == 0)
                .map(|(d, _)| *d),
        );
    }
    if absent.is_empty() {
        return Ok(0);
    }
    let rows: Vec<(Uuid, Uuid, Uuid)> = sqlx::query_as(
        "WITH stale AS (
             SELECT m.id FROM messages m
             WHERE m.dispatch_id = ANY($3)
               AND (m.status = 'queued'
                    OR (m.status = 'deferred' AND m.next_attempt_at < now()))
               AND m.updated_at < now() - make_interval(secs => $1)
             ORDER BY m.id LIMIT $2
             FOR UPDATE OF m SKIP LOCKED)
         UPDATE messages m SET updated_at = now() FROM stale WHERE m.id = stale.id
         RETURNING m.id, m.dispatch_id, m.account_id",
    )
    .bind(older_than.as_secs_f64())
    .bind(limit)
    .bind(&absent)
    .fetch_all(db)
    .await
    .context("selecting stale queued messages")?;
    if rows.is_empty() {
        return Ok(0);
    }
    let jobs: Vec<SendJob> = rows
        .into_iter()
        .map(|(message_id, dispatch_id, account_id)| SendJob {
            message_id,
            dispatch_id,
            account_id,
        })
        .collect();
    lanes
        .push(db, &jobs)
        .await
        .context("re-pushing stale messages")?;
    metrics::counter!("ezpulze_outbox_repushed_total").increment(jobs.len() as u64);
    Ok(jobs.len())
}
