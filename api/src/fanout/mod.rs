//! Audience sends' fan-out, run in the background by every api process.
//!
//! `POST /broadcasts/{id}/send` with an `audience` commits the dispatch (no messages yet) and
//! its `dispatch_audiences` row, answers 202 (`expanding`), and wakes the expanders. Each
//! expander loops: claim an open slice whose lease has expired (`FOR UPDATE SKIP LOCKED`),
//! run ONE chunk of it, release it. The claim takes turns between accounts (the account whose
//! fan-outs advanced least recently first, then its least recently advanced slice), so a
//! tenant with many or huge audiences gets no more chunks than one with a single small one
//! while both wait; and any
//! api process continues a fan-out another one started: a process killed mid-expansion
//! leaves a lease that expires after `AUDIENCE_LEASE_SECS`.
//!
//! Its first step counts the audience, beside its first chunk, and splits a large one into
//! slices (contiguous id ranges, one row each, see `measure` and `store_split`), which
//! expanders fill in parallel.
//!
//! A chunk is one transaction: it locks its slice (checking the lease is still this
//! expander's) and share-locks the dispatch, reads the next `AUDIENCE_CHUNK` contacts of the audience after the cursor (keyset by
//! id, up to the request's `upper_id`, with each one's suppression), expands each (variables
//! from `variables_from`), inserts the messages, the rejections, the dispatch's total and the
//! key's usage, and moves the cursor. Only after the commit are the jobs pushed (the outbox
//! rule of `ezpulze_common::dispatch`). So a crash at any point resumes at the last committed
//! cursor: no contact twice, none skipped.
//!
//! A cancelled dispatch stops its fan-out at the next chunk; a paused one goes on expanding
//! (its messages wait, as queued ones of a paused dispatch do); a scheduled one inserts its
//! messages `scheduled` and pushes its release when the fan-out ends.

pub mod audience;
pub mod fill;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::Row;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use ezpulze_common::consent;
use ezpulze_common::dispatch::{self, NewMessages, NewRejections};
use ezpulze_common::model::{DispatchStatus, MessageStatus};
use ezpulze_common::usage;
use ezpulze_payload::PhoneE164;

use crate::routes::broadcasts;
use crate::state::AppState;
use audience::Audience;
use fill::{ContactView, Fill};

/// How often the first expander of an idle process looks for work nobody woke it for
/// (another process's, or a slice whose lease expired); it wakes the others when it finds
/// some. The others look only when woken (or this seldom), so an idle process costs the
/// database one small statement per `IDLE_POLL`.
const IDLE_POLL: Duration = Duration::from_secs(5);
const IDLE_POLL_OTHERS: Duration = Duration::from_secs(60);

/// Wakes this process's expanders (a new audience send).
#[derive(Default)]
pub struct Wake(Notify);

impl Wake {
    pub fn now(&self) {
        self.0.notify_waiters();
    }
}

/// Starts `AUDIENCE_EXPANDERS` expanders until `cancel`.
pub fn spawn(state: &AppState, cancel: &CancellationToken) {
    for i in 0..state.config().audience_expanders {
        let (state, cancel) = (state.clone(), cancel.clone());
        let idle = if i == 0 { IDLE_POLL } else { IDLE_POLL_OTHERS };
        tokio::spawn(async move { expander(state, cancel, idle).await });
    }
}

async fn expander(state: AppState, cancel: CancellationToken, idle: Duration) {
    let wake = state.fanout_wake();
    loop {
        let woken = wake.0.notified();
        if cancel.is_cancelled() {
            return;
        }
        match step(&state).await {
            Ok(true) => {
                // There is work: the idle siblings join in.
                wake.now();
                continue;
            }
            Ok(false) => {}
            Err(e) => {
                metrics::counter!("ezpulze_audience_chunk_failures_total").increment(1);
                tracing::warn!(error = format!("{e:#}"), "audience fan-out step failed");
            }
        }
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(idle) => {}
            () = cancel.cancelled() => return,
        }
    }
}

/// A claimed fan-out.
struct Claimed {
    dispatch_id: Uuid,
    slice: i16,
    account_id: Uuid,
    audience: Audience,
    fill: Option<Fill>,
    upper: Uuid,
    cursor: Option<Uuid>,
    audience_total: Option<i32>,
    passed: i32,
    token: Uuid,
}

