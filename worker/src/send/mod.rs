//! The send loop: fetch a batch of jobs, claim their rows, take send slots, send, record.
//!
//! One batch, in order:
//! 1. the due lanes are read (`lanes`): each phone number's lane gives at most the slots its
//!    GCRA has free within `Tuning::slot_wait`, with their instants, fairly over its
//!    dispatches (high priority first, bulk keeping its share); a number at its cap is not
//!    read at all until its slots free up;
//! 2. one `UPDATE` claims the rows `queued|deferred -> sending` (and flips their dispatches to
//!    `sending`); jobs whose rows are not claimable are acknowledged (duplicates, final rows,
//!    paused or cancelled dispatches), except rows still `sending`: a live worker has them
//!    (the job comes back after the lease) or a dead one had them (unknown outcome, below);
//! 3. the portfolio messaging limit: messages over their account's budget are held as
//!    `deferred` until the window frees room (`limit`, one script call per account);
//!    per phone number, the slots the lane gave (they start once the rows are claimed), then
//!    the pair gap; messages that must wait go back to `queued` with a delayed job in their
//!    lane (not an attempt);
//! 4. sends run concurrently (bounded by a semaphore), each at its slot;
//! 5. outcomes are written with one statement per kind (UNNEST), then the jobs are settled in
//!    one script per lane (acks, and delayed re-deliveries for retries and waits): what was
//!    decided before any send at once, and the sends as they end, in groups of what ends
//!    within `Tuning::settle_every`, while the loop already fetches its next batch (a slow
//!    send holds only its own permit and job; a number whose sends keep timing out gets
//!    fewer of them in flight: `breaker`).
//!
//! No transaction is open while a request is in flight: the claim commits before the first
//! send, and each group's outcomes are written after its sends ended.
//!
//! Modules, by what they own: `lanes` (reading the lanes, draining the legacy stream),
//! `tuning` (knobs that are not settings), `plan` (numbers, slots, pair gaps), `limit` (the
//! portfolio's messaging limit: over it, `deferred`), `request` (the concurrent requests and
//! their intent notes),
//! `outcome` (what became of a message, and the decision from an answer), `recovery`
//! (rows still `sending`: unknown outcomes), `writes` (a batch's outcomes to its writes,
//! pure) and `record` (executing those writes).

pub(crate) mod breaker;
mod lanes;
mod limit;
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
use ezpulze_queue::{LaneItem, Queue};
use ezpulze_runtime::send_lanes::SendLanes;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use crate::budget::Budget;
use crate::db::{self, Claimed, Requeue};
use crate::graph::Graph;
use crate::intents::Intents;
use crate::metrics as m;
use crate::numbers::Numbers;
use crate::throttle::Throttle;
use outcome::{Decide, Outcome};

pub(crate) use lanes::drain_legacy;
pub use recovery::UNKNOWN_DIED;
pub use tuning::Tuning;

