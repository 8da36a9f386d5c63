//! Runs contact imports in the api processes. Each process polls for claimable imports every
//! [`CLAIM_EVERY`] (and at once when one is uploaded to it): an open import whose lease has
//! expired and that is its account's oldest open import (one import per account at a time;
//! later ones wait), at most `CONTACT_IMPORT_CONCURRENCY` at once per process, claimed with
//! `FOR UPDATE SKIP LOCKED`. The holder keeps the lease alive while it works; a process that
//! dies leaves its lease to expire and any process takes the import over.
//!
//! An import runs in two steps. `validating`: every row is checked and all rejections are
//! written, with the header's attribute keys, in one transaction that also moves the state to
//! `importing`. `importing`: the good rows are upserted in batches; each batch's upsert, the
//! counters and the row cursor (`next_row`) are one transaction, guarded by the lease token and
//! the cursor the batch started from, so a crash resumes exactly after the last committed
//! batch (no row twice, none skipped). Validation is deterministic (same file, same
//! `default_country`), so a resumed import finds the same good rows and the same duplicates.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};
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
    if claimed.state == "validating" {
        validate(job, parsed.clone(), claimed.total_rows).await?;
    }
    import(job, parsed, claimed.next_row).await
}

/// Every row checked; all rejections, the attribute keys and the state `importing` in one
/// transaction.
async fn validate(job: &Job, parsed: Arc<Parsed>, total_rows: i32) -> Result<(), Stop> {
    let p = parsed.clone();
    let (rejections, rejected_rows) = tokio::task::spawn_blocking(move || {
        let text = csv::text(&p.file).map_err(|e| anyhow::anyhow!("stored file: {e:?}"))?;
        let mut reader = Reader::new(text);
        let mut fields = Vec::new();
        reader.next_record(&mut fields).ok();
        let mut v = Validator::new(&p.header, p.country, total_rows.max(0) as usize);
        let mut out: Vec<Rejection> = Vec::new();
        let mut rejected_rows = 0i32;
        while let Some(row) = reader
            .next_record(&mut fields)
            .map_err(|e| anyhow::anyhow!("stored file: {e:?}"))?
        {
            if v.check(row, &fields, &mut out).is_none() {
                rejected_rows += 1;
            }
        }
        anyhow::Ok((out, rejected_rows))
    })
    .await
    .context("validating the rows")??;
    job.check()?;

    let mut tx = job.state.db().begin().await?;
    lock(&mut tx, job, None).await?;
    for (n, chunk) in rejections.chunks(10_000).enumerate() {
        let base = (n * 10_000) as i32;
        let seqs: Vec<i32> = (0..chunk.len() as i32).map(|i| base + i + 1).collect();
        let rows: Vec<i32> = chunk.iter().map(|r| r.row as i32).collect();
        let columns: Vec<Option<&str>> = chunk.iter().map(|r| r.column.as_deref()).collect();
        let codes: Vec<&str> = chunk.iter().map(|r| r.code).collect();
        let messages: Vec<&str> = chunk.iter().map(|r| r.message.as_str()).collect();
        sqlx::query(
            "INSERT INTO contact_import_rejections (import_id, seq, row_number, column_name, code, message)
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
    let keys = parsed.header.attribute_keys();
    if !keys.is_empty() {
        // Known before any contact is written with them.
        sqlx::query(
            "INSERT INTO contact_attribute_keys (account_id, key)
             SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING",
        )
        .bind(job.account_id)
        .bind(&keys)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE contact_imports SET state = 'importing', rejected = $2, updated_at = now()
         WHERE id = $1",
    )
    .bind(job.id)
    .bind(rejected_rows)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("ezpulze_contact_import_rows_total", "result" => "rejected")
        .increment(rejected_rows as u64);
    tracing::info!(import_id = %job.id, rejected_rows, "contact import validated");
    Ok(())
}

/// Locks the import row if we still hold it (and, for a batch, the cursor is where the batch
/// starts).
async fn lock(tx: &mut sqlx::PgConnection, job: &Job, next_row: Option<i32>) -> Result<(), Stop> {
    let held: Option<i32> = sqlx::query_scalar(
        "SELECT next_row FROM contact_imports
         WHERE id = $1 AND lease_token = $2 AND state IN ('validating', 'importing')
         FOR UPDATE",
    )
    .bind(job.id)
    .bind(job.token)
    .fetch_optional(&mut *tx)
    .await?;
    match held {
        None => Err(Stop::LeaseLost),
        Some(at) if next_row.is_some_and(|n| n != at) => Err(Stop::LeaseLost),
        Some(_) => Ok(()),
    }
}

/// Rows of one committed step: the good rows among rows `start..end`, and how many data rows
/// (good or rejected) the range holds.
struct Batch {
    start: i32,
    end: i32,
    passed: i32,
    rows: Vec<GoodRow>,
}

async fn import(job: &Job, parsed: Arc<Parsed>, next_row: i32) -> Result<(), Stop> {
    let batch_rows = job.state.config().contact_imports.batch_rows.max(1);
    let (tx, mut rx) = mpsc::channel::<anyhow::Result<Batch>>(2);
    let p = parsed.clone();
    let producer = tokio::task::spawn_blocking(move || {
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
        let mut v = Validator::new(&p.header, p.country, 0);
        let mut scratch = Vec::new();
        let mut batch = Batch {
            start: next_row,
            end: next_row,
            passed: 0,
            rows: Vec::with_capacity(batch_rows),
        };
        loop {
            let row = match reader.next_record(&mut fields) {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    send(Err(anyhow::anyhow!("stored file: {e:?}")));
                    return;
                }
            };
            // Earlier rows are checked too: they claim their phones (duplicates).
            scratch.clear();
            let good = v.check(row, &fields, &mut scratch);
            if (row as i32) < next_row {
                continue;
            }
            batch.passed += 1;
            batch.end = row as i32 + 1;
            if let Some(g) = good {
                batch.rows.push(g);
                if batch.rows.len() >= batch_rows {
                    let start = batch.end;
                    let full = std::mem::replace(
                        &mut batch,
                        Batch {
                            start,
                            end: start,
                            passed: 0,
                            rows: Vec::with_capacity(batch_rows),
                        },
                    );
                    if !send(Ok(full)) {
                        return;
                    }
                }
            }
        }
        if batch.passed > 0 {
            send(Ok(batch));
        }
    });

    while let Some(batch) = rx.recv().await {
        job.check()?;
        let batch = batch?;
        write_batch(job, &batch).await?;
    }
    producer.await.context("reading the rows")?;
    job.check()?;
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
        unchanged, rejected, "contact import done");
    Ok(())
}

