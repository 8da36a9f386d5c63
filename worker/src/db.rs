//! The worker's SQL: one statement per batch for each kind of write (UNNEST arrays), never a
//! statement per message, and never a transaction held across an HTTP call.
//!
//! **Lock order**: every statement that changes several message rows first locks them in id
//! order ([`locked`]: a materialized `SELECT ... ORDER BY id FOR UPDATE`), then updates only
//! rows it locked. The status reducer locks its rows in id order too
//! (`status::reduce`), as do the scheduler's sweeps, so two of them never wait for each
//! other in a cycle (`deadlock detected`), whatever order a batch's answers came in.

use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context;
use ezpulze_common::hooks;
use sqlx::PgPool;
use uuid::Uuid;

/// A message row claimed for sending.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub dispatch_id: Uuid,
    pub account_id: Uuid,
    pub to_phone: String,
    /// The exact Graph API body (JSON text).
    pub payload: String,
    /// Attempts including this one.
    pub attempts: i32,
    pub phone_number_id: Option<String>,
    pub test_mode: bool,
    /// The account's portfolio messaging tier (`accounts.messaging_tier`; None: not known,
    /// not enforced), read with the claim so a change applies to the next batch.
    pub messaging_tier: Option<String>,
}

const RETURNING: &str = "RETURNING m.id, m.dispatch_id, m.account_id, m.to_phone,
                         m.payload, m.attempts, d.phone_number_id, d.test_mode,
                         (SELECT a.messaging_tier FROM accounts a WHERE a.id = m.account_id)
                             AS messaging_tier";

/// The CTE `locked`: the ids of `messages m` rows matching `filter` (which may join
/// `dispatches d`, see `from`), locked `FOR UPDATE` in id order before the statement changes
/// any of them. Materialized, so the lock order is the sort's, whatever plan the update gets.
fn locked(from: &str, filter: &str) -> String {
    format!(
        "locked AS MATERIALIZED (
             SELECT m.id FROM {from} WHERE {filter} ORDER BY m.id FOR UPDATE OF m)"
    )
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Claims `queued|deferred -> sending` the rows of `ids` that are due and whose dispatch is
/// still going out, and flips those dispatches `queued -> sending`. A deferred row's reason is
/// cleared (its budget is checked again in the plan). One statement.
pub async fn claim(db: &PgPool, ids: &[Uuid]) -> anyhow::Result<Vec<Claimed>> {
    let claimable = "m.id = ANY($1) AND m.status IN ('queued', 'deferred')
                AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= now() + interval '2 seconds')
                AND d.id = m.dispatch_id AND d.status IN ('queued', 'sending')";
    let sql = format!(
        "WITH {locked}, c AS (
             UPDATE messages m
                SET status = 'sending', claimed_at = now(), attempts = m.attempts + 1,
                    deferred_reason = NULL, updated_at = now()
               FROM locked l, dispatches d
              WHERE m.id = l.id AND {claimable}
             {RETURNING}
         ), flip AS (
             UPDATE dispatches SET status = 'sending', updated_at = now()
              WHERE id IN (SELECT DISTINCT dispatch_id FROM c) AND status = 'queued'
         )
         SELECT * FROM c",
        locked = locked(
            "messages m JOIN dispatches d ON d.id = m.dispatch_id",
            claimable
        ),
    );
    sqlx::query_as(&sql)
        .bind(ids)
        .fetch_all(db)
        .await
        .context("claiming messages")
}

/// A row still `sending` that a job pointed at.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InFlight {
    pub id: Uuid,
    /// Its claim is older than the lease: the worker that claimed it is gone.
    pub stale: bool,
    /// Time left until it would be stale.
    pub remaining_ms: i64,
}

/// Which of `ids` are `sending`, and whether their claim outlived the lease.
pub async fn in_flight(
    db: &PgPool,
    ids: &[Uuid],
    lease: Duration,
) -> anyhow::Result<Vec<InFlight>> {
    sqlx::query_as(
        "SELECT id,
                (claimed_at IS NULL OR claimed_at < now() - $2 * interval '1 millisecond') AS stale,
                GREATEST(0, (EXTRACT(EPOCH FROM (claimed_at - now())) * 1000)::bigint + $2)::bigint
                    AS remaining_ms
           FROM messages WHERE id = ANY($1) AND status = 'sending'",
    )
    .bind(ids)
    .bind(ms(lease))
    .fetch_all(db)
    .await
    .context("reading in-flight messages")
}