/// Everything a send loop needs; shared by the loops of a process.
pub(crate) struct Engine {
    pub db: PgPool,
    /// Where send jobs wait, a lane per phone number.
    pub lanes: SendLanes,
    /// The send stream of before the lanes: drained into them (`lanes::drain_legacy`).
    pub legacy: Queue<SendJob>,
    pub graph: Graph,
    pub numbers: Numbers,
    pub throttle: Throttle,
    /// The portfolios' messaging-limit budgets (`limit`).
    pub budget: Arc<Budget>,
    pub intents: Intents,
    pub permits: Arc<Semaphore>,
    /// Per-number breakers of sends that keep timing out.
    pub breaker: Arc<breaker::Breaker>,
    /// The settling of batches whose sends are still ending (waited for at shutdown).
    pub tails: TaskTracker,
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

/// One send loop, until `cancel`: reads the due lanes and sends what they gave.
pub(crate) async fn run_loop(engine: Arc<Engine>, name: String, cancel: CancellationToken) {
    let mut reader = lanes::Reader::new(&name, engine.lanes.lanes().shards());
    let mut backoff = Duration::from_millis(100);
    while !cancel.is_cancelled() {
        let jobs = match reader.read(&engine, &cancel).await {
            Ok(jobs) => jobs,
            Err(e) => {
                metrics::counter!(m::LOOP_ERRORS_TOTAL, "stage" => "fetch").increment(1);
                tracing::warn!(consumer = %name, error = format!("{e:#}"), "reading lanes failed; backing off");
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
    /// One batch: claim, plan, then its sends are started and this returns (the loop fetches
    /// more work); what was settled before any send (rows not claimable, waits, failures) is
    /// written and acked first, and the sends are recorded and acked as they end, in groups
    /// ([`Engine::settle_as_they_end`], a task of `tails`).
    async fn process(
        self: &Arc<Self>,
        jobs: Vec<lanes::Taken>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut metas: HashMap<Uuid, Vec<LaneItem>> = HashMap::with_capacity(jobs.len());
        let mut slots: HashMap<Uuid, Instant> = HashMap::with_capacity(jobs.len());
        let mut dispatch_of: HashMap<Uuid, Uuid> = HashMap::with_capacity(jobs.len());
        for j in jobs {
            slots.entry(j.job.message_id).or_insert(j.slot);
            dispatch_of.insert(j.job.message_id, j.job.dispatch_id);
            metas.entry(j.job.message_id).or_default().push(j.item);
        }
        let ids: Vec<Uuid> = metas.keys().copied().collect();
        let mut claimed = db::claim(&self.db, &ids).await?;
        // The slots of a read start once its rows are claimed: they all move by the claim's
        // time (each read does, so reads of one number do not overlap; see `lanes`).
        let shift = started.elapsed().min(self.tuning.slot_wait / 2);
        for at in slots.values_mut() {
            *at += shift;
        }
        let shifted_at = Instant::now();
        metrics::histogram!(m::CLAIM_BATCH_SIZE).record(claimed.len() as f64);
        let mut settle = Settle {
            metas,
            later: HashMap::new(),
        };
        if claimed.len() < ids.len() {
            let rest = not_in(&ids, &claimed);
            let mut stopped: Vec<Uuid> = rest
                .iter()
                .filter_map(|id| dispatch_of.get(id))
                .copied()
                .collect();
            stopped.sort_unstable();
            stopped.dedup();
            self.purge_stopped(&stopped).await;
            self.unclaimed(&rest, &mut claimed, &mut settle.later)
                .await?;
        }
        let (before, mut sendable) = if claimed.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            self.plan_or_hand_back(claimed, &slots).await?
        };
        // Everything that is not being sent settles now: its jobs need no send to end.
        let sending: HashSet<Uuid> = sendable.iter().map(|s| s.0.id).collect();
        let not_sending: Vec<Uuid> = settle
            .metas
            .keys()
            .filter(|id| !sending.contains(id))
            .copied()
            .collect();
        self.flush(&mut settle, before, &not_sending).await?;
        if sendable.is_empty() {
            metrics::histogram!(m::BATCH_SECONDS).record(started.elapsed().as_secs_f64());
            return Ok(());
        }
        // Planning and the writes before any send took time too (round trips that a loaded
        // host makes slow): the slots move by it as well, within the same bound, so a batch's
        // first sends are not late for slots that passed while it was being prepared.
        let more = shifted_at
            .elapsed()
            .min((self.tuning.slot_wait / 2).saturating_sub(shift));
        for s in &mut sendable {
            s.2 += more;
        }
        let tasks = self.start_sends(sendable, cancel).await;
        let engine = self.clone();
        self.tails.spawn(
            async move { engine.settle_as_they_end(tasks, settle, started).await }
                .in_current_span(),
        );
        Ok(())
    }

    /// Records the sends of a batch as they end: once one ends, every send that ends within
    /// `Tuning::settle_every` joins it, and the group is written (one statement per kind) and
    /// its jobs settled (one pipeline). A slow send holds only its own job.
    async fn settle_as_they_end(
        self: Arc<Self>,
        mut tasks: JoinSet<(Claimed, Outcome)>,
        mut settle: Settle,
        started: Instant,
    ) {
        while !tasks.is_empty() {
            let mut group = Vec::new();
            let mut deadline: Option<tokio::time::Instant> = None;
            loop {
                let next = match deadline {
                    None => tasks.join_next().await,
                    Some(d) => match tokio::time::timeout_at(d, tasks.join_next()).await {
                        Ok(next) => next,
                        Err(_) => break,
                    },
                };
                match next {
                    Some(Ok(r)) => group.push(r),
                    // A panicked send: its row stays `sending` and its job is not settled,
                    // so it comes back after the lease (an unknown outcome, per policy).
                    Some(Err(e)) => tracing::error!(error = %e, "a send task failed"),
                    None => break,
                }
                deadline
                    .get_or_insert_with(|| tokio::time::Instant::now() + self.tuning.settle_every);
            }
            if group.is_empty() {
                continue;
            }
            metrics::histogram!(m::SETTLE_GROUP_SIZE).record(group.len() as f64);
            if let Err(e) = self.flush(&mut settle, group, &[]).await {
                metrics::counter!(m::LOOP_ERRORS_TOTAL, "stage" => "record").increment(1);
                tracing::error!(
                    error = format!("{e:#}"),
                    "recording sends failed; their jobs come back after the lease"
                );
            }
        }
        metrics::histogram!(m::BATCH_SECONDS).record(started.elapsed().as_secs_f64());
    }

    /// Writes `outcomes` and settles their jobs, with the jobs of `also` (rows with no
    /// outcome in this batch: not claimable, or held by another worker).
    async fn flush(
        &self,
        settle: &mut Settle,
        outcomes: Vec<(Claimed, Outcome)>,
        also: &[Uuid],
    ) -> anyhow::Result<()> {
        let mut ids: Vec<Uuid> = outcomes.iter().map(|(c, _)| c.id).collect();
        ids.extend_from_slice(also);
        if ids.is_empty() {
            return Ok(());
        }
        let writes = writes::batch_writes(outcomes);
        settle.later.extend(writes.later.iter().copied());
        self.record(writes).await?;
        let (done, later) = settle.take(&ids);
        let mut lanes: HashMap<&str, LaneSettle<'_>> = HashMap::new();
        for item in &done {
            lanes.entry(item.lane.as_str()).or_default().0.push(item);
        }
        for (item, d) in &later {
            lanes
                .entry(item.lane.as_str())
                .or_default()
                .1
                .push((item, *d));
        }
        let settles = lanes
            .iter()
            .map(|(lane, (done, later))| self.lanes.lanes().settle(lane, done, later));
        for r in futures::future::join_all(settles).await {
            r.context("settling jobs")?;
        }
        Ok(())
    }

    /// Takes slots for every claimed message: the outcomes settled before any send, and what
    /// can go. On an error nothing was sent: the claimed rows are handed back.
    async fn plan_or_hand_back(
        self: &Arc<Self>,
        claimed: Vec<Claimed>,
        slots: &HashMap<Uuid, Instant>,
    ) -> anyhow::Result<(Vec<(Claimed, Outcome)>, Vec<plan::Sendable>)> {
        let ids: Vec<Uuid> = claimed.iter().map(|c| c.id).collect();
        match self.plan(claimed, slots).await {
            Ok(planned) => Ok(planned),
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

/// One lane's part of a settlement: acks, and re-deliveries with their delays.
type LaneSettle<'a> = (Vec<&'a LaneItem>, Vec<(&'a LaneItem, Duration)>);

/// A batch's jobs not settled yet, and the delays of those to deliver again.
struct Settle {
    metas: HashMap<Uuid, Vec<LaneItem>>,
    /// Jobs to deliver again later (retries, waits, rows another worker still holds).
    later: HashMap<Uuid, Duration>,
}

impl Settle {
    /// The jobs of `ids` (removed from the batch), as acks and delayed re-deliveries: one
    /// delivery of a message that comes back later goes back after its delay, the others
    /// (duplicates) are acked. A duplicate pushed with the same text is the same lane
    /// member as the delivery going back: acking it would remove that member, so the
    /// re-delivery would find nothing to delay and the message would wait with no job.
    fn take(&mut self, ids: &[Uuid]) -> (Vec<LaneItem>, Vec<(LaneItem, Duration)>) {
        let mut done = Vec::with_capacity(ids.len());
        let mut later = Vec::new();
        for id in ids {
            let Some(items) = self.metas.remove(id) else {
                continue;
            };
            match self.later.remove(id) {
                Some(d) => {
                    let mut items = items.into_iter();
                    let Some(first) = items.next() else { continue };
                    done.extend(items.filter(|i| i.member != first.member));
                    later.push((first, d + Duration::from_millis(50)));
                }
                None => done.extend(items),
            }
        }
        (done, later)
    }
}

/// The ids of `all` that `got` does not hold (rows a claim did not take).
pub(crate) fn not_in(all: &[Uuid], got: &[db::Claimed]) -> Vec<Uuid> {
    let got: HashSet<Uuid> = got.iter().map(|c| c.id).collect();
    all.iter().copied().filter(|id| !got.contains(id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(member: &str) -> LaneItem {
        LaneItem {
            lane: "1001".to_owned(),
            member: member.to_owned(),
        }
    }

    #[test]
    fn a_duplicate_of_a_delivery_going_back_is_not_acked_when_it_is_the_same_member() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut s = Settle {
            metas: HashMap::from([
                (a, vec![item("d|a"), item("d|a"), item("d|a2")]),
                (b, vec![item("d|b"), item("d|b")]),
            ]),
            later: HashMap::from([(a, Duration::from_millis(100))]),
        };
        let (done, later) = s.take(&[a, b]);
        let done: Vec<&str> = done.iter().map(|i| i.member.as_str()).collect();
        assert_eq!(done, vec!["d|a2", "d|b", "d|b"]);
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].0.member, "d|a");
        assert_eq!(later[0].1, Duration::from_millis(150));
        assert!(s.metas.is_empty() && s.later.is_empty());
    }
}
