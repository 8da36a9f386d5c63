//! Applying folded events to messages and key counters: ONE statement per batch (monotone
//! states, first timestamps, counters for real transitions only), and the parking of events
//! for messages not (yet) known in `pending_statuses`.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use ezpulze_common::model::unknown_outcome;
use ezpulze_common::usage::{self, Counter};
use ezpulze_common::{consent, hooks};
use sqlx::PgPool;
use uuid::Uuid;

use super::fold::{key_of, Folded};

/// Events for unknown messages are retried this long, then dropped and counted.
pub const PENDING_TTL: Duration = Duration::from_secs(3600);

/// The batch statement: events -> target rows (by id, else wamid; only rows of the event's
/// verified account, sent from its number) -> locked rows in id order
/// -> monotone update -> each key's counters moved by the flags' difference, and a
/// `marketing` suppression for each message that newly failed with 131050.
static APPLY_SQL: LazyLock<String> = LazyLock::new(|| {
    let counters = usage::counters_cte(
        "c",
        "u",
        &[
            (Counter::Sent, "sum(has_sent::int - had_sent::int)"),
            (
                Counter::Delivered,
                "sum(has_delivered::int - had_delivered::int)",
            ),
            (Counter::Read, "sum(has_read::int - had_read::int)"),
            (Counter::Failed, "sum(has_failed::int - had_failed::int)"),
        ],
    );
    format!(
        "WITH ev AS (
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[],
                                  $5::timestamptz[], $6::timestamptz[], $7::int[], $8::text[],
                                  $9::uuid[], $10::text[])
                 AS e(mid, wamid, s_ts, d_ts, r_ts, f_ts, ecode, etitle, acct, pnid)),
         t AS (
             SELECT tid, acct, pnid, min(s_ts) AS s_ts, min(d_ts) AS d_ts, min(r_ts) AS r_ts,
                    min(f_ts) AS f_ts, max(ecode) AS ecode, max(etitle) AS etitle, max(wamid) AS wamid
             FROM (SELECT e.mid AS tid, e.* FROM ev e WHERE e.mid IS NOT NULL
                   UNION ALL
                   SELECT m.id AS tid, e.* FROM ev e JOIN messages m ON e.mid IS NULL AND m.wamid = e.wamid
                       AND (e.acct IS NULL OR m.account_id = e.acct)) x
             GROUP BY tid, acct, pnid
             ORDER BY tid),
         o AS (
             SELECT m.id, m.key_id,
                    (m.sent_at IS NOT NULL OR m.delivered_at IS NOT NULL OR m.read_at IS NOT NULL) AS had_sent,
                    (m.delivered_at IS NOT NULL OR m.read_at IS NOT NULL) AS had_delivered,
                    (m.read_at IS NOT NULL) AS had_read,
                    (m.status = 'failed') AS had_failed,
                    {was_unknown} AS was_unknown,
                    CASE WHEN m.status = 'read' THEN 4 WHEN m.status = 'delivered' THEN 3
                         WHEN {was_unknown} THEN 0 WHEN m.status = 'failed' THEN 2
                         WHEN m.status = 'sent' THEN 1 ELSE 0 END AS old_rank,
                    CASE WHEN t.r_ts IS NOT NULL THEN 4 WHEN t.d_ts IS NOT NULL THEN 3
                         WHEN t.f_ts IS NOT NULL THEN 2 WHEN t.s_ts IS NOT NULL THEN 1 ELSE 0 END AS ev_rank,
                    t.s_ts, t.d_ts, t.r_ts, t.f_ts, t.ecode, t.etitle, t.wamid AS ev_wamid
             FROM t CROSS JOIN LATERAL (
                 SELECT * FROM messages m WHERE m.id = t.tid
                     AND (t.acct IS NULL OR m.account_id = t.acct)
                     AND (t.pnid IS NULL OR EXISTS (
                         SELECT 1 FROM dispatches d WHERE d.id = m.dispatch_id AND d.phone_number_id = t.pnid))
                 FOR UPDATE) m),
         u AS (
             UPDATE messages m SET
                 status = CASE WHEN o.ev_rank > o.old_rank
                               THEN (ARRAY['sent','failed','delivered','read'])[o.ev_rank] ELSE m.status END,
                 sent_at = COALESCE(m.sent_at, o.s_ts),
                 delivered_at = COALESCE(m.delivered_at, o.d_ts),
                 read_at = COALESCE(m.read_at, o.r_ts),
                 failed_at = CASE WHEN o.was_unknown THEN o.f_ts ELSE COALESCE(m.failed_at, o.f_ts) END,
                 error_code = CASE WHEN o.was_unknown THEN o.ecode ELSE COALESCE(o.ecode, m.error_code) END,
                 error_title = CASE WHEN o.was_unknown THEN o.etitle ELSE COALESCE(o.etitle, m.error_title) END,
                 wamid = COALESCE(m.wamid, o.ev_wamid),
                 updated_at = now()
             FROM o WHERE m.id = o.id
             RETURNING {event_columns}, o.had_sent, o.had_delivered, o.had_read, o.had_failed,
                 (m.sent_at IS NOT NULL OR m.delivered_at IS NOT NULL OR m.read_at IS NOT NULL) AS has_sent,
                 (m.delivered_at IS NOT NULL OR m.read_at IS NOT NULL) AS has_delivered,
                 (m.read_at IS NOT NULL) AS has_read,
                 (m.status = 'failed') AS has_failed),
         {counters},
         {events},
         {stopped}
         SELECT id, wamid, {created} AS created, (SELECT count(*) FROM sup) AS stopped FROM u",
        was_unknown = UNKNOWN_SQL.as_str(),
        event_columns = hooks::MESSAGE_EVENT_COLUMNS,
        events = hooks::message_events_cte(
            "h",
            "u",
            &[
                ("message.sent", "s.has_sent AND NOT s.had_sent"),
                ("message.delivered", "s.has_delivered AND NOT s.had_delivered"),
                ("message.read", "s.has_read AND NOT s.had_read"),
                ("message.failed", "s.has_failed AND NOT s.had_failed"),
            ],
        ),
        created = hooks::created_counts_sql("h"),
        stopped = consent::stopped_marketing_cte("sup", "u", "s.has_failed AND NOT s.had_failed"),
    )
});