/// Claims again rows whose claim outlived the lease (policy `resend`, or rows whose send
/// never started). `new_attempt`: whether this counts as another attempt. One statement.
pub async fn reclaim_stale(
    db: &PgPool,
    ids: &[Uuid],
    lease: Duration,
    new_attempt: bool,
) -> anyhow::Result<Vec<Claimed>> {
    let stale = "m.id = ANY($1) AND m.status = 'sending'
            AND (m.claimed_at IS NULL OR m.claimed_at < now() - $2 * interval '1 millisecond')
            AND d.id = m.dispatch_id AND d.status IN ('queued', 'sending')";
    let sql = format!(
        "WITH {locked}
         UPDATE messages m
            SET claimed_at = now(), attempts = m.attempts + $3::int, updated_at = now()
           FROM locked l, dispatches d
          WHERE m.id = l.id AND {stale}
         {RETURNING}",
        locked = locked(
            "messages m JOIN dispatches d ON d.id = m.dispatch_id",
            stale
        ),
    );
    sqlx::query_as(&sql)
        .bind(ids)
        .bind(ms(lease))
        .bind(i32::from(new_attempt))
        .fetch_all(db)
        .await
        .context("reclaiming stale messages")
}

static RELEASE_STALE_SQL: LazyLock<String> = LazyLock::new(|| {
    let stale = "m.id = ANY($1) AND m.status = 'sending'
            AND (m.claimed_at IS NULL OR m.claimed_at < now() - $2 * interval '1 millisecond')";
    format!(
        "WITH {locked}
         UPDATE messages m
            SET status = 'queued', attempts = GREATEST(0, m.attempts - 1), claimed_at = NULL,
                updated_at = now()
           FROM locked l
          WHERE m.id = l.id AND {stale}",
        locked = locked("messages m", stale),
    )
});

/// Puts back to `queued` rows whose claim outlived the lease and whose request never
/// started, when their dispatch is not going out now (paused or cancelled). One statement.
pub async fn release_stale(db: &PgPool, ids: &[Uuid], lease: Duration) -> anyhow::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let r = sqlx::query(&RELEASE_STALE_SQL)
        .bind(ids)
        .bind(ms(lease))
        .execute(db)
        .await
        .context("releasing stale messages")?;
    Ok(r.rows_affected())
}

static RECORD_ACCEPTED_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {locked}
         UPDATE messages m
            SET wamid = COALESCE(m.wamid, u.wamid),
                status = CASE WHEN m.status = 'sending' THEN 'accepted' ELSE m.status END,
                error_code = CASE WHEN m.status = 'sending' THEN NULL ELSE m.error_code END,
                error_title = CASE WHEN m.status = 'sending' THEN NULL ELSE m.error_title END,
                next_attempt_at = NULL, updated_at = now()
           FROM locked l JOIN UNNEST($1::uuid[], $2::text[]) AS u(id, wamid) ON u.id = l.id
          WHERE m.id = l.id",
        locked = locked("messages m", "m.id = ANY($1)"),
    )
});

/// Stores wamids; `sending -> accepted` only (a status webhook may already have moved the
/// row further, or failed it: never downgrade). One statement.
pub async fn record_accepted(db: &PgPool, ids: &[Uuid], wamids: &[String]) -> anyhow::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let r = sqlx::query(&RECORD_ACCEPTED_SQL)
        .bind(ids)
        .bind(wamids)
        .execute(db)
        .await
        .context("recording accepted messages")?;
    Ok(r.rows_affected())
}

/// Rows going back to `queued` (retries, throttle waits, halts, jobs handed back).
#[derive(Debug, Default)]
pub struct Requeue {
    pub ids: Vec<Uuid>,
    pub delay_ms: Vec<i64>,
    pub codes: Vec<Option<i32>>,
    pub titles: Vec<Option<String>>,
    /// The attempt did not happen (throttle wait, halt, shutdown): take it back.
    pub undo: Vec<bool>,
}

