//! The seam between deciding and writing: [`batch_writes`] turns a batch's outcomes into the
//! writes of that batch ([`BatchWrites`]), with no I/O, so every rule of what becomes of a
//! message is here and tested case by case. [`super::record`] executes them.
//!
//! Send intents ([`crate::intents`]) are cleared for exactly the messages listed in
//! [`BatchWrites::clear_intents`]: rows going back to the queue whose request was answered
//! (retries, halts) or never written (unsent). Once re-queued, a later crash after a new
//! claim must not take them for unknown outcomes. Waits and messages not sent because of an
//! earlier halt wrote no intent in this attempt. Accepted and failed rows are final: the
//! recorder clears their intents once it has written them (`BatchWrites::accepted` and
//! `failures`), and a crash before that leaves them to their TTL.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use uuid::Uuid;

use super::outcome::{HaltKey, Outcome};
use crate::classify::HaltScope;
use crate::db::{Claimed, Deferrals, Failures, Requeue};

/// A halt seen in a batch (the first message of its scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Halt {
    pub scope: HaltScope,
    pub number: String,
    pub account: Uuid,
    pub dispatch: Uuid,
    /// The metric label: the Graph code, `http_<status>`, or `token_unreadable`.
    pub label: String,
    pub code: Option<i64>,
    pub title: String,
}

impl Halt {
    /// The scope as `db::pause` takes it.
    pub(crate) fn scope_name(&self) -> &'static str {
        match self.scope {
            HaltScope::Number => "number",
            HaltScope::Account => "account",
            HaltScope::Dispatch => "dispatch",
        }
    }

    /// The paused dispatches' `pause_reason`: `template_paused` for Meta's `132015` (the
    /// template's approval resumes them), none for the other halts (resumed by hand).
    pub(crate) fn pause_reason(&self) -> Option<&'static str> {
        (self.scope == HaltScope::Dispatch && self.code == Some(132_015))
            .then_some(ezpulze_common::template_status::PAUSE_TEMPLATE_PAUSED)
    }
}

/// Everything one batch writes, decided from its outcomes.
#[derive(Debug, Default)]
pub(crate) struct BatchWrites {
    /// `sending -> accepted`, with `wamids` (same order).
    pub accepted: Vec<Uuid>,
    pub wamids: Vec<String>,
    /// Back to `queued`: retries (an attempt used), waits, halts, unsent and halted-before
    /// messages (no attempt used).
    pub requeue: Requeue,
    /// Final failures.
    pub failures: Failures,
    /// Held back by a budget (`sending -> deferred`, no attempt used); their jobs come back
    /// after the delay (in `later`).
    pub deferrals: Deferrals,
    /// Dispatches to pause: one halt per scope (number, account or dispatch), first seen.
    pub halts: Vec<Halt>,
    /// Numbers answered `130429`: no slot for any worker for a second.
    pub throttled: BTreeSet<String>,
    /// `(phone_number_id, recipient)` pair gaps to give back: messages that had theirs but
    /// were not sent.
    pub release_pairs: Vec<(String, String)>,
    /// Send intents to clear once the rows are queued again (final rows' intents are cleared
    /// by the recorder once written).
    pub clear_intents: Vec<Uuid>,
    /// Jobs to deliver again after a delay (retries, waits, unsent); the others are acked.
    pub later: Vec<(Uuid, Duration)>,
    /// Retries scheduled, by class label (`ezpulze_worker_retries_total`).
    pub retries: BTreeMap<&'static str, u64>,
    /// Final failures by reason (`ezpulze_worker_failed_total`).
    pub failed: BTreeMap<&'static str, u64>,
    /// Deferrals by reason (`ezpulze_worker_deferred_total`).
    pub deferred: BTreeMap<&'static str, u64>,
}

fn code_i32(code: Option<i64>) -> Option<i32> {
    code.and_then(|c| i32::try_from(c).ok())
}

