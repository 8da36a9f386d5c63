//! The status consumer (run by every worker process): WhatsApp status webhooks (bodies the
//! api checked the signature of and pushed onto the webhook queue) become message states and
//! per-key counters.
//!
//! The reducer is monotone: read(4) > delivered(3) > failed(2) > sent(1) > anything before;
//! the first timestamp of each status is kept; duplicates and reordering change nothing. A
//! batch of events is applied with ONE statement that updates the messages, and, for real
//! transitions only, the usage counters of the keys that sent them (same transaction):
//! `sent` = reached sent or later, `delivered` = delivered or read, `read`, `failed` = ended
//! failed. Events for messages not (yet) known wait in `pending_statuses` and are retried;
//! after [`reduce::PENDING_TTL`] they are dropped and counted.
//!
//! Tenancy: each body carries the numbers its signature verified and their accounts
//! (`jobs::WebhookBody`); a status is applied only to a message of that account sent from that
//! number. One that names another account's message (by id or wamid) is dropped and counted
//! (`ezpulze_status_rejected_total{reason="other_account"}`). Every field is checked before
//! SQL (`fold`), and a body that still makes the statement fail is dead-lettered alone, so no
//! tenant's body can hold back another's (`apply_batch`).
//!
//! Reading is the queue's (`ezpulze-queue`): batches from the group `status`, bodies of a
//! consumer that died are taken over after the lease, acks are XACK+XDEL in one pipeline.
//!
//! | module | owns |
//! |---|---|
//! | `wire` | the parts of Meta's webhook body that are read |
//! | `fold` | a batch of bodies -> what is known of each message (pure) |
//! | `reduce` | the batch statement, parking and retrying unknown-message events |
//! | `consent` | inbound opt-out / opt-in keywords -> the suppression list (one statement) |
//! | `lifecycle` | Meta's WABA-level changes: number quality and throughput, account updates, templates (`docs/whatsapp-events.md`) |
//!
//! Customer-service windows: the same pass records every inbound message's sender and time
//! in the account's budget (`crate::budget`, one pipeline per batch), so a reply to a user who
//! wrote in the last 24 h does not count toward the portfolio's messaging limit.
//!
//! Consent (`docs/consent.md`): the same pass reads the bodies' inbound messages
//! (`value.messages[]`); a text that is one of the account's keywords suppresses its sender or
//! lifts the suppression (`consent`), and a `failed` status with 131050 adds a `marketing`
//! suppression inside the batch statement (`reduce`). A message of an unexpected shape is
//! skipped alone, never failing its body's statuses.

mod consent;
mod fold;
pub mod lifecycle;
mod reduce;
mod wire;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::budget::Budget;
use ezpulze_common::jobs::WebhookBody;
use ezpulze_queue::{Job, JobError, Queue};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use consent::{changes as consent_changes, record_stopped_marketing, Change as ConsentChange};
pub use fold::{fold, fold_jobs, Folded, FoldedBatch, Inbound};
pub use reduce::{apply, retry_parked, MAX_PENDING_PER_ACCOUNT, PENDING_TTL};

/// How often events parked for unknown messages are tried again.
const PENDING_RETRY_EVERY: Duration = Duration::from_secs(2);
/// A batch holds at most this many bytes of bodies (besides `STATUS_BATCH` bodies): it is
/// read [`FETCH_STEP`] bodies at a time until it is full, so with the api's 1 MiB limit per
/// body a batch never holds more than `BATCH_BYTES + FETCH_STEP` MiB, whatever the senders.
pub const BATCH_BYTES: usize = 16 * 1024 * 1024;
pub const FETCH_STEP: usize = 64;

/// Up to `count` bodies and (about) `bytes` bytes: the first read waits as a plain fetch
/// does, the next ones only take what is ready.
async fn fetch_bounded(
    consumer: &mut ezpulze_queue::Consumer<WebhookBody>,
    count: usize,
    bytes: usize,
) -> anyhow::Result<Vec<Job<WebhookBody>>> {
    let size = |j: &Job<WebhookBody>| j.payload.body.get().len();
    let mut jobs = consumer.fetch_batch(count.min(FETCH_STEP)).await?;
    let mut held: usize = jobs.iter().map(size).sum();
    let mut last = jobs.len();
    while last == FETCH_STEP && jobs.len() < count && held < bytes {
        let more = consumer
            .fetch_ready((count - jobs.len()).min(FETCH_STEP))
            .await?;
        last = more.len();
        held += more.iter().map(size).sum::<usize>();
        jobs.extend(more);
    }
    metrics::histogram!("ezpulze_status_batch_bytes").record(held as f64);
    Ok(jobs)
}

/// A batch statement that failed (a deadlock with another consumer) is tried this often.
const APPLY_TRIES: u32 = 4;

/// Consumes the webhook queue until cancelled; a failed step is logged and its bodies come
/// back after the queue's lease.
pub async fn run(
    db: PgPool,
    queue: Queue<WebhookBody>,
    batch: usize,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    run_full(db, queue, batch, None, None, cancel).await
}

