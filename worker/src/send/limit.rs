//! The portfolio messaging-limit check of a batch (`crate::budget`,
//! `docs/messaging-limits.md`): the messages planned to go are checked against their
//! account's budget, one script call per account per batch (the calls of a batch's accounts
//! run concurrently); those over it come out as `Outcome::Deferred` with the time the window
//! frees room for them. Messages of test mode (they never reach Meta) and of accounts whose
//! tier is not known or unlimited are not counted.

use std::collections::HashMap;
use std::time::Duration;

use ezpulze_common::messaging_limit::{Tier, REASON_MESSAGING_LIMIT};
use uuid::Uuid;

use super::outcome::Outcome;
use super::Engine;
use crate::budget::Verdict;
use crate::db::Claimed;
use crate::metrics as m;

/// How long the messages of an account whose budget check failed wait (a wait: no attempt).
const CHECK_FAILED_WAIT: Duration = Duration::from_secs(1);

/// Where a message is in a batch's `by_number`: its number and its index there.
type Place<'a> = (&'a str, usize);

/// The limit a claimed message counts toward; None: not counted.
fn limit_of(c: &Claimed) -> Option<u64> {
    if c.test_mode {
        return None;
    }
    c.messaging_tier
        .as_deref()
        .and_then(Tier::parse)
        .and_then(Tier::limit)
}

impl Engine {
    /// Takes the messages of `by_number` that are over their portfolio's budget out of it, as
    /// deferred outcomes (and those of an account whose check failed, as short waits).
    pub(super) async fn hold_over_budget(
        &self,
        by_number: &mut HashMap<String, Vec<Claimed>>,
        outcomes: &mut Vec<(Claimed, Outcome)>,
    ) -> anyhow::Result<()> {
        // Per account: its limit and its messages (number, index), in batch order.
        let mut per_account: HashMap<Uuid, (u64, Vec<Place<'_>>)> = HashMap::new();
        for (pn, msgs) in by_number.iter() {
            for (i, c) in msgs.iter().enumerate() {
                if let Some(limit) = limit_of(c) {
                    per_account
                        .entry(c.account_id)
                        .or_insert_with(|| (limit, Vec::new()))
                        .1
                        .push((pn.as_str(), i));
                }
            }
        }
        if per_account.is_empty() {
            return Ok(());
        }
        let calls = per_account.iter().map(|(account, (limit, items))| {
            let recipients: Vec<&str> = items
                .iter()
                .map(|(pn, i)| by_number[*pn][*i].to_phone.as_str())
                .collect();
            async move { self.budget.take(*account, *limit, &recipients).await }
        });
        let verdicts = futures::future::join_all(calls).await;
        let mut held: HashMap<String, Vec<(usize, Outcome)>> = HashMap::new();
        for ((account, (_, items)), verdicts) in per_account.iter().zip(verdicts) {
            match verdicts {
                Ok(verdicts) => {
                    for ((pn, i), v) in items.iter().zip(verdicts) {
                        if let Verdict::Deferred(delay) = v {
                            let o = Outcome::Deferred {
                                delay,
                                reason: REASON_MESSAGING_LIMIT,
                            };
                            held.entry((*pn).to_owned()).or_default().push((*i, o));
                        }
                    }
                }
                Err(e) => {
                    // Only this account's check failed (Redis): its messages wait a moment,
                    // never sent unchecked; the other accounts' messages go on.
                    metrics::counter!(m::LOOP_ERRORS_TOTAL, "stage" => "budget").increment(1);
                    tracing::warn!(
                        account_id = %account,
                        error = format!("{e:#}"),
                        "checking the messaging-limit budget failed; the account's messages wait"
                    );
                    for (pn, i) in items {
                        let o = Outcome::Wait {
                            delay: CHECK_FAILED_WAIT,
                        };
                        held.entry((*pn).to_owned()).or_default().push((*i, o));
                    }
                }
            }
        }
        drop(per_account);
        for (pn, mut idx) in held {
            let Some(msgs) = by_number.get_mut(&pn) else {
                continue;
            };
            idx.sort_unstable_by_key(|(i, _)| std::cmp::Reverse(*i));
            let mut out = Vec::with_capacity(idx.len());
            for (i, o) in idx {
                if i < msgs.len() {
                    out.push((msgs.remove(i), o));
                }
            }
            out.reverse();
            outcomes.extend(out);
            if msgs.is_empty() {
                by_number.remove(&pn);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(tier: Option<&str>, test_mode: bool) -> Claimed {
        Claimed {
            id: Uuid::from_u128(1),
            dispatch_id: Uuid::from_u128(2),
            account_id: Uuid::from_u128(3),
            to_phone: "+14155550001".to_owned(),
            payload: "{}".to_owned(),
            attempts: 1,
            phone_number_id: Some("1001".to_owned()),
            test_mode,
            messaging_tier: tier.map(str::to_owned),
        }
    }

    #[test]
    fn only_live_messages_of_a_limited_tier_count() {
        assert_eq!(limit_of(&claimed(Some("TIER_2K"), false)), Some(2_000));
        assert_eq!(limit_of(&claimed(Some("TIER_250"), false)), Some(250));
        assert_eq!(limit_of(&claimed(Some("TIER_2K"), true)), None);
        assert_eq!(limit_of(&claimed(Some("TIER_UNLIMITED"), false)), None);
        assert_eq!(limit_of(&claimed(None, false)), None);
        assert_eq!(limit_of(&claimed(Some("TIER_3K"), false)), None);
    }
}