async fn write_batch(job: &Job, batch: &Batch) -> Result<(), Stop> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_batch(job, batch).await {
            Ok(counts) => {
                let (created, updated) = counts;
                let unchanged = batch.rows.len() as u64 - created - updated;
                for (result, n) in [
                    ("created", created),
                    ("updated", updated),
                    ("unchanged", unchanged),
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
                job.check()?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One batch: the upsert, the counters and the cursor in one transaction. Answers (created,
/// updated); the batch's other good rows were unchanged (not written).
async fn try_batch(job: &Job, batch: &Batch) -> Result<(u64, u64), Stop> {
    let mut tx = job.state.db().begin().await?;
    lock(&mut tx, job, Some(batch.start)).await?;
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
    let unchanged = batch.rows.len() as i64 - created - updated;
    sqlx::query(
        "UPDATE contact_imports SET created = created + $2, updated = updated + $3,
                unchanged = unchanged + $4, rows_done = rows_done + $5, next_row = $6,
                updated_at = now(), lease_until = now() + $7 * interval '1 ms'
         WHERE id = $1",
    )
    .bind(job.id)
    .bind(created as i32)
    .bind(updated as i32)
    .bind(unchanged as i32)
    .bind(batch.passed)
    .bind(batch.end)
    .bind(LEASE.as_millis() as f64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
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
