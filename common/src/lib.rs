//! Shared pieces of the EzPulze engine: configuration, API key format and hashing, scopes,
//! database and Redis connections, and telemetry. Knows nothing of HTTP routes.
#![forbid(unsafe_code)]

pub mod base62;
pub mod config;
pub mod db;
pub mod dispatch;
pub mod idempotency;
pub mod jobs;
pub mod keys;
pub mod keyspace;
pub mod model;
pub mod ops;
pub mod outbox;
pub mod redis_conn;
pub mod scopes;
pub mod secrets;
pub mod status;
pub mod telemetry;
pub mod usage;

pub use config::Config;
