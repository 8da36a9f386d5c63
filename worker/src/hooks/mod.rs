//! The deliverer of integrator events (outbound webhooks), run by every worker process
//! (`WEBHOOK_DELIVERERS=0` turns it off). The contract is `docs/integrator-events.md`.
//!
//! The queue of record is `webhook_deliveries` in Postgres: its rows are created in the same
//! statement as the transition they report (status reducer, failures, sweeps, pauses,
//! completions), so an event exists exactly when its transition committed. Each pass:
//! 1. finds the active endpoints with due deliveries (`claim::due_endpoints`);
//! 2. takes rate slots for each from its GCRA in Redis (`slots`: the per-number throughput's
//!    mechanism, shared by every worker process, so an endpoint never gets more than its
//!    `max_per_second`), as many as this process may still start for it within the next second
//!    and its per-endpoint concurrency allows;
//! 3. claims that many due rows in one statement (`FOR UPDATE SKIP LOCKED`, leased);
//! 4. posts each when its slot comes (`post`: signed, bounded, no redirects, SSRF-checked at
//!    connect time) and hands the outcome to the recorder (`record`), which writes outcomes
//!    in batches, schedules retries and disables endpoints that fail for days.
//!
//! | module | owns |
//! |---|---|
//! | `claim` | due endpoints, the claim statement, expired leases |
//! | `slots` | the per-endpoint GCRA in Redis |
//! | `post` | one signed HTTP attempt and its classification |
//! | `record` | batched outcome writes, retry schedule, endpoint failure tracking |

mod claim;
mod post;
mod record;
mod slots;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ezpulze_common::config::WebhookDelivery;
use ezpulze_common::redis_conn::RedisConn;
use ezpulze_common::secrets::Sealer;
use sqlx::PgPool;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use post::{Attempt, Outcome};
pub use record::next_attempt_delay;

/// How far ahead a pass takes slots.
const HORIZON: Duration = Duration::from_secs(1);
/// A pass with nothing to do waits this long (or until a delivery ends).
const IDLE: Duration = Duration::from_millis(100);
/// Passes are at least this far apart: a pass per finished attempt would spend three round
/// trips on a handful of rows.
const PASS_SPACING: Duration = Duration::from_millis(10);
/// Expired leases are looked for this often.
const LEASE_SWEEP_EVERY: Duration = Duration::from_secs(5);

/// One worker process's deliverer.
pub struct Deliverer {
    db: PgPool,
    slots: slots::Slots,
    client: post::Client,
    sealer: Sealer,
    cfg: WebhookDelivery,
    /// Deliveries this process has claimed and not finished, per endpoint.
    active: Mutex<HashMap<Uuid, usize>>,
    /// Attempts (waiting for their slot or under way) of all endpoints in this process.
    permits: Arc<Semaphore>,
    wake: Notify,
}

