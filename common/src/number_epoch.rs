//! The numbers' epoch: one Redis counter (`Keyspace::numbers_epoch`) bumped whenever a phone
//! number changes (a rate set through the api, a throughput upgrade or a flag from Meta's
//! webhooks). Every worker reads it at most every few hundred milliseconds and drops its
//! cached numbers when it moved, so a new rate is in force everywhere within about a second,
//! without waiting for the cache's TTL and without a restart.

use anyhow::Context;

use crate::keyspace::Keyspace;
use crate::redis_conn::RedisConn;

/// Bumps the epoch; returns the new value.
pub async fn bump(conn: &mut RedisConn, keys: &Keyspace) -> anyhow::Result<i64> {
    redis::cmd("INCR")
        .arg(keys.numbers_epoch())
        .query_async(conn)
        .await
        .context("bumping the numbers' epoch")
}

/// The current epoch (0 before the first bump).
pub async fn read(conn: &mut RedisConn, keys: &Keyspace) -> anyhow::Result<i64> {
    let v: Option<i64> = redis::cmd("GET")
        .arg(keys.numbers_epoch())
        .query_async(conn)
        .await
        .context("reading the numbers' epoch")?;
    Ok(v.unwrap_or(0))
}