/// A message failed only because its outcome was unknown (a worker died mid-send, a send
/// timed out, attempts used up): no WhatsApp error, our "outcome unknown" title. Any status
/// WhatsApp reports for it is evidence of what really happened, so it ranks below every event:
/// `sent`, `delivered` or `read` upgrade it (the key's `failed` counter gives it back), and
/// WhatsApp's own `failed` replaces our title with its error.
static UNKNOWN_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "(m.status = 'failed' AND m.error_code IS NULL AND m.error_title LIKE '{}%')",
        unknown_outcome::PREFIX
    )
});

/// Applies folded events in one statement; returns the events that matched no message.
pub async fn apply(db: &PgPool, events: &[Folded]) -> anyhow::Result<Vec<Folded>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Option<Uuid>> = events.iter().map(|e| e.message_id).collect();
    let wamids: Vec<Option<String>> = events.iter().map(|e| e.wamid.clone()).collect();
    let col = |f: fn(&Folded) -> Option<DateTime<Utc>>| events.iter().map(f).collect::<Vec<_>>();
    let text = |f: fn(&Folded) -> &Option<String>| {
        events.iter().map(|e| f(e).as_deref()).collect::<Vec<_>>()
    };
    let matched: Vec<(Uuid, Option<String>, Vec<i32>, i64)> = sqlx::query_as(&APPLY_SQL)
        .bind(&ids)
        .bind(&wamids)
        .bind(col(|e| e.sent))
        .bind(col(|e| e.delivered))
        .bind(col(|e| e.read))
        .bind(col(|e| e.failed))
        .bind(events.iter().map(|e| e.error_code).collect::<Vec<_>>())
        .bind(text(|e| &e.error_title))
        .bind(events.iter().map(|e| e.account_id).collect::<Vec<_>>())
        .bind(text(|e| &e.phone_number_id))
        .fetch_all(db)
        .await
        .context("applying status events")?;
    if let Some((_, _, created, stopped)) = matched.first() {
        hooks::record_created(created);
        super::consent::record_stopped_marketing(*stopped);
    }
    let hit_ids: std::collections::HashSet<Uuid> = matched.iter().map(|m| m.0).collect();
    let hit_wamids: std::collections::HashSet<&str> =
        matched.iter().filter_map(|m| m.1.as_deref()).collect();
    let unmatched: Vec<Folded> = events
        .iter()
        .filter(|e| match e.message_id {
            Some(id) => !hit_ids.contains(&id),
            None => !e.wamid.as_deref().is_some_and(|w| hit_wamids.contains(w)),
        })
        .cloned()
        .collect();
    metrics::counter!("ezpulze_status_applied_total").increment(matched.len() as u64);
    without_foreign(db, unmatched).await
}

