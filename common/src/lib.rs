//! The EzPulze engine's shared model: configuration, API key format and hashing, scopes,
//! database and Redis connections, the states of messages and dispatches, the Redis keyspace,
//! dispatch creation, key usage counters, idempotency records and the queue's job types.
//! Knows nothing of HTTP or of the queue's implementation.
#![forbid(unsafe_code)]

pub mod base62;
pub mod config;
pub mod consent;
pub mod db;
pub mod dispatch;
pub mod hook_url;
pub mod hooks;
pub mod idempotency;
pub mod jobs;
pub mod keys;
pub mod keyspace;
pub mod messaging_limit;
pub mod model;
pub mod number_epoch;
pub mod redis_conn;
pub mod scopes;
pub mod secrets;
pub mod template_status;
pub mod usage;

pub use config::Config;
