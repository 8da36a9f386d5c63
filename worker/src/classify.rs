//! What a Graph API answer means for a message: the reference's error table as data.
//!
//! Branch on `error.code`, never on titles; the HTTP status only decides when no Graph error
//! code came back. Unknown codes are permanent and counted by an alerting metric (Meta adds
//! codes regularly; a blind retry of an unknown code can spam users or burn the number's
//! quality). See `worker/README.md` for the table in prose.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The class of one send result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// HTTP 200 with a wamid.
    Accepted,
    /// Retry soon (seconds) with exponential backoff and jitter.
    RetryFast,
    /// Retry later (a minute and more): downtime, app/WABA call limits, maintenance.
    RetrySlow,
    /// Never retry this message.
    Permanent,
    /// Stop sending for the number, account or dispatch and alert an operator.
    Halt,
}

impl Class {
    /// Label value of `ezpulze_worker_sends_total{class}`.
    pub fn label(self) -> &'static str {
        match self {
            Class::Accepted => "accepted",
            Class::RetryFast => "retry_fast",
            Class::RetrySlow => "retry_slow",
            Class::Permanent => "permanent",
            Class::Halt => "halt",
        }
    }
}

/// What a halt pauses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HaltScope {
    /// Every sending dispatch of the phone number (token, registration, number quality).
    Number,
    /// Every sending dispatch of the account (business account locked, payment, policy).
    Account,
    /// Only this dispatch (its template is missing, paused or needs another route).
    Dispatch,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub class: Class,
    /// At most this many attempts for this code (below `SEND_MAX_ATTEMPTS`), then permanent.
    pub max_attempts: Option<u32>,
    /// Never retry sooner than this (e.g. 131056: 6 s to that recipient).
    pub min_delay: Duration,
    /// For [`Class::Halt`]: what to pause.
    pub scope: HaltScope,
    /// Whether the code is in the table (unknown codes alert).
    pub known: bool,
}

const fn rule(class: Class) -> Rule {
    Rule {
        class,
        max_attempts: None,
        min_delay: Duration::ZERO,
        scope: HaltScope::Number,
        known: true,
    }
}

const fn halt(scope: HaltScope) -> Rule {
    Rule {
        class: Class::Halt,
        max_attempts: None,
        min_delay: Duration::ZERO,
        scope,
        known: true,
    }
}

const fn capped(class: Class, max: u32) -> Rule {
    Rule {
        class,
        max_attempts: Some(max),
        min_delay: Duration::ZERO,
        scope: HaltScope::Number,
        known: true,
    }
}

const fn at_least(class: Class, secs: u64) -> Rule {
    Rule {
        class,
        max_attempts: None,
        min_delay: Duration::from_secs(secs),
        scope: HaltScope::Number,
        known: true,
    }
}

/// The reference's table (section 3), code by code.
pub fn rule_for(code: i64) -> Option<Rule> {
    use Class::*;
    use HaltScope::*;
    Some(match code {
        // Throughput: back off; the per-number limiter is the real fix.
        130429 => at_least(RetryFast, 1),
        // Pair rate limit: at least 6 s before the next send to that recipient.
        131056 => at_least(RetryFast, 6),
        // Internal error: may be a configuration problem, so capped.
        131000 => capped(RetryFast, 3),
        131016 => rule(RetryFast),
        // API Unknown: once more, then permanent.
        1 => capped(RetryFast, 2),
        2 => rule(RetrySlow),
        4 | 80007 | 80004 => at_least(RetrySlow, 60),
        // Maintenance mode (throughput upgrade): minutes.
        131057 => at_least(RetrySlow, 60),
        // Quality and account problems: pushing harder makes them worse.
        131048 => halt(Number),
        33 | 131037 | 131045 | 133010 => halt(Number),
        190 => halt(Number),
        0 | 3 | 10 | 200..=299 => halt(Number),
        368 | 131031 | 131042 => halt(Account),
        // Template missing/paused, or marketing must use another endpoint: that dispatch.
        132001 | 132015 | 131063 => halt(Dispatch),
        // Permanent for this message or recipient.
        131049 | 130472 | 131050 | 131026 | 131047 | 131051 | 131052 | 131053 | 131008 | 131009
        | 100 | 132000 | 132005 | 132007 | 132008 | 132012 | 132016 | 132018 | 132068 | 132069
        | 131021 | 131030 | 131062 | 137000 | 135000 | 130497 => rule(Permanent),
        _ => return None,
    })
}

