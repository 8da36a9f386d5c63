//! Prometheus metrics through the `metrics` crate (install any recorder, e.g.
//! `metrics-exporter-prometheus`). Every series has one label, `queue`.
//!
//! Counters: `ezpulze_queue_pushed_total`, `ezpulze_queue_acked_total`,
//! `ezpulze_queue_retried_total`, `ezpulze_queue_dead_total`, `ezpulze_queue_reclaimed_total`.
//! Gauges (set by [`Queue::report_metrics`](crate::Queue::report_metrics)):
//! `ezpulze_queue_depth`, `ezpulze_queue_delayed`, `ezpulze_queue_in_flight`,
//! `ezpulze_queue_dead`, `ezpulze_queue_oldest_pending_age_seconds`.

use crate::QueueStats;

/// Names of the metrics, for dashboards and tests.
pub mod names {
    /// Jobs pushed (ready and delayed).
    pub const PUSHED: &str = "ezpulze_queue_pushed_total";
    /// Jobs settled successfully (acknowledged and deleted).
    pub const ACKED: &str = "ezpulze_queue_acked_total";
    /// Failed attempts re-scheduled for a retry.
    pub const RETRIED: &str = "ezpulze_queue_retried_total";
    /// Jobs moved to the dead-letter stream.
    pub const DEAD_TOTAL: &str = "ezpulze_queue_dead_total";
    /// Jobs taken over from a consumer whose lease ran out.
    pub const RECLAIMED: &str = "ezpulze_queue_reclaimed_total";
    /// Ready jobs not yet delivered to any consumer.
    pub const DEPTH: &str = "ezpulze_queue_depth";
    /// Jobs waiting for their due time (delays and retries).
    pub const DELAYED: &str = "ezpulze_queue_delayed";
    /// Jobs delivered to a consumer and not yet settled.
    pub const IN_FLIGHT: &str = "ezpulze_queue_in_flight";
    /// Jobs in the dead-letter stream.
    pub const DEAD: &str = "ezpulze_queue_dead";
    /// Age of the oldest unsettled ready job, in seconds.
    pub const OLDEST_AGE: &str = "ezpulze_queue_oldest_pending_age_seconds";
}

fn count(name: &'static str, queue: &str, n: usize) {
    if n > 0 {
        metrics::counter!(name, "queue" => queue.to_owned()).increment(n as u64);
    }
}

pub(crate) fn pushed(queue: &str, n: usize) {
    count(names::PUSHED, queue, n);
}

pub(crate) fn reclaimed(queue: &str, n: usize) {
    count(names::RECLAIMED, queue, n);
}

pub(crate) fn settled(queue: &str, acked: usize, retried: usize, dead: usize) {
    count(names::ACKED, queue, acked);
    count(names::RETRIED, queue, retried);
    count(names::DEAD_TOTAL, queue, dead);
}

pub(crate) fn gauges(queue: &str, s: &QueueStats) {
    let q = queue.to_owned();
    metrics::gauge!(names::DEPTH, "queue" => q.clone()).set(s.depth as f64);
    metrics::gauge!(names::DELAYED, "queue" => q.clone()).set(s.delayed as f64);
    metrics::gauge!(names::IN_FLIGHT, "queue" => q.clone()).set(s.in_flight as f64);
    metrics::gauge!(names::DEAD, "queue" => q.clone()).set(s.dead as f64);
    metrics::gauge!(names::OLDEST_AGE, "queue" => q)
        .set(s.oldest_pending_age.map_or(0.0, |d| d.as_secs_f64()));
}
