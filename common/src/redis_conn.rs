//! Redis connections and the server settings the engine relies on.
//!
//! One Redis server (`REDIS_URL`) or a Redis Cluster (`REDIS_CLUSTER_URLS`): [`RedisConn`] is
//! either, and every component talks to it through redis' `ConnectionLike`. On a cluster,
//! MOVED and ASK redirections and a failover are followed by the cluster client; a pipeline
//! is sent as its commands, all in flight at once (commands to one node leave in order), and
//! its answers come back in order, so batching code written for one server works unchanged
//! whatever slots its keys live in. Such a pipeline is not atomic; the engine keeps every
//! atomic step inside one Lua script or one key.

use anyhow::Context;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;

use crate::Config;

/// A connection to the configured Redis: one server or a cluster. Cheap to clone.
#[derive(Clone)]
pub enum RedisConn {
    /// One server, reconnecting by itself.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(Arc<Healing>),
}

/// A cluster connection that is made anew when requests keep failing: after a primary's
/// failover, a cluster client could keep timing out on the moved slots (measured in the fault
/// suite) while a fresh connection, which reads the topology again, works at once.
pub struct Healing {
    client: redis::cluster::ClusterClient,
    conn: std::sync::RwLock<ClusterConnection>,
    /// When the connection was last made (at most one remake per [`REMAKE_EVERY`]).
    made: std::sync::Mutex<std::time::Instant>,
}

/// The least time between two remakes of a cluster connection.
const REMAKE_EVERY: Duration = Duration::from_secs(3);

impl Healing {
    fn current(&self) -> ClusterConnection {
        self.conn
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// After a failed request: a new connection in the background (unless one was made
    /// recently). Server answers (wrong type, script errors) are not failures of the link.
    fn failed(self: &Arc<Self>, e: &redis::RedisError) {
        let link = e.is_timeout()
            || e.is_io_error()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || matches!(
                e.kind(),
                redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown)
            );
        if !link {
            return;
        }
        {
            let mut made = self
                .made
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if made.elapsed() < REMAKE_EVERY {
                return;
            }
            *made = std::time::Instant::now();
        }
        let me = self.clone();
        tokio::spawn(async move {
            match me.client.get_async_connection().await {
                Ok(conn) => {
                    *me.conn
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = conn;
                    tracing::warn!("Redis Cluster connection made anew after failed requests");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "remaking the Redis Cluster connection failed")
                }
            }
        });
    }
}

impl RedisConn {
    /// Whether this is a cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(h) => {
                let h = h.clone();
                Box::pin(async move {
                    let r = h.current().req_packed_command(cmd).await;
                    if let Err(e) = &r {
                        h.failed(e);
                    }
                    r
                })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            // An atomic pipeline (MULTI/EXEC; redis asks for its answers past an offset) must
            // be one slot: sent as it is.
            RedisConn::Cluster(h) => {
                if offset > 0 {
                    let h = h.clone();
                    return Box::pin(async move {
                        let r = h
                            .current()
                            .req_packed_commands(pipeline, offset, count)
                            .await;
                        if let Err(e) = &r {
                            h.failed(e);
                        }
                        r
                    });
                }
                let c = RedisConn::Cluster(h.clone());
                Box::pin(async move {
                    // Command by command (the cluster client follows MOVED, ASK and a
                    // failover for single commands; a pipeline routed to a slot whose primary
                    // died kept failing), all in flight at once: commands to one node leave
                    // in the pipeline's order.
                    let answers = futures::future::join_all(pipeline.cmd_iter().map(|cmd| {
                        let mut c = c.clone();
                        async move { c.req_packed_command(cmd).await }
                    }))
                    .await;
                    let values = answers
                        .into_iter()
                        .collect::<redis::RedisResult<Vec<Value>>>()?;
                    Ok(values.into_iter().skip(offset).take(count).collect())
                })
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(h) => h.current().get_db(),
        }
    }
}

/// The client of `REDIS_URL`, or of the first cluster seed node.
pub fn client(config: &Config) -> anyhow::Result<redis::Client> {
    match config.redis_cluster_urls.first() {
        Some(seed) => {
            redis::Client::open(seed.expose_secret()).context("parsing REDIS_CLUSTER_URLS")
        }
        None => redis::Client::open(config.redis_url.expose_secret()).context("parsing REDIS_URL"),
    }
}

/// A client per node to subscribe on (pub/sub messages reach every node of a cluster, so a
/// subscriber that loses its node subscribes on the next one).
pub fn pubsub_clients(config: &Config) -> anyhow::Result<Vec<redis::Client>> {
    if config.redis_cluster_urls.is_empty() {
        return Ok(vec![client(config)?]);
    }
    config
        .redis_cluster_urls
        .iter()
        .map(|u| redis::Client::open(u.expose_secret()).context("parsing REDIS_CLUSTER_URLS"))
        .collect()
}

/// The seed nodes when Redis is a cluster (`None`: one server at `REDIS_URL`).
pub fn cluster_urls(config: &Config) -> Option<Vec<String>> {
    (!config.redis_cluster_urls.is_empty()).then(|| {
        config
            .redis_cluster_urls
            .iter()
            .map(|u| u.expose_secret().to_owned())
            .collect()
    })
}

/// The configured Redis: a connection manager on `REDIS_URL`, or a cluster connection.
pub async fn connect(config: &Config) -> anyhow::Result<RedisConn> {
    match cluster_urls(config) {
        None => Ok(RedisConn::Single(manager(&client(config)?).await?)),
        Some(urls) => {
            let client = redis::cluster::ClusterClient::builder(urls)
                .connection_timeout(Duration::from_secs(3))
                .response_timeout(Duration::from_secs(3))
                // A failover takes a few seconds (node timeout, election): a request may wait
                // that long for it, each attempt bounded by the response timeout.
                .overall_response_timeout(Some(Duration::from_secs(6)))
                .retries(10)
                .build()
                .context("parsing REDIS_CLUSTER_URLS")?;
            let conn = client
                .get_async_connection()
                .await
                .context("connecting to the Redis Cluster (REDIS_CLUSTER_URLS)")?;
            Ok(RedisConn::Cluster(Arc::new(Healing {
                client,
                conn: std::sync::RwLock::new(conn),
                made: std::sync::Mutex::new(std::time::Instant::now()),
            })))
        }
    }
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
async fn config_get(conn: &mut RedisConn, name: &str) -> redis::RedisResult<Vec<String>> {
    redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await
}

/// Warns when the server may evict or lose queued work (`maxmemory-policy` other than
/// `noeviction`, or no append-only file outside development).
pub async fn check_settings(conn: &mut RedisConn, config: &Config) {
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
