//! Postgres: the pool, the embedded migrations, and database creation for tools and tests.

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use std::str::FromStr;
use std::time::Duration;

use crate::Config;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Every connection runs with `jit = off`: the engine's statements are short batched OLTP
/// statements whose planner estimates (UNNEST of large arrays, partitioned scans) cross
/// `jit_above_cost`, and compiling them with LLVM cost far more than running them (measured:
/// 39% of the machine's CPU in `libLLVM` during `make bench-e2e` with JIT on).
pub async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    let opts = PgConnectOptions::from_str(config.database_url.expose_secret())
        .context("parsing DATABASE_URL")?
        .options([("jit", "off")])
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
    PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts)
        .await
        .context("connecting to Postgres (DATABASE_URL)")
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("applying migrations")
}

/// Creates database `name` on the server of `server_url` unless it exists.
pub async fn create_database(server_url: &str, name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "database names are limited to letters, digits and underscores"
    );
    let opts = PgConnectOptions::from_str(server_url)
        .context("parsing server URL")?
        .database("postgres");
    let mut conn = sqlx::PgConnection::connect_with(&opts)
        .await
        .context("connecting to Postgres")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {name}"))?;
    }
    conn.close().await?;
    Ok(())
}

/// Replaces the database part of a Postgres URL.
pub fn with_database(server_url: &str, name: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(server_url).context("parsing Postgres URL")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}
