//! What the queue handle and the apalis backend share: one queue's connection state, the
//! decoding of delivered entries and the settling decision, and the delivery data of a job.

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use apalis_core::error::{AbortError, DeferredError, RetryAfterError};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::config::{Keys, QueueConfig};
use crate::conn::{Conn, Connector};
use crate::error::JobError;
use crate::proto::{self, Delivered, Settle};

pub(crate) struct Inner {
    pub(crate) cfg: QueueConfig,
    pub(crate) keys: Keys,
    pub(crate) connector: Connector,
    pub(crate) conn: Conn,
}

impl Inner {
    pub(crate) fn shared(&self) -> Conn {
        self.conn.clone()
    }

    /// Turns a delivered entry into a typed job, or a dead letter if it cannot be one.
    pub(crate) fn decode<T: DeserializeOwned>(&self, d: Delivered) -> Result<(T, JobMeta), Settle> {
        let Some(payload) = d.payload else {
            return Err(Settle::Dead {
                id: d.id,
                payload: Bytes::new(),
                attempts: d.attempt,
                error: "stream entry has no payload field".to_owned(),
            });
        };
        if d.attempt > self.cfg.max_attempts {
            // A job whose deliveries keep dying with their worker (a poison job).
            return Err(Settle::Dead {
                id: d.id,
                payload,
                attempts: d.attempt - 1,
                error: format!(
                    "lease expired on every one of {} attempts (worker died or handler too slow)",
                    d.attempt - 1
                ),
            });
        }
        match serde_json::from_slice::<T>(&payload) {
            Ok(job) => Ok((
                job,
                JobMeta(Arc::new(MetaInner {
                    id: d.id,
                    attempt: d.attempt,
                    payload,
                    reclaimed: d.reclaimed,
                })),
            )),
            Err(e) => {
                tracing::warn!(queue = %self.cfg.queue, id = %d.id, error = %e, "undecodable job dead-lettered");
                Err(Settle::Dead {
                    id: d.id,
                    payload,
                    attempts: d.attempt,
                    error: format!("undecodable payload: {e}"),
                })
            }
        }
    }

    /// Decides how a finished attempt is settled.
    pub(crate) fn decide(&self, meta: &JobMeta, err: Option<&(dyn StdError + 'static)>) -> Settle {
        let id = meta.0.id.clone();
        let Some(err) = err else {
            return Settle::Ack { id };
        };
        let attempt = meta.0.attempt;
        let (after, permanent) = classify(err);
        let error = err.to_string();
        if permanent || attempt >= self.cfg.max_attempts {
            return Settle::Dead {
                id,
                payload: meta.0.payload.clone(),
                attempts: attempt,
                error,
            };
        }
        let delay = after.unwrap_or_else(|| self.cfg.retry.delay_for(attempt));
        Settle::Retry {
            id,
            payload: meta.0.payload.clone(),
            attempts: attempt,
            due_ms: proto::now_ms()
                .saturating_add(i64::try_from(proto::ms(delay)).unwrap_or(i64::MAX / 2)),
        }
    }
}

/// Finds our [`JobError`] (or apalis' retry/abort errors) anywhere in the source chain.
/// Returns (named delay, permanent).
fn classify(err: &(dyn StdError + 'static)) -> (Option<Duration>, bool) {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(j) = e.downcast_ref::<JobError>() {
            return match j {
                JobError::Retry { after, .. } => (*after, false),
                JobError::Permanent(_) => (None, true),
            };
        }
        if let Some(r) = e.downcast_ref::<RetryAfterError>() {
            return (Some(r.get_duration()), false);
        }
        if e.downcast_ref::<AbortError>().is_some() {
            return (None, true);
        }
        if e.downcast_ref::<DeferredError>().is_some() {
            return (None, false);
        }
        cur = e.source();
    }
    (None, false)
}

struct MetaInner {
    id: Arc<str>,
    attempt: u32,
    payload: Bytes,
    reclaimed: bool,
}

/// What the queue knows of a delivered job: its stream id, attempt number and raw payload.
/// Under apalis a handler gets it with the `Data<JobMeta>` extractor. Cheap to clone.
#[derive(Clone)]
pub struct JobMeta(Arc<MetaInner>);

impl std::fmt::Debug for JobMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The payload is deliberately left out: it may hold phone numbers and message text.
        f.debug_struct("JobMeta")
            .field("id", &self.0.id)
            .field("attempt", &self.0.attempt)
            .field("reclaimed", &self.0.reclaimed)
            .finish()
    }
}

impl JobMeta {
    /// The Redis stream id of this delivery.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    pub(crate) fn id_arc(&self) -> Arc<str> {
        self.0.id.clone()
    }

    /// 1-based attempt number (counts failed attempts and deliveries lost with a worker).
    pub fn attempt(&self) -> u32 {
        self.0.attempt
    }

    /// The serialized job as stored (JSON).
    pub fn payload(&self) -> &[u8] {
        &self.0.payload
    }

    /// Whether this delivery was taken over from a consumer whose lease ran out.
    pub fn reclaimed(&self) -> bool {
        self.0.reclaimed
    }
}
