//! The leader's periodic work. Every statement is bounded, so a tick stays short.
//!
//! Every statement that changes several message rows locks them in id order first (as the
//! worker's and the status reducer's do, see `ezpulze_worker::db`), or skips locked rows.

use anyhow::Context;
use ezpulze_common::config::UnknownOutcomePolicy;
use ezpulze_common::jobs::SendJob;
use std::sync::LazyLock;

use ezpulze_common::hooks;
use ezpulze_common::model::{unknown_outcome, MessageStatus};
use ezpulze_common::usage::{self, Counter};
use ezpulze_common::Config;

use crate::outbox;
use ezpulze_queue::Queue;
use ezpulze_runtime::send_lanes::SendLanes;
use sqlx::PgPool;
use uuid::Uuid;

/// Dispatches released, rows re-pushed and rows swept in one tick.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TickReport {
    pub released_dispatches: usize,
    pub released_messages: usize,
    pub repushed: usize,
    pub unknown_swept: usize,
    pub accepted_swept: usize,
    /// Dispatches stored `completed` (with their `dispatch.completed` events).
    pub completed: usize,
}

const BATCH: i64 = 10_000;
/// A row claimed this long ago and still `sending` lost its worker and its job.
const STUCK_SENDING_SECS: f64 = 900.0;

/// One tick: releases, the outbox sweep when `outbox` (the caller spaces sweeps), the sweeps
/// of unknown and accepted rows, and the legacy send stream's gauges.
pub async fn tick(
    db: &PgPool,
    lanes: &SendLanes,
    queue: &Queue<SendJob>,
    config: &Config,
    outbox: bool,
) -> anyhow::Result<TickReport> {
    let (released_dispatches, released_messages) = release(db, lanes, None).await?;
    let repushed = if outbox {
        outbox::repush_stale(db, lanes, config.outbox_after, BATCH).await?
    } else {
        0
    };
    let unknown_swept = sweep_unknown(db, config.unknown_outcome_policy).await?;
    let accepted_swept = sweep_accepted(db, config.accepted_status_horizon, BATCH).await?;
    // Queue depth, delayed, in-flight, dead and oldest age as gauges for the dashboards.
    if let Err(e) = queue.report_metrics().await {
        tracing::warn!(error = %e, "reading queue statistics failed");
    }
    let report = TickReport {
        released_dispatches,
        released_messages,
        repushed,
        unknown_swept,
        accepted_swept,
        completed: 0,
    };
    if report != TickReport::default() {
        tracing::info!(?report, "scheduler tick");
    }
    Ok(report)
}

/// Scheduled dispatches whose time has come (those named by due release jobs, or with `None`
/// any due one: the safety net): rows to `queued` and their jobs pushed. The commit comes
/// first; a failed push is repaired by the outbox sweep.
pub async fn release(
    db: &PgPool,
    lanes: &SendLanes,
    ids: Option<&[Uuid]>,
) -> anyhow::Result<(usize, usize)> {
    let mut tx = db.begin().await?;
    let due: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE dispatches SET status = 'queued', updated_at = now()
         WHERE id IN (SELECT id FROM dispatches WHERE status = 'scheduled' AND scheduled_at <= now()
                        AND ($1::uuid[] IS NULL OR id = ANY($1))
                      ORDER BY scheduled_at LIMIT 100 FOR UPDATE SKIP LOCKED)
         RETURNING id",
    )
    .bind(ids)
    .fetch_all(&mut *tx)
    .await
    .context("releasing scheduled dispatches")?;
    if due.is_empty() {
        return Ok((0, 0));
    }
    let rows: Vec<(Uuid, Uuid, Uuid)> = sqlx::query_as(
        "WITH locked AS MATERIALIZED (
             SELECT id FROM messages WHERE dispatch_id = ANY($1) AND status = 'scheduled'
             ORDER BY id FOR UPDATE)
         UPDATE messages m SET status = 'queued', updated_at = now()
           FROM locked l WHERE m.id = l.id AND m.status = 'scheduled'
         RETURNING m.id, m.dispatch_id, m.account_id",
    )
    .bind(&due)
    .fetch_all(&mut *tx)
    .await
    .context("releasing scheduled messages")?;
    tx.commit().await?;
    let jobs: Vec<SendJob> = rows
        .iter()
        .map(|&(message_id, dispatch_id, account_id)| SendJob {
            message_id,
            dispatch_id,
            account_id,
        })
        .collect();
    if let Err(e) = lanes.push(db, &jobs).await {
        tracing::warn!(error = %e, "pushing released jobs failed; the outbox sweep will push them");
    }
    metrics::counter!("ezpulze_scheduler_released_total").increment(rows.len() as u64);
    Ok((due.len(), rows.len()))
}

