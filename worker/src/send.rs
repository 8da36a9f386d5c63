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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use ezpulze_common::config::UnknownOutcomePolicy;
use ezpulze_common::jobs::SendJob;
use ezpulze_queue::{Job, JobError, JobMeta, Queue};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use crate::classify::{classify, Class, HaltScope, RetrySchedules, Rule};
use crate::db::{self, Claimed, Failures, Requeue};
use crate::graph::{Answer, Graph};
use crate::metrics as m;
use crate::numbers::{Number, Numbers};
use crate::throttle::Throttle;

/// Error title of a message whose earlier attempt's outcome is unknown (policy `fail`).
pub const UNKNOWN_DIED: &str =
    "outcome unknown: the worker stopped mid-send (not resent, so it is never sent twice)";

/// Knobs that are not settings (tests shorten them; defaults are what production runs).
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Retry schedules per class.
    pub retry: RetrySchedules,
    /// Longest time a batch waits for throughput slots; later slots are not taken and those
    /// messages wait in the queue instead (keeps a batch well inside its lease).
    pub slot_wait: Duration,
    /// Share of a number's `messages_per_second` the workers use (Meta counts inbound
    /// messages too, and a send may leave slightly after its slot).
    pub headroom: f64,
    /// A send that could not start within this of its slot takes a new slot.
    pub late_tolerance: Duration,
    /// Gap between two messages from one number to one recipient.
    pub pair_gap: Duration,
    /// How long numbers and their decrypted tokens are cached.
    pub number_cache_ttl: Duration,
    /// Batch loops per process (default: enough to keep `WORKER_CONCURRENCY` busy, >= 2).
    pub loops: Option<usize>,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            retry: RetrySchedules::default(),
            slot_wait: Duration::from_secs(1),
            headroom: 0.9,
            late_tolerance: Duration::from_millis(50),
            pair_gap: Duration::from_secs(6),
            number_cache_ttl: Duration::from_secs(30),
            loops: None,
        }
    }
}

/// Everything a send loop needs; shared by the loops of a process.
pub(crate) struct Engine {
    pub db: PgPool,
    pub queue: Queue<SendJob>,
    pub graph: Graph,
    pub numbers: Numbers,
    pub throttle: Throttle,
    pub permits: Arc<Semaphore>,
    pub tuning: Tuning,
    pub lease: Duration,
    pub batch: usize,
    pub max_attempts: u32,
    pub policy: UnknownOutcomePolicy,
    pub graph_base: String,
    pub test_graph_base: String,
}

/// What became of one claimed message.
#[derive(Debug)]
enum Outcome {
    Accepted {
        wamid: String,
    },
    /// A failed attempt that will be retried.
    Retry {
        delay: Duration,
        code: Option<i64>,
        title: String,
        class: Class,
    },
    /// Not attempted (throughput, pair gap, late, shutdown): back to the queue, no attempt used.
    Wait {
        delay: Duration,
    },
    Failed {
        code: Option<i64>,
        title: String,
        reason: &'static str,
    },
    Halt {
        scope: HaltScope,
        label: String,
        code: Option<i64>,
        title: String,
    },
    /// Had its slot and pair gap but was not sent (shutdown, late, no intent note): like
    /// `Wait`, and its pair gap is given back.
    Unsent {
        delay: Duration,
    },
    /// Not sent because its number/account/dispatch halted earlier in the batch.
    HaltedBefore,
}

/// A halt seen in a batch.
struct HaltEvent {
    scope: HaltScope,
    number: String,
    account: Uuid,
    dispatch: Uuid,
    label: String,
    code: Option<i64>,
    title: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HaltKey {
    Number(String),
    Account(Uuid),
    Dispatch(Uuid),
}

fn code_i32(code: Option<i64>) -> Option<i32> {
    code.and_then(|c| i32::try_from(c).ok())
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
            let mine: HashSet<Uuid> = claimed.iter().map(|c| c.id).collect();
            let rest: Vec<Uuid> = ids
                .iter()
                .copied()
                .filter(|id| !mine.contains(id))
                .collect();
            self.unclaimed(&rest, &mut claimed, &mut later).await?;
        }
        let outcomes = if claimed.is_empty() {
            Vec::new()
        } else {
            self.send_all(claimed, cancel).await?
        };
        self.record(outcomes, &mut later).await?;
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