impl Requeue {
    pub fn push(
        &mut self,
        id: Uuid,
        delay: Duration,
        code: Option<i32>,
        title: Option<String>,
        undo: bool,
    ) {
        self.ids.push(id);
        self.delay_ms.push(ms(delay));
        self.codes.push(code);
        self.titles.push(title);
        self.undo.push(undo);
    }
}

static REQUEUE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {locked}
         UPDATE messages m
            SET status = 'queued',
                next_attempt_at = now() + u.delay_ms * interval '1 millisecond',
                attempts = GREATEST(0, m.attempts - CASE WHEN u.undo THEN 1 ELSE 0 END),
                error_code = COALESCE(u.code, m.error_code),
                error_title = COALESCE(u.title, m.error_title),
                claimed_at = NULL, updated_at = now()
           FROM locked l
                JOIN UNNEST($1::uuid[], $2::bigint[], $3::int[], $4::text[], $5::bool[])
                     AS u(id, delay_ms, code, title, undo) ON u.id = l.id
          WHERE m.id = l.id AND m.status = 'sending'",
        locked = locked("messages m", "m.id = ANY($1) AND m.status = 'sending'"),
    )
});

/// `sending -> queued` with `next_attempt_at`, the last error kept for people. One statement.
pub async fn requeue(db: &PgPool, r: &Requeue) -> anyhow::Result<u64> {
    if r.ids.is_empty() {
        return Ok(0);
    }
    let res = sqlx::query(&REQUEUE_SQL)
        .bind(&r.ids)
        .bind(&r.delay_ms)
        .bind(&r.codes)
        .bind(&r.titles)
        .bind(&r.undo)
        .execute(db)
        .await
        .context("re-queueing messages")?;
    Ok(res.rows_affected())
}

/// Rows held back by a budget (`sending -> deferred`): not an attempt (taken back), due again
/// after their delay, with the reason.
#[derive(Debug, Default, PartialEq)]
pub struct Deferrals {
    pub ids: Vec<Uuid>,
    pub delay_ms: Vec<i64>,
    pub reasons: Vec<String>,
}

impl Deferrals {
    pub fn push(&mut self, id: Uuid, delay: Duration, reason: &str) {
        self.ids.push(id);
        self.delay_ms.push(ms(delay));
        self.reasons.push(reason.to_owned());
    }
}

static DEFER_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {locked}
         UPDATE messages m
            SET status = 'deferred',
                next_attempt_at = now() + u.delay_ms * interval '1 millisecond',
                attempts = GREATEST(0, m.attempts - 1),
                deferred_reason = u.reason, claimed_at = NULL, updated_at = now()
           FROM locked l
                JOIN UNNEST($1::uuid[], $2::bigint[], $3::text[]) AS u(id, delay_ms, reason)
                     ON u.id = l.id
          WHERE m.id = l.id AND m.status = 'sending'",
        locked = locked("messages m", "m.id = ANY($1) AND m.status = 'sending'"),
    )
});

/// `sending -> deferred` with `next_attempt_at` and the reason, the attempt taken back. One
/// statement.
pub async fn defer(db: &PgPool, d: &Deferrals) -> anyhow::Result<u64> {
    if d.ids.is_empty() {
        return Ok(0);
    }
    let res = sqlx::query(&DEFER_SQL)
        .bind(&d.ids)
        .bind(&d.delay_ms)
        .bind(&d.reasons)
        .execute(db)
        .await
        .context("deferring messages")?;
    Ok(res.rows_affected())
}

/// Final failures.
#[derive(Debug, Default)]
pub struct Failures {
    pub ids: Vec<Uuid>,
    pub codes: Vec<Option<i32>>,
    pub titles: Vec<String>,
}

impl Failures {
    pub fn push(&mut self, id: Uuid, code: Option<i32>, title: String) {
        self.ids.push(id);
        self.codes.push(code);
        self.titles.push(title);
    }
}

