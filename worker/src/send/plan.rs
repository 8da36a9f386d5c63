//! Slot planning for a batch: each claimed message's number (unknown numbers and unreadable
//! tokens settle here), the portfolio's messaging limit (`limit`), the throughput slot its
//! lane gave it (the lane's GCRA), then the pair gap; a number whose breaker is open
//! (`breaker`) sends only what fits. What may go now comes out with the instant of its slot;
//! the rest as outcomes (waits, failures, halts).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use uuid::Uuid;

use super::breaker::InFlight;
use super::outcome::Outcome;
use super::Engine;
use crate::classify::HaltScope;
use crate::db::Claimed;
use crate::metrics as m;
use crate::numbers::Number;
use ezpulze_common::model::unknown_outcome;

/// A message that may be sent, with its number, the instant of its slot and its place among
/// its number's sends in flight (the breaker's count).
pub(crate) type Sendable = (Claimed, Arc<Number>, Instant, InFlight);

impl Engine {
    /// Numbers, throughput slots and pair gaps: what can go now, at which instant.
    pub(super) async fn plan(
        &self,
        claimed: Vec<Claimed>,
        slots: &HashMap<Uuid, Instant>,
    ) -> anyhow::Result<(Vec<(Claimed, Outcome)>, Vec<Sendable>)> {
        let mut outcomes = Vec::new();
        let mut numbers: Vec<String> = claimed
            .iter()
            .filter_map(|c| c.phone_number_id.clone())
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        let known = self.numbers.get_many(&numbers).await?;
        let mut by_number: HashMap<String, Vec<Claimed>> = HashMap::new();
        for c in claimed {
            if c.attempts > i32::try_from(self.max_attempts).unwrap_or(i32::MAX) {
                // Only reclaimed rows (policy resend) get here: their attempts are used up.
                outcomes.push((
                    c,
                    Outcome::Failed {
                        code: None,
                        title: unknown_outcome::ATTEMPTS_USED_UP.to_owned(),
                        reason: "unknown_outcome",
                    },
                ));
                continue;
            }
            let Some(pn) = c.phone_number_id.clone() else {
                outcomes.push((
                    c,
                    Outcome::Failed {
                        code: None,
                        title: "the account had no WhatsApp phone number when this was sent"
                            .to_owned(),
                        reason: "config",
                    },
                ));
                continue;
            };
            match known.get(&pn) {
                None => outcomes.push((
                    c,
                    Outcome::Failed {
                        code: None,
                        title: "the dispatch's phone number is no longer configured".to_owned(),
                        reason: "config",
                    },
                )),
                // A number removed from the message's account and registered by another:
                // never send one account's message with another's credentials.
                Some(n) if n.account_id != c.account_id => outcomes.push((
                    c,
                    Outcome::Failed {
                        code: None,
                        title: "the dispatch's phone number now belongs to another account"
                            .to_owned(),
                        reason: "config",
                    },
                )),
                Some(n) if n.token.is_none() => outcomes.push((
                    c,
                    Outcome::Halt {
                        scope: HaltScope::Number,
                        label: "token_unreadable".to_owned(),
                        code: None,
                        title: "the number's access token cannot be decrypted (EZPULZE_SECRETS_KEY changed?)"
                            .to_owned(),
                    },
                )),
                Some(_) => by_number.entry(pn).or_default().push(c),
            }
        }
        // The portfolio's messaging limit: what is over it waits as `deferred` (`limit`).
        self.hold_over_budget(&mut by_number, &mut outcomes).await?;
        let mut granted: Vec<(Claimed, Arc<Number>, Instant)> = Vec::new();
        for (pn, mut msgs) in by_number {
            let Some(n) = known.get(&pn).cloned() else {
                continue;
            };
            // An open breaker (the number's sends keep timing out): only what fits goes.
            let room = self.breaker.room(&pn, msgs.len());
            if room < msgs.len() {
                let held = msgs.split_off(room);
                metrics::counter!(m::THROTTLE_WAITS_TOTAL, "reason" => "breaker")
                    .increment(held.len() as u64);
                for c in held {
                    let delay = self.tuning.breaker_wait;
                    outcomes.push((c, Outcome::Wait { delay }));
                }
                if msgs.is_empty() {
                    continue;
                }
            }
            // The lane gave each message its slot when it was read.
            let now = Instant::now();
            for c in msgs {
                let at = slots.get(&c.id).copied().unwrap_or(now);
                metrics::histogram!(m::SLOT_WAIT_SECONDS)
                    .record(at.saturating_duration_since(now).as_secs_f64());
                granted.push((c, n.clone(), at));
            }
        }
        let now = Instant::now();
        let items: Vec<(&str, &str, Duration)> = granted
            .iter()
            .map(|(c, _, at)| {
                (
                    c.phone_number_id.as_deref().unwrap_or_default(),
                    c.to_phone.as_str(),
                    at.saturating_duration_since(now),
                )
            })
            .collect();
        let verdicts = self
            .throttle
            .pairs(&items, self.tuning.pair_gap)
            .await
            .context("checking pair gaps")?;
        let mut sendable = Vec::with_capacity(granted.len());
        for (g, v) in granted.into_iter().zip(verdicts) {
            match v {
                None => {
                    let flight = self
                        .breaker
                        .start(g.0.phone_number_id.as_deref().unwrap_or_default());
                    sendable.push((g.0, g.1, g.2, flight));
                }
                Some(wait) => {
                    metrics::counter!(m::THROTTLE_WAITS_TOTAL, "reason" => "pair").increment(1);
                    outcomes.push((g.0, Outcome::Wait { delay: wait }));
                }
            }
        }
        Ok((outcomes, sendable))
    }
}
