//! Runs contact imports in the api processes. Each process polls for claimable imports every
//! [`CLAIM_EVERY`] (and at once when one is uploaded to it): an open import whose lease has
//! expired and that is its account's oldest open import (one import per account at a time;
//! later ones wait), at most `CONTACT_IMPORT_CONCURRENCY` at once per process, claimed with
//! `FOR UPDATE SKIP LOCKED`. The holder keeps the lease alive while it works; a process that
//! dies leaves its lease to expire and any process takes the import over.
//!
//! The file is read once, in order: each row is checked (`rows::Validator`), and batches of
//! good rows (with the problems of the rows between them) are written. Each batch's
//! rejections, upsert, counters and row cursor (`next_row`) are one transaction, guarded by
//! the lease token and the cursor the batch started from, so a crash resumes exactly after the
//! last committed batch (no row twice, none skipped). The first batch also records the
//! header's attribute keys and moves the state from `validating` to `importing`. Checking is
//! deterministic (same file, same `default_country`), so a resumed import reads the rows
//! before its cursor again only to find the same duplicates and rejection numbers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::countries::Country;
use super::csv::{self, Reader};
use super::rows::{GoodRow, Header, Rejection, Validator};
use crate::state::AppState;

/// How often each process looks for imports to claim (or to take over).
pub const CLAIM_EVERY: Duration = Duration::from_secs(2);
/// How long a lease lasts without being renewed.
pub const LEASE: Duration = Duration::from_secs(30);
/// How often the holder renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// Batches in flight at once (each its own transaction; they commit in file order). On the
/// 2-core benchmark machine 3 beat 2 and 4 (`docs/contact-import.md`, *Speed*).
pub const WRITERS: usize = 3;
/// Attempts of one batch before the import is marked `failed`.
const BATCH_ATTEMPTS: u32 = 3;
/// Uploaded files kept in memory for the local runner at most this long.
const PENDING_TTL: Duration = Duration::from_secs(600);

/// Files just uploaded to this process, so the runner that claims them here need not read
/// them back from Postgres (ids are unique and files immutable, so any runner of the process
/// may use them).
static PENDING: LazyLock<Mutex<HashMap<Uuid, (Instant, Bytes)>>> = LazyLock::new(Default::default);
/// Wakes this process's claim loops (an upload, a finished import).
static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Hands an uploaded file to this process's runners and wakes them.
pub fn uploaded(id: Uuid, file: Bytes) {
    if let Ok(mut p) = PENDING.lock() {
        p.insert(id, (Instant::now(), file));
    }
    WAKE.notify_waiters();
}

fn take_pending(id: Uuid) -> Option<Bytes> {
    PENDING.lock().ok()?.remove(&id).map(|(_, b)| b)
}

fn prune_pending() {
    if let Ok(mut p) = PENDING.lock() {
        p.retain(|_, (at, _)| at.elapsed() < PENDING_TTL);
    }
}

/// Starts this process's claim loop (until `cancel`).
pub fn spawn(state: &AppState, cancel: &CancellationToken) {
    let concurrency = state.config().contact_imports.concurrency;
    if concurrency == 0 {
        return;
    }
    tokio::spawn(claim_loop(state.clone(), concurrency, cancel.clone()));
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    account_id: Uuid,
    state: String,
    default_country: Option<String>,
    next_row: i32,
    total_rows: i32,
}

async fn claim_loop(state: AppState, concurrency: usize, cancel: CancellationToken) {
    let permits = Arc::new(Semaphore::new(concurrency));
    loop {
        let woken = WAKE.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        while let Ok(permit) = permits.clone().try_acquire_owned() {
            let token = Uuid::new_v4();
            match claim(&state, token).await {
                Ok(Some(job)) => {
                    let (state, cancel) = (state.clone(), cancel.clone());
                    tokio::spawn(run(state, job, token, permit, cancel));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "claiming a contact import failed; retrying"
                    );
                    break;
                }
            }
        }
        prune_pending();
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = &mut woken => {}
            _ = tokio::time::sleep(CLAIM_EVERY) => {}
        }
    }
}