impl Deliverer {
    pub fn new(
        db: PgPool,
        redis: RedisConn,
        prefix: &str,
        sealer: Sealer,
        cfg: WebhookDelivery,
    ) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            client: post::Client::new(cfg.timeout, cfg.allow_loopback)?,
            slots: slots::Slots::new(redis, prefix),
            permits: Arc::new(Semaphore::new(cfg.concurrency)),
            db,
            sealer,
            cfg,
            active: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        }))
    }

    fn active_of(&self, endpoint: Uuid) -> usize {
        self.lock_active().get(&endpoint).copied().unwrap_or(0)
    }

    fn lock_active(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, usize>> {
        self.active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn finished(&self, endpoint: Uuid) {
        let mut a = self.lock_active();
        if let Some(n) = a.get_mut(&endpoint) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                a.remove(&endpoint);
            }
        }
        drop(a);
        self.wake.notify_one();
    }

    /// Runs passes until cancelled; attempts under way finish and are recorded.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) -> anyhow::Result<()> {
        let (tx, rx) = mpsc::channel::<record::Done>(8192);
        let recorder = tokio::spawn(record::run(
            self.db.clone(),
            rx,
            self.cfg.retry_schedule.clone(),
            self.cfg.disable_after,
        ));
        let tasks = tokio_util::task::TaskTracker::new();
        let mut last_sweep: Option<Instant> = None;
        while !cancel.is_cancelled() {
            let pass_started = Instant::now();
            if last_sweep.is_none_or(|t| t.elapsed() >= LEASE_SWEEP_EVERY) {
                last_sweep = Some(Instant::now());
                if let Err(e) = claim::expire_leases(&self.db).await {
                    tracing::warn!(error = format!("{e:#}"), "expiring webhook leases failed");
                }
            }
            let started = match self.pass(&tasks, &tx).await {
                Ok(n) => n,
                Err(e) => {
                    metrics::counter!("ezpulze_webhook_pass_errors_total").increment(1);
                    tracing::warn!(error = format!("{e:#}"), "webhook delivery pass failed");
                    0
                }
            };
            if started == 0 {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(IDLE) => {}
                }
            }
            let since = pass_started.elapsed();
            if since < PASS_SPACING {
                tokio::time::sleep(PASS_SPACING - since).await;
            }
        }
        tasks.close();
        tasks.wait().await;
        drop(tx);
        recorder.await??;
        Ok(())
    }

    /// One pass: due endpoints, slots, claim, spawn. Returns how many attempts it started.
    async fn pass(
        self: &Arc<Self>,
        tasks: &tokio_util::task::TaskTracker,
        tx: &mpsc::Sender<record::Done>,
    ) -> anyhow::Result<usize> {
        let mut due = claim::due_endpoints(&self.db).await?;
        // When the process-wide permits are short, no endpoint is always first.
        rand::seq::SliceRandom::shuffle(due.as_mut_slice(), &mut rand::rng());
        // Permits are taken now, for the whole wait for the slot and the attempt: an attempt
        // never waits for one after its slot (which could make several leave together).
        let mut free = self.permits.available_permits();
        let mut wants: Vec<(claim::Endpoint, usize)> = Vec::new();
        for e in due {
            let rate = usize::try_from(e.max_per_second.max(1)).unwrap_or(1);
            let room = self
                .cfg
                .per_endpoint_concurrency
                .saturating_sub(self.active_of(e.id));
            let want = room.min(rate).min(self.cfg.batch).min(free);
            if want > 0 {
                free -= want;
                wants.push((e, want));
            }
        }
        if wants.is_empty() {
            return Ok(0);
        }
        let granted = self.slots.take(&wants, HORIZON).await?;
        let asks: Vec<(Uuid, i32)> = wants
            .iter()
            .zip(&granted)
            .filter(|(_, g)| g.count > 0)
            .map(|((e, _), g)| (e.id, i32::try_from(g.count).unwrap_or(i32::MAX)))
            .collect();
        if asks.is_empty() {
            return Ok(0);
        }
        let lease = HORIZON + self.cfg.timeout + Duration::from_secs(30);
        let claimed = claim::claim(&self.db, &asks, lease).await?;
        let taken_at = Instant::now();
        // Per endpoint, once: its grant, its next slot and its signing keys (opened once per
        // pass, shared by its attempts).
        struct Going<'a> {
            endpoint: &'a claim::Endpoint,
            grant: slots::Grant,
            next: u32,
            keys: Arc<Vec<Vec<u8>>>,
        }
        let mut going: HashMap<Uuid, Going<'_>> = wants
            .iter()
            .zip(&granted)
            .filter(|(_, g)| g.count > 0)
            .map(|((endpoint, _), grant)| {
                let keys = endpoint.keys(&self.sealer).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "an endpoint's secret cannot be opened");
                    Vec::new()
                });
                let g = Going {
                    endpoint,
                    grant: *grant,
                    next: 0,
                    keys: Arc::new(keys),
                };
                (endpoint.id, g)
            })
            .collect();
        let mut n = 0;
        for row in claimed {
            let Some(g) = going.get_mut(&row.endpoint_id) else {
                continue;
            };
            let at = taken_at + g.grant.first + g.grant.interval * g.next;
            g.next += 1;
            let (endpoint, keys) = (g.endpoint, g.keys.clone());
            *self.lock_active().entry(endpoint.id).or_insert(0) += 1;
            let me = self.clone();
            let tx = tx.clone();
            let url = endpoint.url.clone();
            // Available: this pass counted them, and only attempts give them back meanwhile.
            let permit = self.permits.clone().try_acquire_owned().ok();
            n += 1;
            let rate = endpoint.max_per_second;
            tasks.spawn(async move {
                let _permit = permit;
                tokio::time::sleep_until(at.into()).await;
                // Woken late (a busy process): a new slot, so as not to leave with the next.
                if at.elapsed() > slots::LATE {
                    match me.slots.one(row.endpoint_id, rate).await {
                        Ok(wait) => tokio::time::sleep(wait).await,
                        Err(e) => {
                            tracing::warn!(
                                error = format!("{e:#}"),
                                "taking a new webhook slot failed"
                            );
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                let attempt = me.client.post(&url, &keys, &row).await;
                metrics::histogram!("ezpulze_webhook_attempt_seconds")
                    .record(attempt.latency.as_secs_f64());
                let endpoint = row.endpoint_id;
                if tx.send(record::Done { row, attempt }).await.is_err() {
                    tracing::warn!("the webhook recorder stopped; the lease will retry");
                }
                me.finished(endpoint);
            });
        }
        Ok(n)
    }
}
