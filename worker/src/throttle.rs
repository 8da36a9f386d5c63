//! Send slots shared by every worker process: a per-number GCRA in Redis, and the
//! per-recipient pair gap.
//!
//! **Throughput.** One Redis key per phone number holds the theoretical arrival time (TAT, in
//! microseconds of Redis' own clock) of the next free slot. A worker asks for `n` slots at
//! once; the Lua script hands out the slots `tat, tat + T, tat + 2T, ...` (T = 1 / rate) that
//! fall within `max_wait` of now and moves the TAT past them, atomically. So all workers
//! together never get more than one slot per T, whatever their number, and no process keeps
//! a share that could go stale when workers come and go. Slots are spaced evenly (no burst),
//! and the rate is the number's `messages_per_second` times a headroom factor, because Meta
//! counts inbound messages too and because a send can leave a little after its slot.
//!
//! **Pair gap.** `SET <number,recipient> NX PX <gap + time until the slot>` per message,
//! pipelined per batch with a `PTTL` that says how long a refused one must wait.
//!
//! Send intents (whether a message's request may have left) are not slots: they live in
//! [`crate::intents`].

use std::time::Duration;

use ezpulze_common::keyspace::Keyspace;

use ezpulze_common::redis_conn::RedisConn;

const RESERVE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local horizon = now + tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local k = 0
if tat <= horizon then
  k = math.floor((horizon - tat) / interval) + 1
  if k > want then k = want end
end
local nxt = tat + k * interval
if k > 0 then
  redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.floor((nxt - now) / 1000) + 1000)
end
return {k, string.format('%d', tat - now), string.format('%d', nxt - now)}
"#;

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

/// Slots granted to one worker for one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// How many of the asked-for slots were granted (the first `granted` messages).
    pub granted: usize,
    /// Time from now to the first granted slot.
    pub first: Duration,
    /// Spacing of the slots.
    pub interval: Duration,
    /// Time from now to the next slot nobody holds (when the rest could go).
    pub next_free: Duration,
}

impl Grant {
    /// Time from now to slot `i` (0-based) of this grant.
    pub fn slot(&self, i: usize) -> Duration {
        self.first + self.interval * u32::try_from(i).unwrap_or(u32::MAX)
    }
}

/// The shared limiter.
#[derive(Clone)]
pub struct Throttle {
    conn: RedisConn,
    keys: Keyspace,
    script: redis::Script,
    penalty: redis::Script,
    headroom: f64,
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
    pub fn new(conn: RedisConn, prefix: &str, headroom: f64) -> Self {
        Self {
            conn,
            keys: Keyspace::new(prefix),
            script: redis::Script::new(RESERVE_LUA),
            penalty: redis::Script::new(PENALIZE_LUA),
            headroom,
        }
    }

    fn rate_key(&self, phone_number_id: &str) -> String {
        self.keys.throughput(phone_number_id)
    }

    fn pair_key(&self, phone_number_id: &str, to: &str) -> String {
        self.keys.pair_gap(phone_number_id, to)
    }

    /// Asks for `want` slots of `phone_number_id` (capped at `mps`/s) within `max_wait`.
    pub async fn reserve(
        &self,
        phone_number_id: &str,
        mps: u32,
        want: usize,
        max_wait: Duration,
    ) -> redis::RedisResult<Grant> {
        let interval = interval_for(mps, self.headroom);
        let mut conn = self.conn.clone();
        let (k, first, next): (i64, i64, i64) = self
            .script
            .key(self.rate_key(phone_number_id))
            .arg(interval.as_micros() as u64)
            .arg(want)
            .arg(max_wait.as_micros() as u64)
            .invoke_async(&mut conn)
            .await?;
        let us = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(Grant {
            granted: usize::try_from(k).unwrap_or(0).min(want),
            first: us(first),
            interval,
            next_free: us(next),
        })
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
        let g = Grant {
            granted: 3,
            first: Duration::from_millis(5),
            interval: Duration::from_millis(10),
            next_free: Duration::from_millis(35),
        };
        assert_eq!(g.slot(2), Duration::from_millis(25));
    }
}
