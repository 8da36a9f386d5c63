//! Send slots shared by every worker process: a per-number GCRA in Redis, and the
//! per-recipient pair gap.
//!
//! **Throughput.** One Redis key per phone number, in the number's send lane, holds the
//! theoretical arrival time (TAT, in microseconds of Redis' own clock) of the next free slot.
//! The lane's read script (`ezpulze_queue::lanes`) hands out the slots `tat, tat + T, ...`
//! (T = [`interval_for`] the number's rate) that fall within the horizon, one per job it pops,
//! and moves the TAT past them, atomically. So all workers together never get more than one
//! slot per T, whatever their number. Slots are spaced evenly (no burst), and the rate is the
//! number's `messages_per_second` times a headroom factor, because Meta counts inbound
//! messages too and because a send can leave a little after its slot. This module keeps the
//! penalty after a `130429`.
//!
//! **Pair gap.** `SET <number,recipient> NX PX <gap + time until the slot>` per message,
//! pipelined per batch with a `PTTL` that says how long a refused one must wait.
//!
//! Send intents (whether a message's request may have left) are not slots: they live in
//! [`crate::intents`].

use std::time::Duration;

use ezpulze_common::keyspace::Keyspace;

use ezpulze_common::redis_conn::RedisConn;

const PENALIZE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local want = now + tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < want then
  redis.call('SET', KEYS[1], string.format('%d', want), 'PX', math.floor(tonumber(ARGV[1]) / 1000) + 1000)
end
return 1
"#;

/// The shared limiter.
#[derive(Clone)]
pub struct Throttle {
    conn: RedisConn,
    keys: Keyspace,
    penalty: redis::Script,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.keys.debug_holder("Throttle", f)
    }
}

/// The slot spacing for a number's rate: `1 / floor(mps * headroom)`, at least one per second.
pub fn interval_for(mps: u32, headroom: f64) -> Duration {
    let rate = (f64::from(mps) * headroom).floor().max(1.0);
    Duration::from_micros((1_000_000.0 / rate).ceil() as u64)
}

impl Throttle {
    pub fn new(conn: RedisConn, prefix: &str) -> Self {
        Self {
            conn,
            keys: Keyspace::new(prefix),
            penalty: redis::Script::new(PENALIZE_LUA),
        }
    }

    fn rate_key(&self, phone_number_id: &str) -> String {
        self.keys.throughput(phone_number_id)
    }

    fn pair_key(&self, phone_number_id: &str, to: &str) -> String {
        self.keys.pair_gap(phone_number_id, to)
    }

    /// After a 130429 from Meta: no slot of that number for `pause` (every worker).
    pub async fn penalize(&self, phone_number_id: &str, pause: Duration) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .penalty
            .key(self.rate_key(phone_number_id))
            .arg(pause.as_micros() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Deletes `keys` in one round trip (none: no call).
    async fn delete(&self, keys: impl Iterator<Item = String>) -> redis::RedisResult<()> {
        let keys: Vec<String> = keys.collect();
        if keys.is_empty() {
            return Ok(());
        }
        // One DEL per key: the keys may hash to different slots.
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("DEL").arg(key).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await
    }

    /// Gives back the pair gaps of messages that were not sent after all.
    pub async fn release_pairs(&self, items: &[(String, String)]) -> redis::RedisResult<()> {
        self.delete(items.iter().map(|(number, to)| self.pair_key(number, to)))
            .await
    }

    /// Takes the pair gap for each `(phone_number_id, to, time until its send)`. Returns, per
    /// item, `None` when it may go, or how long it must wait.
    pub async fn pairs(
        &self,
        items: &[(&str, &str, Duration)],
        gap: Duration,
    ) -> redis::RedisResult<Vec<Option<Duration>>> {
        if items.is_empty() || gap.is_zero() {
            return Ok(vec![None; items.len()]);
        }
        let mut pipe = redis::pipe();
        for (number, to, until) in items {
            let key = self.pair_key(number, to);
            let ttl = gap + *until + Duration::from_millis(250);
            pipe.cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64);
            pipe.cmd("PTTL").arg(&key);
        }
        let mut conn = self.conn.clone();
        let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await?;
        let mut out = Vec::with_capacity(items.len());
        for pair in replies.chunks(2) {
            let took = matches!(pair.first(), Some(redis::Value::Okay))
                || matches!(pair.first(), Some(redis::Value::SimpleString(s)) if s == "OK");
            if took {
                out.push(None);
            } else {
                let ms = match pair.get(1) {
                    Some(redis::Value::Int(n)) if *n > 0 => *n as u64,
                    _ => gap.as_millis() as u64,
                };
                out.push(Some(Duration::from_millis(ms)));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(interval_for(80, 0.9), Duration::from_micros(13_889));
        assert_eq!(interval_for(80, 1.0), Duration::from_micros(12_500));
        assert_eq!(interval_for(1, 0.5), Duration::from_secs(1));
    }
}
