//! The jobs the engine puts on its queues, shared by the api (producer), the scheduler
//! (outbox re-push) and the workers (consumers).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::keyspace::{SCHEDULE_QUEUE, SEND_QUEUE, WEBHOOK_QUEUE};

/// Send one message. The row in `messages` is the source of truth; the job only points at it,
/// so a duplicate job is harmless (the worker claims rows `queued -> sending` once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendJob {
    pub message_id: Uuid,
    pub dispatch_id: Uuid,
    pub account_id: Uuid,
}

/// Release a scheduled dispatch (its rows `scheduled -> queued`, jobs pushed). Harmless when
/// repeated: only rows still `scheduled` are released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseJob {
    pub dispatch_id: Uuid,
}

/// A WhatsApp webhook body whose signature the api checked, kept verbatim (the status
/// consumer folds its statuses). Serialises as the body itself.
#[derive(Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookBody(pub Box<serde_json::value::RawValue>);

impl WebhookBody {
    /// The body's bytes, as received.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.get().as_bytes()
    }
}
