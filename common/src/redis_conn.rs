//! Redis connections and the server settings the engine relies on.

use anyhow::Context;
use redis::aio::ConnectionManager;
use secrecy::ExposeSecret;
use std::time::Duration;

use crate::Config;

pub fn client(config: &Config) -> anyhow::Result<redis::Client> {
    redis::Client::open(config.redis_url.expose_secret()).context("parsing REDIS_URL")
}

/// A multiplexed connection that reconnects by itself.
pub async fn manager(client: &redis::Client) -> anyhow::Result<ConnectionManager> {
    let cfg = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(Duration::from_secs(3)))
        .set_number_of_retries(2);
    ConnectionManager::new_with_config(client.clone(), cfg)
        .await
        .context("connecting to Redis (REDIS_URL)")
}

/// `CONFIG GET name`: the name and its value.
async fn config_get(conn: &mut ConnectionManager, name: &str) -> redis::RedisResult<Vec<String>> {
    redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await
}

/// Warns when the server may evict or lose queued work (`maxmemory-policy` other than
/// `noeviction`, or no append-only file outside development).
pub async fn check_settings(conn: &mut ConnectionManager, config: &Config) {
    if let Ok(v) = config_get(conn, "maxmemory-policy").await {
        if let Some(p) = v.get(1) {
            if p != "noeviction" {
                tracing::warn!(policy = %p, "Redis maxmemory-policy is not noeviction: queued jobs may be evicted");
            }
        }
    }
    if let Ok(v) = config_get(conn, "appendonly").await {
        if v.get(1).map(String::as_str) != Some("yes") && config.environment == "production" {
            tracing::warn!("Redis appendonly is off: a Redis restart loses queued jobs");
        }
    }
}
