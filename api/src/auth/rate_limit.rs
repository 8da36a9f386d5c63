//! Per-key hourly request limit, global across API replicas: GCRA in one Redis Lua call, with
//! Redis's own clock in integer microseconds, so replicas with skewed clocks agree.
//!
//! A replica may take a block of tokens in one call and spend them locally for at most
//! `LOCAL_LEASE`: the global count can never go over the limit (tokens are taken in Redis
//! before they are spent), and a busy key costs one Redis call per block instead of one per
//! request. Blocks are at most a second's worth of the key's rate (`limit / 3600`, capped at
//! `MAX_BLOCK`), so keys under 7,200/hour take one token per call and behave exactly, and a
//! block left unspent when its lease ends wastes at most about a second of allowance.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::Script;

/// KEYS[1]: the key's theoretical arrival time (TAT). ARGV[1]: emission interval T in us
/// (3600 s / limit). ARGV[2]: the limit (burst). ARGV[3]: tokens wanted. Grants as many as
/// are free, up to that. Returns {granted, remaining, retry_us, reset_us, now_s}.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local free = math.floor((tolerance - (tat - now)) / interval)
if free < 1 then
  return {0, 0, tat + interval - tolerance - now, tat - now, tonumber(t[1])}
end
local granted = math.min(free, want)
local new_tat = tat + granted * interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {granted, free - granted, 0, new_tat - now, tonumber(t[1])}
"#;

/// How long a replica may spend a block of tokens it took.
pub const LOCAL_LEASE: Duration = Duration::from_secs(1);
/// The largest block of tokens taken in one call.
pub const MAX_BLOCK: u32 = 100;

pub struct RateLimiter {
    script: Script,
    keys: ezpulze_common::keyspace::Keyspace,
    epoch: Instant,
}

/// Tokens this process took from Redis for one key and has not spent yet. It lives in the
/// key's cache entry, so spending one is a few atomic operations, no lock and no lookup.
#[derive(Debug, Default)]
pub struct LocalBlock {
    tokens: AtomicU32,
    /// Remaining in Redis after the block was taken.
    remaining: AtomicU64,
    reset_at: AtomicU64,
    /// Milliseconds since the limiter's epoch after which the block may not be spent.
    expires_ms: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u64,
    /// Seconds until a request would be allowed (0 when allowed).
    pub retry_after_secs: u64,
    /// Epoch second at which the full limit is available again.
    pub reset_at: u64,
}

impl RateLimiter {
    pub fn new(prefix: &str) -> Self {
        Self {
            script: Script::new(GCRA),
            keys: ezpulze_common::keyspace::Keyspace::new(prefix),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Spends one token of a block this replica holds, if any.
    fn spend_local(&self, block: &LocalBlock, limit: u32) -> Option<Decision> {
        if block.expires_ms.load(Ordering::Acquire) <= self.now_ms() {
            return None;
        }
        let left = block
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(1))
            .ok()?
            - 1;
        Some(Decision {
            allowed: true,
            limit,
            remaining: block.remaining.load(Ordering::Relaxed) + u64::from(left),
            retry_after_secs: 0,
            reset_at: block.reset_at.load(Ordering::Relaxed),
        })
    }

    pub async fn check(
        &self,
        redis: &mut ezpulze_common::redis_conn::RedisConn,
        key_id: uuid::Uuid,
        limit_per_hour: u32,
        local: &LocalBlock,
    ) -> redis::RedisResult<Decision> {
        let limit = limit_per_hour.max(1);
        if let Some(d) = self.spend_local(local, limit) {
            return Ok(d);
        }
        let block = (limit / 3600).clamp(1, MAX_BLOCK);
        let interval: u64 = 3_600_000_000 / u64::from(limit);
        let (granted, remaining, retry_us, reset_us, now_s): (i64, i64, i64, i64, i64) = self
            .script
            .key(self.keys.rate_limit(&key_id))
            .arg(interval)
            .arg(limit)
            .arg(block)
            .invoke_async(redis)
            .await?;
        let ceil_secs = |us: i64| (us.max(0) as u64).div_ceil(1_000_000);
        let reset_at = now_s.max(0) as u64 + ceil_secs(reset_us);
        let remaining = remaining.max(0) as u64;
        if granted > 1 {
            let extra = (granted - 1) as u32;
            if local.expires_ms.load(Ordering::Acquire) <= self.now_ms() {
                local.tokens.store(0, Ordering::Release);
            }
            local.remaining.store(remaining, Ordering::Relaxed);
            local.reset_at.store(reset_at, Ordering::Relaxed);
            local.tokens.fetch_add(extra, Ordering::AcqRel);
            local.expires_ms.store(
                self.now_ms() + LOCAL_LEASE.as_millis() as u64,
                Ordering::Release,
            );
        }
        Ok(Decision {
            allowed: granted > 0,
            limit,
            remaining: remaining + (granted.max(1) - 1) as u64,
            retry_after_secs: if granted > 0 {
                0
            } else {
                ceil_secs(retry_us).max(1)
            },
            reset_at,
        })
    }
}