/// Rows stuck in `sending` (their worker died and the job is gone too): with the `fail`
/// policy they end `failed` with a clear title (a later status webhook carrying our callback
/// data still upgrades them); with `resend` they go back to `queued` for the outbox sweep.
/// A sending row's `updated_at` is never older than its `claimed_at` (both are set by the
/// claim), so bounding it too changes nothing but lets the `messages_queued_sweep` index
/// range-scan only old entries instead of every queued and sending row.
pub async fn sweep_unknown(db: &PgPool, policy: UnknownOutcomePolicy) -> anyhow::Result<usize> {
    let sql: &str = match policy {
        UnknownOutcomePolicy::Fail => &SWEEP_FAIL_SQL,
        UnknownOutcomePolicy::Resend => SWEEP_RESEND_SQL,
    };
    let (n, created): (i64, Option<Vec<i32>>) = sqlx::query_as(sql)
        .bind(STUCK_SENDING_SECS)
        .bind(BATCH)
        .fetch_one(db)
        .await
        .context("sweeping stuck sends")?;
    hooks::record_created(&created.unwrap_or_default());
    metrics::counter!("ezpulze_scheduler_unknown_swept_total").increment(n as u64);
    Ok(n as usize)
}

/// Stuck rows failed with the unknown-outcome title; each key's `failed` counter moves with them.
static SWEEP_FAIL_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH stuck AS (
             SELECT id FROM messages WHERE status = 'sending' AND updated_at < now() - make_interval(secs => $1)
               AND claimed_at < now() - make_interval(secs => $1)
             ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED),
         u AS (
             UPDATE messages m SET status = 'failed', failed_at = now(), updated_at = now(),
                 error_code = NULL, error_title = '{title}'
             FROM stuck WHERE m.id = stuck.id RETURNING {event_columns}),
         {counters},
         {events}
         SELECT count(*), {created} FROM u",
        title = unknown_outcome::WORKER_STOPPED,
        counters = usage::counters_cte("c", "u", &[(Counter::Failed, "count(*)")]),
        event_columns = hooks::MESSAGE_EVENT_COLUMNS,
        events = hooks::message_events_cte("h", "u", &[("message.failed", "true")]),
        created = hooks::created_counts_sql("h"),
    )
});

/// Stuck rows back to `queued`, old enough for the next outbox sweep.
const SWEEP_RESEND_SQL: &str = "WITH u AS (
         UPDATE messages SET status = 'queued', updated_at = now() - interval '1 day'
         WHERE id IN (SELECT id FROM messages WHERE status = 'sending' AND updated_at < now() - make_interval(secs => $1)
                        AND claimed_at < now() - make_interval(secs => $1)
                      ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING id)
     SELECT count(*), NULL::int[] FROM u";

/// The note on a message settled by [`sweep_accepted`] (in `error_title`; no error code).
pub const NO_STATUS_NOTE: &str = "no status webhook from WhatsApp within the accepted-status horizon: counted as sent, since WhatsApp accepted it";

/// Messages WhatsApp accepted (`accepted`, wamid stored) whose status webhooks never came:
/// Meta retries a webhook for up to 7 days, so past `horizon`
/// (`ACCEPTED_STATUS_HORIZON_SECS`, 8 days by default) none will. They end `sent`, the final
/// state of a message WhatsApp took with nothing known after: `sent_at` is the time of
/// acceptance (the row's last write), `error_title` is [`NO_STATUS_NOTE`], and each key's
/// `sent` counter moves with them in the same statement. A status that still arrives later
/// applies as usual (monotone: delivered/read/failed outrank sent, and `sent` is not counted
/// twice since `sent_at` is set). At most `limit` rows per call, oldest first, through the
/// `messages_accepted_sweep` partial index; rows locked elsewhere are skipped.
pub async fn sweep_accepted(
    db: &PgPool,
    horizon: std::time::Duration,
    limit: i64,
) -> anyhow::Result<usize> {
    let (n, created): (i64, Option<Vec<i32>>) = sqlx::query_as(&SWEEP_ACCEPTED_SQL)
        .bind(horizon.as_secs_f64())
        .bind(limit)
        .bind(NO_STATUS_NOTE)
        .fetch_one(db)
        .await
        .context("sweeping accepted messages without a status")?;
    hooks::record_created(&created.unwrap_or_default());
    metrics::counter!("ezpulze_scheduler_accepted_swept_total").increment(n as u64);
    if n > 0 {
        tracing::warn!(
            messages = n,
            "accepted messages got no status webhook within the horizon: settled as sent"
        );
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

static SWEEP_ACCEPTED_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH stale AS (
             SELECT id FROM messages
              WHERE status = 'accepted' AND updated_at < now() - make_interval(secs => $1)
              ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED),
         u AS (
             UPDATE messages m SET status = 'sent', sent_at = COALESCE(m.sent_at, m.updated_at),
                 error_code = NULL, error_title = $3, updated_at = now()
             FROM stale WHERE m.id = stale.id AND m.status = 'accepted' RETURNING {event_columns}),
         {counters},
         {events}
         SELECT count(*), {created} FROM u",
        counters = usage::counters_cte("c", "u", &[(Counter::Sent, "count(*)")]),
        event_columns = hooks::MESSAGE_EVENT_COLUMNS,
        events = hooks::message_events_cte("h", "u", &[("message.sent", "true")]),
        created = hooks::created_counts_sql("h"),
    )
});

