//! Jobs whose rows were not claimable, and the unknown outcomes among them: a row still
//! `sending` is either held by a live worker (its job comes back once the claim would have
//! expired) or was held by a dead one. Of those, a row without a send intent
//! ([`crate::intents`]) never left and is claimed again; a row with one is an unknown
//! outcome, settled per `UNKNOWN_OUTCOME_POLICY` (`fail`: failed, never sent twice; `resend`:
//! claimed again as a new attempt).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use ezpulze_common::config::UnknownOutcomePolicy;
use uuid::Uuid;

use super::Engine;
use crate::db::{self, Claimed, Failures};
use crate::metrics as m;

/// Error title of a message whose earlier attempt's outcome is unknown (policy `fail`).
pub use ezpulze_common::model::unknown_outcome::WORKER_STOPPED as UNKNOWN_DIED;

impl Engine {
    /// Jobs whose rows were not claimable: acknowledged, except rows still `sending`.
    pub(super) async fn unclaimed(
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
            .intents
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
                let rest = super::not_in(&unsent, &again);
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
}
