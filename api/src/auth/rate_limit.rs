//! Per-key hourly request limit, global across API replicas: GCRA in one Redis Lua call, with
//! Redis's own clock in integer microseconds, so replicas with skewed clocks agree.

use redis::Script;

/// KEYS[1]: the key's theoretical arrival time (TAT). ARGV[1]: emission interval T in us
/// (3600 s / limit). ARGV[2]: the limit (burst). Returns {allowed, remaining, retry_us, reset_us,
/// now_s}.
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, allow_at - now, tat - now, tonumber(t[1])}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, math.floor((tolerance - (new_tat - now)) / interval), 0, new_tat - now, tonumber(t[1])}
"#;

pub struct RateLimiter {
    script: Script,
    prefix: String,
}

#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u64,
    /// Seconds until a request would be allowed (0 when allowed).
    pub retry_after_secs: u64,
    /// Seconds until the full limit is available again.
    pub reset_secs: u64,
    /// Redis's clock, epoch seconds.
    pub now_secs: u64,
}

impl RateLimiter {
    pub fn new(prefix: &str) -> Self {
        Self {
            script: Script::new(GCRA),
            prefix: prefix.to_string(),
        }
    }

    pub async fn check(
        &self,
        redis: &mut redis::aio::ConnectionManager,
        key_id: uuid::Uuid,
        limit_per_hour: u32,
    ) -> redis::RedisResult<Decision> {
        let limit = limit_per_hour.max(1);
        let interval: u64 = 3_600_000_000 / u64::from(limit);
        let (allowed, remaining, retry_us, reset_us, now_s): (i64, i64, i64, i64, i64) = self
            .script
            .key(format!("{}:rl:{}", self.prefix, key_id.simple()))
            .arg(interval)
            .arg(limit)
            .invoke_async(redis)
            .await?;
        let ceil_secs = |us: i64| (us.max(0) as u64).div_ceil(1_000_000);
        Ok(Decision {
            allowed: allowed == 1,
            limit,
            remaining: remaining.max(0) as u64,
            retry_after_secs: ceil_secs(retry_us).max(u64::from(allowed != 1)),
            reset_secs: ceil_secs(reset_us),
            now_secs: now_s.max(0) as u64,
        })
    }
}