async fn claim(state: &AppState, token: Uuid) -> Result<Option<Claimed>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE contact_imports SET lease_token = $1, lease_until = now() + $2 * interval '1 ms',
                updated_at = now()
         WHERE id = (
             SELECT i.id FROM contact_imports i
             WHERE i.state IN ('validating', 'importing') AND i.lease_until < now()
               AND NOT EXISTS (
                   SELECT 1 FROM contact_imports o
                   WHERE o.account_id = i.account_id AND o.state IN ('validating', 'importing')
                     AND o.id < i.id)
             ORDER BY i.id
             LIMIT 1
             FOR UPDATE SKIP LOCKED)
         RETURNING id, account_id, state, default_country, next_row, total_rows",
    )
    .bind(token)
    .bind(LEASE.as_millis() as f64)
    .fetch_optional(state.db())
    .await
}

/// Why a job stopped before the end.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("the process is shutting down")]
    Cancelled,
    #[error("the lease was lost (another process took the import over)")]
    LeaseLost,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        Stop::Failed(e.into())
    }
}

struct Job {
    state: AppState,
    id: Uuid,
    account_id: Uuid,
    token: Uuid,
    lost: Arc<AtomicBool>,
    cancel: CancellationToken,
}

impl Job {
    fn check(&self) -> Result<(), Stop> {
        if self.cancel.is_cancelled() {
            return Err(Stop::Cancelled);
        }
        if self.lost.load(Ordering::Relaxed) {
            return Err(Stop::LeaseLost);
        }
        Ok(())
    }
}

async fn run(
    state: AppState,
    claimed: Claimed,
    token: Uuid,
    _permit: OwnedSemaphorePermit,
    cancel: CancellationToken,
) {
    let running = metrics::gauge!("ezpulze_contact_imports_running");
    running.increment(1.0);
    let done = CancellationToken::new();
    let job = Job {
        state: state.clone(),
        id: claimed.id,
        account_id: claimed.account_id,
        token,
        lost: Arc::new(AtomicBool::new(false)),
        cancel,
    };
    tokio::spawn(renew(
        state.clone(),
        claimed.id,
        token,
        job.lost.clone(),
        done.clone(),
    ));
    tracing::info!(import_id = %claimed.id, account_id = %claimed.account_id,
        state = claimed.state, next_row = claimed.next_row, total_rows = claimed.total_rows,
        "contact import claimed");
    let result = work(&job, &claimed).await;
    done.cancel();
    match result {
        Ok(()) => {}
        Err(Stop::Cancelled) => {
            tracing::info!(import_id = %job.id, "contact import paused by shutdown; another process resumes it after its lease")
        }
        Err(Stop::LeaseLost) => {
            tracing::warn!(import_id = %job.id, "contact import lease lost; another process continues it")
        }
        Err(Stop::Failed(e)) => {
            tracing::error!(import_id = %job.id, error = format!("{e:#}"), "contact import failed");
            let marked = sqlx::query(
                "UPDATE contact_imports SET state = 'failed', error = $3, finished_at = now(),
                        updated_at = now(), lease_token = NULL
                 WHERE id = $1 AND lease_token = $2",
            )
            .bind(job.id)
            .bind(token)
            .bind("the import stopped on an internal error; upload the file again")
            .execute(state.db())
            .await;
            if let Err(e) = marked {
                tracing::error!(import_id = %job.id, error = format!("{e:#}"), "marking a contact import failed did not work; it is retried after its lease");
            }
        }
    }
    running.decrement(1.0);
    WAKE.notify_waiters();
}

/// Renews the lease until `done`; flags `lost` when the lease is no longer ours.
async fn renew(
    state: AppState,
    id: Uuid,
    token: Uuid,
    lost: Arc<AtomicBool>,
    done: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(RENEW_EVERY) => {}
        }
        let renewed = sqlx::query(
            "UPDATE contact_imports SET lease_until = now() + $3 * interval '1 ms'
             WHERE id = $1 AND lease_token = $2 AND state IN ('validating', 'importing')",
        )
        .bind(id)
        .bind(token)
        .bind(LEASE.as_millis() as f64)
        .execute(state.db())
        .await;
        match renewed {
            Ok(r) if r.rows_affected() == 0 => {
                lost.store(true, Ordering::Relaxed);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(import_id = %id, error = format!("{e:#}"), "renewing a contact import lease failed")
            }
        }
    }
}

/// The file and its parsed header.
struct Parsed {
    file: Bytes,
    header: Header,
    country: Option<Country>,
}

