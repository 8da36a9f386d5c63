//! The webhook status consumer; the reducer and its loop live in `ezpulze_common::status`
//! so the scheduler's reconciliation and the tests share the exact same statement.

pub use ezpulze_common::status::run;
