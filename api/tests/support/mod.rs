//! Test harness: the shared test kit (the real API on port 0 with its own Postgres database
//! and Redis key prefix, its typed client and fixtures).
#![allow(dead_code, unused_imports)]

pub use ezpulze_testkit::app::{assert_error, id_of, recipients, Account, Sender, TestApp, ROOT};
pub use ezpulze_testkit::{pg_server, redis_url, templates, wait_until, DEADLINE};
