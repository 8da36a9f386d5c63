//! What every EzPulze process (api, worker, scheduler, benchmark binaries) repeats: the global
//! allocator, tracing and Prometheus set-up, the shutdown signal, the stores (Postgres and
//! Redis) and the queues' names and connection, and the operations server of the processes that serve no HTTP API of their own.
#![forbid(unsafe_code)]

pub mod meta_templates;
pub mod ops;
pub mod queues;
pub mod readiness;
pub mod send_lanes;
pub mod shutdown;
pub mod stores;
pub mod telemetry;

/// mimalloc for every process that links this crate: the JSON-heavy hot paths allocate a lot,
/// and glibc malloc was about a quarter of the queue consumer's profile (measured:
/// bench-e2e 1,919 -> 2,549 msg/s when it was introduced).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
