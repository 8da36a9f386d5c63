//! The gauges of the numbers' throughput and quality (`docs/whatsapp-events.md`), set by the
//! active scheduler every `OUTBOX_EVERY`: aggregates only, no per-number or per-account labels
//! (each number's detail is `GET /api/v1/whatsapp/numbers/limits`).
//!
//! - `ezpulze_whatsapp_numbers{throughput, flagged}`: numbers by throughput level (`standard`:
//!   Meta's 80/s or a rate set by hand, `high`: upgraded to 1,000/s) and quality flag;
//! - `ezpulze_whatsapp_numbers_rate_sum`: the messages per second in force, summed over numbers;
//! - `ezpulze_dispatches_paused{reason}`: dispatches paused now with a reason (`number_flagged`,
//!   `account_restricted`, `account_disabled`, `template_paused`, `template_disabled`, `other`:
//!   another code); those paused by hand or by a worker's halt (no reason) are not counted, so
//!   the query stays on the partial index of paused dispatches with a reason.

use anyhow::Context;
use sqlx::PgPool;

/// The pause reasons shown apart (any other is `other`).
pub const PAUSE_REASONS: [&str; 5] = [
    "number_flagged",
    "account_restricted",
    "account_disabled",
    "template_paused",
    "template_disabled",
];

/// Sets the gauges (three small aggregate queries).
pub async fn gauges(db: &PgPool) -> anyhow::Result<()> {
    let rows: Vec<(String, bool, i64, i64)> = sqlx::query_as(
        "SELECT throughput_level, flagged, count(*), COALESCE(sum(messages_per_second), 0)::bigint
           FROM phone_numbers GROUP BY 1, 2",
    )
    .fetch_all(db)
    .await
    .context("counting numbers by throughput and quality")?;
    let mut rate_sum = 0i64;
    for (level, label) in [("STANDARD", "standard"), ("HIGH", "high")] {
        for flagged in [false, true] {
            let n = rows
                .iter()
                .find(|r| r.0 == level && r.1 == flagged)
                .map_or(0, |r| r.2);
            metrics::gauge!("ezpulze_whatsapp_numbers", "throughput" => label,
                "flagged" => if flagged { "true" } else { "false" })
            .set(n as f64);
        }
    }
    for r in &rows {
        rate_sum += r.3;
    }
    metrics::gauge!("ezpulze_whatsapp_numbers_rate_sum").set(rate_sum as f64);
    let paused: Vec<(Option<String>, i64)> = sqlx::query_as(
        "SELECT pause_reason, count(*) FROM dispatches
          WHERE status = 'paused' AND pause_reason IS NOT NULL GROUP BY 1",
    )
    .fetch_all(db)
    .await
    .context("counting paused dispatches")?;
    let mut other = 0i64;
    for (reason, n) in &paused {
        if !reason
            .as_deref()
            .is_some_and(|r| PAUSE_REASONS.contains(&r))
        {
            other += n;
        }
    }
    for reason in PAUSE_REASONS {
        let n = paused
            .iter()
            .filter(|(r, _)| r.as_deref() == Some(reason))
            .map(|(_, n)| n)
            .sum::<i64>();
        metrics::gauge!("ezpulze_dispatches_paused", "reason" => reason).set(n as f64);
    }
    metrics::gauge!("ezpulze_dispatches_paused", "reason" => "other").set(other as f64);
    Ok(())
}