/// The writes of a batch's outcomes. Pure: no I/O, no metrics.
pub(crate) fn batch_writes(outcomes: Vec<(Claimed, Outcome)>) -> BatchWrites {
    let mut w = BatchWrites::default();
    let mut halted: HashSet<HaltKey> = HashSet::new();
    for (c, o) in outcomes {
        match o {
            Outcome::Accepted { wamid } => {
                w.accepted.push(c.id);
                w.wamids.push(wamid);
            }
            Outcome::Retry {
                delay,
                code,
                title,
                class,
            } => {
                *w.retries.entry(class.label()).or_default() += 1;
                if code == Some(130429) {
                    if let Some(pn) = &c.phone_number_id {
                        w.throttled.insert(pn.clone());
                    }
                }
                w.requeue
                    .push(c.id, delay, code_i32(code), Some(title), false);
                w.later.push((c.id, delay));
                w.clear_intents.push(c.id);
            }
            Outcome::Wait { delay } => {
                w.requeue.push(c.id, delay, None, None, true);
                w.later.push((c.id, delay));
            }
            Outcome::Failed {
                code,
                title,
                reason,
            } => {
                *w.failed.entry(reason).or_default() += 1;
                w.failures.push(c.id, code_i32(code), title);
            }
            Outcome::Deferred { delay, reason } => {
                *w.deferred.entry(reason).or_default() += 1;
                w.deferrals.push(c.id, delay, reason);
                w.later.push((c.id, delay));
            }
            Outcome::Halt {
                scope,
                label,
                code,
                title,
            } => {
                w.requeue.push(
                    c.id,
                    Duration::ZERO,
                    code_i32(code),
                    Some(title.clone()),
                    true,
                );
                // Answered by the Graph API (or, for an unreadable token, never written): its
                // intent goes, so a crash after the dispatch is resumed does not make it an
                // unknown outcome.
                w.clear_intents.push(c.id);
                let number = c.phone_number_id.clone().unwrap_or_default();
                if halted.insert(HaltKey::of(scope, &number, c.account_id, c.dispatch_id)) {
                    w.halts.push(Halt {
                        scope,
                        number,
                        account: c.account_id,
                        dispatch: c.dispatch_id,
                        label,
                        code,
                        title,
                    });
                }
            }
            Outcome::Unsent { delay } => {
                w.clear_intents.push(c.id);
                w.release_pairs
                    .push((c.phone_number_id.clone().unwrap_or_default(), c.to_phone));
                w.requeue.push(c.id, delay, None, None, true);
                w.later.push((c.id, delay));
            }
            Outcome::HaltedBefore => {
                w.release_pairs
                    .push((c.phone_number_id.clone().unwrap_or_default(), c.to_phone));
                w.requeue.push(c.id, Duration::ZERO, None, None, true);
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Class;

    const NUMBER: &str = "1001";

    fn account() -> Uuid {
        Uuid::from_u128(0xA)
    }

    fn dispatch() -> Uuid {
        Uuid::from_u128(0xD)
    }

    /// A claimed message `n` of the test number, account and dispatch.
    fn msg(n: u128) -> Claimed {
        Claimed {
            id: Uuid::from_u128(n),
            dispatch_id: dispatch(),
            account_id: account(),
            to_phone: format!("1415500{n:04}"),
            payload: "{}".to_owned(),
            attempts: 1,
            phone_number_id: Some(NUMBER.to_owned()),
            test_mode: false,
            messaging_tier: None,
        }
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn halt(scope: HaltScope, code: i64) -> Outcome {
        Outcome::Halt {
            scope,
            label: code.to_string(),
            code: Some(code),
            title: format!("halt {code}"),
        }
    }

    fn retry(code: i64, delay: Duration) -> Outcome {
        Outcome::Retry {
            delay,
            code: Some(code),
            title: format!("retry {code}"),
            class: Class::RetryFast,
        }
    }

    /// Ids of the re-queued rows with (delay ms, code, title, undo).
    #[allow(clippy::type_complexity)]
    fn requeued(w: &BatchWrites) -> Vec<(Uuid, i64, Option<i32>, Option<String>, bool)> {
        let r = &w.requeue;
        (0..r.ids.len())
            .map(|i| {
                (
                    r.ids[i],
                    r.delay_ms[i],
                    r.codes[i],
                    r.titles[i].clone(),
                    r.undo[i],
                )
            })
            .collect()
    }

    #[test]
    fn an_empty_batch_writes_nothing() {
        let w = batch_writes(Vec::new());
        assert!(w.accepted.is_empty() && w.requeue.ids.is_empty() && w.failures.ids.is_empty());
        assert!(w.halts.is_empty() && w.throttled.is_empty() && w.release_pairs.is_empty());
        assert!(w.clear_intents.is_empty() && w.later.is_empty());
        assert!(w.retries.is_empty() && w.failed.is_empty());
    }

    #[test]
    fn accepted_stores_its_wamid_and_nothing_else() {
        let w = batch_writes(vec![(
            msg(1),
            Outcome::Accepted {
                wamid: "wamid.1".to_owned(),
            },
        )]);
        assert_eq!(w.accepted, vec![id(1)]);
        assert_eq!(w.wamids, vec!["wamid.1".to_owned()]);
        assert!(w.requeue.ids.is_empty() && w.failures.ids.is_empty());
        // Final: the job is acked and its intent expires on its own.
        assert!(w.later.is_empty() && w.clear_intents.is_empty());
        assert!(w.release_pairs.is_empty() && w.halts.is_empty());
    }

    #[test]
    fn a_retry_uses_an_attempt_comes_back_later_and_clears_its_intent() {
        let w = batch_writes(vec![(msg(1), retry(131000, ms(300)))]);
        assert_eq!(
            requeued(&w),
            vec![(id(1), 300, Some(131000), Some("retry 131000".into()), false)]
        );
        assert_eq!(w.later, vec![(id(1), ms(300))]);
        assert_eq!(w.clear_intents, vec![id(1)]);
        assert_eq!(w.retries.get("retry_fast"), Some(&1));
        assert!(w.throttled.is_empty() && w.release_pairs.is_empty());
        assert!(w.accepted.is_empty() && w.failures.ids.is_empty());
    }

    #[test]
    fn a_130429_retry_slows_its_number_once() {
        let mut other = msg(3);
        other.phone_number_id = None;
        let w = batch_writes(vec![
            (msg(1), retry(130429, ms(1000))),
            (msg(2), retry(130429, ms(1000))),
            (other, retry(130429, ms(1000))),
        ]);
        assert_eq!(w.throttled, BTreeSet::from([NUMBER.to_owned()]));
        assert_eq!(w.retries.get("retry_fast"), Some(&3));
        assert_eq!(w.clear_intents, vec![id(1), id(2), id(3)]);
    }

    #[test]
    fn a_wait_is_not_an_attempt_and_wrote_no_intent() {
        let w = batch_writes(vec![(msg(1), Outcome::Wait { delay: ms(700) })]);
        assert_eq!(requeued(&w), vec![(id(1), 700, None, None, true)]);
        assert_eq!(w.later, vec![(id(1), ms(700))]);
        assert!(w.clear_intents.is_empty() && w.release_pairs.is_empty());
        assert!(w.retries.is_empty());
    }

    #[test]
    fn a_deferral_waits_with_its_reason_uses_no_attempt_and_wrote_no_intent() {
        let w = batch_writes(vec![(
            msg(1),
            Outcome::Deferred {
                delay: ms(9_000),
                reason: "messaging_limit",
            },
        )]);
        assert_eq!(w.deferrals.ids, vec![id(1)]);
        assert_eq!(w.deferrals.delay_ms, vec![9_000]);
        assert_eq!(w.deferrals.reasons, vec!["messaging_limit".to_owned()]);
        assert_eq!(w.later, vec![(id(1), ms(9_000))]);
        assert_eq!(w.deferred.get("messaging_limit"), Some(&1));
        assert!(w.requeue.ids.is_empty() && w.failures.ids.is_empty() && w.failed.is_empty());
        assert!(w.clear_intents.is_empty() && w.release_pairs.is_empty());
    }

    #[test]
    fn a_failure_is_final_and_counted_by_reason() {
        let w = batch_writes(vec![
            (
                msg(1),
                Outcome::Failed {
                    code: Some(132000),
                    title: "bad params".to_owned(),
                    reason: "permanent",
                },
            ),
            (
                msg(2),
                Outcome::Failed {
                    code: None,
                    title: "outcome unknown: timeout".to_owned(),
                    reason: "unknown_outcome",
                },
            ),
        ]);
        assert_eq!(w.failures.ids, vec![id(1), id(2)]);
        assert_eq!(w.failures.codes, vec![Some(132000), None]);
        assert_eq!(
            w.failures.titles,
            vec![
                "bad params".to_owned(),
                "outcome unknown: timeout".to_owned()
            ]
        );
        assert_eq!(w.failed.get("permanent"), Some(&1));
        assert_eq!(w.failed.get("unknown_outcome"), Some(&1));
        assert!(w.requeue.ids.is_empty() && w.later.is_empty() && w.clear_intents.is_empty());
    }

    #[test]
    fn a_code_beyond_i32_is_written_without_a_code() {
        let w = batch_writes(vec![(
            msg(1),
            Outcome::Failed {
                code: Some(i64::from(i32::MAX) + 1),
                title: "t".to_owned(),
                reason: "permanent",
            },
        )]);
        assert_eq!(w.failures.codes, vec![None]);
    }

    #[test]
    fn a_halt_goes_back_now_without_an_attempt_and_pauses_its_scope() {
        let w = batch_writes(vec![(msg(1), halt(HaltScope::Number, 190))]);
        assert_eq!(
            requeued(&w),
            vec![(id(1), 0, Some(190), Some("halt 190".into()), true)]
        );
        // Acked: the resume pushes its job again.
        assert!(w.later.is_empty());
        assert_eq!(
            w.halts,
            vec![Halt {
                scope: HaltScope::Number,
                number: NUMBER.to_owned(),
                account: account(),
                dispatch: dispatch(),
                label: "190".to_owned(),
                code: Some(190),
                title: "halt 190".to_owned(),
            }]
        );
        assert_eq!(w.halts[0].scope_name(), "number");
        assert!(w.release_pairs.is_empty() && w.failures.ids.is_empty());
    }

    #[test]
    fn a_halted_answer_clears_its_intent() {
        // Graph answered it: its request is settled, and a crash after the dispatch is resumed
        // must not take it for an unknown outcome.
        let w = batch_writes(vec![
            (msg(1), halt(HaltScope::Number, 190)),
            (msg(2), halt(HaltScope::Number, 190)),
        ]);
        assert_eq!(w.clear_intents, vec![id(1), id(2)]);
    }

    #[test]
    fn halts_are_deduplicated_by_scope_first_seen_kept() {
        let mut other_dispatch = msg(4);
        other_dispatch.dispatch_id = Uuid::from_u128(0xE);
        let mut other_number = msg(5);
        other_number.phone_number_id = Some("2002".to_owned());
        let w = batch_writes(vec![
            (msg(1), halt(HaltScope::Number, 190)),
            (msg(2), halt(HaltScope::Number, 131048)),
            (msg(3), halt(HaltScope::Dispatch, 132001)),
            (other_dispatch, halt(HaltScope::Dispatch, 132015)),
            (other_number, halt(HaltScope::Number, 190)),
            (msg(6), halt(HaltScope::Account, 368)),
            (msg(7), halt(HaltScope::Account, 131031)),
        ]);
        let seen: Vec<(&str, &str, Option<i64>)> = w
            .halts
            .iter()
            .map(|h| (h.scope_name(), h.number.as_str(), h.code))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("number", NUMBER, Some(190)),
                ("dispatch", NUMBER, Some(132001)),
                ("dispatch", NUMBER, Some(132015)),
                ("number", "2002", Some(190)),
                ("account", NUMBER, Some(368)),
            ]
        );
        assert_eq!(w.halts[2].dispatch, Uuid::from_u128(0xE));
        // Every halted row goes back, deduplicated or not.
        assert_eq!(w.requeue.ids.len(), 7);
    }

    #[test]
    fn unsent_gives_its_pair_gap_back_and_clears_its_intent() {
        let w = batch_writes(vec![(msg(1), Outcome::Unsent { delay: ms(100) })]);
        assert_eq!(requeued(&w), vec![(id(1), 100, None, None, true)]);
        assert_eq!(w.later, vec![(id(1), ms(100))]);
        assert_eq!(w.clear_intents, vec![id(1)]);
        assert_eq!(
            w.release_pairs,
            vec![(NUMBER.to_owned(), "14155000001".to_owned())]
        );
    }

    #[test]
    fn halted_before_gives_its_pair_gap_back_and_is_acked() {
        let w = batch_writes(vec![(msg(1), Outcome::HaltedBefore)]);
        assert_eq!(requeued(&w), vec![(id(1), 0, None, None, true)]);
        assert!(w.later.is_empty() && w.clear_intents.is_empty() && w.halts.is_empty());
        assert_eq!(
            w.release_pairs,
            vec![(NUMBER.to_owned(), "14155000001".to_owned())]
        );
    }

    #[test]
    fn a_mixed_batch_settles_each_message_once() {
        let w = batch_writes(vec![
            (
                msg(1),
                Outcome::Accepted {
                    wamid: "wamid.1".to_owned(),
                },
            ),
            (msg(2), retry(131000, ms(200))),
            (msg(3), Outcome::Wait { delay: ms(900) }),
            (
                msg(4),
                Outcome::Failed {
                    code: Some(131026),
                    title: "undeliverable".to_owned(),
                    reason: "permanent",
                },
            ),
            (msg(5), halt(HaltScope::Dispatch, 132001)),
            (msg(6), Outcome::Unsent { delay: ms(0) }),
            (msg(7), Outcome::HaltedBefore),
        ]);
        assert_eq!(w.accepted, vec![id(1)]);
        assert_eq!(w.requeue.ids, vec![id(2), id(3), id(5), id(6), id(7)]);
        assert_eq!(w.requeue.undo, vec![false, true, true, true, true]);
        assert_eq!(w.failures.ids, vec![id(4)]);
        assert_eq!(w.halts.len(), 1);
        assert_eq!(
            w.later,
            vec![(id(2), ms(200)), (id(3), ms(900)), (id(6), ms(0))]
        );
        assert_eq!(w.release_pairs.len(), 2);
        assert_eq!(w.clear_intents, vec![id(2), id(5), id(6)]);
        assert!(w.throttled.is_empty());
    }
}