/// Messages retention never drops: not sent yet.
const UNSENT: [MessageStatus; 3] = [
    MessageStatus::Scheduled,
    MessageStatus::Queued,
    MessageStatus::Sending,
];

/// Creates today's and tomorrow's daily partitions and drops those older than `days` (only
/// two ahead: every by-id statement scans each partition, see migration 6); deletes
/// Idempotency-Key records past their 24 h.
pub async fn retention(db: &PgPool, days: u32) -> anyhow::Result<Vec<String>> {
    sqlx::query("SELECT ezp_ensure_message_partitions((now() AT TIME ZONE 'UTC')::date, 2)")
        .execute(db)
        .await
        .context("creating message partitions")?;
    let parts: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         JOIN pg_class p ON p.oid = i.inhparent
         WHERE p.relname = 'messages' AND c.relname ~ '^messages_[0-9]{8}$'
           AND to_date(substr(c.relname, 10), 'YYYYMMDD') < (now() AT TIME ZONE 'UTC')::date - $1::int
         ORDER BY 1",
    )
    .bind(days as i32)
    .fetch_all(db)
    .await?;
    // Idempotency-Key records past 24 h, in bounded batches (at most a million an hour).
    for _ in 0..100 {
        let expired = ezpulze_common::idempotency::delete_expired(db, BATCH)
            .await
            .context("deleting expired idempotency records")?;
        metrics::counter!("ezpulze_scheduler_idempotency_expired_total").increment(expired);
        if expired < BATCH as u64 {
            break;
        }
    }
    // Integrator event deliveries past the retention, in bounded batches (ids are UUIDv7, so
    // an endpoint's oldest are a range of the primary key).
    for _ in 0..100 {
        let gone = sqlx::query(
            "DELETE FROM webhook_deliveries w USING (
                 SELECT d.endpoint_id, d.id FROM webhook_endpoints e
                  CROSS JOIN LATERAL (
                        SELECT endpoint_id, id FROM webhook_deliveries
                         WHERE endpoint_id = e.id AND id < ezp_uuid7_floor(now() - make_interval(days => $1))
                         ORDER BY id LIMIT $2) d
                  LIMIT $2) old
              WHERE w.endpoint_id = old.endpoint_id AND w.id = old.id",
        )
        .bind(days as i32)
        .bind(BATCH)
        .execute(db)
        .await
        .context("deleting old webhook deliveries")?
        .rows_affected();
        metrics::counter!("ezpulze_scheduler_webhook_deliveries_expired_total").increment(gone);
        if gone < BATCH as u64 {
            break;
        }
    }
    let mut dropped = Vec::with_capacity(parts.len());
    for p in parts {
        // The name comes from the catalog and matches ^messages_[0-9]{8}$. A partition that
        // still holds a message not sent yet (one scheduled further ahead than the retention)
        // is kept until it holds none.
        let unsent: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM \"{p}\" WHERE status IN ({}))",
            MessageStatus::sql_list(&UNSENT)
        ))
        .fetch_one(db)
        .await?;
        if unsent {
            metrics::counter!("ezpulze_scheduler_partitions_kept_total").increment(1);
            tracing::warn!(partition = %p, "partition past retention kept: it holds unsent messages");
            continue;
        }
        sqlx::query(&format!("DROP TABLE IF EXISTS \"{p}\""))
            .execute(db)
            .await?;
        metrics::counter!("ezpulze_scheduler_partitions_dropped_total").increment(1);
        dropped.push(p);
    }
    Ok(dropped)
}
