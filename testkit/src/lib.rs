//! The engine's shared test kit (a dev-dependency only).
//!
//! - [`settings()`]: the environment map every harness used to build by hand;
//! - [`redis::TestRedis`]: a unique `ezp_t_` prefix on `EZPULZE_TEST_REDIS`;
//! - [`db::TestDb`] (feature `db`): a fresh, migrated `ezp_t_` database on `EZPULZE_TEST_PG`;
//! - [`app::TestApp`] (feature `app`): the real API in-process on port 0 with a typed client,
//!   and fixtures made through the HTTP API ([`app::Sender`], [`templates`]);
//! - [`drain::drain`] (feature `app`): waits until the send queue and the message rows are idle;
//! - [`stall::StallProxy`]: a TCP proxy in front of Postgres or Redis that can be made to hang;
//! - [`sim::SimClient`] (feature `app`): the simulator's configuration, ground truth and
//!   pending webhooks;
//! - [`receiver::Receiver`] (feature `receiver`, in `app`): the simulator's integrator-event
//!   test receiver (`/_recv/{name}`): its configuration and counters.
//!
//! Every name starts with `ezp_t_`, which `scripts/test.sh` cleans up.

#[cfg(feature = "app")]
pub mod app;
#[cfg(feature = "db")]
pub mod db;
#[cfg(feature = "app")]
pub mod drain;
#[cfg(feature = "receiver")]
pub mod receiver;
pub mod redis;
#[cfg(feature = "app")]
pub mod send_jobs;
mod settings;
#[cfg(feature = "app")]
pub mod sim;
pub mod stall;
#[cfg(feature = "app")]
pub mod templates;
mod wait;

pub use settings::{settings, Settings, ROOT};
pub use wait::{wait_until, DEADLINE};

/// The Postgres server of the tests: `EZPULZE_TEST_PG`, default the local trust server.
pub fn pg_server() -> String {
    env_or(
        "EZPULZE_TEST_PG",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
}

/// The Redis of the tests: `EZPULZE_TEST_REDIS`, default `redis://127.0.0.1:6379/0`.
pub fn redis_url() -> String {
    env_or("EZPULZE_TEST_REDIS", "redis://127.0.0.1:6379/0")
}

/// The environment variable `name`, or `default` when it is unset (or not Unicode).
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// A name no other test (or test run) uses: `ezp_t_<16 hex>`, good for a database and a
/// Redis prefix alike.
pub fn unique_name() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("ezp_t_{}", &id[..16])
}
