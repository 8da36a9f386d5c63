//! The scheduler: one active replica (a Redis lease; the others stand by and take over when
//! the lease lapses) runs the periodic work of the engine:
//! - releases scheduled dispatches when their time comes (rows `scheduled -> queued`, jobs
//!   pushed): the api puts a delayed `ReleaseJob` on the schedule queue, due at `scheduled_at`,
//!   and the leader consumes it; a scan of due dispatches is the safety net for a lost push;
//! - the outbox sweep, every 5 s (rows still `queued` after `OUTBOX_AFTER_SECS`, whose
//!   dispatch has no job left in its lane, get their jobs again: `outbox`);
//! - the unknown-outcome sweep (rows stuck in `sending`, i.e. a worker died mid-send and its job
//!   was lost too, follow `UNKNOWN_OUTCOME_POLICY`);
//! - the accepted sweep (rows `accepted` by WhatsApp whose status webhooks never came, past
//!   `ACCEPTED_STATUS_HORIZON_SECS`, end `sent` with a note: `tasks::sweep_accepted`);
//! - completion: active dispatches with no message waiting are stored `completed`, each with
//!   its `dispatch.completed` integrator event (`hooks`), and the webhook backlog gauges;
//! - retention: daily `messages` partitions are created ahead and dropped after `RETENTION_DAYS`;
//!   Idempotency-Key records older than 24 h are deleted with it;
//! - with retention, hourly: the queues' consumer names of worker processes that stopped
//!   (nothing pending, silent for an hour) are deleted from their groups;
//! - the template sync with Meta every `TEMPLATE_SYNC_SECS`, one account at a time, in its own
//!   task beside the tick (`template_sync`).
//!
//! Each tick's work is bounded (batches), so a tick never runs long.
#![forbid(unsafe_code)]

pub mod hooks;
pub mod lease;
pub mod numbers;
pub mod outbox;
pub mod tasks;
pub mod template_sync;

use std::time::{Duration, Instant};

use anyhow::Context;
use ezpulze_common::jobs::{ReleaseJob, SendJob, WebhookBody};
use ezpulze_common::Config;
use ezpulze_queue::Queue;
use ezpulze_runtime::queues;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// How often the leader runs its tick, and how long a lease lasts without renewal.
pub const TICK: Duration = Duration::from_secs(1);
pub const LEASE: Duration = Duration::from_secs(10);
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// The outbox sweep runs at most this often (it reads the active dispatches and asks their
/// lanes whether they still hold jobs).
pub const OUTBOX_EVERY: Duration = Duration::from_secs(5);
/// A consumer silent this long with nothing pending belongs to a process that stopped.
const CONSUMER_IDLE: Duration = Duration::from_secs(3600);

pub struct Scheduler {
    pub config: Config,
    pub db: PgPool,
    /// The legacy send stream (its consumer names are pruned, its gauges reported).
    pub queue: Queue<SendJob>,
    /// Where released and re-pushed jobs go.
    pub lanes: ezpulze_runtime::send_lanes::SendLanes,
    /// When the outbox last swept (sweeps are spaced by [`OUTBOX_EVERY`]).
    last_outbox: std::sync::Mutex<Option<Instant>>,
    pub schedule: Queue<ReleaseJob>,
    /// Only to forget stopped status consumers (the workers read it).
    webhooks: Vec<Queue<WebhookBody>>,
    releases: tokio::sync::Mutex<ezpulze_queue::Consumer<ReleaseJob>>,
    pub lease: lease::Lease,
    /// The Redis connection `/readyz` checks (the queues and the lease have their own).
    pub redis: ezpulze_common::redis_conn::RedisConn,
}

impl Scheduler {
    pub async fn connect(config: Config) -> anyhow::Result<Self> {
        let ezpulze_runtime::stores::Stores {
            db: pool, redis, ..
        } = ezpulze_runtime::stores::open(&config).await?;
        let queue = queues::connect(&config, queues::send(&config)).await?;
        let lanes = ezpulze_runtime::send_lanes::SendLanes::connect(
            &config,
            ezpulze_runtime::send_lanes::config(&config),
        )
        .await?;
        let schedule = queues::connect(
            &config,
            queues::schedule(&config).with_block(Duration::from_millis(100)),
        )
        .await?;
        let webhooks = queues::connect_webhooks(&config).await?;
        let releases = tokio::sync::Mutex::new(schedule.consumer("scheduler"));
        let lease = lease::Lease::new(redis.clone(), &config.redis_prefix, LEASE);
        let redis = redis.clone();
        Ok(Self {
            config,
            db: pool,
            queue,
            lanes,
            last_outbox: std::sync::Mutex::new(None),
            schedule,
            webhooks,
            releases,
            lease,
            redis,
        })
    }

