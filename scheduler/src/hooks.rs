//! The scheduler's part of integrator events: dispatches whose last message stopped waiting
//! are stored `completed` (each with its `dispatch.completed` event, in the same statement),
//! and the delivery backlog's gauges.

use std::sync::LazyLock;

use anyhow::Context;
use ezpulze_common::hooks;
use ezpulze_common::model::MessageStatus;
use sqlx::PgPool;

/// At most this many dispatches complete per tick.
const COMPLETE_BATCH: i64 = 1000;

static COMPLETE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH c AS (
             UPDATE dispatches d SET status = 'completed', updated_at = now()
              WHERE d.id IN (
                    SELECT x.id FROM dispatches x
                     WHERE x.status IN ('queued', 'sending')
                       AND NOT EXISTS (SELECT 1 FROM messages m
                                        WHERE m.dispatch_id = x.id AND m.status IN ({waiting}))
                       AND NOT EXISTS (SELECT 1 FROM dispatch_audiences a
                                        WHERE a.dispatch_id = x.id AND a.state = 'expanding')
                     ORDER BY x.id LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING {columns}),
         {events}
         SELECT count(*), {created} FROM c",
        waiting = MessageStatus::sql_list(&MessageStatus::WAITING),
        columns = hooks::DISPATCH_EVENT_COLUMNS,
        events = hooks::dispatch_events_cte("h", "c", "dispatch.completed"),
        created = hooks::created_counts_sql("h"),
    )
});

/// Stores `completed` on the active dispatches with no message waiting any more (what
/// `GET /dispatches/{id}` already showed) and creates their `dispatch.completed` events.
/// Returns how many completed.
pub async fn complete_dispatches(db: &PgPool) -> anyhow::Result<usize> {
    let (n, created): (i64, Option<Vec<i32>>) = sqlx::query_as(&COMPLETE_SQL)
        .bind(COMPLETE_BATCH)
        .fetch_one(db)
        .await
        .context("completing dispatches")?;
    hooks::record_created(&created.unwrap_or_default());
    metrics::counter!("ezpulze_scheduler_dispatches_completed_total")
        .increment(u64::try_from(n).unwrap_or(0));
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Sets `ezpulze_webhook_backlog{state, endpoint}` (deliveries pending or under way, by
/// whether their endpoint is active, inactive or disabled) and
/// `ezpulze_webhook_backlog_oldest_seconds` (how long the oldest due delivery of an active
/// endpoint has waited).
pub async fn backlog_gauges(db: &PgPool) -> anyhow::Result<()> {
    // Through the partial index of each state (pending per endpoint, delivering all at once):
    // the cost follows the backlog, not the table.
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "WITH e AS (
             SELECT id, CASE WHEN active THEN 'active' WHEN disabled_at IS NOT NULL THEN 'disabled'
                             ELSE 'inactive' END AS kind
               FROM webhook_endpoints)
         SELECT 'pending', e.kind, sum((SELECT count(*) FROM webhook_deliveries w
                                         WHERE w.endpoint_id = e.id AND w.state = 'pending'))::bigint
           FROM e GROUP BY 2
         UNION ALL
         SELECT 'delivering', e.kind, count(*)
           FROM webhook_deliveries w JOIN e ON e.id = w.endpoint_id
          WHERE w.state = 'delivering'
          GROUP BY 2",
    )
    .fetch_all(db)
    .await
    .context("counting the webhook backlog")?;
    for state in ["pending", "delivering"] {
        for endpoint in ["active", "inactive", "disabled"] {
            let n = rows
                .iter()
                .find(|r| r.0 == state && r.1 == endpoint)
                .map_or(0, |r| r.2);
            metrics::gauge!("ezpulze_webhook_backlog", "state" => state, "endpoint" => endpoint)
                .set(n as f64);
        }
    }
    let oldest: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM now() - min(w.next_attempt_at))::float8
           FROM webhook_endpoints e
           CROSS JOIN LATERAL (SELECT next_attempt_at FROM webhook_deliveries
                                WHERE endpoint_id = e.id AND state = 'pending'
                                ORDER BY next_attempt_at LIMIT 1) w
          WHERE e.active AND w.next_attempt_at <= now()",
    )
    .fetch_one(db)
    .await
    .context("finding the oldest due webhook delivery")?;
    metrics::gauge!("ezpulze_webhook_backlog_oldest_seconds").set(oldest.unwrap_or(0.0));
    Ok(())
}