/// The statement of [`record_failed`].
static RECORD_FAILED_SQL: LazyLock<String> = LazyLock::new(|| {
    let failing = "m.id = ANY($1) AND m.status = 'sending'
                AND ($4::bigint IS NULL OR m.claimed_at IS NULL
                     OR m.claimed_at < now() - $4 * interval '1 millisecond')";
    format!(
        "WITH {locked}, f AS (
             UPDATE messages m
                SET status = 'failed', error_code = u.code, error_title = u.title,
                    failed_at = now(), next_attempt_at = NULL, updated_at = now()
               FROM locked l JOIN UNNEST($1::uuid[], $2::int[], $3::text[]) AS u(id, code, title)
                    ON u.id = l.id
              WHERE m.id = l.id AND {failing}
             RETURNING {event_columns}
         ),
         {counters},
         {events},
         {stopped}
         SELECT count(*), {created}, (SELECT count(*) FROM sup) FROM f",
        locked = locked("messages m", failing),
        stopped = ezpulze_common::consent::stopped_marketing_cte("sup", "f", "true"),
        counters = ezpulze_common::usage::counters_cte(
            "usage",
            "f",
            &[(ezpulze_common::usage::Counter::Failed, "count(*)")]
        ),
        event_columns = hooks::MESSAGE_EVENT_COLUMNS,
        events = hooks::message_events_cte("h", "f", &[("message.failed", "true")]),
        created = hooks::created_counts_sql("h"),
    )
});

/// `sending -> failed` with code, title and `failed_at`, and each key's `failed` counter in
/// the same statement (only rows with a key count); a failure with 131050 (the user stopped
/// marketing messages) adds a `marketing` suppression of the phone in that statement too
/// (`docs/consent.md`). With `stale_after`, only rows whose
/// claim is older than that (unknown outcomes of dead workers). Returns rows failed.
pub async fn record_failed(
    db: &PgPool,
    f: &Failures,
    stale_after: Option<Duration>,
) -> anyhow::Result<u64> {
    if f.ids.is_empty() {
        return Ok(0);
    }
    let (n, created, stopped): (i64, Option<Vec<i32>>, i64) = sqlx::query_as(&RECORD_FAILED_SQL)
        .bind(&f.ids)
        .bind(&f.codes)
        .bind(&f.titles)
        .bind(stale_after.map(ms))
        .fetch_one(db)
        .await
        .context("recording failed messages")?;
    hooks::record_created(&created.unwrap_or_default());
    crate::status::record_stopped_marketing(stopped);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Pauses the dispatches that are still going out, for a number, an account or one dispatch,
/// with `reason` as their `pause_reason` (None: a halt an operator resumes by hand; a template
/// paused at Meta, `132015`, gives `template_paused`, so the template's approval resumes it:
/// `ezpulze_common::template_status`). Returns how many were paused.
pub async fn pause(
    db: &PgPool,
    scope: &str,
    number: &str,
    account: Uuid,
    dispatch: Uuid,
    reason: Option<&str>,
) -> anyhow::Result<u64> {
    let (n, created): (i64, Option<Vec<i32>>) = sqlx::query_as(&PAUSE_SQL)
        .bind(scope)
        .bind(number)
        .bind(account)
        .bind(dispatch)
        .bind(reason)
        .fetch_one(db)
        .await
        .context("pausing dispatches")?;
    hooks::record_created(&created.unwrap_or_default());
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The statement of [`pause`], with a `dispatch.paused` event per paused dispatch.
static PAUSE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH p AS (
             UPDATE dispatches SET status = 'paused', pause_reason = $5, updated_at = now()
              WHERE status IN ('queued', 'sending')
                AND CASE $1 WHEN 'number' THEN phone_number_id = $2 AND account_id = $3
                            WHEN 'account' THEN account_id = $3
                            ELSE id = $4 END
             RETURNING {columns}),
         {events}
         SELECT count(*), {created} FROM p",
        columns = hooks::DISPATCH_EVENT_COLUMNS,
        events = hooks::dispatch_events_cte("h", "p", "dispatch.paused"),
        created = hooks::created_counts_sql("h"),
    )
});
