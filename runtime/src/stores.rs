//! The stores every process opens the same way: the Postgres pool (migrated first when
//! `MIGRATE_ON_START`), the Redis clients and a connection (one server or a cluster) whose
//! server settings were checked (`maxmemory-policy`, persistence).

use ezpulze_common::redis_conn::RedisConn;
use ezpulze_common::{db, redis_conn, Config};
use sqlx::PgPool;

/// An opened Postgres pool and Redis connection.
pub struct Stores {
    pub db: PgPool,
    /// The client of `REDIS_URL` (or of the first cluster node).
    pub redis_client: redis::Client,
    /// One client per node to subscribe on (one for a single server).
    pub pubsub_clients: Vec<redis::Client>,
    pub redis: RedisConn,
}

/// Opens the stores of `config`.
pub async fn open(config: &Config) -> anyhow::Result<Stores> {
    let db = db::connect(config).await?;
    if config.migrate_on_start {
        db::migrate(&db).await?;
    }
    let redis_client = redis_conn::client(config)?;
    let pubsub_clients = redis_conn::pubsub_clients(config)?;
    let mut redis = redis_conn::connect(config).await?;
    redis_conn::check_settings(&mut redis, config).await;
    Ok(Stores {
        db,
        redis_client,
        pubsub_clients,
        redis,
    })
}
