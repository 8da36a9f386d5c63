//! The outbox sweep: message rows still `queued` after a timeout get their job pushed again.
//!
//! The API commits rows before it pushes their jobs; a crash (or a failed push) in between
//! leaves rows without jobs. A duplicate job is harmless (a worker claims a row
//! `queued -> sending` once), so re-pushing every stale queued row is safe.

use std::time::Duration;

use anyhow::Context;
use ezpulze_queue::Queue;
use sqlx::PgPool;
use uuid::Uuid;

use ezpulze_common::jobs::SendJob;

/// Re-pushes up to `limit` rows queued for longer than `older_than` (their clock restarts),
/// for dispatches that are still meant to go out. Returns how many were pushed.
pub async fn repush_stale(
    db: &PgPool,
    queue: &Queue<SendJob>,
    older_than: Duration,
    limit: i64,
) -> anyhow::Result<usize> {
    let rows: Vec<(Uuid, Uuid, Uuid)> = sqlx::query_as(
        "WITH stale AS (
             SELECT m.id FROM messages m JOIN dispatches d ON d.id = m.dispatch_id
             WHERE m.status = 'queued' AND m.updated_at < now() - make_interval(secs => $1)
               AND d.status IN ('queued', 'sending')
             ORDER BY m.updated_at LIMIT $2
             FOR UPDATE OF m SKIP LOCKED)
         UPDATE messages m SET updated_at = now() FROM stale WHERE m.id = stale.id
         RETURNING m.id, m.dispatch_id, m.account_id",
    )
    .bind(older_than.as_secs_f64())
    .bind(limit)
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
    queue
        .push_bulk(&jobs)
        .await
        .context("re-pushing stale messages")?;
    metrics::counter!("ezpulze_outbox_repushed_total").increment(jobs.len() as u64);
    Ok(jobs.len())
}
