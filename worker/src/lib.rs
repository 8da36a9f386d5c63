//! # ezpulze-worker: the processes that send
//!
//! [`run`] connects to Postgres and Redis, serves `/metrics`, `/healthz` and `/readyz` on
//! `WORKER_METRICS_ADDR`, runs the send loops (see [`send`]) and the webhook status consumer
//! ([`status`]) and the integrator event deliverer ([`hooks`]) until the cancellation token fires; then intake stops, sends already started
//! finish and are recorded, and jobs not started yet are handed back to the queue.
//!
//! Any number of worker processes share one Redis and one Postgres: the rows are claimed once
//! (`queued -> sending` in one statement per batch), and each phone number's send rate is
//! enforced across all of them by a GCRA in Redis ([`throttle`]). A send intent in Redis
//! ([`intents`]) tells whether the request of a row a dead worker left `sending` may have left.
#![forbid(unsafe_code)]

pub mod budget;
pub mod classify;
pub mod db;
pub mod graph;
pub mod hooks;
pub mod intents;
pub mod metrics;
pub mod numbers;
pub mod send;
pub mod status;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ezpulze_common::jobs::{SendJob, WebhookBody};
use ezpulze_common::Config;
use ezpulze_queue::Queue;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use send::Tuning;

/// Why a worker process could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// `WORKER_METRICS_ADDR` could not be bound.
    #[error("binding WORKER_METRICS_ADDR {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Postgres, migrations, Redis or the HTTP client (the message has the cause chain).
    #[error("start-up failed: {0:#}")]
    Startup(anyhow::Error),
    /// The send queue could not be reached.
    #[error("connecting the send queue: {0}")]
    Queue(#[from] ezpulze_queue::QueueError),
    /// The webhook status consumer stopped with an error.
    #[error("status consumer: {0:#}")]
    Status(anyhow::Error),
}

/// The queue lease: a job delivered to a worker that has not settled it for this long is
/// taken over by another one. A batch lasts at most claim + `slot_wait` + one send timeout +
/// the outcome writes, so twice that plus a margin never expires under a live worker.
pub fn lease_for(config: &Config, tuning: &Tuning) -> Duration {
    (config.send_timeout + tuning.slot_wait) * 2 + Duration::from_secs(5)
}

/// Runs a worker process until `cancel` (production tuning).
pub async fn run(config: Config, cancel: CancellationToken) -> Result<(), WorkerError> {
    run_with(config, Tuning::default(), cancel).await
}

/// [`run`] with explicit tuning (tests shorten retry delays).
pub async fn run_with(
    config: Config,
    tuning: Tuning,
    cancel: CancellationToken,
) -> Result<(), WorkerError> {
    let listener = tokio::net::TcpListener::bind(config.worker_metrics_addr)
        .await
        .map_err(|source| WorkerError::Bind {
            addr: config.worker_metrics_addr,
            source,
        })?;
    run_on(config, tuning, listener, cancel).await
}

