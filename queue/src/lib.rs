//! # ezpulze-queue: the EzPulze job queue
//!
//! A Redis Streams backend for [apalis](https://docs.rs/apalis) 1.0, plus a plain batch
//! consumer for code that wants whole batches (the dispatch worker claims its rows per batch).
//!
//! ## Redis layout
//! Every key of a queue carries the hash tag `{<namespace>:<queue>}` so the queue lives in one
//! Redis Cluster slot (Lua scripts and pipelines stay on one node):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{ns:q}:stream` | stream + consumer group `workers` | ready and in-flight jobs (`d` = JSON payload, `a` = failed attempts so far) |
//! | `{ns:q}:delayed` | sorted set, score = due ms | delayed pushes and retries |
//! | `{ns:q}:dead` | stream | dead letters (`d`, `a`, `e` = last error, `src` = stream id) |
//!
//! Settled jobs are `XACK`ed **and** `XDEL`eted, so Redis memory returns to its baseline.
//!
//! ## Producing
//! ```no_run
//! # async fn demo() -> Result<(), ezpulze_queue::QueueError> {
//! use std::time::Duration;
//! use ezpulze_queue::{Queue, QueueConfig, RedisTarget};
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Send { message_id: u64 }
//!
//! let cfg = QueueConfig::new("ezpulze", "dispatch");
//! let queue: Queue<Send> = Queue::connect(RedisTarget::single("redis://127.0.0.1/"), cfg).await?;
//! queue.push(&Send { message_id: 1 }).await?;
//! queue.push_bulk(&[Send { message_id: 2 }, Send { message_id: 3 }]).await?; // pipelined, chunked
//! queue.push_delayed(&[Send { message_id: 4 }], Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```
//!
//! ## Consuming with apalis
//! ```no_run
//! # async fn demo(queue: ezpulze_queue::Queue<u64>) -> Result<(), Box<dyn std::error::Error>> {
//! use apalis::prelude::*;
//! use ezpulze_queue::{JobError, JobMeta};
//!
//! async fn handle(job: u64, meta: Data<JobMeta>) -> Result<(), JobError> {
//!     if meta.attempt() < 3 {
//!         // e.g. HTTP 429 with Retry-After: 2
//!         return Err(JobError::retry_after(std::time::Duration::from_secs(2), "rate limited"));
//!     }
//!     Ok(())
//! }
//!
//! let q = queue.clone();
//! Monitor::new()
//!     .register(move |i| {
//!         WorkerBuilder::new(format!("dispatch-{i}"))
//!             .backend(q.backend())
//!             .concurrency(64)
//!             .build(handle)
//!     })
//!     .run_with_signal(tokio::signal::ctrl_c())
//!     .await?;
//! # Ok(()) }
//! ```
//! The backend implements apalis-core's `Backend` + `BackendConfig` directly:
//! * fetch: `XREADGROUP GROUP workers <worker name> COUNT batch_size BLOCK block` on a
//!   connection of its own (made lazily, remade after any error: Redis restarts and killed
//!   connections are survived in-process), prefetching the next batch;
//! * before a read, at most `promote_chunk` due delayed jobs are moved to the stream by a Lua
//!   script (whoever runs does it; no extra process), and every `claim_interval` jobs whose
//!   lease ran out are taken over with `XAUTOCLAIM` (crash recovery);
//! * settle: the backend's middleware wraps all user layers, sees each final result and the
//!   backend writes settlements in batches (`XACK`+`XDEL`, `ZADD` for retries, `XADD` to the
//!   dead stream) from `poll_ready`; `poll_close` hands fetched-but-unstarted jobs back and
//!   force-flushes, so a graceful shutdown loses nothing;
//! * a payload that does not decode is dead-lettered inside the backend (an `Err` from
//!   `poll_next` would end the worker).
//!
//! ## Handler results
//! * `Ok(_)`: acked and deleted.
//! * [`JobError::Retry`]`{ after, .. }`: re-scheduled after `after` (e.g. from `Retry-After`)
//!   or after the [`RetryPolicy`] backoff (backon exponential with jitter), until
//!   `max_attempts`; then dead-lettered with the error.
//! * [`JobError::Permanent`]: dead-lettered at once with the error.
//! * any other error (timeout layer, caught panic, ...): like `Retry { after: None }`.
//!   apalis' `RetryAfterError` counts as a retry with its delay, `AbortError` as permanent.
//!
//! Handlers see the attempt number with `Data<JobMeta>` (or apalis' `Attempt`). Attempts count
//! failed runs and deliveries lost with a dead worker; a job whose lease keeps expiring is
//! dead-lettered after `max_attempts` deliveries.
//!
//! ## Consuming in plain batches
//! ```no_run
//! # async fn demo(queue: ezpulze_queue::Queue<u64>) -> Result<(), ezpulze_queue::QueueError> {
//! let mut consumer = queue.consumer("dispatch-a");
//! loop {
//!     let jobs = consumer.fetch_batch(200).await?; // waits up to `block` when empty
//!     let results = jobs.into_iter().map(|j| (j.meta, Ok(())));
//!     queue.complete(results).await?; // one pipeline: acks, retries, dead letters
//! }
//! # }
//! ```
//!
//! ## Crash recovery
//! A job delivered to a consumer that does not settle it within `lease` is taken over by a
//! live consumer (`XAUTOCLAIM`, every `claim_interval`). The apalis backend renews the leases
//! of the jobs its handlers are running every `lease / 3` (only ids it still owns), so a slow
//! handler keeps its job while its worker lives; a plain consumer calls
//! [`Queue::extend_lease`]. A restarted worker may reuse its name at once. Delivery is at least
//! once: a job runs twice only if its worker died (or was cut off for longer than the lease)
//! after running it and before its ack was written.
//!
//! ## Connections
//! One shared, self-reconnecting connection per [`Queue`] for pushes, settlements and
//! introspection (pushes retry dropped connections a few times), plus one dedicated
//! connection per consumer for the blocking reads, whose response timeout is `block +
//! response_timeout` so a `BLOCK` never trips it. [`RedisTarget::Cluster`] uses Redis Cluster
//! connections; all keys of a queue share one hash tag, hence one slot.
//!
//! ## Introspection and metrics
//! [`Queue::stats`] gives depth, delayed, in-flight, dead and the oldest pending job's age;
//! [`Queue::report_metrics`] also sets the gauges. Counters are recorded as things happen.
//! See [`metrics`] for the names. [`Queue::dead_letters`] lists dead letters,
//! [`Queue::redrive`] moves them back.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod config;
mod conn;
mod core;
mod error;
pub mod lanes;
pub mod metrics;
mod proto;
mod queue;