    /// One round of the leader's work.
    pub async fn tick(&self) -> anyhow::Result<tasks::TickReport> {
        let mut releases = self.releases.lock().await;
        let due = releases
            .fetch_batch(100)
            .await
            .context("reading due releases")?;
        let ids: Vec<uuid::Uuid> = due.iter().map(|j| j.payload.dispatch_id).collect();
        let mut report = tasks::TickReport::default();
        if !ids.is_empty() {
            let (d, m) = tasks::release(&self.db, &self.lanes, Some(&ids)).await?;
            report.released_dispatches += d;
            report.released_messages += m;
            self.schedule
                .complete(due.into_iter().map(|j| (j.meta, Ok(()))))
                .await
                .context("acking releases")?;
        }
        let outbox = {
            let mut last = self
                .last_outbox
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let due = last.is_none_or(|t| t.elapsed() >= OUTBOX_EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        let rest = tasks::tick(&self.db, &self.lanes, &self.queue, &self.config, outbox).await?;
        report.released_dispatches += rest.released_dispatches;
        report.released_messages += rest.released_messages;
        report.repushed = rest.repushed;
        report.unknown_swept = rest.unknown_swept;
        report.accepted_swept = rest.accepted_swept;
        report.completed = hooks::complete_dispatches(&self.db).await?;
        if outbox {
            hooks::backlog_gauges(&self.db).await?;
            numbers::gauges(&self.db).await?;
        }
        Ok(report)
    }

    /// Forgets the queues' consumer names of worker processes that stopped
    /// (nothing pending, no read for `idle`). Returns how many.
    pub async fn prune_consumers(&self, idle: Duration) -> anyhow::Result<usize> {
        let mut n = self.queue.prune_consumers(idle).await?;
        n += self.schedule.prune_consumers(idle).await?;
        for w in &self.webhooks {
            n += w.prune_consumers(idle).await?;
        }
        metrics::counter!("ezpulze_scheduler_consumers_pruned_total").increment(n as u64);
        Ok(n)
    }

    /// Holds or waits for the lease and ticks while leader, until cancelled.
    pub async fn run(&self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut last_retention: Option<Instant> = None;
        // The template sync runs in its own task while this process leads.
        let leading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sync_task =
            template_sync::TemplateSync::new(self.db.clone(), self.lanes.clone(), &self.config)?
                .map(|s| tokio::spawn(s.run(leading.clone(), cancel.child_token())));
        while !cancel.is_cancelled() {
            let leader = match self.lease.acquire_or_renew().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler lease check failed");
                    false
                }
            };
            leading.store(leader, std::sync::atomic::Ordering::Relaxed);
            metrics::gauge!("ezpulze_scheduler_leader").set(if leader { 1.0 } else { 0.0 });
            if leader {
                if let Err(e) = self.tick().await {
                    metrics::counter!("ezpulze_scheduler_tick_failures_total").increment(1);
                    tracing::warn!(error = format!("{e:#}"), "scheduler tick failed");
                }
                if last_retention.is_none_or(|t| t.elapsed() > RETENTION_EVERY) {
                    match tasks::retention(&self.db, self.config.retention_days).await {
                        Ok(dropped) => {
                            last_retention = Some(Instant::now());
                            if !dropped.is_empty() {
                                tracing::info!(partitions = ?dropped, "dropped expired message partitions");
                            }
                        }
                        Err(e) => tracing::warn!(error = format!("{e:#}"), "retention failed"),
                    }
                    if let Err(e) = self.prune_consumers(CONSUMER_IDLE).await {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "pruning stopped consumers failed"
                        );
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
        leading.store(false, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = sync_task {
            let _ = t.await;
        }
        self.lease.release().await.ok();
        Ok(())
    }
}

/// The whole process: connect, serve the ops endpoints, run until cancelled.
pub async fn run(config: Config, cancel: CancellationToken) -> anyhow::Result<()> {
    let addr = config.scheduler_metrics_addr;
    let scheduler = Scheduler::connect(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let ops = tokio::spawn(ezpulze_runtime::ops::serve(
        listener,
        scheduler.db.clone(),
        Some(scheduler.redis.clone()),
        cancel.clone(),
    ));
    tracing::info!(%addr, "scheduler running");
    scheduler.run(cancel).await?;
    ops.await.context("ops server task")??;
    Ok(())
}
