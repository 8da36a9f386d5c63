//! Error types: [`QueueError`] for queue operations, [`JobError`] for handlers.

use std::time::Duration;

/// An error of a queue operation (push, fetch, settle, introspection).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// Redis answered with an error or could not be reached.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A job could not be serialized.
    #[error("could not encode a job: {0}")]
    Encode(#[source] serde_json::Error),
    /// Redis answered with something this crate does not understand.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
    /// The configuration is invalid.
    #[error("invalid queue configuration: {0}")]
    Config(String),
}

/// What a handler returns when a job did not succeed. Anything else a handler fails with
/// (a timeout, a panic caught by the catch-panic layer, another error type) is treated as
/// `Retry { after: None }`; apalis' own `RetryAfterError` is honoured as `Retry` with its
/// delay and `AbortError` as `Permanent`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Try again later: after `after` if given (e.g. from a `Retry-After` header), else after
    /// the queue's backoff. A job that has used up `max_attempts` is dead-lettered instead.
    #[error("retryable failure: {reason}")]
    Retry {
        /// A delay the handler insists on; `None` = the queue's backoff policy.
        after: Option<Duration>,
        /// Why; stored with the dead letter if attempts run out.
        reason: String,
    },
    /// Never retry: goes to the dead-letter stream with this reason.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl JobError {
    /// A retry with the queue's backoff.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            after: None,
            reason: reason.into(),
        }
    }

    /// A retry no earlier than `after`.
    pub fn retry_after(after: Duration, reason: impl Into<String>) -> Self {
        Self::Retry {
            after: Some(after),
            reason: reason.into(),
        }
    }

    /// A permanent failure.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent(reason.into())
    }
}
