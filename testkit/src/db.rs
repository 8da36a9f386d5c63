//! A fresh database of one test on the shared test Postgres.

use ezpulze_common::db;
use sqlx::PgPool;

/// A fresh database `ezp_t_<16 hex>` on `EZPULZE_TEST_PG`, migrated, with a pool.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

/// Creates an empty database `ezp_t_<16 hex>` on `EZPULZE_TEST_PG`; returns its name and URL.
pub async fn create() -> (String, String) {
    let server = crate::pg_server();
    let name = crate::unique_name();
    db::create_database(&server, &name)
        .await
        .expect("create the test database");
    let url = db::with_database(&server, &name).expect("test database URL");
    (name, url)
}

impl TestDb {
    pub async fn new() -> TestDb {
        let (name, url) = create().await;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .expect("connect to the test database");
        db::MIGRATOR
            .run(&pool)
            .await
            .expect("migrate the test database");
        TestDb { name, url, pool }
    }

    /// The settings of a process on this database.
    pub fn settings(&self) -> crate::Settings {
        crate::settings().database_url(&self.url)
    }
}

/// The single number an SQL query answers (`SELECT count(*) ...`).
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}