/// Drops (and counts as rejected) the scoped events that matched nothing because the message
/// they name belongs to another account or number: they are not waiting for a message to
/// appear, so they are not parked.
async fn without_foreign(db: &PgPool, unmatched: Vec<Folded>) -> anyhow::Result<Vec<Folded>> {
    let scoped: Vec<usize> = (0..unmatched.len())
        .filter(|&i| unmatched[i].account_id.is_some())
        .collect();
    if scoped.is_empty() {
        return Ok(unmatched);
    }
    let idx: Vec<i32> = scoped
        .iter()
        .map(|&i| i32::try_from(i).unwrap_or(i32::MAX))
        .collect();
    let mids: Vec<Option<Uuid>> = scoped.iter().map(|&i| unmatched[i].message_id).collect();
    let wamids: Vec<Option<String>> = scoped.iter().map(|&i| unmatched[i].wamid.clone()).collect();
    let foreign: Vec<i32> = sqlx::query_scalar(
        "SELECT e.i FROM UNNEST($1::int[], $2::uuid[], $3::text[]) AS e(i, mid, wamid)
         WHERE EXISTS (SELECT 1 FROM messages m WHERE m.id = e.mid)
            OR (e.mid IS NULL AND EXISTS (SELECT 1 FROM messages m WHERE m.wamid = e.wamid))",
    )
    .bind(&idx)
    .bind(&mids)
    .bind(&wamids)
    .fetch_all(db)
    .await
    .context("checking unmatched status events")?;
    if foreign.is_empty() {
        return Ok(unmatched);
    }
    let foreign: std::collections::HashSet<usize> = foreign
        .into_iter()
        .filter_map(|i| usize::try_from(i).ok())
        .collect();
    for _ in &foreign {
        super::fold::rejected("other_account");
    }
    Ok(unmatched
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !foreign.contains(i))
        .map(|(_, e)| e)
        .collect())
}

/// Parked events one account may hold: past it, its further unmatched events are dropped and
/// counted (`ezpulze_status_rejected_total{reason="pending_full"}`), so statuses naming
/// messages that never existed cannot fill Postgres on another tenant's behalf.
pub const MAX_PENDING_PER_ACCOUNT: i64 = 100_000;

/// The events of accounts that already hold [`MAX_PENDING_PER_ACCOUNT`] parked ones removed.
async fn within_pending_bound<'a>(
    db: &PgPool,
    events: &'a [Folded],
) -> anyhow::Result<Vec<&'a Folded>> {
    let mut accounts: Vec<Option<Uuid>> = events.iter().map(|e| e.account_id).collect();
    accounts.sort_unstable();
    accounts.dedup();
    // One statement for every account of the batch, each count stopping at the bound.
    let full: std::collections::HashSet<Option<Uuid>> = sqlx::query_scalar(
        "SELECT a FROM UNNEST($1::uuid[]) a
          WHERE (SELECT count(*) FROM (SELECT 1 FROM pending_statuses p
                  WHERE p.account_id IS NOT DISTINCT FROM a LIMIT $2) held) >= $2",
    )
    .bind(&accounts)
    .bind(MAX_PENDING_PER_ACCOUNT)
    .fetch_all(db)
    .await
    .context("counting the accounts' parked status events")?
    .into_iter()
    .collect();
    Ok(events
        .iter()
        .filter(|e| {
            let keep = !full.contains(&e.account_id);
            if !keep {
                super::fold::rejected("pending_full");
            }
            keep
        })
        .collect())
}

