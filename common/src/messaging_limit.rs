//! The business portfolio's messaging limit (`docs/messaging-limits.md`): the tiers Meta
//! uses, their limits, and the Redis counts every process shares.
//!
//! One account is one business portfolio. Its tier (`accounts.messaging_tier`) bounds the
//! unique users it may reach outside a customer-service window in a moving window
//! (`MESSAGING_WINDOW_SECS`, 24 h as Meta counts). The workers count them in Redis, per
//! account, under one hash tag (so the count and the inbound senders are one script's keys on
//! a Redis Cluster): `Keyspace::budget_reached` (recipient -> when last counted, ms of Redis'
//! clock) and `Keyspace::budget_inbound` (sender -> their last inbound message, ms).

use std::time::Duration;

use crate::keyspace::Keyspace;
use crate::redis_conn::RedisConn;
use uuid::Uuid;

/// A customer-service window: a user who messaged the business in this time may be answered
/// without counting toward the messaging limit (Meta's 24 h; not shortened with the window).
pub const CUSTOMER_SERVICE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// `deferred_reason` of a message held because the portfolio's messaging limit is reached.
pub const REASON_MESSAGING_LIMIT: &str = "messaging_limit";

/// The share of the limit at which the budget counts as near (gauge and alert).
pub const NEAR_RATIO: f64 = 0.8;

/// A messaging-limit tier, as Meta names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Tier250,
    Tier2K,
    Tier10K,
    Tier100K,
    Unlimited,
}

impl Tier {
    pub const ALL: [Tier; 5] = [
        Tier::Tier250,
        Tier::Tier2K,
        Tier::Tier10K,
        Tier::Tier100K,
        Tier::Unlimited,
    ];

    /// Meta's name (also the stored value).
    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::Tier250 => "TIER_250",
            Tier::Tier2K => "TIER_2K",
            Tier::Tier10K => "TIER_10K",
            Tier::Tier100K => "TIER_100K",
            Tier::Unlimited => "TIER_UNLIMITED",
        }
    }

    /// The tier of Meta's name; None for anything else (exact, upper case).
    pub fn parse(s: &str) -> Option<Tier> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Unique users per window; None: unlimited.
    pub const fn limit(self) -> Option<u64> {
        match self {
            Tier::Tier250 => Some(250),
            Tier::Tier2K => Some(2_000),
            Tier::Tier10K => Some(10_000),
            Tier::Tier100K => Some(100_000),
            Tier::Unlimited => None,
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Unique recipients the account reached (counted) in the window ending now (Redis' clock).
/// One round trip; read-only.
pub async fn used(
    conn: &RedisConn,
    keys: &Keyspace,
    account: Uuid,
    window: Duration,
) -> redis::RedisResult<u64> {
    let mut conn = conn.clone();
    let n: u64 = redis::Script::new(USED_LUA)
        .key(keys.budget_reached(&account))
        .arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX / 2))
        .invoke_async(&mut conn)
        .await?;
    Ok(n)
}

const USED_LUA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. (now - tonumber(ARGV[1])), '+inf')
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_round_trip_and_limits() {
        for t in Tier::ALL {
            assert_eq!(Tier::parse(t.as_str()), Some(t));
        }
        assert_eq!(Tier::parse("tier_2k"), None);
        assert_eq!(Tier::parse("TIER_1K"), None);
        assert_eq!(Tier::parse(""), None);
        assert_eq!(Tier::Tier2K.limit(), Some(2_000));
        assert_eq!(Tier::Unlimited.limit(), None);
    }
}
