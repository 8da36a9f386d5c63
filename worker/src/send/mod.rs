//! The send loop: fetch a batch of jobs, claim their rows, take send slots, send, record.
//!
//! One batch, in order:
//! 1. `fetch_batch` from the queue (blocks briefly when empty);
//! 2. one `UPDATE` claims the rows `queued -> sending` (and flips their dispatches to
//!    `sending`); jobs whose rows are not claimable are acknowledged (duplicates, final rows,
//!    paused or cancelled dispatches), except rows still `sending`: a live worker has them
//!    (the job comes back after the lease) or a dead one had them (unknown outcome, below);
//! 3. per phone number, send slots from the shared GCRA (Redis), then the pair gap; messages
//!    that must wait go back to `queued` with a delayed job (not an attempt);
//! 4. sends run concurrently (bounded by a semaphore), each at its slot;
//! 5. outcomes are written with one statement per kind (UNNEST), then the jobs are settled in
//!    one Redis pipeline (acks, and delayed re-deliveries for retries and waits).
//!
//! No transaction is open while a request is in flight: the claim commits before the first
//! send, and the outcomes are written after the last one.
//!
//! Modules, by what they own: `tuning` (knobs that are not settings), `plan` (numbers,
//! slots, pair gaps), `request` (the concurrent requests and their intent notes),
//! `outcome` (what became of a message, and the decision from an answer), `recovery`
//! (rows still `sending`: unknown outcomes), `writes` (a batch's outcomes to its writes,
//! pure) and `record` (executing those writes).

mod outcome;
mod plan;
mod record;
mod recovery;
mod request;
mod tuning;
mod writes;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ezpulze_common::config::UnknownOutcomePolicy;
use ezpulze_common::jobs::SendJob;
use ezpulze_queue::{Job, JobError, JobMeta, Queue};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::db::{self, Claimed, Requeue};
use crate::graph::Graph;
use crate::intents::Intents;
use crate::metrics as m;
use crate::numbers::Numbers;
use crate::throttle::Throttle;
use outcome::{Decide, Outcome};

pub use recovery::UNKNOWN_DIED;
pub use tuning::Tuning;

/// Everything a send loop needs; shared by the loops of a process.
pub(crate) struct Engine {
    pub db: PgPool,
    pub queue: Queue<SendJob>,
    pub graph: Graph,
    pub numbers: Numbers,
    pub throttle: Throttle,
    pub intents: Intents,
    pub permits: Arc<Semaphore>,
    pub tuning: Tuning,
    pub lease: Duration,
    pub batch: usize,
    pub max_attempts: u32,
    pub policy: UnknownOutcomePolicy,
    pub graph_base: String,
    pub test_graph_base: String,
    /// The token of test-mode sends (never the account's own).
    pub test_graph_token: secrecy::SecretString,
}

/// Sleeps `d` unless cancelled first (returns false when cancelled).
async fn nap(d: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = cancel.cancelled() => false,
    }
}

/// One send loop with its own queue consumer, until `cancel`.
pub(crate) async fn run_loop(engine: Arc<Engine>, name: String, cancel: CancellationToken) {
    let mut consumer = engine.queue.consumer(name.clone());
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        let jobs = match consumer.fetch_batch(engine.batch).await {
            Ok(jobs) => jobs,
            Err(e) => {
                metrics::counter!(m::LOOP_ERRORS_TOTAL, "stage" => "fetch").increment(1);
                tracing::warn!(consumer = %name, error = %e, "fetching jobs failed; backing off");
                nap(backoff, &cancel).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if jobs.is_empty() {
            continue;
        }
        let span = tracing::info_span!("send_batch", consumer = %name, jobs = jobs.len());
        match engine.process(jobs, &cancel).instrument(span).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                metrics::counter!(m::LOOP_ERRORS_TOTAL, "stage" => "batch").increment(1);
                tracing::error!(consumer = %name, error = format!("{e:#}"), "send batch failed; its jobs come back after the lease");
                nap(backoff, &cancel).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::debug!(consumer = %name, "send loop stopped");
}

impl Engine {
    /// One batch, from claim to settled jobs.
    async fn process(
        self: &Arc<Self>,
        jobs: Vec<Job<SendJob>>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut metas: HashMap<Uuid, Vec<JobMeta>> = HashMap::with_capacity(jobs.len());
        for j in jobs {
            metas.entry(j.payload.message_id).or_default().push(j.meta);
        }
        let ids: Vec<Uuid> = metas.keys().copied().collect();
        let mut claimed = db::claim(&self.db, &ids).await?;
        metrics::histogram!(m::CLAIM_BATCH_SIZE).record(claimed.len() as f64);
        // Jobs to deliver again later (retries, waits, rows another worker still holds).
        let mut later: HashMap<Uuid, Duration> = HashMap::new();
        if claimed.len() < ids.len() {
            let rest = not_in(&ids, &claimed);
            self.unclaimed(&rest, &mut claimed, &mut later).await?;
        }
        let outcomes = if claimed.is_empty() {
            Vec::new()
        } else {
            self.send_all(claimed, cancel).await?
        };
        let writes = writes::batch_writes(outcomes);
        later.extend(writes.later.iter().copied());
        self.record(writes).await?;
        let results = metas.into_iter().flat_map(|(id, metas)| {
            let again = later.get(&id).copied();
            metas
                .into_iter()
                .enumerate()
                .map(move |(i, meta)| match again {
                    // One delivery comes back later; duplicates are dropped.
                    Some(d) if i == 0 => (
                        meta,
                        Err(JobError::retry_after(
                            d + Duration::from_millis(50),
                            "send later",
                        )),
                    ),
                    _ => (meta, Ok(())),
                })
        });
        self.queue
            .complete(results)
            .await
            .context("settling jobs")?;
        metrics::histogram!(m::BATCH_SECONDS).record(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Takes slots and sends every claimed message; returns each one's outcome. On an error
    /// before any send, the claimed rows are handed back.
    async fn send_all(
        self: &Arc<Self>,
        claimed: Vec<Claimed>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Vec<(Claimed, Outcome)>> {
        let ids: Vec<Uuid> = claimed.iter().map(|c| c.id).collect();
        match self.plan(claimed).await {
            Ok((mut outcomes, sendable)) => {
                outcomes.extend(self.send_planned(sendable, cancel).await);
                Ok(outcomes)
            }
            Err(e) => {
                // Nothing was sent: give the rows back (best effort) so they are not taken
                // for unknown outcomes when their jobs come back.
                let mut r = Requeue::default();
                for id in ids {
                    r.push(id, Duration::from_secs(1), None, None, true);
                }
                if let Err(e2) = db::requeue(&self.db, &r).await {
                    tracing::error!(
                        error = format!("{e2:#}"),
                        "could not hand claimed rows back"
                    );
                }
                Err(e)
            }
        }
    }

    /// How answers become outcomes in this process.
    fn decide(&self) -> Decide<'_> {
        Decide {
            policy: self.policy,
            max_attempts: self.max_attempts,
            retry: &self.tuning.retry,
        }
    }
}

/// The ids of `all` that `got` does not hold (rows a claim did not take).
pub(crate) fn not_in(all: &[Uuid], got: &[db::Claimed]) -> Vec<Uuid> {
    let got: HashSet<Uuid> = got.iter().map(|c| c.id).collect();
    all.iter().copied().filter(|id| !got.contains(id)).collect()
}