/// [`run_with`] on a bound listener for `/metrics`, `/healthz`, `/readyz` (tests use port 0).
pub async fn run_on(
    config: Config,
    tuning: Tuning,
    listener: tokio::net::TcpListener,
    cancel: CancellationToken,
) -> Result<(), WorkerError> {
    let ezpulze_runtime::stores::Stores { db, redis, .. } = ezpulze_runtime::stores::open(&config)
        .await
        .map_err(WorkerError::Startup)?;

    let lease = lease_for(&config, &tuning);
    let qcfg = ezpulze_runtime::queues::send(&config)
        .with_lease(lease)
        .with_batch_size(config.worker_batch)
        // Attempts are counted in Postgres (SEND_MAX_ATTEMPTS); the queue only re-delivers.
        .with_max_attempts(u32::MAX / 2);
    let queue: Queue<SendJob> = ezpulze_runtime::queues::connect(&config, qcfg)
        .await
        .map_err(WorkerError::Startup)?;
    let webhooks: Vec<Queue<WebhookBody>> = ezpulze_runtime::queues::connect_webhooks(&config)
        .await
        .map_err(WorkerError::Startup)?;

    let lanes = ezpulze_runtime::send_lanes::SendLanes::connect(&config, {
        let mut c = ezpulze_runtime::send_lanes::config(&config);
        c.lease = lease;
        c
    })
    .await
    .map_err(WorkerError::Startup)?;
    let budget = Arc::new(budget::Budget::new(
        redis.clone(),
        &config.redis_prefix,
        config.messaging_window,
        tuning.slot_wait + Duration::from_secs(1),
    ));
    tokio::spawn(budget::export_gauges_until(budget.clone(), cancel.clone()));
    let engine = Arc::new(send::Engine {
        db: db.clone(),
        lanes,
        legacy: queue,
        graph: graph::Graph::new(
            &config.graph_api_version,
            config.send_timeout,
            config.worker_concurrency,
        )
        .context("building the HTTP client")
        .map_err(WorkerError::Startup)?,
        numbers: numbers::Numbers::new(db.clone(), config.sealer(), tuning.number_cache_ttl)
            .with_epoch(
                redis.clone(),
                ezpulze_common::keyspace::Keyspace::new(&config.redis_prefix),
            ),
        throttle: throttle::Throttle::new(redis.clone(), &config.redis_prefix),
        budget: budget.clone(),
        intents: intents::Intents::new(redis.clone(), &config.redis_prefix),
        permits: Arc::new(Semaphore::new(config.worker_concurrency)),
        breaker: Arc::new(send::breaker::Breaker::new(
            tuning.breaker_trip_after,
            tuning.breaker_open_in_flight,
        )),
        tails: tokio_util::task::TaskTracker::new(),
        lease,
        batch: config.worker_batch,
        max_attempts: config.send_max_attempts,
        policy: config.unknown_outcome_policy,
        graph_base: config.graph_api_base.clone(),
        test_graph_base: config.test_graph_api_base.clone(),
        test_graph_token: config.test_graph_api_token.clone().into(),
        tuning: tuning.clone(),
    });

    let addr: SocketAddr = listener
        .local_addr()
        .context("metrics listener address")
        .map_err(WorkerError::Startup)?;
    let server = tokio::spawn(ezpulze_runtime::ops::serve(
        listener,
        db.clone(),
        Some(redis.clone()),
        cancel.clone(),
    ));

    let loops = tuning.loops.unwrap_or_else(|| {
        config
            .worker_concurrency
            .div_ceil(config.worker_batch)
            .max(2)
    });
    let me = format!(
        "send-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    tracing::info!(
        %addr,
        loops,
        batch = config.worker_batch,
        concurrency = config.worker_concurrency,
        lease_ms = lease.as_millis() as u64,
        policy = ?config.unknown_outcome_policy,
        "worker started"
    );
    let mut tasks = Vec::new();
    for i in 0..loops {
        tasks.push(tokio::spawn(send::run_loop(
            engine.clone(),
            format!("{me}-{i}"),
            cancel.clone(),
        )));
    }
    tasks.push(tokio::spawn(send::drain_legacy(
        engine.clone(),
        format!("{me}-legacy"),
        cancel.clone(),
    )));
    // A status consumer per shard of the webhook stream.
    let effects = status::lifecycle::Effects {
        db: db.clone(),
        lanes: engine.lanes.clone(),
        redis: redis.clone(),
        keys: ezpulze_common::keyspace::Keyspace::new(&config.redis_prefix),
    };
    let status_tasks: Vec<_> = webhooks
        .into_iter()
        .map(|q| {
            tokio::spawn(status::run_full(
                db.clone(),
                q,
                config.status_batch,
                Some(budget.clone()),
                Some(effects.clone()),
                cancel.clone(),
            ))
        })
        .collect();

    // The integrator event deliverer (outbound webhooks).
    let deliverer = if config.webhooks.enabled {
        let d = hooks::Deliverer::new(
            db.clone(),
            redis.clone(),
            &config.redis_prefix,
            config.sealer(),
            config.webhooks.clone(),
        )
        .map_err(WorkerError::Startup)?;
        Some(tokio::spawn(d.run(cancel.clone())))
    } else {
        None
    };

    let mut status_result = Ok(());
    for t in tasks {
        if let Err(e) = t.await {
            tracing::error!(error = %e, "a send loop ended abnormally");
        }
    }
    // Sends already started end (answered or timed out) and are recorded.
    engine.tails.close();
    engine.tails.wait().await;
    for t in status_tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => status_result = Err(WorkerError::Status(e)),
            Err(e) => status_result = Err(WorkerError::Status(anyhow::anyhow!("task: {e}"))),
        }
    }
    cancel.cancel();
    if let Some(d) = deliverer {
        match d.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "webhook deliverer"),
            Err(e) => tracing::warn!(error = %e, "webhook deliverer task"),
        }
    }
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics server"),
        Err(e) => tracing::warn!(error = %e, "metrics server task"),
    }
    db.close().await;
    tracing::info!("worker stopped");
    status_result
}