/// Keeps events that matched nothing, to be retried (within each account's bound).
pub(super) async fn park(db: &PgPool, events: &[Folded]) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let events = within_pending_bound(db, events).await?;
    if events.is_empty() {
        return Ok(());
    }
    metrics::counter!("ezpulze_status_unmatched_total").increment(events.len() as u64);
    // One row per status of each event (so the retry re-folds them exactly).
    let mut accounts = Vec::new();
    let mut numbers = Vec::new();
    let mut ids = Vec::new();
    let mut wamids = Vec::new();
    let mut statuses = Vec::new();
    let mut ats = Vec::new();
    let mut codes = Vec::new();
    let mut titles = Vec::new();
    for e in events {
        for (status, at) in [
            ("sent", e.sent),
            ("delivered", e.delivered),
            ("read", e.read),
            ("failed", e.failed),
        ] {
            if let Some(at) = at {
                accounts.push(e.account_id);
                numbers.push(e.phone_number_id.clone());
                ids.push(e.message_id);
                wamids.push(e.wamid.clone());
                statuses.push(status);
                ats.push(at);
                codes.push(if status == "failed" {
                    e.error_code
                } else {
                    None
                });
                titles.push(if status == "failed" {
                    e.error_title.clone()
                } else {
                    None
                });
            }
        }
    }
    sqlx::query(
        "INSERT INTO pending_statuses (message_id, wamid, status, event_at, error_code, error_title,
                                       account_id, phone_number_id)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::int[], $6::text[],
                              $7::uuid[], $8::text[])",
    )
    .bind(&ids)
    .bind(&wamids)
    .bind(&statuses)
    .bind(&ats)
    .bind(&codes)
    .bind(&titles)
    .bind(&accounts)
    .bind(&numbers)
    .execute(db)
    .await
    .context("parking unmatched status events")?;
    Ok(())
}

/// Retries parked events; drops (and counts) those older than the TTL.
pub async fn retry_parked(db: &PgPool) -> anyhow::Result<usize> {
    #[derive(sqlx::FromRow)]
    struct Parked {
        id: i64,
        message_id: Option<Uuid>,
        wamid: Option<String>,
        status: String,
        event_at: DateTime<Utc>,
        error_code: Option<i32>,
        error_title: Option<String>,
        account_id: Option<Uuid>,
        phone_number_id: Option<String>,
    }
    let mut tx = db.begin().await?;
    let rows: Vec<Parked> = sqlx::query_as(
        "SELECT id, message_id, wamid, status, event_at, error_code, error_title, account_id,
                phone_number_id FROM pending_statuses
         ORDER BY id LIMIT 5000 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut by_key: HashMap<String, Folded> = HashMap::new();
    let key = |r: &Parked| {
        key_of(
            r.account_id,
            r.phone_number_id.as_deref(),
            r.message_id,
            r.wamid.as_deref(),
        )
    };
    for r in &rows {
        by_key
            .entry(key(r))
            .or_insert_with(|| Folded {
                account_id: r.account_id,
                phone_number_id: r.phone_number_id.clone(),
                message_id: r.message_id,
                wamid: r.wamid.clone(),
                ..Folded::default()
            })
            .add(&r.status, r.event_at, r.error_code, r.error_title.clone());
    }
    let events: Vec<Folded> = by_key.into_values().collect();
    let unmatched = apply(db, &events).await?;
    let still: std::collections::HashSet<String> = unmatched.iter().map(Folded::key).collect();
    let done: Vec<i64> = rows
        .iter()
        .filter(|r| !still.contains(&key(r)))
        .map(|r| r.id)
        .collect();
    sqlx::query("DELETE FROM pending_statuses WHERE id = ANY($1)")
        .bind(&done)
        .execute(&mut *tx)
        .await?;
    let expired = sqlx::query(
        "DELETE FROM pending_statuses WHERE received_at < now() - make_interval(secs => $1)",
    )
    .bind(PENDING_TTL.as_secs_f64())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if expired > 0 {
        metrics::counter!("ezpulze_status_expired_total").increment(expired);
        tracing::warn!(expired, "status events for unknown messages expired");
    }
    tx.commit().await?;
    Ok(done.len())
}