/// The class of an answer: by Graph error code when there is one, else by HTTP status.
/// `code` is `error.code` of an error body; `status` the HTTP status.
pub fn class(code: Option<i64>, status: u16) -> Class {
    classify(code, status, false).class
}

/// [`class`] with the full rule; `transient` is Graph's `is_transient` hint (it turns an
/// unknown code into a slow retry instead of a permanent failure).
pub fn classify(code: Option<i64>, status: u16, transient: bool) -> Rule {
    if (200..300).contains(&status) && code.is_none() {
        return rule(Class::Accepted);
    }
    if let Some(code) = code {
        if let Some(r) = rule_for(code) {
            return r;
        }
        let class = if transient {
            Class::RetrySlow
        } else {
            Class::Permanent
        };
        return Rule {
            known: false,
            ..rule(class)
        };
    }
    // No Graph error body.
    let class = match status {
        429 => Class::RetryFast,
        401 | 403 => Class::Halt,
        // 5xx without a body is a transport failure: the caller treats it as ambiguous.
        500..=599 => Class::RetryFast,
        _ => Class::Permanent,
    };
    Rule {
        known: false,
        ..rule(class)
    }
}

/// Retry schedules (backon exponential with jitter), per class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub min_delay: Duration,
    pub max_delay: Duration,
    pub factor: f32,
}

impl Schedule {
    /// The delay before the retry that follows failed attempt `attempt` (1-based), with
    /// jitter (backon adds up to the same amount again).
    pub fn delay(&self, attempt: u32) -> Duration {
        let n = attempt.max(1) as usize;
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_factor(self.factor)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(n - 1)
            .unwrap_or(self.max_delay)
    }
}

/// The two retry schedules.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrySchedules {
    pub fast: Schedule,
    pub slow: Schedule,
}

impl Default for RetrySchedules {
    fn default() -> Self {
        Self {
            fast: Schedule {
                min_delay: Duration::from_secs(1),
                max_delay: Duration::from_secs(60),
                factor: 2.0,
            },
            slow: Schedule {
                min_delay: Duration::from_secs(30),
                max_delay: Duration::from_secs(15 * 60),
                factor: 2.0,
            },
        }
    }
}

