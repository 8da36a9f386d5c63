//! The send path's knobs that are not settings: retry schedules, slot wait, headroom, late
//! tolerance, pair gap, number cache, loops per process, settling groups, the per-number
//! breaker.

use std::time::Duration;

use crate::classify::RetrySchedules;

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
    /// A send that could not start within this of its slot takes a new slot. Sends up to `d`
    /// late put at most `(1 s + d) / 1 s x headroom` of a number's rate into any one second:
    /// 100 ms with headroom 0.9 keeps that under the rate (0.99).
    pub late_tolerance: Duration,
    /// Gap between two messages from one number to one recipient.
    pub pair_gap: Duration,
    /// How long numbers and their decrypted tokens are cached.
    pub number_cache_ttl: Duration,
    /// Batch loops per process (default: enough to keep `WORKER_CONCURRENCY` busy, >= 2).
    pub loops: Option<usize>,
    /// Sends that end within this of the first one waiting are recorded and settled together
    /// (one statement per kind, one Redis pipeline); a batch never waits for its slowest send.
    pub settle_every: Duration,
    /// Unanswered sends (timeouts) in a row that open a number's breaker.
    pub breaker_trip_after: u32,
    /// Sends of an open number in flight at once (per process).
    pub breaker_open_in_flight: usize,
    /// How long messages of an open number that found no room wait in the queue.
    pub breaker_wait: Duration,
    /// While a number has both high-priority and bulk messages waiting, one send in this many
    /// is bulk (bulk's guaranteed share: 1/5 by default).
    pub bulk_every: u32,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            retry: RetrySchedules::default(),
            slot_wait: Duration::from_secs(1),
            headroom: 0.9,
            late_tolerance: Duration::from_millis(100),
            pair_gap: Duration::from_secs(6),
            number_cache_ttl: Duration::from_secs(30),
            loops: None,
            settle_every: Duration::from_millis(75),
            breaker_trip_after: 5,
            breaker_open_in_flight: 4,
            breaker_wait: Duration::from_secs(1),
            bulk_every: 5,
        }
    }
}
