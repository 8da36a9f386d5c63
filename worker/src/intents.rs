//! Send intents: a Redis key per message, `{<prefix>:sending}:<message id>` (`ezpulze_common::keyspace`), set just before
//! a message's request is written and kept 4 leases. They tell, for a row a dead worker left
//! `sending`, whether its request may have left: without an intent it never did and is sent
//! normally; with one it is an unknown outcome (`UNKNOWN_OUTCOME_POLICY`).
//!
//! Who writes and reads them: the send path notes one per request (`send::request`) and
//! reads them for rows of dead workers (`send::recovery`). Who clears them: only the batch
//! recorder (`send::record`): for rows going back to the queue whose request was answered
//! (retries, halts) or never written (unsent), once they are queued again; for accepted or
//! failed rows (final), once those are written. An intent whose clearing failed, or whose
//! worker died, expires with its TTL.

use ezpulze_common::keyspace::Keyspace;
use std::time::Duration;

use ezpulze_common::redis_conn::RedisConn;
use uuid::Uuid;

/// The send-intent keys of one Redis prefix.
#[derive(Clone)]
pub struct Intents {
    conn: RedisConn,
    keys: Keyspace,
}

impl std::fmt::Debug for Intents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.keys.debug_holder("Intents", f)
    }
}

impl Intents {
    pub fn new(conn: RedisConn, prefix: &str) -> Self {
        Self {
            conn,
            keys: Keyspace::new(prefix),
        }
    }

    fn key(&self, message_id: &Uuid) -> String {
        self.keys.send_intent(message_id)
    }

    /// Notes that a message's request is about to be written (kept for `ttl`). A message
    /// whose worker died is only an unknown outcome if this note exists; without it the
    /// request never left and the message can go out normally.
    pub async fn mark_sending(&self, message_id: &Uuid, ttl: Duration) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(self.key(message_id))
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async::<()>(&mut conn)
            .await
    }

    /// For each message, whether a send of it may have started ([`Intents::mark_sending`]).
    pub async fn send_started(&self, ids: &[Uuid]) -> redis::RedisResult<Vec<bool>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("EXISTS").arg(self.key(id));
        }
        let mut conn = self.conn.clone();
        let v: Vec<i64> = pipe.query_async(&mut conn).await?;
        Ok(v.into_iter().map(|n| n > 0).collect())
    }

    /// Clears the intents of messages whose request was answered or never written, in one
    /// round trip (none: no call).
    pub async fn clear(&self, ids: &[Uuid]) -> redis::RedisResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // One DEL per key: the keys may hash to different slots.
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("DEL").arg(self.key(id)).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await
    }
}
