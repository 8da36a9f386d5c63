//! Per-key hourly request limit, global across API replicas: GCRA in one Redis Lua call, with
//! Redis's own clock in integer microseconds, so replicas with skewed clocks agree.
//!
//! A replica may take a block of tokens in one call and spend them locally for at most
//! `LOCAL_LEASE`: the global count can never go over the limit (tokens are taken in Redis
//! before they are spent), and a busy key costs one Redis call per block instead of one per
//! request. Blocks are at most a second's worth of the key's rate (`limit / 3600`, capped at
//! `MAX_BLOCK`), so keys under 7,200/hour take one token per call and behave exactly, and a
//! block left unspent when its lease ends wastes at most about a second of allowance.

use std::collections::HashMap;
use std::sync::Mutex;
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
    prefix: String,
    local: Mutex<HashMap<uuid::Uuid, Block>>,
}

/// Tokens taken from Redis and not spent yet.
struct Block {
    tokens: u32,
    /// Remaining in Redis after the block was taken.
    remaining: u64,
    reset_at: u64,
    expires: Instant,
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
            prefix: prefix.to_string(),
            local: Mutex::new(HashMap::new()),
        }
    }

    /// Spends one token of a block this replica holds, if any.
    fn spend_local(&self, key_id: uuid::Uuid, limit: u32) -> Option<Decision> {
        let mut local = self.local.lock().ok()?;
        let block = local.get_mut(&key_id)?;
        if block.tokens == 0 || block.expires <= Instant::now() {
            return None;
        }
        block.tokens -= 1;
        Some(Decision {
            allowed: true,
            limit,
            remaining: block.remaining + u64::from(block.tokens),
            retry_after_secs: 0,
            reset_at: block.reset_at,
        })
    }

    pub async fn check(
        &self,
        redis: &mut redis::aio::ConnectionManager,
        key_id: uuid::Uuid,
        limit_per_hour: u32,
    ) -> redis::RedisResult<Decision> {
        let limit = limit_per_hour.max(1);
        if let Some(d) = self.spend_local(key_id, limit) {
            return Ok(d);
        }
        let block = (limit / 3600).clamp(1, MAX_BLOCK);
        let interval: u64 = 3_600_000_000 / u64::from(limit);
        let (granted, remaining, retry_us, reset_us, now_s): (i64, i64, i64, i64, i64) = self
            .script
            .key(format!("{}:rl:{}", self.prefix, key_id.simple()))
            .arg(interval)
            .arg(limit)
            .arg(block)
            .invoke_async(redis)
            .await?;
        let ceil_secs = |us: i64| (us.max(0) as u64).div_ceil(1_000_000);
        let reset_at = now_s.max(0) as u64 + ceil_secs(reset_us);
        let remaining = remaining.max(0) as u64;
        if granted > 1 {
            if let Ok(mut local) = self.local.lock() {
                let extra = (granted - 1) as u32;
                let entry = local.entry(key_id).or_insert(Block {
                    tokens: 0,
                    remaining,
                    reset_at,
                    expires: Instant::now(),
                });
                if entry.expires <= Instant::now() {
                    entry.tokens = 0;
                }
                entry.tokens += extra;
                entry.remaining = remaining;
                entry.reset_at = reset_at;
                entry.expires = Instant::now() + LOCAL_LEASE;
                if local.len() > 100_000 {
                    let now = Instant::now();
                    local.retain(|_, b| b.expires > now);
                }
            }
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