async fn load(job: &Job, claimed: &Claimed) -> Result<Parsed, Stop> {
    let file = match take_pending(job.id) {
        Some(f) => f,
        None => {
            let raw: Vec<u8> = sqlx::query_scalar("SELECT file FROM contact_imports WHERE id = $1")
                .bind(job.id)
                .fetch_one(job.state.db())
                .await?;
            Bytes::from(raw)
        }
    };
    let country = match claimed.default_country.as_deref() {
        Some(c) => Some(Country::from_iso(c).context("stored default_country is not a country")?),
        None => None,
    };
    let header = {
        let text = csv::text(&file).map_err(|e| anyhow::anyhow!("stored file: {e:?}"))?;
        let mut fields = Vec::new();
        let mut r = Reader::new(text);
        r.next_record(&mut fields)
            .map_err(|e| anyhow::anyhow!("stored file: {e:?}"))?;
        let cells: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        Header::parse(&cells).map_err(|e| anyhow::anyhow!("stored header: {e}"))?
    };
    Ok(Parsed {
        file,
        header,
        country,
    })
}

async fn work(job: &Job, claimed: &Claimed) -> Result<(), Stop> {
    let parsed = Arc::new(load(job, claimed).await?);
    job.check()?;
    import(job, parsed, claimed.next_row, claimed.total_rows).await
}

/// One committed step: rows `start..end` of the file, their good rows, their problems
/// (numbered from the start of the file by `seq`) and how many data rows the range holds.
struct Batch {
    start: i32,
    end: i32,
    passed: i32,
    rows: Vec<GoodRow>,
    rejected_rows: i32,
    rejections: Vec<(i32, Rejection)>,
}

impl Batch {
    fn new(start: i32, capacity: usize) -> Batch {
        Batch {
            start,
            end: start,
            passed: 0,
            rows: Vec::with_capacity(capacity),
            rejected_rows: 0,
            rejections: Vec::new(),
        }
    }
}

/// Reads the file from its first row (earlier rows are checked too: they claim their phones
/// for the duplicate check, and number the rejections) and sends the batches from `next_row`.
fn produce(
    p: &Parsed,
    next_row: i32,
    total_rows: i32,
    batch_rows: usize,
    tx: mpsc::Sender<anyhow::Result<Batch>>,
) {
    let send = |b| tx.blocking_send(b).is_ok();
    let text = match csv::text(&p.file) {
        Ok(t) => t,
        Err(e) => {
            send(Err(anyhow::anyhow!("stored file: {e:?}")));
            return;
        }
    };
    let mut reader = Reader::new(text);
    let mut fields = Vec::new();
    reader.next_record(&mut fields).ok();
    let mut v = Validator::new(&p.header, p.country, total_rows.max(0) as usize);
    let mut problems = Vec::new();
    let mut seq = 0i32;
    let mut batch = Batch::new(next_row, batch_rows);
    loop {
        let row = match reader.next_record(&mut fields) {
            Ok(Some(r)) => r as i32,
            Ok(None) => break,
            Err(e) => {
                send(Err(anyhow::anyhow!("stored file: {e:?}")));
                return;
            }
        };
        problems.clear();
        let good = v.check(row as u32, &fields, &mut problems);
        let first_seq = seq + 1;
        seq += problems.len() as i32;
        if row < next_row {
            continue;
        }
        batch.passed += 1;
        batch.end = row + 1;
        match good {
            Some(g) => batch.rows.push(g),
            None => {
                batch.rejected_rows += 1;
                batch
                    .rejections
                    .extend((first_seq..).zip(problems.drain(..)));
            }
        }
        if batch.rows.len() >= batch_rows || batch.rejections.len() >= batch_rows {
            let next = Batch::new(batch.end, batch_rows);
            if !send(Ok(std::mem::replace(&mut batch, next))) {
                return;
            }
        }
    }
    // The last batch, even without rows: its rejections, and the cursor moved to the end.
    if batch.passed > 0 || batch.start == 2 {
        send(Ok(batch));
    }
}

