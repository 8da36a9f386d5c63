//! Reading the send lanes (a lane per phone number, see `ezpulze_queue::lanes`), and draining
//! the send stream of before the lanes into them.
//!
//! A read: the registry's due lanes (every shard, this loop's first shard rotating), at most
//! `WORKER_BATCH / 8` per shard; each is read once with its number's slot spacing, so it
//! gives only the slots free within `Tuning::slot_wait`, and at most its share of the batch
//! (`WORKER_BATCH / due lanes`, at least one). Its next visit goes into the registry before
//! the batch is processed, so other loops and processes can read it at once when it has free
//! slots. With no lane due, the loop sleeps until the first one is (at most [`IDLE`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use ezpulze_common::jobs::SendJob;
use ezpulze_queue::{LaneItem, TakeLimits};
use ezpulze_runtime::send_lanes;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{nap, Engine};
use crate::metrics as m;
use crate::throttle::interval_for;

/// Longest sleep of a loop with no lane due (a push is seen within it).
pub const IDLE: Duration = Duration::from_millis(20);

/// A job read from a lane, with its slot.
#[derive(Debug)]
pub(crate) struct Taken {
    pub job: SendJob,
    pub item: LaneItem,
    pub slot: Instant,
}

/// One loop's reading state.
pub(crate) struct Reader {
    first: u16,
    shards: u16,
}

impl Reader {
    pub fn new(name: &str, shards: u16) -> Self {
        let h = name
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        Self {
            first: u16::try_from(h % u32::from(shards.max(1))).unwrap_or(0),
            shards: shards.max(1),
        }
    }

    /// The jobs of the lanes due now (empty after a nap when none is).
    pub async fn read(
        &mut self,
        engine: &Engine,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Vec<Taken>> {
        let lanes = engine.lanes.lanes();
        let per_shard = (engine.batch / 8).clamp(1, 64);
        let order: Vec<u16> = (0..self.shards)
            .map(|i| (self.first + i) % self.shards)
            .collect();
        self.first = (self.first + 1) % self.shards;
        let answers =
            futures::future::join_all(order.iter().map(|s| lanes.due(*s, per_shard))).await;
        let mut due = Vec::new();
        let mut next: Option<Duration> = None;
        for a in answers {
            let (d, n) = a.context("reading the lane registry")?;
            due.extend(d);
            if let Some(n) = n {
                next = Some(next.map_or(n, |x| x.min(n)));
            }
        }
        if due.is_empty() {
            nap(next.unwrap_or(IDLE).min(IDLE), cancel).await;
            return Ok(Vec::new());
        }
        metrics::histogram!(m::LANES_DUE).record(due.len() as f64);
        let names: Vec<String> = due
            .iter()
            .filter(|d| d.lane != send_lanes::NO_NUMBER_LANE)
            .map(|d| d.lane.clone())
            .collect();
        let numbers = engine.numbers.get_many(&names).await?;
        let share = (engine.batch / due.len()).max(1);
        let limits = |lane: &str| TakeLimits {
            interval: numbers.get(lane).map_or(Duration::from_micros(1), |n| {
                interval_for(n.mps, engine.tuning.headroom)
            }),
            max: share,
            horizon: engine.tuning.slot_wait,
            bulk_every: engine.tuning.bulk_every,
        };
        let takes =
            futures::future::join_all(due.iter().map(|d| lanes.take(&d.lane, limits(&d.lane))))
                .await;
        let at = Instant::now();
        let mut out = Vec::new();
        let mut wakes = Vec::with_capacity(due.len());
        let mut junk: HashMap<String, Vec<LaneItem>> = HashMap::new();
        for (d, t) in due.iter().zip(takes) {
            let t = t.context("reading a lane")?;
            wakes.push(lanes.revisit(d, t.wake));
            let interval = limits(&d.lane).interval;
            metrics::counter!(m::LANE_READS_TOTAL).increment(1);
            for (i, item) in t.items.into_iter().enumerate() {
                let slot = at + t.first + interval * u32::try_from(i).unwrap_or(u32::MAX);
                match send_lanes::decode(&item) {
                    Some(job) => out.push(Taken { job, item, slot }),
                    None => junk.entry(item.lane.clone()).or_default().push(item),
                }
            }
        }
        for r in futures::future::join_all(wakes).await {
            r.context("revisiting a lane")?;
        }
        for (lane, items) in &junk {
            tracing::warn!(
                items = items.len(),
                "lane items that are not send jobs dropped"
            );
            let refs: Vec<&LaneItem> = items.iter().collect();
            lanes.settle(lane, &refs, &[]).await?;
        }
        Ok(out)
    }
}

impl Engine {
    /// Of `dispatches` (some of whose rows a batch could not claim), those paused, cancelled
    /// or completed lose their jobs from their lanes at once: otherwise every job would be
    /// read, take a slot of its number and be dropped, one slot at a time. Best effort.
    pub(super) async fn purge_stopped(&self, dispatches: &[Uuid]) {
        if dispatches.is_empty() {
            return;
        }
        let stopped: Result<Vec<(Uuid, Option<String>)>, _> = sqlx::query_as(
            "SELECT id, phone_number_id FROM dispatches
              WHERE id = ANY($1) AND status IN ('paused', 'cancelled', 'completed')",
        )
        .bind(dispatches)
        .fetch_all(&self.db)
        .await;
        let stopped = match stopped {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "reading stopped dispatches failed");
                return;
            }
        };
        for (id, pn) in stopped {
            let lane = pn.unwrap_or_else(|| send_lanes::NO_NUMBER_LANE.to_owned());
            match self.lanes.purge(&lane, id).await {
                Ok(n) if n > 0 => {
                    metrics::counter!(m::LANE_PURGED_TOTAL).increment(n);
                    tracing::info!(dispatch_id = %id, jobs = n, "jobs of a stopped dispatch left its lane");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "purging a stopped dispatch's lane failed"
                ),
            }
        }
    }
}

/// Moves the jobs of the send stream of before the lanes (pushed by an api or scheduler of an
/// older version, or still queued at the upgrade) to their lanes, until `cancel`.
pub(crate) async fn drain_legacy(
    engine: std::sync::Arc<Engine>,
    name: String,
    cancel: CancellationToken,
) {
    let mut consumer = engine.legacy.consumer(name);
    while !cancel.is_cancelled() {
        let jobs = tokio::select! {
            r = consumer.fetch_batch(1_000) => r,
            _ = cancel.cancelled() => break,
        };
        let jobs = match jobs {
            Ok(j) if j.is_empty() => continue,
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(error = %e, "reading the legacy send stream failed");
                nap(Duration::from_secs(1), &cancel).await;
                continue;
            }
        };
        let payloads: Vec<SendJob> = jobs.iter().map(|j| j.payload).collect();
        let moved = async {
            engine.lanes.push(&engine.db, &payloads).await?;
            let metas: Vec<_> = jobs.iter().map(|j| j.meta.clone()).collect();
            engine
                .legacy
                .ack(&metas)
                .await
                .context("acking moved legacy jobs")
        }
        .await;
        match moved {
            Ok(()) => metrics::counter!(m::LEGACY_MOVED_TOTAL).increment(payloads.len() as u64),
            // Not acked: they come back after the lease and are moved then.
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "moving legacy send jobs to lanes failed"
            ),
        }
    }
}
