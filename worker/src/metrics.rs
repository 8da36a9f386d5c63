//! Metric names of the worker (the dashboards use these). No per-key or per-phone labels.

/// Counter: send results by `class` (accepted, retry_fast, retry_slow, permanent, halt,
/// ambiguous, not_sent).
pub const SENDS_TOTAL: &str = "ezpulze_worker_sends_total";
/// Counter: Graph error answers by `code` (codes of the reference's table; others = `other`).
pub const SEND_ERRORS_TOTAL: &str = "ezpulze_worker_send_errors_total";
/// Histogram (s): duration of one Graph API call.
pub const SEND_SECONDS: &str = "ezpulze_worker_send_duration_seconds";
/// Histogram: rows claimed per batch (`queued -> sending`).
pub const CLAIM_BATCH_SIZE: &str = "ezpulze_worker_claim_batch_size";
/// Histogram (s): one whole batch, fetch to settled.
pub const BATCH_SECONDS: &str = "ezpulze_worker_batch_duration_seconds";
/// Counter: messages that had to wait, by `reason` (throughput, pair, late, breaker).
pub const THROTTLE_WAITS_TOTAL: &str = "ezpulze_worker_throttle_waits_total";
/// Histogram (s): time a granted message waited for its throughput slot.
pub const SLOT_WAIT_SECONDS: &str = "ezpulze_worker_slot_wait_seconds";
/// Histogram: lanes due at one read of a send loop.
pub const LANES_DUE: &str = "ezpulze_worker_lanes_due";
/// Counter: lane reads (one per due lane per read; a number at its cap is not read).
pub const LANE_READS_TOTAL: &str = "ezpulze_worker_lane_reads_total";
/// Counter: jobs of paused, cancelled or completed dispatches removed from their lanes.
pub const LANE_PURGED_TOTAL: &str = "ezpulze_worker_lane_jobs_purged_total";
/// Counter: jobs moved from the send stream of before the lanes into their lanes.
pub const LEGACY_MOVED_TOTAL: &str = "ezpulze_worker_legacy_jobs_moved_total";
/// Counter: halts by `code` (dispatches paused; an operator must act).
pub const HALTS_TOTAL: &str = "ezpulze_worker_halts_total";
/// Counter: messages whose outcome was unknown, by `cause` (worker_died, timeout) and
/// `action` (failed, resent).
pub const UNKNOWN_OUTCOMES_TOTAL: &str = "ezpulze_worker_unknown_outcomes_total";
/// Counter: rows of a dead worker whose request had not started: sent normally.
pub const RECLAIMED_UNSENT_TOTAL: &str = "ezpulze_worker_reclaimed_unsent_total";
/// Counter: Graph error codes not in the table (treated as permanent): alert on any.
pub const UNKNOWN_CODES_TOTAL: &str = "ezpulze_worker_unknown_error_codes_total";
/// Counter: retries scheduled, by `class`.
pub const RETRIES_TOTAL: &str = "ezpulze_worker_retries_total";
/// Counter: messages that reached a final failed state, by `reason` (permanent, exhausted,
/// unknown_outcome, config).
pub const FAILED_TOTAL: &str = "ezpulze_worker_failed_total";
/// Counter: jobs acknowledged without a send (row not claimable: duplicate, final, paused).
pub const SKIPPED_TOTAL: &str = "ezpulze_worker_jobs_skipped_total";
/// Counter: numbers whose sends went unanswered (timeouts) so many times in a row that their
/// breaker opened (fewer of their sends in flight until one is answered).
pub const BREAKER_TRIPS_TOTAL: &str = "ezpulze_worker_breaker_trips_total";
/// Histogram: sends settled (recorded and their jobs acked) together, as they end.
pub const SETTLE_GROUP_SIZE: &str = "ezpulze_worker_settle_group_size";
/// Counter: messages held as `deferred`, by `reason` (`messaging_limit`: the portfolio's
/// messaging limit is reached; `docs/messaging-limits.md`).
pub const DEFERRED_TOTAL: &str = "ezpulze_worker_deferred_total";
/// Counter: recipients checked against the messaging-limit budget, by `result` (counted,
/// already_counted, service_window, deferred).
pub const BUDGET_CHECKS_TOTAL: &str = "ezpulze_worker_messaging_budget_checks_total";
/// Counter: inbound messages whose sender's customer-service window was recorded.
pub const BUDGET_INBOUND_TOTAL: &str = "ezpulze_worker_messaging_budget_inbound_total";
/// Gauge: accounts this process checked in the last 5 minutes whose budget was at or over
/// 80% used (take the `max` over workers).
pub const BUDGET_NEAR_ACCOUNTS: &str = "ezpulze_worker_messaging_budget_near_limit_accounts";
/// Gauge: the highest used share (0..1) of the budgets this process checked in the last 5
/// minutes (take the `max` over workers).
pub const BUDGET_MAX_RATIO: &str = "ezpulze_worker_messaging_budget_max_used_ratio";
/// Counter: loop errors (the loop backs off and goes on).
pub const LOOP_ERRORS_TOTAL: &str = "ezpulze_worker_loop_errors_total";

/// The `code` label for a Graph error code: known codes as themselves, others as `other`.
pub fn code_label(code: Option<i64>) -> String {
    match code {
        Some(c) if crate::classify::rule_for(c).is_some() => c.to_string(),
        Some(_) => "other".to_owned(),
        None => "none".to_owned(),
    }
}
