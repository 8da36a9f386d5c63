//! The jobs the engine puts on its queues, shared by the api (producer), the scheduler
//! (outbox re-push) and the workers (consumers).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Name of the queue that carries one job per message to send.
pub const SEND_QUEUE: &str = "send";

/// Send one message. The row in `messages` is the source of truth; the job only points at it,
/// so a duplicate job is harmless (the worker claims rows `queued -> sending` once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendJob {
    pub message_id: Uuid,
    pub dispatch_id: Uuid,
    pub account_id: Uuid,
}

/// Name of the queue that carries the release of scheduled dispatches, as delayed jobs due at
/// each dispatch's `scheduled_at` (consumed by the active scheduler).
pub const SCHEDULE_QUEUE: &str = "schedule";

/// Release a scheduled dispatch (its rows `scheduled -> queued`, jobs pushed). Harmless when
/// repeated: only rows still `scheduled` are released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseJob {
    pub dispatch_id: Uuid,
}