/// Claims one fan-out and runs one chunk of it; `false` when there was none to claim.
async fn step(state: &AppState) -> anyhow::Result<bool> {
    let token = Uuid::now_v7();
    let row = sqlx::query(
        "UPDATE dispatch_audiences a
            SET lease_until = now() + make_interval(secs => $2), lease_token = $1
          WHERE (a.dispatch_id, a.slice) = (
                SELECT x.dispatch_id, x.slice FROM dispatch_audiences x
                  JOIN (SELECT dispatch_id, slice,
                               max(updated_at) OVER (PARTITION BY account_id) AS account_last
                          FROM dispatch_audiences WHERE state = 'expanding') t
                    USING (dispatch_id, slice)
                 WHERE x.state = 'expanding' AND x.lease_until <= now()
                 ORDER BY t.account_last, x.updated_at LIMIT 1 FOR UPDATE OF x SKIP LOCKED)
         RETURNING a.dispatch_id, a.slice, a.account_id, a.audience, a.variables_from,
                   a.upper_id, a.cursor_id, a.audience_total, a.passed",
    )
    .bind(token)
    .bind(state.config().audience_lease.as_secs_f64())
    .fetch_optional(state.db())
    .await
    .context("claiming an audience fan-out")?;
    let Some(row) = row else {
        return Ok(false);
    };
    let audience: Value = row.try_get("audience")?;
    let fill: Option<Value> = row.try_get("variables_from")?;
    let job = Claimed {
        dispatch_id: row.try_get("dispatch_id")?,
        slice: row.try_get("slice")?,
        account_id: row.try_get("account_id")?,
        audience: serde_json::from_value(audience).context("stored audience")?,
        fill: fill
            .map(|v| Fill::compile(&v).map_err(anyhow::Error::msg))
            .transpose()
            .context("stored variables_from")?,
        upper: row.try_get("upper_id")?,
        cursor: row.try_get("cursor_id")?,
        audience_total: row.try_get("audience_total")?,
        passed: row.try_get("passed")?,
        token,
    };
    let span = tracing::info_span!("fanout", dispatch_id = %job.dispatch_id, slice = job.slice);
    let started = Instant::now();
    let result = run_claimed(state, &job).instrument(span).await;
    metrics::histogram!("ezpulze_audience_chunk_seconds").record(started.elapsed().as_secs_f64());
    if result.is_err() {
        // Let another attempt (this or another process) take it after a short pause rather
        // than after the whole lease.
        sqlx::query(
            "UPDATE dispatch_audiences SET lease_until = now() + interval '1 second'
              WHERE dispatch_id = $1 AND slice = $2 AND lease_token = $3",
        )
        .bind(job.dispatch_id)
        .bind(job.slice)
        .bind(job.token)
        .execute(state.db())
        .await
        .ok();
    }
    result.map(|_| true)
}

/// The claimed slice's next step: one chunk; for a fan-out not yet split (slice 0, until its
/// split is stored) the split's counting pass runs beside that chunk, on another connection,
/// and is stored after it (see [`store_split`]).
async fn run_claimed(state: &AppState, job: &Claimed) -> anyhow::Result<()> {
    if job.audience_total.is_some() || job.slice != 0 {
        let done = chunk(state, job, Lease::Release).await?;
        slice_done(state, job, done).await;
        return Ok(());
    }
    let (measured, chunked) = tokio::join!(measure(state, job), chunk(state, job, Lease::Keep));
    let done = chunked?;
    if store_split(state, job, measured?, done.is_some()).await? {
        slice_done(state, job, done).await;
    }
    Ok(())
}

/// A slice whose last chunk found the end of its range.
struct Done {
    passed: usize,
    /// When a scheduled dispatch is released (pushed once the slice is done).
    release_at: Option<DateTime<Utc>>,
}

/// What follows a slice's end, once it is stored.
async fn slice_done(state: &AppState, job: &Claimed, done: Option<Done>) {
    let Some(done) = done else { return };
    tracing::info!(passed = done.passed, "audience slice done");
    if let Some(at) = done.release_at {
        dispatch::push_release(state, job.dispatch_id, at).await;
    }
    // The rest of this process's expanders may have work waiting behind this one.
    state.fanout_wake().now();
}

