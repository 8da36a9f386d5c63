//! What became of one claimed message ([`Outcome`]), and the decision from a Graph answer to
//! an outcome ([`Decide`]), per the classification table and the attempt count, with the
//! per-answer metrics (sends by class, errors by code, unknown codes, unknown outcomes of
//! timeouts).

use std::time::Duration;

use ezpulze_common::config::UnknownOutcomePolicy;
use ezpulze_common::model::unknown_outcome;
use uuid::Uuid;

use crate::classify::{classify, Class, HaltScope, RetrySchedules, Rule};
use crate::graph::Answer;
use crate::metrics as m;

/// What became of one claimed message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Accepted {
        wamid: String,
    },
    /// A failed attempt that will be retried.
    Retry {
        delay: Duration,
        code: Option<i64>,
        title: String,
        class: Class,
    },
    /// Not attempted (throughput, pair gap, late, shutdown): back to the queue, no attempt used.
    Wait {
        delay: Duration,
    },
    Failed {
        code: Option<i64>,
        title: String,
        reason: &'static str,
    },
    /// Held back by a budget (the portfolio's messaging limit): `deferred` with its reason
    /// until `delay` has passed, then its job comes back. No attempt used, not a failure.
    Deferred {
        delay: Duration,
        reason: &'static str,
    },
    /// Sending of a scope (number, account, dispatch) must stop: answered by the Graph API
    /// with a halting code, or found before the request (a token that cannot be decrypted).
    Halt {
        scope: HaltScope,
        label: String,
        code: Option<i64>,
        title: String,
    },
    /// Had its slot and pair gap but was not sent (shutdown, late, no intent note): like
    /// `Wait`, and its pair gap is given back.
    Unsent {
        delay: Duration,
    },
    /// Not sent because its number/account/dispatch halted earlier in the batch.
    HaltedBefore,
}

/// The scope a halt stops: one number, one account or one dispatch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum HaltKey {
    Number(String),
    Account(Uuid),
    Dispatch(Uuid),
}

impl HaltKey {
    /// The key of a halt of `scope` seen on a message of this number, account and dispatch.
    pub(crate) fn of(scope: HaltScope, number: &str, account: Uuid, dispatch: Uuid) -> Self {
        match scope {
            HaltScope::Number => HaltKey::Number(number.to_owned()),
            HaltScope::Account => HaltKey::Account(account),
            HaltScope::Dispatch => HaltKey::Dispatch(dispatch),
        }
    }

    /// Whether a message of this number, account and dispatch is in the halted scope.
    pub(crate) fn covers(&self, number: &str, account: Uuid, dispatch: Uuid) -> bool {
        match self {
            HaltKey::Number(x) => x == number,
            HaltKey::Account(a) => *a == account,
            HaltKey::Dispatch(d) => *d == dispatch,
        }
    }
}

/// What decides an answer's outcome: the unknown-outcome policy, `SEND_MAX_ATTEMPTS` and the
/// retry schedules.
pub(crate) struct Decide<'a> {
    pub policy: UnknownOutcomePolicy,
    pub max_attempts: u32,
    pub retry: &'a RetrySchedules,
}

impl Decide<'_> {
    /// The outcome of one answer, per the table and the attempt count (`attempts`: the
    /// message's attempts including this one).
    pub(crate) fn outcome(&self, attempts: i32, answer: Answer) -> Outcome {
        let attempts = u32::try_from(attempts.max(1)).unwrap_or(1);
        match answer {
            Answer::Accepted { wamid } => {
                metrics::counter!(m::SENDS_TOTAL, "class" => "accepted").increment(1);
                Outcome::Accepted { wamid }
            }
            Answer::Error {
                status,
                code,
                title,
                transient,
                retry_after,
            } => {
                metrics::counter!(m::SEND_ERRORS_TOTAL, "code" => m::code_label(code)).increment(1);
                let rule = classify(code, status, transient);
                if !rule.known {
                    metrics::counter!(m::UNKNOWN_CODES_TOTAL).increment(1);
                    tracing::warn!(
                        code = ?code,
                        status,
                        class = rule.class.label(),
                        "Graph error code not in the table (treated as permanent unless transient): add it to worker/src/classify.rs"
                    );
                }
                metrics::counter!(m::SENDS_TOTAL, "class" => rule.class.label()).increment(1);
                match rule.class {
                    Class::Accepted | Class::Permanent => Outcome::Failed {
                        code,
                        title,
                        reason: "permanent",
                    },
                    Class::RetryFast | Class::RetrySlow => {
                        self.retry(&rule, attempts, code, title, retry_after)
                    }
                    Class::Halt => Outcome::Halt {
                        scope: rule.scope,
                        label: code.map_or_else(|| format!("http_{status}"), |c| c.to_string()),
                        code,
                        title,
                    },
                }
            }
            Answer::Ambiguous { reason } => {
                metrics::counter!(m::SENDS_TOTAL, "class" => "ambiguous").increment(1);
                match self.policy {
                    UnknownOutcomePolicy::Fail => {
                        metrics::counter!(m::UNKNOWN_OUTCOMES_TOTAL, "cause" => "timeout", "action" => "failed")
                            .increment(1);
                        Outcome::Failed {
                            code: None,
                            title: unknown_outcome::not_resent(reason),
                            reason: "unknown_outcome",
                        }
                    }
                    UnknownOutcomePolicy::Resend => {
                        metrics::counter!(m::UNKNOWN_OUTCOMES_TOTAL, "cause" => "timeout", "action" => "resent")
                            .increment(1);
                        let rule = classify(None, 503, false);
                        self.retry(
                            &rule,
                            attempts,
                            None,
                            unknown_outcome::retried(reason),
                            None,
                        )
                    }
                }
            }
            Answer::NotSent { reason } => {
                metrics::counter!(m::SENDS_TOTAL, "class" => "not_sent").increment(1);
                let rule = classify(None, 503, false);
                self.retry(&rule, attempts, None, format!("not sent: {reason}"), None)
            }
        }
    }

    fn retry(
        &self,
        rule: &Rule,
        attempts: u32,
        code: Option<i64>,
        title: String,
        retry_after: Option<Duration>,
    ) -> Outcome {
        let cap = rule
            .max_attempts
            .map_or(self.max_attempts, |c| c.min(self.max_attempts));
        if attempts >= cap {
            return Outcome::Failed {
                code,
                title: format!("{title} (gave up after {attempts} attempts)"),
                reason: "exhausted",
            };
        }
        Outcome::Retry {
            delay: self.retry.delay(rule, attempts, retry_after),
            code,
            title,
            class: rule.class,
        }
    }
}