impl RetrySchedules {
    /// The delay before retrying after failed attempt `attempt` under `rule`, honouring
    /// `Retry-After` and the code's minimum.
    pub fn delay(&self, rule: &Rule, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let base = match rule.class {
            Class::RetrySlow => self.slow.delay(attempt),
            _ => self.fast.delay(attempt),
        };
        base.max(rule.min_delay)
            .max(retry_after.unwrap_or(Duration::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code of the reference's table (section 3) with its class.
    const TABLE: &[(i64, Class)] = &[
        (130429, Class::RetryFast),
        (131056, Class::RetryFast),
        (131000, Class::RetryFast),
        (131016, Class::RetryFast),
        (1, Class::RetryFast),
        (2, Class::RetrySlow),
        (4, Class::RetrySlow),
        (80007, Class::RetrySlow),
        (80004, Class::RetrySlow),
        (131057, Class::RetrySlow),
        (131048, Class::Halt),
        (131049, Class::Permanent),
        (130472, Class::Permanent),
        (131050, Class::Permanent),
        (131026, Class::Permanent),
        (131047, Class::Permanent),
        (131051, Class::Permanent),
        (131052, Class::Permanent),
        (131053, Class::Permanent),
        (131008, Class::Permanent),
        (131009, Class::Permanent),
        (100, Class::Permanent),
        (33, Class::Halt),
        (132000, Class::Permanent),
        (132001, Class::Halt),
        (132005, Class::Permanent),
        (132007, Class::Permanent),
        (132008, Class::Permanent),
        (132012, Class::Permanent),
        (132015, Class::Halt),
        (132016, Class::Permanent),
        (132068, Class::Permanent),
        (132069, Class::Permanent),
        (131021, Class::Permanent),
        (131030, Class::Permanent),
        (131031, Class::Halt),
        (131037, Class::Halt),
        (131042, Class::Halt),
        (131045, Class::Halt),
        (131062, Class::Permanent),
        (131063, Class::Halt),
        (137000, Class::Permanent),
        (133010, Class::Halt),
        (135000, Class::Permanent),
        (368, Class::Halt),
        (130497, Class::Permanent),
        (190, Class::Halt),
        (0, Class::Halt),
        (3, Class::Halt),
        (10, Class::Halt),
        (200, Class::Halt),
        (250, Class::Halt),
        (299, Class::Halt),
    ];

    #[test]
    fn every_code_of_the_reference_takes_its_class() {
        for &(code, want) in TABLE {
            // The HTTP status must not matter when a code is present.
            for status in [400, 401, 403, 429, 500, 503] {
                assert_eq!(
                    class(Some(code), status),
                    want,
                    "code {code} status {status}"
                );
            }
            assert!(classify(Some(code), 400, false).known, "{code}");
        }
    }

    #[test]
    fn halt_scopes() {
        let scope = |c| classify(Some(c), 400, false).scope;
        assert_eq!(scope(190), HaltScope::Number);
        assert_eq!(scope(131048), HaltScope::Number);
        assert_eq!(scope(133010), HaltScope::Number);
        assert_eq!(scope(368), HaltScope::Account);
        assert_eq!(scope(131031), HaltScope::Account);
        assert_eq!(scope(131042), HaltScope::Account);
        assert_eq!(scope(132015), HaltScope::Dispatch);
    }

    #[test]
    fn unknown_codes_are_permanent_and_flagged() {
        let r = classify(Some(999_999), 400, false);
        assert_eq!((r.class, r.known), (Class::Permanent, false));
        // Graph's is_transient hint turns an unknown code into a slow retry.
        assert_eq!(classify(Some(999_999), 400, true).class, Class::RetrySlow);
        // A known permanent code stays permanent whatever the hint says.
        assert_eq!(classify(Some(132000), 400, true).class, Class::Permanent);
    }

    #[test]
    fn answers_without_a_code_go_by_status() {
        assert_eq!(class(None, 200), Class::Accepted);
        assert_eq!(class(None, 429), Class::RetryFast);
        assert_eq!(class(None, 502), Class::RetryFast);
        assert_eq!(class(None, 401), Class::Halt);
        assert_eq!(class(None, 404), Class::Permanent);
    }

    #[test]
    fn caps_and_minimum_delays() {
        assert_eq!(classify(Some(131000), 500, false).max_attempts, Some(3));
        assert_eq!(classify(Some(1), 500, false).max_attempts, Some(2));
        let s = RetrySchedules {
            fast: Schedule {
                min_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(100),
                factor: 2.0,
            },
            slow: Schedule {
                min_delay: Duration::from_millis(50),
                max_delay: Duration::from_secs(1),
                factor: 2.0,
            },
        };
        let pair = classify(Some(131056), 400, false);
        assert!(s.delay(&pair, 1, None) >= Duration::from_secs(6));
        let thr = classify(Some(130429), 400, false);
        assert!(s.delay(&thr, 1, None) >= Duration::from_secs(1));
        let fast = classify(Some(131016), 503, false);
        let d = s.delay(&fast, 1, None);
        assert!(
            d >= Duration::from_millis(10) && d <= Duration::from_millis(20),
            "{d:?}"
        );
        // Retry-After wins when it is longer.
        assert_eq!(
            s.delay(&fast, 1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        let slow = classify(Some(2), 503, false);
        assert!(s.delay(&slow, 3, None) >= Duration::from_millis(200));
        // Defaults: slow retries start at 30 s, fast ones at 1 s.
        let d = RetrySchedules::default();
        assert!(d.delay(&slow, 1, None) >= Duration::from_secs(30));
        assert!(d.delay(&fast, 1, None) >= Duration::from_secs(1));
    }
}
