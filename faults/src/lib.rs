//! The fault suite (`make test-faults`): the engine's real binaries as separate processes
//! against a private Redis (append-only file) and a private Postgres cluster on free loopback
//! ports, the simulator with duplicated and reordered webhooks. Each scenario sends a load,
//! injects one fault, and checks that every recipient answered 202 exists exactly once, that
//! every message is final within a stated bound, that the key counters equal the simulator's
//! truth, how many sends went out twice (none allowed, except as the unknown-outcome policy
//! documents), that no surviving process needed a restart, that Postgres logged no deadlock
//! and that Redis gives back its memory after the drain.
#![forbid(unsafe_code)]

pub mod checks;
pub mod expansion;
pub mod load;
pub mod proxy;
pub mod report;
pub mod scenarios;
pub mod services;
pub mod stack;
