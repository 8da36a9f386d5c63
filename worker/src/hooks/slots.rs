//! Rate slots per endpoint: a GCRA in Redis (`{prefix:hook:<endpoint>}:tp`, the theoretical
//! arrival time of the next free slot in µs of Redis' clock), the mechanism of the per-number
//! throughput. A take hands out the slots `tat, tat + T, ...` that fall within the horizon (at
//! most the number asked) and moves the TAT past them atomically, so all workers together
//! never get more than one slot per `T` = 1 s / `max_per_second` (spaced a little wider, so
//! that a request leaving a few ms late never makes two fall in one second).

use std::time::Duration;

use ezpulze_common::keyspace::Keyspace;
use ezpulze_common::redis_conn::RedisConn;

use super::claim::Endpoint;

const TAKE_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local k = 0
if tat <= now + horizon then
  k = math.floor((now + horizon - tat) / interval) + 1
  if k > want then k = want end
end
if k > 0 then
  local nxt = tat + k * interval
  redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.floor((nxt - now) / 1000) + 1000)
end
return {k, string.format('%d', tat - now)}
"#;

/// Spacing headroom: slots are 5% wider than `1 / max_per_second` (at 1000/s a receiver's
/// busiest second saw 1010 with 2%: timers and scheduling make a few requests leave
/// together; an attempt more than [`LATE`] behind its slot takes a new one).
const SPACING: f64 = 1.05;

/// An attempt that wakes this long after its slot does not use it (it would leave together
/// with the next ones): it takes a new slot.
pub const LATE: Duration = Duration::from_millis(20);

/// What one take granted.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    pub count: usize,
    /// When the first slot is, from now.
    pub first: Duration,
    pub interval: Duration,
}

pub struct Slots {
    conn: RedisConn,
    keys: Keyspace,
    take: redis::Script,
}

/// The slot spacing of a rate.
pub fn interval_for(max_per_second: i32) -> Duration {
    let rate = f64::from(max_per_second.max(1));
    Duration::from_micros((1_000_000.0 * SPACING / rate).ceil() as u64)
}

impl Slots {
    pub fn new(conn: RedisConn, prefix: &str) -> Self {
        Self {
            conn,
            keys: Keyspace::new(prefix),
            take: redis::Script::new(TAKE_LUA),
        }
    }

    /// When the next slot of `endpoint` at `max_per_second` is, taken now (waiting while none
    /// falls within a second).
    pub async fn one(&self, endpoint: uuid::Uuid, max_per_second: i32) -> anyhow::Result<Duration> {
        let interval = interval_for(max_per_second);
        loop {
            let mut conn = self.conn.clone();
            let (count, first): (usize, String) = self
                .take
                .key(self.keys.hook_rate(endpoint))
                .arg(interval.as_micros() as u64)
                .arg(1)
                .arg(1_000_000u64)
                .invoke_async(&mut conn)
                .await?;
            if count == 1 {
                return Ok(Duration::from_micros(first.parse().unwrap_or(0)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Takes up to `want` slots within `horizon` for each endpoint (all at once).
    pub async fn take(
        &self,
        wants: &[(Endpoint, usize)],
        horizon: Duration,
    ) -> anyhow::Result<Vec<Grant>> {
        let calls = wants.iter().map(|(e, want)| {
            let mut conn = self.conn.clone();
            let interval = interval_for(e.max_per_second);
            let mut inv = self.take.key(self.keys.hook_rate(e.id));
            inv.arg(interval.as_micros() as u64)
                .arg(*want)
                .arg(horizon.as_micros() as u64);
            async move {
                let (count, first): (usize, String) = inv.invoke_async(&mut conn).await?;
                let first_us: u64 = first.parse().unwrap_or(0);
                anyhow::Ok(Grant {
                    count,
                    first: Duration::from_micros(first_us),
                    interval,
                })
            }
        });
        futures::future::try_join_all(calls).await
    }
}
