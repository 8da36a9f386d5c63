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

/// The webhook queue's defaults (signed status bodies, read by the status consumers).
pub fn webhooks(config: &Config) -> QueueConfig {
    let mut cfg = QueueConfig::new(config.redis_prefix.clone(), WEBHOOK_QUEUE)
        .with_batch_size(config.status_batch);
    cfg.group = STATUS_GROUP.to_owned();
    cfg
}

/// Connects one queue on the configured Redis.
pub async fn connect<T>(config: &Config, cfg: QueueConfig) -> anyhow::Result<Queue<T>>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    let name = cfg.queue.clone();
    Queue::connect(
        RedisTarget::single(config.redis_url.expose_secret().to_owned()),
        cfg,
    )
    .await
    .with_context(|| format!("connecting the {name} queue"))
}
