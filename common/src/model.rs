//! The states of a message and of a dispatch, defined once for every crate and for SQL.
//!
//! Columns `messages.status` and `dispatches.status` are `text` with a CHECK listing exactly
//! these values (migration 7); the types map to them through sqlx, and [`MessageStatus::sql_list`]
//! gives the quoted lists that statements embed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where one message is. Waiting states come first; then WhatsApp's answers; then the ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Waits for its dispatch's `scheduled_at`.
    Scheduled,
    /// Recorded, its job on the send queue (or waiting for a retry or a slot).
    Queued,
    /// Held back by a budget (the portfolio's messaging limit, `docs/messaging-limits.md`):
    /// not an attempt, not a failure; its job comes back when the budget has room (its
    /// `next_attempt_at`), and the row says why (`deferred_reason`).
    Deferred,
    /// Claimed by a worker; the Graph API request may be in flight.
    Sending,
    /// The Graph API answered with a wamid; no status webhook yet.
    Accepted,
    Sent,
    Delivered,
    Read,
    Failed,
    Cancelled,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 10] = [
        Self::Scheduled,
        Self::Queued,
        Self::Deferred,
        Self::Sending,
        Self::Accepted,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Failed,
        Self::Cancelled,
    ];

    /// States still waiting to go out or for WhatsApp's first answer: a dispatch with one of
    /// these left is not completed (shown as `queued` in a dispatch's progress, except
    /// `deferred`, counted apart). The partial index `messages_waiting` has this list.
    pub const WAITING: [MessageStatus; 5] = [
        Self::Scheduled,
        Self::Queued,
        Self::Deferred,
        Self::Sending,
        Self::Accepted,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Deferred => "deferred",
            Self::Sending => "sending",
            Self::Accepted => "accepted",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn is_waiting(self) -> bool {
        Self::WAITING.contains(&self)
    }

    /// `'a','b',...` for an SQL `IN (...)`.
    pub fn sql_list(states: &[MessageStatus]) -> String {
        quoted(states.iter().map(|s| s.as_str()))
    }
}

/// Where one dispatch is. `completed` is also what a dispatch's progress shows once none of
/// its messages is waiting (see [`DispatchStatus::shown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum DispatchStatus {
    Scheduled,
    Queued,
    Sending,
    Completed,
    Cancelled,
    Paused,
    /// Shown, never stored: an audience send whose fan-out is still running.
    Expanding,
}

impl DispatchStatus {
    pub const ALL: [DispatchStatus; 7] = [
        Self::Scheduled,
        Self::Queued,
        Self::Sending,
        Self::Completed,
        Self::Cancelled,
        Self::Paused,
        Self::Expanding,
    ];

    /// States in which a dispatch's messages are meant to go out now.
    pub const ACTIVE: [DispatchStatus; 2] = [Self::Queued, Self::Sending];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Paused => "paused",
            Self::Expanding => "expanding",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The status a reader sees: an active dispatch with no message waiting any more is
    /// `completed`; every other stored status shows as it is.
    pub fn shown(self, any_waiting: bool) -> Self {
        if Self::ACTIVE.contains(&self) && !any_waiting {
            Self::Completed
        } else {
            self
        }
    }

    /// [`DispatchStatus::shown`] for a dispatch whose audience fan-out may still run: while
    /// it does, a dispatch that is going out (or scheduled) shows `expanding`.
    pub fn shown_during_fanout(self, any_waiting: bool, expanding: bool) -> Self {
        if expanding && (Self::ACTIVE.contains(&self) || self == Self::Scheduled) {
            Self::Expanding
        } else {
            self.shown(any_waiting)
        }
    }

    /// `'a','b',...` for an SQL `IN (...)`.
    pub fn sql_list(states: &[DispatchStatus]) -> String {
        quoted(states.iter().map(|s| s.as_str()))
    }
}

fn quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for DispatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error titles of messages whose earlier attempt's outcome is unknown: the request may or
/// may not have reached WhatsApp, so (with `UNKNOWN_OUTCOME_POLICY=fail`) they are failed
/// rather than sent twice. Every title starts with [`unknown_outcome::PREFIX`].
pub mod unknown_outcome {
    /// What every unknown-outcome title starts with (dashboards and tests match on it).
    pub const PREFIX: &str = "outcome unknown";

    /// A worker stopped (or died) between claiming the row and learning the answer; found by
    /// the next worker that gets the job, or by the scheduler's stuck-send sweep.
    pub const WORKER_STOPPED: &str =
        "outcome unknown: the worker stopped mid-send (not resent, so it is never sent twice)";

    /// Every attempt ended without an answer (timeouts, dropped connections).
    pub const ATTEMPTS_USED_UP: &str = "outcome unknown: attempts used up";

    /// One attempt ended without an answer, for `reason`, and the policy forbids resending.
    pub fn not_resent(reason: &str) -> String {
        format!("{PREFIX}: {reason} (not resent, so it is never sent twice)")
    }

    /// One attempt ended without an answer, for `reason` (it will be retried).
    pub fn retried(reason: &str) -> String {
        format!("{PREFIX}: {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).ok(),
                Some(format!("\"{}\"", s.as_str()))
            );
        }
        for s in DispatchStatus::ALL {
            assert_eq!(DispatchStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(MessageStatus::parse("unknown"), None);
    }

    #[test]
    fn waiting_and_shown() {
        assert_eq!(
            MessageStatus::sql_list(&MessageStatus::WAITING),
            "'scheduled','queued','deferred','sending','accepted'"
        );
        assert!(!MessageStatus::Sent.is_waiting());
        assert!(MessageStatus::Deferred.is_waiting());
        assert_eq!(
            DispatchStatus::Sending.shown(false),
            DispatchStatus::Completed
        );
        assert_eq!(DispatchStatus::Sending.shown(true), DispatchStatus::Sending);
        assert_eq!(DispatchStatus::Paused.shown(false), DispatchStatus::Paused);
    }

    #[test]
    fn unknown_titles_share_the_prefix() {
        for t in [
            unknown_outcome::WORKER_STOPPED.to_string(),
            unknown_outcome::ATTEMPTS_USED_UP.to_string(),
            unknown_outcome::not_resent("timeout"),
            unknown_outcome::retried("timeout"),
        ] {
            assert!(t.starts_with(unknown_outcome::PREFIX), "{t}");
        }
    }
}
