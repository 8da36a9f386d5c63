//! Connections: one shared, self-reconnecting connection for pushes and settlements, and a
//! dedicated connection per consumer for blocking reads (a `BLOCK` holds its connection).

use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, Value};

use crate::config::{QueueConfig, RedisTarget};
use crate::error::QueueError;

/// A connection of any supported kind.
#[derive(Clone)]
pub(crate) enum Conn {
    Manager(ConnectionManager),
    Plain(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Plain(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Plain(c) => c.req_packed_commands(pipeline, offset, count),
            // Command by command, all in flight at once (commands to one node leave in
            // order): the cluster client follows a failover for single commands, while a
            // pipeline routed to a slot whose primary died kept failing. An atomic pipeline
            // (MULTI/EXEC: its answers asked for past an offset) goes as it is.
            Conn::Cluster(c) if offset == 0 => {
                let c = c.clone();
                Box::pin(async move {
                    let answers = futures::future::join_all(pipeline.cmd_iter().map(|cmd| {
                        let mut c = c.clone();
                        async move { c.req_packed_command(cmd).await }
                    }))
                    .await;
                    let values = answers
                        .into_iter()
                        .collect::<redis::RedisResult<Vec<Value>>>()?;
                    Ok(values.into_iter().take(count).collect())
                })
            }
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Manager(c) => c.get_db(),
            Conn::Plain(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// One Redis server and the timeouts of its connections.
#[derive(Clone)]
pub(crate) struct SingleNode {
    client: redis::Client,
    response_timeout: Duration,
    read_timeout: Duration,
    connect_timeout: Duration,
}

impl SingleNode {
    /// A connection manager that reconnects by itself.
    async fn manager(&self) -> Result<Conn, QueueError> {
        let cfg = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.response_timeout))
            .set_connection_timeout(Some(self.connect_timeout))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_millis(500));
        let manager = self.client.get_connection_manager_with_config(cfg).await?;
        Ok(Conn::Manager(manager))
    }

    /// A plain connection whose response timeout allows a blocking read.
    async fn blocking(&self) -> Result<Conn, QueueError> {
        let cfg = AsyncConnectionConfig::new()
            .set_response_timeout(Some(self.read_timeout))
            .set_connection_timeout(Some(self.connect_timeout));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await?;
        Ok(Conn::Plain(conn))
    }
}

/// Makes connections.
#[derive(Clone)]
pub(crate) enum Connector {
    Single(SingleNode),
    Cluster {
        write: Box<ClusterClient>,
        read: Box<ClusterClient>,
    },
}

impl Connector {
    pub(crate) fn new(target: &RedisTarget, cfg: &QueueConfig) -> Result<Self, QueueError> {
        // A blocking read must not hit the response timeout: give it BLOCK plus a margin.
        let read_timeout = cfg.block + cfg.response_timeout;
        match target {
            RedisTarget::Single(url) => Ok(Self::Single(SingleNode {
                client: redis::Client::open(url.as_str())?,
                response_timeout: cfg.response_timeout,
                read_timeout,
                connect_timeout: cfg.connect_timeout,
            })),
            RedisTarget::Cluster(nodes) => {
                let build = |rt: Duration| {
                    ClusterClient::builder(nodes.iter().map(String::as_str))
                        .response_timeout(rt)
                        // A failover takes a few seconds: a request may wait for it.
                        .overall_response_timeout(Some(rt.max(Duration::from_secs(15))))
                        .connection_timeout(cfg.connect_timeout)
                        .retries(10)
                        .build()
                };
                Ok(Self::Cluster {
                    write: Box::new(build(cfg.response_timeout)?),
                    read: Box::new(build(read_timeout)?),
                })
            }
        }
    }

    /// The shared connection for pushes, settlements and introspection. It reconnects by
    /// itself after a dropped connection or a Redis restart.
    pub(crate) async fn shared(&self) -> Result<Conn, QueueError> {
        match self {
            Self::Single(node) => node.manager().await,
            Self::Cluster { write, .. } => Ok(Conn::Cluster(write.get_async_connection().await?)),
        }
    }

    /// A dedicated connection for blocking reads (one per consumer).
    pub(crate) async fn reader(&self) -> Result<Conn, QueueError> {
        match self {
            Self::Single(node) => node.blocking().await,
            Self::Cluster { read, .. } => Ok(Conn::Cluster(read.get_async_connection().await?)),
        }
    }
}
