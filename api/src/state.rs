//! The application state shared by every handler.

use std::sync::Arc;

use ezpulze_common::redis_conn::RedisConn;
use sqlx::PgPool;

use crate::auth::key_cache::KeyCache;
use crate::auth::last_used::LastUsed;
use crate::auth::rate_limit::RateLimiter;
use ezpulze_common::Config;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: PgPool,
    pub redis: RedisConn,
    pub redis_client: redis::Client,
    pub key_cache: Arc<KeyCache>,
    pub rate_limiter: RateLimiter,
    pub last_used: Arc<LastUsed>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    pub webhook_secrets: crate::webhook_secrets::SecretCache,
    pub hasher: ezpulze_common::keys::SecretHasher,
    /// Send jobs go to their number's lane.
    pub send_lanes: ezpulze_runtime::send_lanes::SendLanes,
    pub schedule_queue: ezpulze_queue::Queue<ezpulze_common::jobs::ReleaseJob>,
    /// The shards of the webhook queue (`STATUS_SHARDS`, at least one).
    pub webhook_queues: Vec<ezpulze_queue::Queue<ezpulze_common::jobs::WebhookBody>>,
    pub keyspace: ezpulze_common::keyspace::Keyspace,
    /// The web UI's session cookie (name and attributes from `PUBLIC_BASE_URL`).
    pub session_cookie: crate::auth::session::CookieRules,
    /// The origin the web UI's requests come from (`PUBLIC_BASE_URL`'s).
    pub ui_origin: String,
    /// Wakes this process's audience expanders (`crate::fanout`).
    pub fanout_wake: Arc<crate::fanout::Wake>,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
    pub fn config(&self) -> &Config {
        &self.0.config
    }
    pub fn fanout_wake(&self) -> &crate::fanout::Wake {
        &self.0.fanout_wake
    }
    pub fn db(&self) -> &PgPool {
        &self.0.db
    }
    /// A handle on the shared multiplexed connection (cheap to clone).
    pub fn redis(&self) -> RedisConn {
        self.0.redis.clone()
    }
    /// The shared Redis connection, borrowed (clone it to send commands).
    pub fn redis_ref(&self) -> &RedisConn {
        &self.0.redis
    }
    pub fn redis_client(&self) -> &redis::Client {
        &self.0.redis_client
    }
    pub fn key_cache(&self) -> &KeyCache {
        &self.0.key_cache
    }
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.0.rate_limiter
    }
    pub fn last_used(&self) -> &LastUsed {
        &self.0.last_used
    }
    pub fn schedule_queue(&self) -> &ezpulze_queue::Queue<ezpulze_common::jobs::ReleaseJob> {
        &self.0.schedule_queue
    }
    /// HMAC of keys and tokens under the pepper (key schedule done once).
    pub fn hasher(&self) -> &ezpulze_common::keys::SecretHasher {
        &self.0.hasher
    }
    pub fn send_lanes(&self) -> &ezpulze_runtime::send_lanes::SendLanes {
        &self.0.send_lanes
    }
    /// Signed webhook bodies for the workers' status consumers: the shard of a body that
    /// names `phone_number_id`.
    pub fn webhook_queue(
        &self,
        phone_number_id: &str,
    ) -> &ezpulze_queue::Queue<ezpulze_common::jobs::WebhookBody> {
        let q = &self.0.webhook_queues;
        let i = ezpulze_runtime::queues::webhook_shard_of(
            phone_number_id,
            u16::try_from(q.len()).unwrap_or(1),
        );
        &q[i.min(q.len() - 1)]
    }
    pub fn webhook_secrets(&self) -> &crate::webhook_secrets::SecretCache {
        &self.0.webhook_secrets
    }
    /// The engine's Redis names under this process's prefix.
    pub fn keyspace(&self) -> &ezpulze_common::keyspace::Keyspace {
        &self.0.keyspace
    }
    pub fn session_cookie(&self) -> &crate::auth::session::CookieRules {
        &self.0.session_cookie
    }
    pub fn ui_origin(&self) -> &str {
        &self.0.ui_origin
    }
    pub fn metrics(&self) -> &metrics_exporter_prometheus::PrometheusHandle {
        &self.0.metrics
    }
}

/// Jobs of committed dispatches go onto this process's queues.
impl ezpulze_common::dispatch::JobSink for AppState {
    async fn push_send(&self, jobs: &[ezpulze_common::jobs::SendJob]) -> anyhow::Result<()> {
        self.send_lanes().push(self.db(), jobs).await?;
        Ok(())
    }

    async fn push_release(
        &self,
        job: ezpulze_common::jobs::ReleaseJob,
        due: std::time::SystemTime,
    ) -> anyhow::Result<()> {
        self.schedule_queue().push_at(&[job], due).await?;
        Ok(())
    }
}