async fn import(
    job: &Job,
    parsed: Arc<Parsed>,
    next_row: i32,
    total_rows: i32,
) -> Result<(), Stop> {
    let batch_rows = job.state.config().contact_imports.batch_rows.max(1);
    let keys = parsed.header.attribute_keys();
    if !keys.is_empty() {
        // Known before any contact is written with them (one statement; a resumed import
        // finds them there already).
        sqlx::query(
            "INSERT INTO contact_attribute_keys (account_id, key)
             SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(job.account_id)
        .bind(&keys)
        .execute(job.state.db())
        .await?;
    }
    let (tx, rx) = mpsc::channel::<anyhow::Result<Batch>>(WRITERS);
    let p = parsed.clone();
    let producer =
        tokio::task::spawn_blocking(move || produce(&p, next_row, total_rows, batch_rows, tx));
    let started = Instant::now();
    // The cursor of the last committed batch: a batch commits only after the one before it.
    let committed = watch::Sender::new(next_row);
    let batches =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    let mut writes = std::pin::pin!(batches
        .map(|b| {
            let committed = &committed;
            async move { write_batch(job, b?, committed).await }
        })
        .buffered(WRITERS));
    while let Some(written) = writes.next().await {
        written?;
    }
    producer.await.context("reading the rows")?;
    job.check()?;
    if total_rows - next_row >= ANALYZE_AFTER_ROWS {
        refresh_statistics(job).await;
    }
    let finished = sqlx::query_as::<_, (i32, i32, i32, i32)>(
        "UPDATE contact_imports SET state = 'done', finished_at = now(), updated_at = now(),
                lease_token = NULL, rows_done = total_rows
         WHERE id = $1 AND lease_token = $2 AND state = 'importing'
         RETURNING created, updated, unchanged, rejected",
    )
    .bind(job.id)
    .bind(job.token)
    .fetch_optional(job.state.db())
    .await?;
    let Some((created, updated, unchanged, rejected)) = finished else {
        return Err(Stop::LeaseLost);
    };
    tracing::info!(import_id = %job.id, account_id = %job.account_id, created, updated,
        unchanged, rejected, elapsed_ms = started.elapsed().as_millis() as u64,
        "contact import done");
    Ok(())
}

/// An import of at least this many rows refreshes the contacts' planner statistics before
/// it is done.
const ANALYZE_AFTER_ROWS: i32 = 10_000;

/// `ANALYZE contacts`, so that the statements that target the imported contacts next (an
/// audience's emptiness check, count and chunks) are planned knowing them: until autovacuum
/// gets to it, the statistics do not know the new rows, and the planner took a bitmap of
/// the whole account for an audience's `EXISTS` (200 ms against 0.1 ms after a 1,000,000-row
/// import). Skipped when another analyze of the table is under way (it brings the same);
/// a failure is only logged: the import itself is complete.
async fn refresh_statistics(job: &Job) {
    let started = Instant::now();
    match sqlx::query("ANALYZE (SKIP_LOCKED) contacts")
        .execute(job.state.db())
        .await
    {
        Ok(_) => tracing::debug!(import_id = %job.id,
            elapsed_ms = started.elapsed().as_millis() as u64, "contacts analyzed"),
        Err(e) => tracing::warn!(import_id = %job.id, error = %e,
            "analyzing the contacts after an import failed"),
    }
}

async fn write_batch(job: &Job, batch: Batch, committed: &watch::Sender<i32>) -> Result<(), Stop> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        job.check()?;
        match try_batch(job, &batch, committed).await {
            Ok((created, updated)) => {
                let unchanged = batch.rows.len() as u64 - created - updated;
                for (result, n) in [
                    ("created", created),
                    ("updated", updated),
                    ("unchanged", unchanged),
                    ("rejected", batch.rejected_rows as u64),
                ] {
                    metrics::counter!("ezpulze_contact_import_rows_total", "result" => result)
                        .increment(n);
                }
                return Ok(());
            }
            Err(Stop::Failed(e)) if attempt < BATCH_ATTEMPTS => {
                tracing::warn!(import_id = %job.id, attempt, error = format!("{e:#}"),
                    "a contact import batch failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One batch in one transaction: the rows' rejections, the upsert, then (once the batch
/// before it has committed) the counters and the cursor, guarded by the lease token and the
/// cursor the batch starts from. [`WRITERS`] batches run at once (Postgres works on the next
/// one while the previous one commits); they commit in file order. Answers (created,
/// updated); the batch's other good rows were unchanged (not written).
async fn try_batch(
    job: &Job,
    batch: &Batch,
    committed: &watch::Sender<i32>,
) -> Result<(u64, u64), Stop> {
    let mut tx = job.state.db().begin().await?;
    // The commit need not wait for its WAL flush: a batch lost in a database crash is lost
    // with its cursor, and the resumed import writes it again.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    if !batch.rejections.is_empty() {
        let r = &batch.rejections;
        let seqs: Vec<i32> = r.iter().map(|(s, _)| *s).collect();
        let rows: Vec<i32> = r.iter().map(|(_, x)| x.row as i32).collect();
        let columns: Vec<Option<&str>> = r.iter().map(|(_, x)| x.column.as_deref()).collect();
        let codes: Vec<&str> = r.iter().map(|(_, x)| x.code).collect();
        let messages: Vec<&str> = r.iter().map(|(_, x)| x.message.as_str()).collect();
        sqlx::query(
            "INSERT INTO contact_import_rejections
                 (import_id, seq, row_number, column_name, code, message)
             SELECT $1, * FROM UNNEST($2::int[], $3::int[], $4::text[], $5::text[], $6::text[])",
        )
        .bind(job.id)
        .bind(&seqs)
        .bind(&rows)
        .bind(&columns)
        .bind(&codes)
        .bind(&messages)
        .execute(&mut *tx)
        .await?;
    }
    let (created, updated): (i64, i64) = if batch.rows.is_empty() {
        (0, 0)
    } else {
        let n = batch.rows.len();
        let mut ids = Vec::with_capacity(n);
        let mut phones = Vec::with_capacity(n);
        let mut names = Vec::with_capacity(n);
        let mut emails = Vec::with_capacity(n);
        let mut tags = Vec::with_capacity(n);
        let mut attrs = Vec::with_capacity(n);
        for r in &batch.rows {
            ids.push(Uuid::now_v7());
            phones.push(r.phone.as_str());
            names.push(r.name.as_deref());
            emails.push(r.email.as_deref());
            tags.push(r.tags.as_deref());
            attrs.push(r.attributes.as_deref());
        }
        sqlx::query_as(UPSERT)
            .bind(job.account_id)
            .bind(&ids)
            .bind(&phones)
            .bind(&names)
            .bind(&emails)
            .bind(&tags)
            .bind(&attrs)
            .fetch_one(&mut *tx)
            .await?
    };
    // In file order: the batch before this one has committed (or this one is dropped with
    // the job when that one fails).
    committed
        .subscribe()
        .wait_for(|at| *at >= batch.start)
        .await
        .map_err(|_| anyhow::anyhow!("the import stopped"))?;
    let unchanged = batch.rows.len() as i64 - created - updated;
    let moved = sqlx::query(
        "UPDATE contact_imports SET state = 'importing', created = created + $3,
                updated = updated + $4, unchanged = unchanged + $5, rejected = rejected + $6,
                rows_done = rows_done + $7, next_row = $8, updated_at = now(),
                lease_until = now() + $9 * interval '1 ms'
         WHERE id = $1 AND lease_token = $2 AND next_row = $10
           AND state IN ('validating', 'importing')",
    )
    .bind(job.id)
    .bind(job.token)
    .bind(created as i32)
    .bind(updated as i32)
    .bind(unchanged as i32)
    .bind(batch.rejected_rows)
    .bind(batch.passed)
    .bind(batch.end)
    .bind(LEASE.as_millis() as f64)
    .bind(batch.start)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 0 {
        // Another process holds the import now (or moved its cursor): this batch is its.
        return Err(Stop::LeaseLost);
    }
    tx.commit().await?;
    committed.send_replace(batch.end);
    Ok((created as u64, updated as u64))
}

/// The batch upsert: new phones inserted; existing contacts updated only when a value would
/// change (name/e-mail set from non-empty cells, tags added, attributes merged with the file's
/// keys winning), so a re-run writes nothing and leaves `updated_at` alone. Answers the
/// counts of inserted and updated rows.
const UPSERT: &str = "
WITH up AS (
    INSERT INTO contacts AS c (id, account_id, phone, name, email, attributes, tags)
    SELECT i.id, $1, i.phone, i.name, i.email, COALESCE(i.attrs::jsonb, '{}'),
           COALESCE(string_to_array(i.tags, E'\\x1f'), '{}')
    FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
         AS i(id, phone, name, email, tags, attrs)
    ON CONFLICT (account_id, phone) DO UPDATE SET
        name = COALESCE(EXCLUDED.name, c.name),
        email = COALESCE(EXCLUDED.email, c.email),
        attributes = c.attributes || EXCLUDED.attributes,
        tags = c.tags || ARRAY(
            SELECT t FROM unnest(EXCLUDED.tags) WITH ORDINALITY AS n(t, o)
            WHERE NOT (t = ANY (c.tags)) ORDER BY o),
        updated_at = now()
    WHERE (EXCLUDED.name IS NOT NULL AND EXCLUDED.name IS DISTINCT FROM c.name)
       OR (EXCLUDED.email IS NOT NULL AND EXCLUDED.email IS DISTINCT FROM c.email)
       OR NOT (c.tags @> EXCLUDED.tags)
       OR (c.attributes || EXCLUDED.attributes) <> c.attributes
    RETURNING (xmax = 0) AS created
)
SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created) FROM up";
