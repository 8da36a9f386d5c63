//! Every Redis key, stream, group and channel the engine uses, named in one place.
//!
//! One convention: a key that must share a Redis Cluster slot with others is
//! `{<prefix>:<tag>}:<rest>`, the hash tag being the prefix and the part that groups them
//! (a queue, a phone number's throughput, the webhook stream). Keys that are only ever
//! touched one at a time are `<prefix>:<area>:<rest>` without a tag. `<prefix>` is
//! `REDIS_PREFIX` (tests use a unique one each, so they can share one Redis).
//!
//! | key | type | owner |
//! |---|---|---|
//! | `{p:send}:*`, `{p:schedule}:*` | queue (see `ezpulze-queue`) | api pushes, workers / scheduler consume |
//! | `{p:webhooks}:*`, group `status` | queue of signed webhook bodies | api pushes, workers' status consumers read |
//! | `p:keys:invalidate` | pub/sub channel | api replicas (key cache) |
//! | `p:numbers:epoch` | counter | api, workers bump it on any number change; workers' number caches reload when it moves |
//! | `p:rl:<key id>` | string (GCRA) | api rate limit |
//! | `p:session:<id>` | string | api UI sessions |
//! | `p:sessions:<account id>` | set of session ids | api: every UI session of an account (to end them all) |
//! | `p:idem:<caller>:<sha256>` | string, short TTL | api: an Idempotency-Key request in progress |
//! | `{p:send:<phone number id>}:*` | a send lane (see `ezpulze_queue::lanes`), its GCRA in `:tp` | api, scheduler push; workers read |
//! | `{p:send:registry:<i>}` | sorted set: lanes with work | workers |
//! | `{p:pair:<phone number id>}:<to>` | string, TTL | workers: gap between two messages to one recipient |
//! | `{p:sending}:<message id>` | string, TTL | workers: send intents (a request may be in flight) |
//! | `p:scheduler:lease` | string, TTL | the active scheduler |
//! | `{p:budget:<account id>}:reached` | sorted set: recipient -> last counted (ms) | workers: the portfolio's messaging-limit count (`ezpulze_common::messaging_limit`) |
//! | `{p:budget:<account id>}:inbound` | sorted set: sender -> last inbound (ms) | workers: open customer-service windows |

use uuid::Uuid;

/// Name of the queue that carries one job per message to send.
pub const SEND_QUEUE: &str = "send";

/// Name of the queue that carries the release of scheduled dispatches.
pub const SCHEDULE_QUEUE: &str = "schedule";

/// Name of the queue that carries signed WhatsApp webhook bodies to the status consumers
/// (its stream is `{<prefix>:webhooks}:stream`).
pub const WEBHOOK_QUEUE: &str = "webhooks";

/// Consumer group of the status consumers on the webhook queue.
pub const STATUS_GROUP: &str = "status";

/// The engine's Redis names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace {
    prefix: String,
}

impl Keyspace {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix itself (the queue crate derives its own keys from it and a queue name).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A `Debug` of a type `name` that holds this keyspace and a connection: only the prefix
    /// is shown.
    pub fn debug_holder(&self, name: &str, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(name).field("prefix", &self.prefix).finish()
    }

    /// Pub/sub channel of key cache invalidations (a key hash in hex, or `*` for all).
    pub fn key_invalidations(&self) -> String {
        format!("{}:keys:invalidate", self.prefix)
    }

    /// A credential or number created in the last few minutes (`what`: a hex hash, or
    /// `n:<phone_number_id>`), for replicas that have not heard of it yet.
    pub fn recently_created(&self, what: &str) -> String {
        format!("{}:known:new:{what}", self.prefix)
    }

    /// GCRA state of one API key's hourly limit.
    pub fn rate_limit(&self, key_id: &Uuid) -> String {
        format!("{}:rl:{}", self.prefix, key_id.simple())
    }

    /// One web UI session.
    pub fn session(&self, session_id: &str) -> String {
        format!("{}:session:{session_id}", self.prefix)
    }

    /// The ids of an account's web UI sessions (signing out or rotating the admin token ends
    /// them all).
    pub fn account_sessions(&self, account_id: &Uuid) -> String {
        format!("{}:sessions:{}", self.prefix, account_id.simple())
    }

    /// An Idempotency-Key request in progress: `caller` is `k:<key id>` or `a:<account id>`,
    /// `key_digest` the hex SHA-256 of the client's key.
    pub fn idempotency(&self, caller: &str, key_digest: &str) -> String {
        format!("{}:idem:{caller}:{key_digest}", self.prefix)
    }

    /// GCRA state of one phone number's throughput, shared by every worker: in the number's
    /// send lane (same hash tag), where the lane's reads take their slots.
    pub fn throughput(&self, phone_number_id: &str) -> String {
        format!("{{{}:{SEND_QUEUE}:{phone_number_id}}}:tp", self.prefix)
    }

    /// GCRA state of one integrator webhook endpoint's `max_per_second`, shared by every
    /// worker (its own hash tag).
    pub fn hook_rate(&self, endpoint: uuid::Uuid) -> String {
        format!("{{{}:hook:{}}}:tp", self.prefix, endpoint.simple())
    }

    /// Marks the gap between two messages from one number to one recipient.
    pub fn pair_gap(&self, phone_number_id: &str, to: &str) -> String {
        format!("{{{}:pair:{phone_number_id}}}:{to}", self.prefix)
    }

    /// A worker's note that it may be sending this message (see the worker's intents).
    pub fn send_intent(&self, message_id: &Uuid) -> String {
        format!("{{{}:sending}}:{message_id}", self.prefix)
    }

    /// The recipients an account's portfolio reached in the messaging-limit window (one hash
    /// tag per account, shared with [`Keyspace::budget_inbound`]).
    pub fn budget_reached(&self, account: &Uuid) -> String {
        format!("{{{}:budget:{}}}:reached", self.prefix, account.simple())
    }

    /// The account's inbound senders and when they last wrote (customer-service windows).
    pub fn budget_inbound(&self, account: &Uuid) -> String {
        format!("{{{}:budget:{}}}:inbound", self.prefix, account.simple())
    }

    /// The active scheduler's lease.
    pub fn scheduler_lease(&self) -> String {
        format!("{}:scheduler:lease", self.prefix)
    }

    /// The numbers' epoch: bumped on any change of a phone number (its rate, a throughput
    /// upgrade, a flag), so every worker's number cache reloads (`ezpulze_common::number_epoch`).
    pub fn numbers_epoch(&self) -> String {
        format!("{}:numbers:epoch", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_keys_share_the_convention() {
        let k = Keyspace::new("ezp");
        assert_eq!(k.throughput("123"), "{ezp:send:123}:tp");
        assert_eq!(k.pair_gap("123", "+1555"), "{ezp:pair:123}:+1555");
        assert_eq!(
            k.send_intent(&Uuid::nil()),
            "{ezp:sending}:00000000-0000-0000-0000-000000000000"
        );
        assert_eq!(k.key_invalidations(), "ezp:keys:invalidate");
    }
}