    /// Jobs whose rows were not claimable: acknowledged, except rows still `sending`.
    async fn unclaimed(
        &self,
        rest: &[Uuid],
        claimed: &mut Vec<Claimed>,
        later: &mut HashMap<Uuid, Duration>,
    ) -> anyhow::Result<()> {
        let in_flight = db::in_flight(&self.db, rest, self.lease).await?;
        let skipped = rest.len() - in_flight.len();
        if skipped > 0 {
            metrics::counter!(m::SKIPPED_TOTAL).increment(skipped as u64);
        }
        let mut stale = Vec::new();
        for r in in_flight {
            if r.stale {
                stale.push(r.id);
            } else {
                // Another worker holds it: look again when its claim would have expired.
                let wait = Duration::from_millis(u64::try_from(r.remaining_ms).unwrap_or(0));
                later.insert(r.id, wait + Duration::from_secs(1));
            }
        }
        if stale.is_empty() {
            return Ok(());
        }
        // Of the rows a dead worker held, only those whose request may have been written
        // are unknown outcomes; the others never left and go out normally.
        let started = self
            .throttle
            .send_started(&stale)
            .await
            .context("reading send intents")?;
        let mut maybe_sent = Vec::new();
        let mut unsent = Vec::new();
        for (id, s) in stale.into_iter().zip(started) {
            if s {
                maybe_sent.push(id);
            } else {
                unsent.push(id);
            }
        }
        if !unsent.is_empty() {
            let again = db::reclaim_stale(&self.db, &unsent, self.lease, false).await?;
            metrics::counter!(m::RECLAIMED_UNSENT_TOTAL).increment(again.len() as u64);
            if again.len() < unsent.len() {
                // Their dispatch was paused or cancelled meanwhile: back to queued.
                let got: HashSet<Uuid> = again.iter().map(|c| c.id).collect();
                let rest: Vec<Uuid> = unsent
                    .iter()
                    .copied()
                    .filter(|id| !got.contains(id))
                    .collect();
                db::release_stale(&self.db, &rest, self.lease).await?;
            }
            claimed.extend(again);
        }
        if maybe_sent.is_empty() {
            return Ok(());
        }
        match self.policy {
            UnknownOutcomePolicy::Fail => {
                let mut f = Failures::default();
                for id in &maybe_sent {
                    f.push(*id, None, UNKNOWN_DIED.to_owned());
                }
                let n = db::record_failed(&self.db, &f, Some(self.lease)).await?;
                metrics::counter!(m::UNKNOWN_OUTCOMES_TOTAL, "cause" => "worker_died", "action" => "failed")
                    .increment(n);
                metrics::counter!(m::FAILED_TOTAL, "reason" => "unknown_outcome").increment(n);
                tracing::warn!(messages = n, "messages of a worker that stopped mid-send marked failed (outcome unknown; UNKNOWN_OUTCOME_POLICY=fail)");
            }
            UnknownOutcomePolicy::Resend => {
                let again = db::reclaim_stale(&self.db, &maybe_sent, self.lease, true).await?;
                metrics::counter!(m::UNKNOWN_OUTCOMES_TOTAL, "cause" => "worker_died", "action" => "resent")
                    .increment(again.len() as u64);
                tracing::warn!(messages = again.len(), "messages of a worker that stopped mid-send are sent again (UNKNOWN_OUTCOME_POLICY=resend)");
                claimed.extend(again);
            }
        }
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

    /// Numbers, throughput slots and pair gaps: what can go now, at which instant.
    #[allow(clippy::type_complexity)]
    async fn plan(
        &self,
        claimed: Vec<Claimed>,
    ) -> anyhow::Result<(
        Vec<(Claimed, Outcome)>,
        Vec<(Claimed, Arc<Number>, Instant)>,
    )> {
        let mut outcomes = Vec::new();
        let mut numbers: Vec<String> = claimed
            .iter()
            .filter_map(|c| c.phone_number_id.clone())
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        let known = self.numbers.get_many(&numbers).await?;
        let mut by_number: HashMap<String, Vec<Claimed>> = HashMap::new();
        for c in claimed {
            if c.attempts > i32::try_from(self.max_attempts).unwrap_or(i32::MAX) {
                // Only reclaimed rows (policy resend) get here: their attempts are used up.
                outcomes.push((
                    c,
                    Outcome::Failed {
                        code: None,
                        title: "outcome unknown: attempts used up".to_owned(),
                        reason: "unknown_outcome",
                    },
                ));
                continue;
            }
            let Some(pn) = c.phone_number_id.clone() else {
                outcomes.push((
                    c,
                    Outcome::Failed {
                        code: None,
                        title: "the account had no WhatsApp phone number when this was sent"
                            .to_owned(),
                        reason: "config",
                    },
                ));
                continue;
            };
            match known.get(&pn) {
                None => outcomes.push((
                    c,
                    Outcome::Failed {
                        code: None,
                        title: "the dispatch's phone number is no longer configured".to_owned(),
                        reason: "config",
                    },
                )),
                Some(n) if n.token.is_none() => outcomes.push((
                    c,
                    Outcome::Halt {
                        scope: HaltScope::Number,
                        label: "token_unreadable".to_owned(),
                        code: None,
                        title: "the number's access token cannot be decrypted (EZPULZE_SECRETS_KEY changed?)"
                            .to_owned(),
                    },
                )),
                Some(_) => by_number.entry(pn).or_default().push(c),
            }
        }
        let mut granted: Vec<(Claimed, Arc<Number>, Instant)> = Vec::new();
        for (pn, msgs) in by_number {
            let Some(n) = known.get(&pn).cloned() else {
                continue;
            };
            let grant = self
                .throttle
                .reserve(&pn, n.mps, msgs.len(), self.tuning.slot_wait)
                .await
                .context("reserving send slots")?;
            let at = Instant::now();
            let waiting = msgs.len() - grant.granted;
            if waiting > 0 {
                metrics::counter!(m::THROTTLE_WAITS_TOTAL, "reason" => "throughput")
                    .increment(waiting as u64);
            }
            for (i, c) in msgs.into_iter().enumerate() {
                if i < grant.granted {
                    metrics::histogram!(m::SLOT_WAIT_SECONDS).record(grant.slot(i).as_secs_f64());
                    granted.push((c, n.clone(), at + grant.slot(i)));
                } else {
                    let j = u32::try_from(i - grant.granted).unwrap_or(u32::MAX);
                    let delay = grant.next_free + grant.interval * j;
                    outcomes.push((c, Outcome::Wait { delay }));
                }
            }
        }
        let now = Instant::now();
        let items: Vec<(&str, &str, Duration)> = granted
            .iter()
            .map(|(c, _, at)| {
                (
                    c.phone_number_id.as_deref().unwrap_or_default(),
                    c.to_phone.as_str(),
                    at.saturating_duration_since(now),
                )
            })
            .collect();
        let verdicts = self
            .throttle
            .pairs(&items, self.tuning.pair_gap)
            .await
            .context("checking pair gaps")?;
        let mut sendable = Vec::with_capacity(granted.len());
        for (g, v) in granted.into_iter().zip(verdicts) {
            match v {
                None => sendable.push(g),
                Some(wait) => {
                    metrics::counter!(m::THROTTLE_WAITS_TOTAL, "reason" => "pair").increment(1);
                    outcomes.push((g.0, Outcome::Wait { delay: wait }));
                }
            }
        }
        Ok((outcomes, sendable))
    }

    async fn send_planned(
        self: &Arc<Self>,
        sendable: Vec<(Claimed, Arc<Number>, Instant)>,
        cancel: &CancellationToken,
    ) -> Vec<(Claimed, Outcome)> {
        let halted: Arc<Mutex<Vec<HaltKey>>> = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::with_capacity(sendable.len());
        for (c, n, at) in sendable {
            let permit = tokio::select! {
                p = self.permits.clone().acquire_owned() => p.ok(),
                _ = cancel.cancelled() => None,
            };
            let engine = self.clone();
            let halted = halted.clone();
            let cancel = cancel.clone();
            tasks.push(tokio::spawn(async move {
                let Some(_permit) = permit else {
                    return (
                        c,
                        Outcome::Unsent {
                            delay: Duration::ZERO,
                        },
                    );
                };
                engine.send_one(c, n, at, halted, cancel).await
            }));
        }
        let mut out = Vec::with_capacity(tasks.len());
        for t in futures::future::join_all(tasks).await {
            match t {
                Ok(r) => out.push(r),
                // A panicked send: its row stays `sending` and is settled as an unknown
                // outcome when its job comes back after the lease.
                Err(e) => tracing::error!(error = %e, "a send task failed"),
            }
        }
        out
    }

    async fn send_one(
        &self,
        mut c: Claimed,
        n: Arc<Number>,
        at: Instant,
        halted: Arc<Mutex<Vec<HaltKey>>>,
        cancel: CancellationToken,
    ) -> (Claimed, Outcome) {
        // Not started yet at shutdown: handed back to the queue.
        if !cancel.is_cancelled() {
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = cancel.cancelled() => {}
            }
        }
        if cancel.is_cancelled() {
            return (
                c,
                Outcome::Unsent {
                    delay: Duration::ZERO,
                },
            );
        }
        let pn = c.phone_number_id.clone().unwrap_or_default();
        {
            let h = halted.lock().unwrap_or_else(|p| p.into_inner());
            if h.iter().any(|k| match k {
                HaltKey::Number(x) => *x == pn,
                HaltKey::Account(a) => *a == c.account_id,
                HaltKey::Dispatch(d) => *d == c.dispatch_id,
            }) {
                return (c, Outcome::HaltedBefore);
            }
        }
        let Some(token) = n.token.as_ref() else {
            return (c, Outcome::HaltedBefore);
        };
        let base = if c.test_mode {
            &self.test_graph_base
        } else {
            &self.graph_base
        };
        // The intent note must be stored before the request is written (see `unclaimed`).
        if let Err(e) = self.throttle.mark_sending(&c.id, self.lease * 4).await {
            tracing::warn!(error = %e, "could not note the send intent; the message waits");
            return (
                c,
                Outcome::Unsent {
                    delay: Duration::from_secs(1),
                },
            );
        }
        // Checked after the intent note, as close to the write as possible.
        if at.elapsed() > self.tuning.late_tolerance {
            // Too late for its slot (a stalled process): sending now could crowd the next
            // second of the number's budget, so it takes a new slot instead.
            metrics::counter!(m::THROTTLE_WAITS_TOTAL, "reason" => "late").increment(1);
            return (
                c,
                Outcome::Unsent {
                    delay: Duration::from_millis(100),
                },
            );
        }
        let body = Bytes::from(std::mem::take(&mut c.payload));
        let answer = self
            .graph
            .send(base, &pn, token.expose_secret(), body)
            .await;
        let outcome = self.decide(&c, answer);
        if let Outcome::Halt { scope, .. } = &outcome {
            let key = match scope {
                HaltScope::Number => HaltKey::Number(pn),
                HaltScope::Account => HaltKey::Account(c.account_id),
                HaltScope::Dispatch => HaltKey::Dispatch(c.dispatch_id),
            };
            halted.lock().unwrap_or_else(|p| p.into_inner()).push(key);
        }
        (c, outcome)
    }

