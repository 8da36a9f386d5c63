//! A Redis lease so one scheduler replica is active: `SET NX PX` to take it, a compare-and-
//! extend script to keep it, a compare-and-delete to hand it over at shutdown.

use std::time::Duration;

use ezpulze_common::redis_conn::RedisConn;
use redis::Script;

const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"#;

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

pub struct Lease {
    redis: RedisConn,
    key: String,
    holder: String,
    ttl: Duration,
    renew: Script,
    release: Script,
}

impl Lease {
    pub fn new(redis: RedisConn, prefix: &str, ttl: Duration) -> Self {
        Self {
            redis,
            key: ezpulze_common::keyspace::Keyspace::new(prefix).scheduler_lease(),
            holder: uuid::Uuid::new_v4().simple().to_string(),
            ttl,
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        }
    }

    /// True when this replica holds the lease (taking it if free, extending it if ours).
    pub async fn acquire_or_renew(&self) -> redis::RedisResult<bool> {
        let mut c = self.redis.clone();
        let got: i64 = self
            .renew
            .key(&self.key)
            .arg(&self.holder)
            .arg(self.ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        Ok(got == 1)
    }

    pub async fn release(&self) -> redis::RedisResult<()> {
        let mut c = self.redis.clone();
        let _: i64 = self
            .release
            .key(&self.key)
            .arg(&self.holder)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }
}
