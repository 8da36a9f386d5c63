//! The recorder: executes a batch's [`BatchWrites`] against Postgres and Redis, in this
//! order: pauses of halted scopes first (so no other worker picks the halted rows up), pair
//! gaps given back, numbers slowed after `130429`, then one statement per kind (re-queued,
//! deferred, then their send intents cleared, accepted, failed, then the intents of those final rows
//! cleared). Outcome writes are retried a few times.

use std::time::Duration;

use super::writes::BatchWrites;
use super::Engine;
use crate::db;
use crate::metrics as m;

impl Engine {
    /// Writes a batch's outcomes: pauses first (so no other worker picks the halted rows up),
    /// then one statement per kind.
    pub(super) async fn record(&self, w: BatchWrites) -> anyhow::Result<()> {
        for (class, n) in &w.retries {
            metrics::counter!(m::RETRIES_TOTAL, "class" => *class).increment(*n);
        }
        for (reason, n) in &w.failed {
            metrics::counter!(m::FAILED_TOTAL, "reason" => *reason).increment(*n);
        }
        for (reason, n) in &w.deferred {
            metrics::counter!(m::DEFERRED_TOTAL, "reason" => *reason).increment(*n);
        }
        for h in &w.halts {
            let scope_name = h.scope_name();
            let paused = self
                .with_retries(|| {
                    db::pause(
                        &self.db,
                        scope_name,
                        &h.number,
                        h.account,
                        h.dispatch,
                        h.pause_reason(),
                    )
                })
                .await?;
            metrics::counter!(m::HALTS_TOTAL, "code" => h.label.clone()).increment(1);
            tracing::warn!(
                code = ?h.code,
                halt = %h.label,
                scope = scope_name,
                phone_number_id = %h.number,
                account_id = %h.account,
                dispatch_id = %h.dispatch,
                paused_dispatches = paused,
                error_title = %h.title,
                "sending halted: dispatches paused; fix the cause (token, account, number quality, template) and resume them"
            );
        }
        if !w.release_pairs.is_empty() {
            if let Err(e) = self.throttle.release_pairs(&w.release_pairs).await {
                tracing::warn!(error = %e, "could not give back pair gaps of unsent messages");
            }
        }
        for pn in &w.throttled {
            if let Err(e) = self.throttle.penalize(pn, Duration::from_secs(1)).await {
                tracing::warn!(error = %e, "could not slow the number down after 130429");
            }
        }
        self.with_retries(|| db::requeue(&self.db, &w.requeue))
            .await?;
        self.with_retries(|| db::defer(&self.db, &w.deferrals))
            .await?;
        // Only once they are queued again: until then a crash must still see the intents.
        if let Err(e) = self.intents.clear(&w.clear_intents).await {
            tracing::warn!(error = %e, "could not clear the send intents of re-queued messages");
        }
        self.with_retries(|| db::record_accepted(&self.db, &w.accepted, &w.wamids))
            .await?;
        self.with_retries(|| db::record_failed(&self.db, &w.failures, None))
            .await?;
        // Final rows are never taken for unknown outcomes: once written, their intents have
        // no use left (until then a crash must still see them). Cleared now rather than left
        // to their TTL (4 leases), which held about 350 B per message sent in those minutes.
        let finals: Vec<uuid::Uuid> = w.accepted.iter().chain(&w.failures.ids).copied().collect();
        if let Err(e) = self.intents.clear(&finals).await {
            tracing::warn!(error = %e, "could not clear the send intents of final messages; they expire with their TTL");
        }
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