    /// The outcome of one answer, per the table and the attempt count.
    fn decide(&self, c: &Claimed, answer: Answer) -> Outcome {
        let attempts = u32::try_from(c.attempts.max(1)).unwrap_or(1);
        match answer {
            Answer::Accepted { wamid } => {
                metrics::counter!(m::SENDS_TOTAL, "class" => "accepted").increment(1);
                Outcome::Accepted { wamid }
            }
            Answer::Error {
                status,
                code,
                title,
                transient,
                retry_after,
            } => {
                metrics::counter!(m::SEND_ERRORS_TOTAL, "code" => m::code_label(code)).increment(1);
                let rule = classify(code, status, transient);
                if !rule.known {
                    metrics::counter!(m::UNKNOWN_CODES_TOTAL).increment(1);
                    tracing::warn!(
                        code = ?code,
                        status,
                        class = rule.class.label(),
                        "Graph error code not in the table (treated as permanent unless transient): add it to worker/src/classify.rs"
                    );
                }
                metrics::counter!(m::SENDS_TOTAL, "class" => rule.class.label()).increment(1);
                match rule.class {
                    Class::Accepted | Class::Permanent => Outcome::Failed {
                        code,
                        title,
                        reason: "permanent",
                    },
                    Class::RetryFast | Class::RetrySlow => {
                        self.retry(&rule, attempts, code, title, retry_after)
                    }
                    Class::Halt => Outcome::Halt {
                        scope: rule.scope,
                        label: code.map_or_else(|| format!("http_{status}"), |c| c.to_string()),
                        code,
                        title,
                    },
                }
            }
            Answer::Ambiguous { reason } => {
                metrics::counter!(m::SENDS_TOTAL, "class" => "ambiguous").increment(1);
                match self.policy {
                    UnknownOutcomePolicy::Fail => {
                        metrics::counter!(m::UNKNOWN_OUTCOMES_TOTAL, "cause" => "timeout", "action" => "failed")
                            .increment(1);
                        Outcome::Failed {
                            code: None,
                            title: format!(
                                "outcome unknown: {reason} (not resent, so it is never sent twice)"
                            ),
                            reason: "unknown_outcome",
                        }
                    }
                    UnknownOutcomePolicy::Resend => {
                        metrics::counter!(m::UNKNOWN_OUTCOMES_TOTAL, "cause" => "timeout", "action" => "resent")
                            .increment(1);
                        let rule = classify(None, 503, false);
                        self.retry(
                            &rule,
                            attempts,
                            None,
                            format!("outcome unknown: {reason}"),
                            None,
                        )
                    }
                }
            }
            Answer::NotSent { reason } => {
                metrics::counter!(m::SENDS_TOTAL, "class" => "not_sent").increment(1);
                let rule = classify(None, 503, false);
                self.retry(&rule, attempts, None, format!("not sent: {reason}"), None)
            }
        }
    }