pub use crate::core::JobMeta;
pub use backend::{RedisStreamsBackend, SettleLayer, SettleService};
pub use config::{QueueConfig, RedisTarget, RetryPolicy};
pub use error::{JobError, QueueError};
pub use lanes::{DueLane, LaneItem, LaneStats, Lanes, LanesConfig, TakeLimits, Taken};
pub use queue::{Consumer, DeadLetter, Job, Queue, QueueStats, Redrive};

/// Deletes the consumers of `group` on `stream` that hold no pending entry and have not read
/// for `idle`, and returns how many. Every process start adds consumer names; without this,
/// the group lists every worker that ever ran. Nothing is lost: a consumer with pending
/// entries is kept (others claim them first), and a live consumer deleted by mistake is
/// recreated by its next read.
pub async fn prune_idle_consumers<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
    idle: std::time::Duration,
) -> redis::RedisResult<usize> {
    let reply: redis::streams::StreamInfoConsumersReply = match redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(group)
        .query_async(conn)
        .await
    {
        Ok(r) => r,
        // No stream or group yet: no consumer either.
        Err(e) if e.code() == Some("NOGROUP") || e.to_string().contains("no such key") => {
            return Ok(0)
        }
        Err(e) => return Err(e),
    };
    let idle_ms = usize::try_from(idle.as_millis()).unwrap_or(usize::MAX);
    let gone: Vec<String> = reply
        .consumers
        .into_iter()
        .filter(|c| c.pending == 0 && c.idle >= idle_ms)
        .map(|c| c.name)
        .collect();
    if gone.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    for name in &gone {
        pipe.cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(stream)
            .arg(group)
            .arg(name)
            .ignore();
    }
    pipe.query_async::<()>(conn).await?;
    Ok(gone.len())
}