/// Whether a chunk gives its slice's lease back when it commits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lease {
    Release,
    /// The split is stored after the chunk, under the same lease (which it then releases),
    /// and with it the slice's end if the chunk found it: so a fan-out is never seen ended
    /// without its `audience_total`.
    Keep,
}

/// At most this many slices per audience, each at least this many chunks long.
const MAX_SLICES: i64 = 4;
const CHUNKS_PER_SLICE: i64 = 4;

/// The fractions 1/12 .. 11/12: every slice count up to [`MAX_SLICES`] divides 12.
const TWELFTHS: [f64; 11] = [
    1.0 / 12.0,
    2.0 / 12.0,
    3.0 / 12.0,
    4.0 / 12.0,
    5.0 / 12.0,
    6.0 / 12.0,
    7.0 / 12.0,
    8.0 / 12.0,
    9.0 / 12.0,
    10.0 / 12.0,
    11.0 / 12.0,
];

/// The inner bounds of `slices` equal slices from the ids at every twelfth (none for one
/// slice, or when the audience was empty).
fn slice_bounds(twelfths: &[Uuid], slices: i64) -> Vec<Uuid> {
    let step = usize::try_from(12 / slices.clamp(1, MAX_SLICES)).unwrap_or(12);
    (1..usize::try_from(slices).unwrap_or(1))
        .filter_map(|k| twelfths.get(k * step - 1).copied())
        .collect()
}

/// The split's counting pass: the audience's size and the inner bounds of its slices.
struct Split {
    total: i64,
    bounds: Vec<Uuid>,
}

/// Counts the audience and, when it is large, picks the bounds that split it into up to
/// [`MAX_SLICES`] contiguous id ranges of about the same size (ids at its twelfths), so
/// several expanders, in this process or others, fill it in parallel. One pass, outside any
/// transaction (it only reads).
async fn measure(state: &AppState, job: &Claimed) -> anyhow::Result<Split> {
    let chunk = state.config().audience_chunk;
    let mut q = sqlx::QueryBuilder::new("SELECT count(*), percentile_disc(");
    q.push_bind(TWELFTHS.to_vec())
        .push("::float8[]) WITHIN GROUP (ORDER BY c.id)");
    job.audience.push_from(&mut q, job.account_id, job.upper);
    let (total, twelfths): (i64, Option<Vec<Uuid>>) = q
        .build_query_as()
        .fetch_one(state.db())
        .await
        .context("counting and splitting the audience")?;
    let slices = (total / (chunk * CHUNKS_PER_SLICE)).clamp(1, MAX_SLICES);
    let mut bounds = slice_bounds(&twelfths.unwrap_or_default(), slices);
    bounds.dedup();
    Ok(Split { total, bounds })
}

/// Stores the split after the chunk that ran beside its count (one transaction, under the
/// lease, which it releases): the audience's size, slice 0's upper bound and a row per
/// further slice (slice k starts after bound k-1 and ends at bound k or the request's upper).
///
/// A slice is at least [`CHUNKS_PER_SLICE`] chunks long, so the chunk beside the count ends
/// before the first bound; bounds at or before slice 0's cursor are dropped all the same
/// (fewer slices), so no contact can be in two slices whatever ran before.
async fn store_split(
    state: &AppState,
    job: &Claimed,
    split: Split,
    done: bool,
) -> anyhow::Result<bool> {
    let mut tx = state.db().begin().await?;
    let row: Option<(String, Option<Uuid>)> = sqlx::query_as(
        "SELECT state, cursor_id FROM dispatch_audiences
          WHERE dispatch_id = $1 AND slice = 0 AND lease_token = $2 FOR UPDATE",
    )
    .bind(job.dispatch_id)
    .bind(job.token)
    .fetch_optional(&mut *tx)
    .await
    .context("locking the slice to store its split")?;
    // Another expander took the slice over (the chunk found its lease gone), or the chunk
    // stopped the fan-out: nothing to store.
    let Some((slice_state, cursor)) = row else {
        return Ok(false);
    };
    let mut bounds = split.bounds;
    if slice_state != "expanding" || done {
        bounds.clear();
    }
    bounds.retain(|b| cursor.is_none_or(|c| *b > c));
    let total = i32::try_from(split.total).unwrap_or(i32::MAX);
    sqlx::query(
        "UPDATE dispatch_audiences SET audience_total = $2, upper_id = COALESCE($3, upper_id),
                state = CASE WHEN $4 AND state = 'expanding' THEN 'done' ELSE state END,
                lease_until = now(), lease_token = NULL
          WHERE dispatch_id = $1 AND slice = 0",
    )
    .bind(job.dispatch_id)
    .bind(total)
    .bind(bounds.first())
    .bind(done)
    .execute(&mut *tx)
    .await
    .context("storing the audience's size")?;
    for (k, lower) in bounds.iter().enumerate() {
        let upper = bounds.get(k + 1).copied().unwrap_or(job.upper);
        sqlx::query(
            "INSERT INTO dispatch_audiences
                 (dispatch_id, slice, account_id, audience, variables_from, upper_id, cursor_id, audience_total)
             SELECT dispatch_id, $2, account_id, audience, variables_from, $3, $4, 0
               FROM dispatch_audiences WHERE dispatch_id = $1 AND slice = 0",
        )
        .bind(job.dispatch_id)
        .bind(i16::try_from(k + 1).unwrap_or(i16::MAX))
        .bind(upper)
        .bind(lower)
        .execute(&mut *tx)
        .await
        .context("adding a slice")?;
    }
    tx.commit().await?;
    if !bounds.is_empty() {
        state.fanout_wake().now();
    }
    Ok(done && slice_state == "expanding")
}