    fn retry(
        &self,
        rule: &Rule,
        attempts: u32,
        code: Option<i64>,
        title: String,
        retry_after: Option<Duration>,
    ) -> Outcome {
        let cap = rule
            .max_attempts
            .map_or(self.max_attempts, |c| c.min(self.max_attempts));
        if attempts >= cap {
            return Outcome::Failed {
                code,
                title: format!("{title} (gave up after {attempts} attempts)"),
                reason: "exhausted",
            };
        }
        Outcome::Retry {
            delay: self.tuning.retry.delay(rule, attempts, retry_after),
            code,
            title,
            class: rule.class,
        }
    }

    /// Writes a batch's outcomes: pauses first (so no other worker picks the halted rows up),
    /// then one statement per kind.
    async fn record(
        &self,
        outcomes: Vec<(Claimed, Outcome)>,
        later: &mut HashMap<Uuid, Duration>,
    ) -> anyhow::Result<()> {
        let mut acc_ids = Vec::new();
        let mut acc_wamids = Vec::new();
        let mut rq = Requeue::default();
        let mut fl = Failures::default();
        let mut halts: Vec<HaltEvent> = Vec::new();
        let mut throttled: HashSet<String> = HashSet::new();
        let mut unsent_pairs: Vec<(String, String)> = Vec::new();
        // Rows going back to the queue whose request was answered or never written: their
        // send intents are cleared, so a later crash does not take them for unknown outcomes.
        let mut answered: Vec<Uuid> = Vec::new();
        for (c, o) in outcomes {
            match o {
                Outcome::Accepted { wamid } => {
                    acc_ids.push(c.id);
                    acc_wamids.push(wamid);
                }
                Outcome::Retry {
                    delay,
                    code,
                    title,
                    class,
                } => {
                    metrics::counter!(m::RETRIES_TOTAL, "class" => class.label()).increment(1);
                    if code == Some(130429) {
                        if let Some(pn) = &c.phone_number_id {
                            throttled.insert(pn.clone());
                        }
                    }
                    rq.push(c.id, delay, code_i32(code), Some(title), false);
                    later.insert(c.id, delay);
                    answered.push(c.id);
                }
                Outcome::Wait { delay } => {
                    rq.push(c.id, delay, None, None, true);
                    later.insert(c.id, delay);
                }
                Outcome::Failed {
                    code,
                    title,
                    reason,
                } => {
                    metrics::counter!(m::FAILED_TOTAL, "reason" => reason).increment(1);
                    fl.push(c.id, code_i32(code), title);
                }
                Outcome::Halt {
                    scope,
                    label,
                    code,
                    title,
                } => {
                    rq.push(
                        c.id,
                        Duration::ZERO,
                        code_i32(code),
                        Some(title.clone()),
                        true,
                    );
                    halts.push(HaltEvent {
                        scope,
                        number: c.phone_number_id.clone().unwrap_or_default(),
                        account: c.account_id,
                        dispatch: c.dispatch_id,
                        label,
                        code,
                        title,
                    });
                }
                Outcome::Unsent { delay } => {
                    answered.push(c.id);
                    unsent_pairs.push((
                        c.phone_number_id.clone().unwrap_or_default(),
                        c.to_phone.clone(),
                    ));
                    rq.push(c.id, delay, None, None, true);
                    later.insert(c.id, delay);
                }
                Outcome::HaltedBefore => {
                    unsent_pairs.push((
                        c.phone_number_id.clone().unwrap_or_default(),
                        c.to_phone.clone(),
                    ));
                    rq.push(c.id, Duration::ZERO, None, None, true);
                }
            }
        }
        let mut seen = HashSet::new();
        for HaltEvent {
            scope,
            number: pn,
            account,
            dispatch,
            label,
            code,
            title,
        } in halts
        {
            let (scope_name, key) = match scope {
                HaltScope::Number => ("number", format!("n:{pn}")),
                HaltScope::Account => ("account", format!("a:{account}")),
                HaltScope::Dispatch => ("dispatch", format!("d:{dispatch}")),
            };
            if !seen.insert(key) {
                continue;
            }
            let paused = self
                .with_retries(|| db::pause(&self.db, scope_name, &pn, account, dispatch))
                .await?;
            metrics::counter!(m::HALTS_TOTAL, "code" => label.clone()).increment(1);
            tracing::warn!(
                code = ?code,
                halt = %label,
                scope = scope_name,
                phone_number_id = %pn,
                account_id = %account,
                dispatch_id = %dispatch,
                paused_dispatches = paused,
                error_title = %title,
                "sending halted: dispatches paused; fix the cause (token, account, number quality, template) and resume them"
            );
        }
        if !unsent_pairs.is_empty() {
            if let Err(e) = self.throttle.release_pairs(&unsent_pairs).await {
                tracing::warn!(error = %e, "could not give back pair gaps of unsent messages");
            }
        }
        for pn in throttled {
            if let Err(e) = self.throttle.penalize(&pn, Duration::from_secs(1)).await {
                tracing::warn!(error = %e, "could not slow the number down after 130429");
            }
        }
        self.with_retries(|| db::requeue(&self.db, &rq)).await?;
        // Only once they are queued again: until then a crash must still see the intents.
        if let Err(e) = self.throttle.clear_intents(&answered).await {
            tracing::warn!(error = %e, "could not clear the send intents of re-queued messages");
        }
        self.with_retries(|| db::record_accepted(&self.db, &acc_ids, &acc_wamids))
            .await?;
        self.with_retries(|| db::record_failed(&self.db, &fl, None))
            .await?;
        Ok(())
    }

    /// Outcome writes are retried a few times (each is conditional on `sending`, so a
    /// repeat changes nothing): losing them would turn sent messages into unknown outcomes.
    async fn with_retries<F, Fut>(&self, f: F) -> anyhow::Result<u64>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<u64>>,
    {
        let mut wait = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            match f().await {
                Ok(n) => return Ok(n),
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(
                        error = format!("{e:#}"),
                        tries,
                        "writing outcomes failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
