//! The requests of a batch: each planned message is sent at its slot, concurrently (a
//! semaphore permit each). Just before a request is written its send intent is noted
//! ([`crate::intents`]); a send that is too late for its slot, or whose scope halted earlier
//! in the batch, is not made. Each answer becomes an [`Outcome`] ([`super::outcome`]).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use secrecy::ExposeSecret;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::breaker::InFlight;
use super::outcome::{HaltKey, Outcome};
use super::plan::Sendable;
use super::Engine;
use crate::db::Claimed;
use crate::graph::Answer;
use crate::metrics as m;
use crate::numbers::Number;

impl Engine {
    /// Starts every planned message's send, each at its slot (a permit each, taken here, so
    /// the loop waits while the process has `WORKER_CONCURRENCY` sends in flight); sends of a
    /// scope halted earlier in the batch are not made. Each task ends with its outcome; they
    /// are settled as they end (`Engine::settle_as_they_end`).
    pub(super) async fn start_sends(
        self: &Arc<Self>,
        sendable: Vec<Sendable>,
        cancel: &CancellationToken,
    ) -> JoinSet<(Claimed, Outcome)> {
        let halted: Arc<Mutex<Vec<HaltKey>>> = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = JoinSet::new();
        for (c, n, at, flight) in sendable {
            let permit = tokio::select! {
                p = self.permits.clone().acquire_owned() => p.ok(),
                _ = cancel.cancelled() => None,
            };
            let engine = self.clone();
            let halted = halted.clone();
            let cancel = cancel.clone();
            tasks.spawn(async move {
                let Some(_permit) = permit else {
                    return (
                        c,
                        Outcome::Unsent {
                            delay: Duration::ZERO,
                        },
                    );
                };
                engine.send_one(c, n, at, flight, halted, cancel).await
            });
        }
        tasks
    }

    /// One message at its slot: skipped at shutdown or when its scope halted, else its send
    /// intent is noted, the late check made, the request written and its answer decided.
    async fn send_one(
        &self,
        mut c: Claimed,
        n: Arc<Number>,
        at: Instant,
        flight: InFlight,
        halted: Arc<Mutex<Vec<HaltKey>>>,
        cancel: CancellationToken,
    ) -> (Claimed, Outcome) {
        // Not started yet at shutdown: handed back to the queue.
        if !cancel.is_cancelled() {
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                _ = cancel.cancelled() => {}
            }
        }
        if cancel.is_cancelled() {
            return (
                c,
                Outcome::Unsent {
                    delay: Duration::ZERO,
                },
            );
        }
        let pn = c.phone_number_id.clone().unwrap_or_default();
        {
            let h = halted.lock().unwrap_or_else(|p| p.into_inner());
            if h.iter().any(|k| k.covers(&pn, c.account_id, c.dispatch_id)) {
                return (c, Outcome::HaltedBefore);
            }
        }
        // A test-mode send goes to the test base with the sandbox token: the account's own
        // token never leaves for a test key's message.
        let (base, token) = if c.test_mode {
            (&self.test_graph_base, &self.test_graph_token)
        } else {
            match n.token.as_ref() {
                Some(token) => (&self.graph_base, token),
                None => return (c, Outcome::HaltedBefore),
            }
        };
        // The intent note must be stored before the request is written (see `recovery`).
        if let Err(e) = self.intents.mark_sending(&c.id, self.lease * 4).await {
            tracing::warn!(error = %e, "could not note the send intent; the message waits");
            return (
                c,
                Outcome::Unsent {
                    delay: Duration::from_secs(1),
                },
            );
        }
        // Checked after the intent note, as close to the write as possible.
        if at.elapsed() > self.tuning.late_tolerance {
            // Too late for its slot (a stalled process): sending now could crowd the next
            // second of the number's budget, so it takes a new slot instead.
            metrics::counter!(m::THROTTLE_WAITS_TOTAL, "reason" => "late").increment(1);
            return (
                c,
                Outcome::Unsent {
                    delay: Duration::from_millis(100),
                },
            );
        }
        let body = Bytes::from(std::mem::take(&mut c.payload));
        let answer = self
            .graph
            .send(base, &pn, token.expose_secret(), body)
            .await;
        // The breaker counts answers and sends that went unanswered (timeouts, broken
        // connections); a request that never left says nothing about the number.
        match &answer {
            Answer::Accepted { .. } | Answer::Error { .. } => flight.finish(true),
            Answer::Ambiguous { .. } => flight.finish(false),
            Answer::NotSent { .. } => drop(flight),
        }
        let outcome = self.decide().outcome(c.attempts, answer);
        if let Outcome::Halt { scope, .. } = &outcome {
            let key = HaltKey::of(*scope, &pn, c.account_id, c.dispatch_id);
            halted.lock().unwrap_or_else(|p| p.into_inner()).push(key);
        }
        (c, outcome)
    }
}