/// [`run`], also recording the senders of inbound messages in `budget` (their
/// customer-service windows: `crate::budget`) and applying Meta's WABA-level changes (number
/// quality and throughput, account updates, templates: [`lifecycle`]) with `effects` (the
/// lanes the jobs of resumed dispatches go back to, the numbers' epoch). Without `effects`
/// those changes are still applied in Postgres; resumed jobs wait for the outbox sweep.
pub async fn run_full(
    db: PgPool,
    queue: Queue<WebhookBody>,
    batch: usize,
    budget: Option<Arc<Budget>>,
    effects: Option<lifecycle::Effects>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut consumer = queue.consumer(format!("status-{}", Uuid::new_v4().simple()));
    let mut last_parked = Instant::now();
    while !cancel.is_cancelled() {
        let step = async {
            let jobs = fetch_bounded(&mut consumer, batch, BATCH_BYTES).await?;
            if !jobs.is_empty() {
                apply_batch(&db, &queue, budget.as_deref(), effects.as_ref(), jobs).await?;
            }
            if last_parked.elapsed() > PENDING_RETRY_EVERY {
                last_parked = Instant::now();
                retry_parked(&db).await?;
            }
            anyhow::Ok(())
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            res = step => if let Err(e) = res {
                metrics::counter!("ezpulze_status_step_errors_total").increment(1);
                tracing::warn!(error = format!("{e:#}"), "status consumer step failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    Ok(())
}

/// Folds, applies and parks one batch, then settles its bodies. A batch whose statement
/// fails on its data (a value Postgres cannot hold that got past the checks in `fold`) is
/// halved until the failing bodies stand alone; each of those is dead-lettered with its error
/// (the webhook queue's dead stream, `ezpulze_status_dead_lettered_total`) and every other
/// body is applied. A body with events `fold` refused (a wamid or timestamp no real status
/// has, a number its signature did not verify) is dead-lettered too, after its valid events
/// were applied. Any other failure (Postgres down, deadlocks beyond the retries) leaves the
/// whole batch to come back after the lease.
async fn apply_batch(
    db: &PgPool,
    queue: &Queue<WebhookBody>,
    budget: Option<&Budget>,
    effects: Option<&lifecycle::Effects>,
    jobs: Vec<Job<WebhookBody>>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut dead: Vec<(usize, String)> = Vec::new();
    let mut todo: Vec<std::ops::Range<usize>> = Vec::new();
    todo.push(0..jobs.len());
    while let Some(range) = todo.pop() {
        let bodies: Vec<&WebhookBody> = jobs[range.clone()].iter().map(|j| &j.payload).collect();
        let batch = fold_jobs(&bodies);
        let applied = match apply_all(db, budget, &batch).await {
            Ok(()) => lifecycle::apply(db, effects, &bodies).await,
            Err(e) => Err(e),
        };
        match applied {
            Ok(()) => dead.extend(
                batch
                    .invalid
                    .iter()
                    .map(|(i, why)| (range.start + i, format!("invalid status event: {why}"))),
            ),
            Err(e) if is_data_error(&e) && range.len() > 1 => {
                let mid = range.start + range.len() / 2;
                todo.push(range.start..mid);
                todo.push(mid..range.end);
            }
            Err(e) if is_data_error(&e) => dead.push((range.start, format!("{e:#}"))),
            Err(e) => return Err(e),
        }
    }
    let dead_at: std::collections::HashMap<usize, String> = dead.into_iter().collect();
    if !dead_at.is_empty() {
        metrics::counter!("ezpulze_status_dead_lettered_total").increment(dead_at.len() as u64);
        tracing::warn!(
            bodies = dead_at.len(),
            "webhook bodies the status statement cannot apply were dead-lettered"
        );
    }
    queue
        .complete(jobs.iter().enumerate().map(|(i, j)| {
            let r = match dead_at.get(&i) {
                Some(err) => Err(JobError::permanent(err.clone())),
                None => Ok(()),
            };
            (j.meta.clone(), r)
        }))
        .await?;
    metrics::histogram!("ezpulze_status_batch_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("ezpulze_status_bodies_total").increment(jobs.len() as u64);
    Ok(())
}

/// Applies a folded batch: its statuses, the senders' customer-service windows, then its
/// inbound consent keywords.
async fn apply_all(
    db: &PgPool,
    budget: Option<&Budget>,
    batch: &FoldedBatch,
) -> anyhow::Result<()> {
    apply_folded(db, &batch.folded).await?;
    if let Some(budget) = budget {
        let senders: Vec<(Uuid, &str, i64)> = batch
            .inbound
            .iter()
            .map(|m| (m.account_id, m.phone.as_str(), m.at))
            .collect();
        // Best effort: a sender not recorded only counts toward the budget (conservative).
        if let Err(e) = budget.record_inbound(&senders).await {
            metrics::counter!("ezpulze_status_step_errors_total").increment(1);
            tracing::warn!(
                error = format!("{e:#}"),
                "recording inbound senders failed; their messages count toward the messaging limit"
            );
        }
    }
    let mut attempt = 1;
    loop {
        match consent::apply(db, &batch.inbound).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < APPLY_TRIES && !is_data_error(&e) => {
                attempt += 1;
                tracing::warn!(
                    error = format!("{e:#}"),
                    attempt,
                    "consent keywords of a status batch failed; retrying"
                );
            }
            Err(e) => return Err(e),
        }
    }
}

/// Applies folded events (a deadlock with another consumer is retried) and parks those
/// for messages not known yet.
async fn apply_folded(db: &PgPool, folded: &[Folded]) -> anyhow::Result<()> {
    let mut attempt = 1;
    let unmatched = loop {
        match apply(db, folded).await {
            Ok(u) => break u,
            Err(e) if attempt < APPLY_TRIES && !is_data_error(&e) => {
                attempt += 1;
                tracing::warn!(
                    error = format!("{e:#}"),
                    attempt,
                    "status batch failed; retrying"
                );
            }
            Err(e) => return Err(e),
        }
    };
    reduce::park(db, &unmatched).await
}

/// Whether Postgres refused the statement for the data it carried (SQLSTATE classes 22 data
/// exception, 23 integrity constraint, 54 program limit): the same bodies would fail again.
fn is_data_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<sqlx::Error>()
            .and_then(|s| s.as_database_error())
            .and_then(|d| d.code())
            .is_some_and(|code| ["22", "23", "54"].iter().any(|p| code.starts_with(p)))
    })
}
