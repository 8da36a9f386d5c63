//! The suite's report: one line per scenario on stdout, and a JSON file.

use serde_json::{json, Value};

use crate::scenarios::Outcome;

pub fn header() -> String {
    format!(
        "{:<20} {:>8} {:>5} {:>5} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}  result",
        "scenario",
        "accepted",
        "lost",
        "dup",
        "unknown",
        "retried",
        "replayed",
        "resumed",
        "final",
        "emptied",
        "takeover"
    )
}

pub fn line(o: &Outcome) -> String {
    format!(
        "{:<20} {:>8} {:>5} {:>5} {:>7} {:>7} {:>8} {:>7.1}s {:>7.1}s {:>7.1}s {:>8}  {}",
        o.scenario,
        o.accepted,
        o.lost,
        o.duplicated,
        o.unknown,
        o.retried_attempts,
        o.replayed_after_failure,
        o.resumed_s,
        o.final_s,
        o.drain_s,
        o.takeover_s
            .map(|t| format!("{t:.1}s"))
            .unwrap_or_else(|| "-".into()),
        verdict(o)
    )
}

pub fn json(o: &Outcome) -> Value {
    let t = &o.tally;
    json!({
        "scenario": o.scenario,
        "accepted": o.accepted,
        "lost": o.lost,
        "duplicated": o.duplicated,
        "unknown_outcomes": o.unknown,
        "failed_other": o.failed_other,
        "retried_attempts": o.retried_attempts,
        "replayed_after_failure": o.replayed_after_failure,
        "longest_client_recovery_s": o.longest_client_recovery_s,
        "resumed_s": o.resumed_s,
        "final_s": o.final_s,
        "queues_empty_s": o.drain_s,
        "takeover_s": o.takeover_s,
        "throughput_clean_and_slow": o.throughput,
        "redis_persistent_growth_bytes": o.redis_persistent_growth_bytes,
        "redis_growth_top": o.redis_growth_top,
        "deadlocks": o.deadlocks,
        "fanout": o.fanout.as_ref().map(|f| json!({
            "contacts": f.contacts, "audience": f.audience, "seed_s": f.seed_s, "slices": f.slices,
            "passed_at_kill": f.passed_at_kill, "messages_at_kill": f.messages_at_kill,
            "chunks_under_way_at_kill": f.leased_at_kill, "fanout_s": f.fanout_s,
        })),
        "counters": {"sent": t.counters[0], "delivered": t.counters[1], "read": t.counters[2], "failed": t.counters[3]},
        "simulator": {"accepted": t.sim_accepted, "sent": t.truth[0], "delivered": t.truth[1], "read": t.truth[2], "failed": t.truth[3]},
        "problems": o.problems,
    })
}

fn verdict(o: &Outcome) -> String {
    let mut v = if o.problems.is_empty() {
        "ok".to_string()
    } else {
        format!("FAILED: {}", o.problems.join("; "))
    };
    if let Some((clean, slow)) = o.throughput {
        v.push_str(&format!(
            " ({clean:.0} messages/s clean, {slow:.0} with slow sends: {:.2})",
            slow / clean
        ));
    }
    if let Some(f) = &o.fanout {
        v.push_str(&format!(" ({})", f.describe()));
    }
    v
}
