//! The engine's queues as every process connects them: one place for their names, consumer
//! groups and connection.

use anyhow::Context;
use ezpulze_common::keyspace::{SCHEDULE_QUEUE, SEND_QUEUE, STATUS_GROUP, WEBHOOK_QUEUE};
use ezpulze_common::Config;
use ezpulze_queue::{Queue, QueueConfig, RedisTarget};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The send queue's defaults (one job per message).
pub fn send(config: &Config) -> QueueConfig {
    QueueConfig::new(config.redis_prefix.clone(), SEND_QUEUE)
}

/// The schedule queue's defaults (releases of scheduled dispatches, due at their time).
pub fn schedule(config: &Config) -> QueueConfig {
    QueueConfig::new(config.redis_prefix.clone(), SCHEDULE_QUEUE)
}

/// The webhook queue's defaults (signed status bodies, read by the status consumers): its
/// first shard.
pub fn webhooks(config: &Config) -> QueueConfig {
    webhook_shard(config, 0)
}

/// Shard `i` of the webhook queue (`STATUS_SHARDS` of them, each its own stream and hash tag,
/// so the status traffic, three events per message, spreads over a Redis Cluster): `webhooks`,
/// then `webhooks-1`, `webhooks-2`, ...
pub fn webhook_shard(config: &Config, i: u16) -> QueueConfig {
    let name = if i == 0 {
        WEBHOOK_QUEUE.to_owned()
    } else {
        format!("{WEBHOOK_QUEUE}-{i}")
    };
    let mut cfg =
        QueueConfig::new(config.redis_prefix.clone(), name).with_batch_size(config.status_batch);
    cfg.group = STATUS_GROUP.to_owned();
    cfg
}

/// Every shard of the webhook queue, connected.
pub async fn connect_webhooks<T>(config: &Config) -> anyhow::Result<Vec<Queue<T>>>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let mut out = Vec::with_capacity(usize::from(config.status_shards));
    for i in 0..config.status_shards.max(1) {
        out.push(connect(config, webhook_shard(config, i)).await?);
    }
    Ok(out)
}

/// The shard of the webhook queue that carries a body naming `phone_number_id` (a number's
/// statuses stay in one stream).
pub fn webhook_shard_of(phone_number_id: &str, shards: u16) -> usize {
    usize::from(ezpulze_queue::lanes::shard_of(phone_number_id, shards))
}

/// The configured Redis as the queue crate names it: one server, or the cluster's seeds.
pub fn target(config: &Config) -> RedisTarget {
    match ezpulze_common::redis_conn::cluster_urls(config) {
        Some(urls) => RedisTarget::Cluster(urls),
        None => RedisTarget::single(config.redis_url.expose_secret().to_owned()),
    }
}

/// Connects one queue on the configured Redis.
pub async fn connect<T>(config: &Config, cfg: QueueConfig) -> anyhow::Result<Queue<T>>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let name = cfg.queue.clone();
    Queue::connect(target(config), cfg)
        .await
        .with_context(|| format!("connecting the {name} queue"))
}