#[derive(sqlx::FromRow)]
struct ContactRow {
    id: Uuid,
    phone: String,
    name: Option<String>,
    email: Option<String>,
    attributes: sqlx::types::Json<Map<String, Value>>,
    suppressed: bool,
}

/// One chunk, committed with the cursor; then its jobs pushed.
/// `Some` when the chunk found the end of the slice's range (stored as `done` unless the
/// lease is kept, see [`Lease::Keep`]).
async fn chunk(state: &AppState, job: &Claimed, lease: Lease) -> anyhow::Result<Option<Done>> {
    let mut tx = state.db().begin().await?;
    // The slice's row, if the lease is still this expander's (else another took it over).
    let held = sqlx::query(
        "SELECT 1 FROM dispatch_audiences
          WHERE dispatch_id = $1 AND slice = $2 AND lease_token = $3 AND state = 'expanding'
          FOR UPDATE",
    )
    .bind(job.dispatch_id)
    .bind(job.slice)
    .bind(job.token)
    .fetch_optional(&mut *tx)
    .await
    .context("locking the slice")?;
    if held.is_none() {
        return Ok(None);
    }
    // KEY SHARE: the chunks of several slices run at once, and a cancel (FOR UPDATE) or a
    // release of a scheduled dispatch waits for the chunks under way (and they for it).
    let locked = sqlx::query(
        "SELECT d.status, d.broadcast_id, d.key_id, d.scheduled_at
           FROM dispatches d WHERE d.id = $1 FOR KEY SHARE",
    )
    .bind(job.dispatch_id)
    .fetch_one(&mut *tx)
    .await
    .context("locking the dispatch")?;
    let status: DispatchStatus = locked.try_get("status")?;
    let broadcast_id: Option<Uuid> = locked.try_get("broadcast_id")?;
    let key_id: Option<Uuid> = locked.try_get("key_id")?;
    let scheduled_at: Option<DateTime<Utc>> = locked.try_get("scheduled_at")?;
    let Some(broadcast_id) = broadcast_id.filter(|_| {
        !matches!(
            status,
            DispatchStatus::Cancelled | DispatchStatus::Completed
        )
    }) else {
        stop(
            &mut tx,
            job,
            "the dispatch is cancelled or its broadcast deleted",
        )
        .await?;
        tx.commit().await?;
        return Ok(None);
    };
    let b = match broadcasts::load(state, job.account_id, broadcast_id).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "the audience's broadcast cannot be loaded");
            stop(&mut tx, job, "the broadcast cannot be loaded").await?;
            tx.commit().await?;
            return Ok(None);
        }
    };
    let category = b.template.template().category.as_str();

    // The suppression check rides along (the primary key answers it per contact read).
    let mut q = sqlx::QueryBuilder::new(
        "SELECT c.id, c.phone, c.name, c.email, c.attributes,
                EXISTS (SELECT 1 FROM suppressions s
                         WHERE s.account_id = c.account_id AND s.phone = c.phone
                           AND (s.scope = 'all' OR ",
    );
    q.push_bind(consent::marketing(category))
        .push(")) AS suppressed");
    job.audience.push_from(&mut q, job.account_id, job.upper);
    if let Some(cursor) = job.cursor {
        q.push(" AND c.id > ").push_bind(cursor);
    }
    let chunk_size = state.config().audience_chunk;
    q.push(" ORDER BY c.id LIMIT ").push_bind(chunk_size);
    let t_read = Instant::now();
    if walks_in_order(job, chunk_size) {
        // A slice of more than one chunk: each chunk must continue the walk of the id index
        // where the last one stopped. Left to itself, the planner takes a bitmap of the whole
        // rest of the slice and sorts it for every chunk whenever its statistics do not yet
        // know the contacts (a fresh import), which reads a slice's contacts once per chunk
        // (164 ms against 11 ms per 5,000-contact chunk measured after a 1,000,000-row
        // import). With bitmap scans and sorts priced out, every contact is read once.
        sqlx::query(
            "SELECT set_config('enable_bitmapscan', 'off', true),
                    set_config('enable_sort', 'off', true)",
        )
        .execute(&mut *tx)
        .await
        .context("setting the chunk's plan")?;
    }
    let contacts: Vec<ContactRow> = q
        .build_query_as()
        .fetch_all(&mut *tx)
        .await
        .context("reading the audience's next contacts")?;

    let t_expand = Instant::now();
    let mut messages = NewMessages::with_capacity(contacts.len());
    let mut rejections = NewRejections::default();
    let (mut suppressed, mut unfilled) = (0u64, 0u64);
    let empty = ezpulze_payload::Variables::default();
    for (i, c) in contacts.iter().enumerate() {
        let ordinal = (i64::from(job.slice) << 32) + i64::from(job.passed) + i as i64;
        let reject = |r: &mut NewRejections, code: &str, message: String| {
            r.push(ordinal, Some(c.id), Some(c.phone.clone()), code, message)
        };
        if c.suppressed {
            suppressed += 1;
            reject(
                &mut rejections,
                consent::SUPPRESSED,
                consent::SUPPRESSED_MESSAGE.into(),
            );
            continue;
        }
        let phone = match PhoneE164::parse(&c.phone) {
            Ok(p) => p,
            Err(e) => {
                unfilled += 1;
                reject(&mut rejections, "invalid_phone", e.to_string());
                continue;
            }
        };
        let rendered;
        let vars = match &job.fill {
            None => &empty,
            Some(f) => {
                let view = ContactView {
                    id: c.id,
                    phone: &c.phone,
                    name: c.name.as_deref(),
                    email: c.email.as_deref(),
                    attributes: &c.attributes,
                };
                match f.render(&view) {
                    Ok(v) => {
                        rendered = v;
                        &rendered
                    }
                    Err((code, message)) => {
                        unfilled += 1;
                        reject(&mut rejections, code, message);
                        continue;
                    }
                }
            }
        };
        let id = Uuid::now_v7();
        let callback = id.simple().to_string();
        match b
            .template
            .expand(&b.defaults, vars, phone.as_str(), &callback)
        {
            Ok(msg) => {
                let payload = String::from_utf8(msg.to_json_vec()).context("message payload")?;
                messages.push(id, phone.into_string(), None, payload);
            }
            Err(errs) => {
                unfilled += 1;
                let code = errs.first().map(|e| e.code.as_str()).unwrap_or("invalid");
                let message = errs
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                reject(
                    &mut rejections,
                    fill::INVALID_VARIABLES,
                    format!("{code}: {message}"),
                );
            }
        }
    }

    let t_write = Instant::now();
    let message_status = if status == DispatchStatus::Scheduled {
        MessageStatus::Scheduled
    } else {
        MessageStatus::Queued
    };
    dispatch::insert_messages(
        &mut tx,
        job.dispatch_id,
        job.account_id,
        key_id,
        message_status,
        &messages,
    )
    .await
    .context("inserting the chunk's messages")?;
    dispatch::insert_rejections(&mut tx, job.dispatch_id, &rejections)
        .await
        .context("inserting the chunk's rejections")?;
    let t_totals = Instant::now();
    if !messages.is_empty() {
        sqlx::query("UPDATE dispatches SET total = total + $2, updated_at = now() WHERE id = $1")
            .bind(job.dispatch_id)
            .bind(i32::try_from(messages.len()).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await?;
        if let Some(key_id) = key_id {
            usage::add_messages(&mut tx, key_id, messages.len() as i64).await?;
        }
    }
    let done = (contacts.len() as i64) < chunk_size;
    sqlx::query(
        "UPDATE dispatch_audiences
            SET cursor_id = COALESCE($2, cursor_id), passed = passed + $3,
                state = CASE WHEN $4 AND $6 THEN 'done' ELSE state END,
                lease_until = CASE WHEN $6 THEN now() ELSE lease_until END,
                lease_token = CASE WHEN $6 THEN NULL ELSE lease_token END,
                updated_at = now()
          WHERE dispatch_id = $1 AND slice = $5",
    )
    .bind(job.dispatch_id)
    .bind(contacts.last().map(|c| c.id))
    .bind(i32::try_from(contacts.len()).unwrap_or(i32::MAX))
    .bind(done)
    .bind(job.slice)
    .bind(lease == Lease::Release)
    .execute(&mut *tx)
    .await
    .context("moving the cursor")?;
    let t_commit = Instant::now();
    tx.commit().await.context("committing the chunk")?;
    let t_push = Instant::now();

    metrics::counter!("ezpulze_audience_recipients_total", "result" => "queued")
        .increment(messages.len() as u64);
    metrics::counter!("ezpulze_audience_recipients_total", "result" => "suppressed")
        .increment(suppressed);
    metrics::counter!("ezpulze_audience_recipients_total", "result" => "rejected")
        .increment(unfilled);
    if DispatchStatus::ACTIVE.contains(&status) {
        dispatch::push_sends(state, job.dispatch_id, job.account_id, messages.ids()).await;
    }
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
    let end = Instant::now();
    tracing::debug!(
        contacts = contacts.len(),
        read_ms = ms(t_read, t_expand),
        expand_ms = ms(t_expand, t_write),
        write_ms = ms(t_write, t_push),
        totals_ms = ms(t_totals, t_commit),
        commit_ms = ms(t_commit, t_push),
        push_ms = ms(t_push, end),
        "audience chunk"
    );
    Ok(done.then(|| Done {
        passed: job.passed as usize + contacts.len(),
        release_at: scheduled_at.filter(|_| status == DispatchStatus::Scheduled),
    }))
}

/// Whether a chunk's read walks the id index in order: every chunk of a split audience's
/// further slices, and every chunk after the first of an audience larger than a chunk. The
/// first chunk (the audience's size not yet known: it is counted beside it) and a one-chunk
/// audience are left to the planner, whose one pass over a rare tag's or a list of ids'
/// contacts costs far less than walking the whole account in id order; a bitmap of the whole
/// audience costs that first chunk no more than the count beside it.
fn walks_in_order(job: &Claimed, chunk_size: i64) -> bool {
    job.slice > 0
        || job
            .audience_total
            .is_some_and(|n| i64::from(n) > chunk_size)
}

/// Ends a slice early (its dispatch was cancelled, or its broadcast is gone); each slice
/// ends itself when it next runs.
async fn stop(tx: &mut sqlx::PgConnection, job: &Claimed, why: &'static str) -> sqlx::Result<()> {
    tracing::info!(why, "audience fan-out stopped");
    sqlx::query(
        "UPDATE dispatch_audiences SET state = 'cancelled', lease_token = NULL, updated_at = now()
          WHERE dispatch_id = $1 AND slice = $2",
    )
    .bind(job.dispatch_id)
    .bind(job.slice)
    .execute(tx)
    .await?;
    Ok(())
}

/// Wraps the shared wake handle for [`AppState`].
pub fn new_wake() -> Arc<Wake> {
    Arc::new(Wake::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_cut_at_their_twelfths() {
        let ids: Vec<Uuid> = (1..=11u128).map(Uuid::from_u128).collect();
        let at = |k: &[u128]| k.iter().map(|&v| Uuid::from_u128(v)).collect::<Vec<_>>();
        assert_eq!(slice_bounds(&ids, 1), Vec::<Uuid>::new());
        assert_eq!(slice_bounds(&ids, 2), at(&[6]));
        assert_eq!(slice_bounds(&ids, 3), at(&[4, 8]));
        assert_eq!(slice_bounds(&ids, 4), at(&[3, 6, 9]));
        // An empty audience has no ids to cut at.
        assert_eq!(slice_bounds(&[], 4), Vec::<Uuid>::new());
    }
}
