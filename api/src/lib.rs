//! The EzPulze HTTP API: admin API for accounts and keys, the public `/api/v1` for integrators,
//! the web UI's session, and operations endpoints.
#![forbid(unsafe_code)]

pub mod auth;
pub mod error;
pub mod extract;
pub mod fanout;
pub mod idempotency;
pub mod middleware;
pub mod recovery;
pub mod routes;
pub mod serve;
pub mod state;
pub mod ui;
pub mod webhook_secrets;

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use auth::key_cache::{self, KeyCache};
use auth::last_used::LastUsed;
use auth::rate_limit::RateLimiter;
use ezpulze_common::Config;
use ezpulze_runtime::{queues, telemetry};
use state::{AppState, Inner};

/// Connects, migrates (when configured), and builds the state and background tasks.
pub async fn build_state(config: Config, cancel: &CancellationToken) -> anyhow::Result<AppState> {
    let metrics = telemetry::metrics_handle();
    let ezpulze_runtime::stores::Stores {
        db: pool,
        redis_client: client,
        pubsub_clients,
        redis,
    } = ezpulze_runtime::stores::open(&config).await?;
    let cache = Arc::new(KeyCache::new(
        config.key_cache_ttl,
        config.negative_cache_max,
    ));
    let last_used = Arc::new(LastUsed::default());

    let ready = Arc::new(tokio::sync::Notify::new());
    let subscribed = ready.notified();
    tokio::spawn(key_cache::run_subscriber(
        cache.clone(),
        pubsub_clients,
        pool.clone(),
        config.redis_prefix.clone(),
        ready.clone(),
        cancel.clone(),
    ));
    // Serve only once invalidations are heard, so no change can be missed.
    tokio::time::timeout(std::time::Duration::from_secs(5), subscribed)
        .await
        .context("subscribing to key invalidations")?;
    {
        let (cache, pool, cancel) = (cache.clone(), pool.clone(), cancel.clone());
        tokio::spawn(async move { cache.known.run_refresh(pool, cancel).await });
    }
    tokio::spawn(key_cache::run_publisher(
        cache.clone(),
        redis.clone(),
        config.redis_prefix.clone(),
        cancel.clone(),
    ));
    {
        let last_used = last_used.clone();
        let pool = pool.clone();
        let every = config.last_used_flush;
        let cancel = cancel.clone();
        tokio::spawn(async move { last_used.run(pool, every, cancel).await });
    }
    let send_lanes = ezpulze_runtime::send_lanes::SendLanes::connect(
        &config,
        ezpulze_runtime::send_lanes::config(&config),
    )
    .await?;
    let schedule_queue = queues::connect(&config, queues::schedule(&config)).await?;
    let webhook_queues = queues::connect_webhooks(&config).await?;
    Ok(AppState::new(Inner {
        hasher: ezpulze_common::keys::SecretHasher::new(config.pepper()),
        send_lanes,
        schedule_queue,
        webhook_queues,
        webhook_secrets: Default::default(),
        rate_limiter: RateLimiter::new(&config.redis_prefix),
        keyspace: ezpulze_common::keyspace::Keyspace::new(config.redis_prefix.clone()),
        session_cookie: auth::session::CookieRules::new(&config),
        ui_origin: config.public_origin(),
        fanout_wake: fanout::new_wake(),
        config,
        db: pool,
        redis,
        redis_client: client,
        key_cache: cache,
        last_used,
        metrics,
    }))
}

/// Serves the API on `listener` until `cancel` fires, then drains in-flight requests. With
/// `API_METRICS_ADDR` set, `/metrics` (and the probes) are served there instead.
pub async fn run(
    config: Config,
    listener: TcpListener,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let metrics_listener = match config.api_metrics_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding API_METRICS_ADDR {addr}"))?,
        ),
        None => None,
    };
    let state = build_state(config, &cancel).await?;
    let ops = match metrics_listener {
        Some(ops_listener) => {
            tracing::info!(addr = %ops_listener.local_addr()?, "api metrics listening");
            let serve = ezpulze_runtime::ops::serve(
                ops_listener,
                state.db().clone(),
                Some(state.redis()),
                cancel.clone(),
            );
            Some(tokio::spawn(serve))
        }
        None => None,
    };
    fanout::spawn(&state, &cancel);
    // Contact CSV imports run in the api processes (claimed, resumed after a crash).
    routes::contacts::import::spawn(&state, &cancel);
    let app = routes::router(state.clone());
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    let timeouts = serve::ReadTimeouts::of(state.config());
    serve::serve(listener, app, timeouts, cancel.clone()).await;
    if let Some(ops) = ops {
        ops.await
            .context("the metrics server task")?
            .context("serving metrics")?;
    }
    state.last_used().flush(state.db()).await.ok();
    Ok(())
}
