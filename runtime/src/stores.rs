//! The stores every process opens the same way: the Postgres pool (migrated first when
//! `MIGRATE_ON_START`), the Redis client and a connection manager whose server settings were
//! checked (`maxmemory-policy`, persistence).

use ezpulze_common::{db, redis_conn, Config};
use redis::aio::ConnectionManager;
use sqlx::PgPool;

/// An opened Postgres pool and Redis connection.
pub struct Stores {
    pub db: PgPool,
    pub redis_client: redis::Client,
    pub redis: ConnectionManager,
}

/// Opens the stores of `config`.
pub async fn open(config: &Config) -> anyhow::Result<Stores> {
    let db = db::connect(config).await?;
    if config.migrate_on_start {
        db::migrate(&db).await?;
    }
    let redis_client = redis_conn::client(config)?;
    let mut redis = redis_conn::manager(&redis_client).await?;
    redis_conn::check_settings(&mut redis, config).await;
    Ok(Stores {
        db,
        redis_client,
        redis,
    })
}
